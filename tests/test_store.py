"""The store: migrations, versions, audit."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import create_engine, insert, inspect, select, text
from sqlmodel import SQLModel

from compliance.store import Store
from tests.conftest import SUNDERLAND, SUNDERLAND_RETURN, Result, StoreRef, dump_store

FIRST_SCHEMA_TABLES = ["contract", "schedule_version", "measure", "submission", "figure",
                       "check_run", "assessment", "audit"]


def test_migrations_match_the_models(db_path: StoreRef) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(db_path.url)
    assert store.init() == ["0001", "0002"]
    assert store.init() == []
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    store.dispose()
    assert diff == []


def test_upgrade_from_the_first_schema_keeps_everything(
        cli: Callable[..., Result], db_path: StoreRef,
        make_store: Callable[[], StoreRef]) -> None:
    # A store of today's schema, filled through the command line...
    assert cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN, "--period",
               "2018-09", "--format", "json").exit_code == 0
    filled = dump_store(db_path)

    # ... and a store of the first schema holding the same rows.
    old = make_store()
    store = Store(old.url)
    assert store.init(to="0001") == ["0001"]
    assert set(inspect(store.engine).get_table_names()) == {*FIRST_SCHEMA_TABLES,
                                                            "alembic_version"}
    source = create_engine(db_path.url)
    with source.connect() as src, store.engine.begin() as dst:
        for name in FIRST_SCHEMA_TABLES:
            table = SQLModel.metadata.tables[name]
            rows = [dict(r._mapping) for r in src.execute(select(table))]
            if rows:
                dst.execute(insert(table), rows)
        if store.engine.dialect.name == "postgresql":
            # Rows copied with their ids: move the id sequences past them.
            for name in FIRST_SCHEMA_TABLES:
                columns = SQLModel.metadata.tables[name].c
                if "id" in columns and str(columns["id"].type) == "INTEGER":
                    dst.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                        f"coalesce(max(id), 1)) FROM \"{name}\""))
    source.dispose()

    refused = cli_on(old.url)("check", "--contract", "sunderland-tfc", "--period", "2018-09")
    assert refused.exit_code == 1
    assert "run `compliance init` to upgrade it" in refused.stderr

    upgraded = cli_on(old.url)("init")
    assert upgraded.exit_code == 0, upgraded.stderr + upgraded.stdout
    assert "applied 0002" in upgraded.stderr
    store.dispose()
    after = dump_store(old)
    for name in FIRST_SCHEMA_TABLES:
        if name == "audit":  # init itself leaves an audit row
            assert after[name][: len(filled[name])] == filled[name] or \
                set(filled[name]) <= set(after[name])
        else:
            assert after[name] == filled[name], name
    # The upgraded store works: the check gives the same result as on the original.
    again = cli_on(old.url)("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                            "--format", "json")
    original = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                   "--format", "json")
    assert again.json() == original.json()


def cli_on(url: str) -> Callable[..., Result]:
    from typer.testing import CliRunner

    from compliance.cli import app

    runner = CliRunner()

    def run(*args: object) -> Result:
        r = runner.invoke(app, ["--db", url, "--user", "tester", *map(str, args)])
        return Result(r.exit_code, r.stdout, r.stderr)

    return run


def test_foreign_tables_are_not_taken_over(make_store: Callable[[], StoreRef]) -> None:
    other = make_store()
    engine = create_engine(other.url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE something_else (x INTEGER)"))
    engine.dispose()
    result = cli_on(other.url)("contract", "list")
    assert result.exit_code == 1
    assert "holds tables that are not a compliance store" in result.stderr
