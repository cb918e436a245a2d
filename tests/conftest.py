from __future__ import annotations

import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compliance.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data"
SUNDERLAND = CONTRACTS / "sunderland-tfc.yaml"
DARLINGTON = CONTRACTS / "darlington-childrens.yaml"
SUNDERLAND_RETURN = EXAMPLES / "sunderland-tfc-2018-09.csv"
DARLINGTON_RETURN = EXAMPLES / "darlington-2017-q2.csv"


def bench_generator() -> Any:
    """The benchmarks' data generator (``benchmarks/generate.py``) as a module."""
    spec = importlib.util.spec_from_file_location("bench_generate",
                                                  ROOT / "benchmarks" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="session")
def _pack_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Validated rule packs are kept in a folder of the test session, not the user's."""
    saved = os.environ.get("COMPLIANCE_CACHE_DIR")
    os.environ["COMPLIANCE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if saved is None:
        os.environ.pop("COMPLIANCE_CACHE_DIR", None)
    else:
        os.environ["COMPLIANCE_CACHE_DIR"] = saved


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", choices=["sqlite", "postgresql"], default="sqlite",
        help="Store backend for the store tests. postgresql needs $COMPLIANCE_TEST_PG, an "
             "admin URL of a throwaway server (see .ci/with-postgres).")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run again exactly the tests that use a store."""
    if config.getoption("--backend") != "postgresql":
        return
    keep = [i for i in items if STORE_FIXTURES & set(getattr(i, "fixturenames", ()))]
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


STORE_FIXTURES = {"db_url", "db_path", "make_store"}


class StoreRef:
    """A test store: its URL, whichever backend the run uses."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"StoreRef({self.url!r})"


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--backend"))


@pytest.fixture
def make_store(backend: str, tmp_path: Path) -> Iterator[Callable[[], StoreRef]]:
    """Fresh, empty stores of the run's backend: SQLite files, or PostgreSQL databases."""
    made: list[str] = []
    admin_url = os.environ.get("COMPLIANCE_TEST_PG", "")
    if backend == "postgresql" and not admin_url:
        pytest.fail("--backend postgresql needs $COMPLIANCE_TEST_PG (run through "
                    ".ci/with-postgres)")

    def make() -> StoreRef:
        name = f"t_{uuid.uuid4().hex[:16]}"
        if backend == "sqlite":
            return StoreRef(f"sqlite:///{tmp_path / f'{name}.db'}")
        made.append(name)
        _pg_admin(admin_url, f'CREATE DATABASE "{name}"')
        return StoreRef(admin_url.rsplit("/", 1)[0] + f"/{name}")

    yield make
    for name in made:
        _pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_admin(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def db_path(make_store: Callable[[], StoreRef]) -> StoreRef:
    return make_store()


@pytest.fixture
def db_url(db_path: StoreRef) -> str:
    return db_path.url


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class _Connection:
    """Enough of sqlite3's connection for the tests, on any backend's URL."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self._engine = create_engine(url)

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._engine.dispose()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Rows:
        from sqlalchemy import text

        names = {}
        parts = sql.split("?")
        query = parts[0]
        for i, part in enumerate(parts[1:]):
            query += f":p{i}" + part
            names[f"p{i}"] = params[i]
        with self._engine.connect() as conn:
            return _Rows([tuple(r) for r in conn.execute(text(query), names)])


def connect(store: StoreRef | Path | str) -> _Connection:
    if isinstance(store, StoreRef):
        return _Connection(store.url)
    return _Connection(f"sqlite:///{store}")


@pytest.fixture
def cli(db_url: str) -> Callable[..., Result]:
    """Run the command line against a fresh store, as a user would."""
    runner = CliRunner()

    def run(*args: str | Path) -> Result:
        result = runner.invoke(app, ["--db", db_url, "--user", "tester", *map(str, args)],
                               catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


def dump_store(store: StoreRef | Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare a store before and after a command."""
    from sqlalchemy import create_engine, inspect, text

    url = store.url if isinstance(store, StoreRef) else f"sqlite:///{store}"
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return {}
    engine = create_engine(url)
    try:
        tables = sorted(inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {t: sorted((tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}"'))),
                              key=repr) for t in tables}
    finally:
        engine.dispose()


def facts_asserted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the facts handed to durable-rules from now on (each still asserted)."""
    from compliance import escalation

    asserted: list[str] = []
    real = escalation._assert

    def spy(host: Any, name: str, fact: dict[str, Any], *args: Any, **kw: Any) -> None:
        asserted.append(fact["id"])
        real(host, name, fact, *args, **kw)

    monkeypatch.setattr(escalation, "_assert", spy)
    return asserted
