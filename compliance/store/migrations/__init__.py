"""The store's migrations (Alembic revisions in ``versions/``).

``head_revision`` reads the newest revision from the revision files themselves, so that a
command which only needs to compare a store's revision with this version's does not import
Alembic.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

VERSIONS = Path(__file__).parent / "versions"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


@cache
def head_revision() -> str:
    """The one revision that no other revision revises."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is None:
            continue
        down = _DOWN.search(text)
        if down is None:
            raise RuntimeError(f"{path.name}: a revision without down_revision")
        revisions.add(revision.group(1))
        # None, one revision, or a tuple of them (a merge).
        revised.update(_QUOTED.findall(down.group(1)))
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()
