"""The store: migrations, versions, audit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import MetaData, Table, create_engine, insert, inspect, select, text
from sqlmodel import SQLModel

from compliance.store import Store
from tests.conftest import SUNDERLAND, SUNDERLAND_RETURN, Result, StoreRef, dump_store

FIRST_SCHEMA_TABLES = ["contract", "schedule_version", "measure", "submission", "figure",
                       "check_run", "assessment", "audit"]


def test_migrations_match_the_models(db_path: StoreRef) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(db_path.url)
    assert store.init() == ["0001", "0002", "0003"]
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
            # The first schema's own columns: later migrations added some.
            old_table = Table(name, MetaData(), autoload_with=dst)
            table = SQLModel.metadata.tables[name]
            columns = [table.c[c.name] for c in old_table.columns]
            rows = [dict(r._mapping) for r in src.execute(select(*columns))]
            if rows:
                dst.execute(insert(old_table), rows)
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
    assert "applied 0002, 0003" in upgraded.stderr
    store.dispose()
    after = dump_store(old)
    for name in FIRST_SCHEMA_TABLES:
        if name == "audit":  # init itself leaves an audit row
            assert set(filled[name]) <= set(after[name])
        elif name == "assessment":  # later columns start empty
            width = len(Table(name, MetaData(), autoload_with=source).columns)
            assert [r[:width - 2] for r in after[name]] == [r[:width - 2]
                                                            for r in filled[name]]
        else:
            assert after[name] == filled[name], name
    source.dispose()
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


# --- versions, not overwrites ---------------------------------------------------------------


def test_resubmission_is_a_new_version_and_history_shows_which_check_used_it(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    assert cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
               "--period", "2018-09", "--format", "json").exit_code == 0
    revised = tmp_path / "revised.csv"
    revised.write_text(SUNDERLAND_RETURN.read_text().replace("KPI1,2018-09,99%",
                                                             "KPI1,2018-09,91%"))
    assert cli("--user", "provider", "submit", "--contract", "sunderland-tfc",
               revised).exit_code == 0
    doc = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
              "--format", "json").json()
    kpi1 = next(a for a in doc["assessments"] if a["measure"] == "KPI1")
    assert kpi1["value"] == 91 and kpi1["status"] == "within_tolerance"
    assert kpi1["figure_version"] == 2
    rows = cli("history", "--contract", "sunderland-tfc", "--measure", "KPI1",
               "--format", "json").json()
    assert [(r["period"], r["version"], r["value"], r["latest"]) for r in rows] == [
        ("2018-09", 1, 99.0, False), ("2018-09", 2, 91.0, True)]
    assert [u["check"] for u in rows[0]["used_by"]] == [1]
    assert [u["check"] for u in rows[1]["used_by"]] == [2]
    assert rows[0]["file"] == "sunderland-tfc-2018-09.csv" and rows[1]["file"] == "revised.csv"
    table = cli("history", "--contract", "sunderland-tfc", "--measure", "KPI1").stdout
    assert "2 (latest)" in table and "check #1" in table
    bad = cli("history", "--contract", "sunderland-tfc", "--measure", "KPl1")
    assert bad.exit_code == 1 and "did you mean 'KPI1'?" in bad.stderr


def changed_schedule(tmp_path: Path, target: str) -> Path:
    path = tmp_path / f"changed-{target}.yaml"
    path.write_text(SUNDERLAND.read_text().replace(
        "    target: 95\n    tolerance: [90, 94.9]\n\n  - id: SM1.1",
        f"    target: {target}\n    tolerance: [90, {float(target) - 0.1:g}]\n\n  - id: SM1.1",
        1))
    assert path.read_text() != SUNDERLAND.read_text()
    return path


def kpi1_status(cli: Callable[..., Result], period: str) -> tuple[str, float]:
    doc = cli("check", "--contract", "sunderland-tfc", "--period", period,
              "--format", "json").json()
    kpi1 = next(a for a in doc["assessments"] if a["measure"] == "KPI1")
    return kpi1["status"], kpi1["target"]


def test_new_targets_apply_from_their_period_never_to_past_ones(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    october = tmp_path / "october.csv"
    october.write_text("measure,period,value\nKPI1,2018-10,99.2%\n")
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    for path in (SUNDERLAND_RETURN, october):
        assert cli("submit", "--contract", "sunderland-tfc", path).exit_code == 0
    assert kpi1_status(cli, "2018-09") == ("met", 95)

    # Raised to 99.5% after September was checked: it applies from October.
    loaded = cli("contract", "load", changed_schedule(tmp_path, "99.5"))
    assert "schedule version 2" in loaded.stderr
    assert kpi1_status(cli, "2018-09") == ("met", 95)
    assert kpi1_status(cli, "2018-10") == ("within_tolerance", 99.5)

    # An explicit start may reach back over checked months, but never before the version
    # it follows.
    again = cli("contract", "load", "--effective-from", "2018-10",
                changed_schedule(tmp_path, "99.1"))
    assert again.exit_code == 0, again.stderr
    assert kpi1_status(cli, "2018-10") == ("met", 99.1)
    assert kpi1_status(cli, "2018-09") == ("met", 95)
    early = cli("contract", "load", "--effective-from", "2018-09",
                changed_schedule(tmp_path, "98"))
    assert early.exit_code == 1
    assert "cannot take effect from 2018-09, before version 3 (2018-10)" in early.stderr


def test_audit_command_lists_every_change(cli: Callable[..., Result]) -> None:
    cli("contract", "load", SUNDERLAND)
    cli("--user", "officer-a", "submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    cli("--user", "officer-b", "check", "--contract", "sunderland-tfc", "--period", "2018-09")
    entries = cli("audit", "--format", "json").json()
    assert [(e["command"], e["actor"]) for e in entries] == [
        ("check", "officer-b"), ("submit", "officer-a"), ("contract load", "tester")]
    assert entries[1]["counts"]["figures"] == 21
    assert entries[0]["arguments"]["periods"] == ["2018-09"]
    assert entries[0]["counts"]["assessments"] == 20
    assert "officer-b" in cli("audit").stdout
    failed = cli("submit", "--contract", "sunderland-tfc", SUNDERLAND)  # a YAML, not a return
    assert failed.exit_code == 1
    assert len(cli("audit", "--format", "json").json()) == 3  # nothing written, no audit row


def test_spreadsheet_formulas_from_providers_are_neutralised(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    evil = tmp_path / "evil.csv"
    evil.write_text('measure,period,value,comment\n'
                    'KPI1,2018-09,,"=HYPERLINK(""http://x"",""click"")"\n'
                    'SM1.1,2018-09,,"@SUM(1+1)"\nSM1.2,2018-09,,"+1"\nKPI2,2018-09,,"-1+2"\n')
    result = cli("check", "--contract", SUNDERLAND, "--returns", evil, "--period", "2018-09",
                 "--format", "csv")
    assert result.exit_code == 0, result.stderr
    import csv
    import io

    reasons = {r["measure"]: r["reason"] for r in csv.DictReader(io.StringIO(result.stdout))}
    assert reasons["KPI1"] == "'=HYPERLINK(\"http://x\",\"click\")"
    assert reasons["SM1.1"] == "'@SUM(1+1)"
    assert reasons["SM1.2"] == "'+1" and reasons["KPI2"] == "'-1+2"
    history = cli("history", "-c", "sunderland-tfc", "-m", "KPI1", "--format", "csv").stdout
    assert "'=HYPERLINK" in history
