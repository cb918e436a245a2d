"""The store: contracts and their schedule versions, returns (every version), assessments.

SQLite by default (``compliance.db`` in the working folder), any SQLAlchemy URL otherwise.
Every command's writes happen in one transaction (``Store.transaction``); figures and
assessments are written in bulk. The store itself is ``compliance.store.db``; its names are
read from here.

The store's engine (SQLAlchemy, sqlmodel and the tables' models) is imported only when one of
its names is first asked for: the modules of the store a check's helper process uses (how
assessments are packed, the columns they are packed from, what a check reads) import without
it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compliance.store.db import (
        DEFAULT_URL,
        MIGRATIONS,
        Store,
        Transaction,
        default_user,
        resolve_url,
    )

__all__ = ["DEFAULT_URL", "MIGRATIONS", "Store", "Transaction", "default_user", "resolve_url"]


def __getattr__(name: str) -> Any:
    import importlib
    import importlib.util

    if name.startswith("__"):
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # A module of the store's (``from compliance.store import reads``): itself only.
        return importlib.import_module(f"{__name__}.{name}")
    db = importlib.import_module(f"{__name__}.db")
    try:
        value = getattr(db, name)
    except AttributeError:
        raise AttributeError(f"module 'compliance.store' has no attribute {name!r}") from None
    globals()[name] = value
    return value
