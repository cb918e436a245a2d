"""The store: migrations, versions, audit."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
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
    assert store.init() == ["0001", "0002", "0003", "0004", "0005", "0006", "0007",
                          "0008", "0009", "0010"]
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
    first_columns: dict[str, list[str]] = {}
    with source.connect() as src, store.engine.begin() as dst:
        for name in FIRST_SCHEMA_TABLES:
            # The first schema's own columns: later migrations added some (and took the
            # figures' number, which the old store hands out itself). Assessments are read
            # from today's view of them.
            old_table = Table(name, MetaData(), autoload_with=dst)
            today = SQLModel.metadata.tables.get(name)
            if today is None:
                today = Table(name, MetaData(), autoload_with=src)
            columns = [today.c[c.name] for c in old_table.columns if c.name in today.c]
            first_columns[name] = [c.name for c in columns]
            rows = [dict(r._mapping) for r in src.execute(select(*columns))]
            if rows:
                dst.execute(insert(old_table), rows)
        if store.engine.dialect.name == "postgresql":
            # Rows copied with their ids: move the id sequences past them.
            for name in FIRST_SCHEMA_TABLES:
                model = SQLModel.metadata.tables.get(name)
                if model is not None and "id" in model.c and str(model.c.id.type) == "INTEGER":
                    dst.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                        f"coalesce(max(id), 1)) FROM \"{name}\""))
    source.dispose()

    refused = cli_on(old.url)("check", "--contract", "sunderland-tfc", "--period", "2018-09")
    assert refused.exit_code == 1
    assert "run `compliance init` to upgrade it" in refused.stderr

    upgraded = cli_on(old.url)("init")
    assert upgraded.exit_code == 0, upgraded.stderr + upgraded.stdout
    assert "applied 0002, 0003, 0004, 0005, 0006, 0007, 0008" in upgraded.stderr
    store.dispose()
    after = dump_store(old)
    for name in FIRST_SCHEMA_TABLES:
        if name == "audit":  # init itself leaves an audit row
            assert set(filled[name]) <= set(after[name])
        elif name == "assessment":  # a view now, of the sets the rows became
            columns = first_columns[name]
            assert _view_rows(old, columns) == _view_rows(db_path, columns)
        else:
            assert after[name] == filled[name], name
    # The upgraded store works: the check gives the same result as on the original.
    again = cli_on(old.url)("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                            "--format", "json")
    original = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                   "--format", "json")
    assert again.json() == original.json()


def _view_rows(store: StoreRef, columns: list[str]) -> list[tuple[object, ...]]:
    """The rows of the assessment view, in order of contract, period and measure."""
    names = ", ".join(f'"{c}"' for c in columns)
    engine = create_engine(store.url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                f"SELECT {names} FROM assessment ORDER BY contract_id, period, measure_id"))]
    finally:
        engine.dispose()


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


def test_a_new_sqlite_store_has_large_pages_and_an_older_store_keeps_its_own(
        tmp_path: Path) -> None:
    """A check writes texts of kilobytes (its sets): a new SQLite store is made of 16 KB
    pages. A store made with SQLite's usual 4 KB pages keeps them, and serves as before."""
    import sqlite3

    from compliance.store.db import SQLITE_PAGE_SIZE

    def page_size(path: Path) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    new = tmp_path / "new.db"
    assert cli_on(f"sqlite:///{new}")("contract", "load", SUNDERLAND).exit_code == 0
    assert page_size(new) == SQLITE_PAGE_SIZE == 16384
    old = tmp_path / "old.db"
    sqlite3.connect(old).execute("CREATE TABLE made_first (x INTEGER)").connection.close()
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TABLE made_first")
    assert page_size(old) == 4096
    run = cli_on(f"sqlite:///{old}")
    assert run("contract", "load", SUNDERLAND).exit_code == 0
    assert run("submit", SUNDERLAND_RETURN).exit_code == 0
    assert run("check", "--contract", "sunderland-tfc", "--period", "2018-09").exit_code == 0
    assert page_size(old) == 4096


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


def test_upgrade_to_keyed_figures_moves_the_evidence_onto_current_assessments(
        cli: Callable[..., Result], db_path: StoreRef, tmp_path: Path) -> None:
    """0005: a store of 0004 holds every check's evidence in check_figure and numbers its
    figures; upgraded, the current assessments carry their figure versions, check_figure
    keeps what replaced checks used, and the history reads as before. (0007 keeps a replaced
    check's set instead; downgraded, its evidence goes to check_figure.)"""
    from alembic import command

    revised = tmp_path / "revised.csv"
    revised.write_text(SUNDERLAND_RETURN.read_text().replace("KPI1,2018-09,99%",
                                                             "KPI1,2018-09,91%"))
    assert cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
               "--period", "2018-09").exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", revised).exit_code == 0
    assert cli("check", "--contract", "sunderland-tfc", "--period", "2018-09").exit_code == 0
    history = cli("history", "--contract", "sunderland-tfc", "--measure", "KPI1",
                  "--format", "json").json()
    assert [[u["check"] for u in r["used_by"]] for r in history] == [[1], [2]]
    before = dump_store(db_path)
    # Today each check's set of assessments is its evidence; check 2's replaced check 1's.
    assert before["check_figure"] == []
    assert [(r[0], r[3]) for r in before["assessment_set"]] == [(1, 2), (2, None)]
    with Store(db_path.url).transaction() as tx:
        used = [tx._sets(select(_set_table()).where(text(f"check_run_id = {run}")))
                for run in (1, 2)]
    evidence = [int(frame["figure_version"].notna().sum()) for frame in used]
    assert evidence[0] > 0 and evidence[1] > 0

    store = Store(db_path.url)
    with store.engine.begin() as conn:
        command.downgrade(store._alembic(conn), "0004")
    assert store.revision() == "0004"
    old = dump_store(db_path)
    # 0004: every check's evidence in check_figure, figures numbered in the order they came.
    assert {r[0] for r in old["check_figure"]} == {1, 2}
    assert len(old["check_figure"]) == sum(evidence)
    with store.engine.connect() as conn:
        numbers = conn.execute(text("SELECT id FROM figure ORDER BY id")).scalars().all()
    assert numbers == list(range(1, len(old["figure"]) + 1))
    assert "figure_version" not in [c["name"] for c in inspect(store.engine).get_columns(
        "assessment")]

    assert store.init() == ["0005", "0006", "0007", "0008", "0009", "0010"]
    store.dispose()
    after = dump_store(db_path)
    # Check 2's set comes back as it was; check 1's evidence stays in check_figure.
    assert after["assessment_set"] == before["assessment_set"][1:]
    assert {r[0] for r in after["check_figure"]} == {1}
    assert len(after["check_figure"]) == evidence[0]
    for name in set(before) - {"assessment_set", "check_figure"}:
        assert after[name] == before[name], name
    assert cli("history", "--contract", "sunderland-tfc", "--measure", "KPI1",
               "--format", "json").json() == history


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


# --- bulk writes ------------------------------------------------------------------------------

DARLINGTON_ID = "darlington-childrens"
SUNDERLAND_ID = "sunderland-tfc"


def _loaded(store_ref: StoreRef) -> Store:
    from compliance.schedule import load_schedule
    from tests.conftest import DARLINGTON

    store = Store(store_ref.url)
    with store.transaction("tester") as tx:
        tx.load_schedule(load_schedule(SUNDERLAND))
        tx.load_schedule(load_schedule(DARLINGTON))
    return store


def _figures(rows: list[tuple[object, ...]], file: str) -> pd.DataFrame:
    from compliance.returns import FIGURE_COLUMNS

    frame = pd.DataFrame([(*r, file) for r in rows], columns=FIGURE_COLUMNS)
    return frame.astype({"value": "float64", "numerator": "float64", "denominator": "float64",
                         "source_rank": "int64", "row": "int64"})


def _table_rows(store: Store, table: str, order: str) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{table}" ORDER BY {order}'))]


NAN = float("nan")


def test_submissions_number_versions_and_keep_nulls(make_store: Callable[[], StoreRef]) -> None:
    store = _loaded(make_store())
    first = _figures([
        (SUNDERLAND_ID, "KPI1", "2018-09", 99.0, NAN, NAN, "", 0, "", 2),
        (SUNDERLAND_ID, "KPI2", "2018-09", NAN, 40.0, 50.0, "", 0, "no data yet", 3),
        (SUNDERLAND_ID, "SM1.1", "2018-09", NAN, NAN, NAN, "", 0, None, 4),
        (DARLINGTON_ID, "CS1", "2017-06", 0.98, 98.0, NAN, "a", 0, "", 2),
        (DARLINGTON_ID, "CS1", "2017-06", 0.97, NAN, 100.0, "b", 1, "", 3),
    ], "first.csv")
    with store.transaction("provider") as tx:
        assert tx.submit(first, {"first.csv": "1" * 64}) == {
            "files": 1, "figures": 5, "new_versions": 0}
    # A second submission in two files: KPI1 and one source of CS1 again, and new figures.
    second = pd.concat([
        _figures([(SUNDERLAND_ID, "KPI1", "2018-09", NAN, 91.0, 100.0, "", 0, "revised", 2),
                  (SUNDERLAND_ID, "KPI1", "2018-10", 95.5, NAN, NAN, "", 0, "", 3)], "a.csv"),
        _figures([(DARLINGTON_ID, "CS1", "2017-06", NAN, NAN, NAN, "a", 0, "withdrawn", 2)],
                 "b.csv"),
    ], ignore_index=True)
    with store.transaction("provider") as tx:
        assert tx.submit(second, {"a.csv": "2" * 64, "b.csv": "3" * 64}) == {
            "files": 2, "figures": 3, "new_versions": 2}
    rows = _table_rows(store, "figure", 'submission_id, "row"')
    got = [(r[0], r[1], r[2], r[3], r[4], r[6], r[7], r[8], r[9], r[10]) for r in rows]
    assert sorted(got, key=repr) == sorted([
        (1, SUNDERLAND_ID, "KPI1", "2018-09", "", 1, 99.0, None, None, ""),
        (1, SUNDERLAND_ID, "KPI2", "2018-09", "", 1, None, 40.0, 50.0, "no data yet"),
        (1, SUNDERLAND_ID, "SM1.1", "2018-09", "", 1, None, None, None, ""),
        (1, DARLINGTON_ID, "CS1", "2017-06", "a", 1, 0.98, 98.0, None, ""),
        (1, DARLINGTON_ID, "CS1", "2017-06", "b", 1, 0.97, None, 100.0, ""),
        (2, SUNDERLAND_ID, "KPI1", "2018-09", "", 2, None, 91.0, 100.0, "revised"),
        (2, SUNDERLAND_ID, "KPI1", "2018-10", "", 1, 95.5, None, None, ""),
        (3, DARLINGTON_ID, "CS1", "2017-06", "a", 2, None, None, None, "withdrawn"),
    ], key=repr)
    submissions = _table_rows(store, "submission", "id")
    assert [r[3] for r in submissions] == [5, 2, 1]
    # A period's return arrived with its first figure; later versions leave that as it was.
    arrivals = _table_rows(store, "return_arrival", "contract_id, period")
    assert [r[:3] for r in arrivals] == [(DARLINGTON_ID, "2017-06", 1),
                                         (SUNDERLAND_ID, "2018-09", 1),
                                         (SUNDERLAND_ID, "2018-10", 2)]
    from compliance.store.models import Submission

    with store.transaction() as tx:
        received = tx.returns_received([SUNDERLAND_ID, DARLINGTON_ID])
        at = {sub.id: sub.submitted_at
              for sub in tx.session.execute(select(Submission)).scalars()}
    assert received == {(DARLINGTON_ID, "2017-06"): at[1], (SUNDERLAND_ID, "2018-09"): at[1],
                        (SUNDERLAND_ID, "2018-10"): at[2]}
    with store.transaction() as tx:
        assert tx.first_figure_periods([SUNDERLAND_ID, DARLINGTON_ID, "no-such"]) == {
            SUNDERLAND_ID: "2018-09", DARLINGTON_ID: "2017-06"}
        assert tx.first_figure_periods([]) == {}

    with store.transaction() as tx:
        latest = tx.latest_figures([SUNDERLAND_ID, DARLINGTON_ID])
        upto = tx.latest_figures([SUNDERLAND_ID], up_to="2018-09")
        nothing = tx.latest_figures([])
        figures_only = tx.latest_figures([SUNDERLAND_ID, DARLINGTON_ID], parts=False)
        nothing_only = tx.latest_figures([], parts=False)
    # Without the ratios' parts: the same frame, two columns fewer.
    pd.testing.assert_frame_equal(figures_only,
                                  latest.drop(columns=["numerator", "denominator"]))
    assert list(nothing_only.columns) == list(figures_only.columns)
    assert list(latest.columns) == ["contract", "measure", "period", "value", "numerator",
                                    "denominator", "source", "source_rank", "comment",
                                    "version"]
    assert [str(t) for t in latest.dtypes] == ["category"] * 3 + ["float64"] * 3 + [
        "category", "int64", "object", "int64"]
    assert sorted(zip(latest["contract"], latest["measure"], latest["period"],
                      latest["source"], latest["version"], strict=True)) == [
        (DARLINGTON_ID, "CS1", "2017-06", "a", 2),
        (SUNDERLAND_ID, "KPI1", "2018-09", "", 2),
        (SUNDERLAND_ID, "KPI1", "2018-10", "", 1),
        (SUNDERLAND_ID, "KPI2", "2018-09", "", 1),
        (SUNDERLAND_ID, "SM1.1", "2018-09", "", 1),
    ]
    assert sorted(upto["measure"]) == ["KPI1", "KPI2", "SM1.1"]
    assert upto["version"].tolist() == [2 if m == "KPI1" else 1 for m in upto["measure"]]
    assert nothing.empty and list(nothing.columns) == list(latest.columns)
    store.dispose()


def test_latest_figures_without_revisions_are_every_figure(
        make_store: Callable[[], StoreRef]) -> None:
    store = _loaded(make_store())
    figures = _figures([(SUNDERLAND_ID, "KPI1", f"2018-{m:02d}", float(m), NAN, NAN, "", 0, "",
                         m) for m in range(1, 13)], "year.csv")
    with store.transaction() as tx:
        tx.submit(figures, {"year.csv": "4" * 64})
        latest = tx.latest_figures([SUNDERLAND_ID, DARLINGTON_ID], up_to="2018-06")
    assert latest["period"].tolist() == [f"2018-{m:02d}" for m in range(1, 7)]
    assert latest["value"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert latest["numerator"].isna().all() and latest["version"].tolist() == [1] * 6
    assert [str(t) for t in latest.dtypes] == ["category"] * 3 + ["float64"] * 3 + [
        "category", "int64", "object", "int64"]
    store.dispose()


def _assessments() -> pd.DataFrame:
    rows = []
    for contract, measures, periods, version in (
            (SUNDERLAND_ID, ["KPI1", "KPI2", "SM1.1"], ["2018-08", "2018-09", "2018-10"], 1),
            (DARLINGTON_ID, ["CS1", "CS2"], ["2017-06", "2017-09"], 1)):
        for i, period in enumerate(periods):
            for j, measure in enumerate(measures):
                k = i * len(measures) + j
                missing = k % 3 == 0
                rows.append({
                    "contract": contract, "period": period, "measure": measure,
                    "figure_period": period, "value": NAN if missing else 90.0 + k,
                    "source": None if missing else ("" if k % 2 else "survey"),
                    "sources": NAN if missing else 1 + k % 2,
                    "source_spread": 0.5 if k % 4 == 1 else NAN,
                    "target_low": 95.0, "target_high": NAN, "tolerance_low": 90.0,
                    "tolerance_high": 94.9, "compared_with": NAN if missing else 95.0,
                    "status": "missing" if missing else "met",
                    "rag": "grey" if missing else "green",
                    "direction": None if k % 2 else "up", "previous_value": NAN,
                    "change": NAN if k % 5 else 1.5, "forecast": NAN,
                    "forecast_status": None, "reason": "no return" if missing else None,
                    "variation": None if k % 2 else "common_cause",
                    "assurance": None, "schedule_version": version,
                    "figure_version": NAN if missing else float(1 + k % 2),
                })
    return pd.DataFrame(rows)


def test_bulk_assessments_are_the_rows_of_one_save_per_period(
        make_store: Callable[[], StoreRef]) -> None:
    frame = _assessments()
    versions = {SUNDERLAND_ID: 1, DARLINGTON_ID: 1}
    bulk, single = _loaded(make_store()), _loaded(make_store())
    for store in (bulk, single):
        # An earlier check of some of the same periods, to be replaced.
        with store.transaction() as tx:
            tx.save_assessments(frame[frame["period"].isin(["2018-09", "2017-06"])].assign(
                status="breach", rag="red"), versions)
    with bulk.transaction() as tx:
        assert tx.save_assessments(frame.sample(frac=1, random_state=3), versions) == {
            "check_runs": 5, "assessments": len(frame)}
    for (_, _), group in frame.groupby(["contract", "period"], sort=True, observed=True):
        with single.transaction() as tx:
            tx.save_assessments(group, versions)

    orders = {"check_run": "id", "assessment": "contract_id, period, measure_id",
              "check_figure": "check_run_id, measure_id"}
    for table, order in orders.items():
        got, expected = _table_rows(bulk, table, order), _table_rows(single, table, order)
        if table == "check_run":  # without run_at
            got = [r[:5] + r[6:] for r in got]
            expected = [r[:5] + r[6:] for r in expected]
        assert got == expected, table
    runs = _table_rows(bulk, "check_run", "id")
    assert [(r[0], r[1], r[2], r[4]) for r in runs] == [
        (1, DARLINGTON_ID, "2017-06", 2), (2, SUNDERLAND_ID, "2018-09", 3),
        (3, DARLINGTON_ID, "2017-06", 2), (4, DARLINGTON_ID, "2017-09", 2),
        (5, SUNDERLAND_ID, "2018-08", 3), (6, SUNDERLAND_ID, "2018-09", 3),
        (7, SUNDERLAND_ID, "2018-10", 3)]
    with bulk.engine.connect() as conn:
        stored = [r._asdict() for r in conn.execute(text("SELECT * FROM assessment"))]
    assert len(stored) == len(frame)
    assert {r["sources"] for r in stored if r["status"] == "missing"} == {0}  # NULL -> 0
    assert {r["reason"] for r in stored if r["status"] == "met"} == {""}  # NULL -> ''
    assert {r["source"] for r in stored if r["status"] == "missing"} == {None}
    assert {r["check_run_id"] for r in stored} == {3, 4, 5, 6, 7}  # the current sets only
    # Each assessment names the figure version it used; the evidence of the replaced
    # assessments stays in check_figure, under their check runs.
    expected = {(c, p, m): None if pd.isna(v) else int(v) for c, p, m, v in zip(
        frame["contract"], frame["period"], frame["measure"], frame["figure_version"],
        strict=True)}
    assert {(r["contract_id"], r["period"], r["measure_id"]): r["figure_version"]
            for r in stored} == expected
    # The replaced sets stay, each marked with the check run that replaced it, with the
    # figure versions they used; check_figure is no longer needed for them.
    assert _table_rows(bulk, "check_figure", "check_run_id, measure_id") == []
    sets = _table_rows(bulk, "assessment_set", "check_run_id")
    assert [(r[0], r[1], r[2], r[3]) for r in sets] == [
        (1, DARLINGTON_ID, "2017-06", 3), (2, SUNDERLAND_ID, "2018-09", 6),
        (3, DARLINGTON_ID, "2017-06", None), (4, DARLINGTON_ID, "2017-09", None),
        (5, SUNDERLAND_ID, "2018-08", None), (6, SUNDERLAND_ID, "2018-09", None),
        (7, SUNDERLAND_ID, "2018-10", None)]
    earlier = frame[frame["period"].isin(["2018-09", "2017-06"])]
    with bulk.transaction() as tx:
        replaced = tx._sets(select(_set_table()).where(text("replaced_by IS NOT NULL")))
    assert set(replaced["status"]) == {"breach"}
    assert sorted(zip(replaced["measure_id"], replaced["figure_version"].fillna(0),
                      strict=True)) == sorted(zip(earlier["measure"],
                                                  earlier["figure_version"].fillna(0),
                                                  strict=True))
    bulk.dispose()
    single.dispose()


def _set_table() -> Table:
    return SQLModel.metadata.tables["assessment_set"]


def _findings(contract: str, periods: list[str], note: str) -> pd.DataFrame:
    from compliance.escalation import FINDING_COLUMNS

    return pd.DataFrame([{
        "contract": contract, "measure": "M", "period": p, "figure_period": p,
        "type": "performance", "severity": "major", "rule": "kpi-breach",
        "description": note, "value": NAN if i % 2 else 80.0, "compared_with": 95.0,
        "status": "breach", "settings": "{}", "facts": "{}"} for i, p in enumerate(periods)],
        columns=FINDING_COLUMNS)


def _escalation(contract: str, opened: str) -> dict[str, object]:
    return {"contract_id": contract, "measure_id": "M", "opened": opened, "level": 1,
            "forum": "Contract review", "status": "open", "resolved": None,
            "rule": "kpi-breach", "resolved_rule": None, "description": "d",
            "last_period": opened, "history": "[]", "settings": "{}", "facts": "{}",
            "silenced_until": None, "silence_reason": None}


def test_records_of_several_contracts_replaced_at_once(
        make_store: Callable[[], StoreRef]) -> None:
    from compliance.schedule import load_schedule
    from tests.conftest import DARLINGTON

    stores = []
    for _ in range(2):
        store = Store(make_store().url)
        with store.transaction() as tx:
            for path, cid in ((SUNDERLAND, "c1"), (DARLINGTON, "c2"), (SUNDERLAND, "c3")):
                schedule = load_schedule(path)
                tx.load_schedule(schedule.model_copy(update={
                    "contract": schedule.contract.model_copy(update={"id": cid})}))
            for cid in ("c1", "c2", "c3"):
                tx.replace_records(cid, _findings(cid, ["2018-01", "2018-02"], "old"),
                                   [_escalation(cid, "2018-01")])
        stores.append(store)
    together, one_by_one = stores
    new = {"c3": ["2018-03", "2018-04", "2018-05"], "c1": ["2018-06"]}
    frames = {cid: _findings(cid, periods, "new") for cid, periods in new.items()}
    escalations = {"c3": [_escalation("c3", "2018-03"), _escalation("c3", "2018-05")], "c1": []}
    with together.transaction() as tx:
        # Findings in any order: they are stored contract by contract, in the order given.
        assert tx.replace_records(["c3", "c1"], pd.concat([frames["c1"], frames["c3"]]),
                                  [*escalations["c1"], *escalations["c3"]]) == {
            "findings": 4, "escalations": 2}
    with one_by_one.transaction() as tx:
        for cid in ("c3", "c1"):
            tx.replace_records(cid, frames[cid], escalations[cid])
    for table, order in (("finding", "id"), ("escalation", "contract_id, opened")):
        assert _table_rows(together, table, order) == _table_rows(one_by_one, table, order)
    findings = _table_rows(together, "finding", "id")
    # Numbered as a table's rows would be, replaced contract by contract: c3's new findings
    # after c2's (c1's old ones are still there as c3's are written), c1's after c3's.
    assert [r[0] for r in findings] == [3, 4, 5, 6, 7, 8]
    assert [(r[1], r[3], r[8]) for r in findings] == [
        ("c2", "2018-01", "old"), ("c2", "2018-02", "old"), ("c3", "2018-03", "new"),
        ("c3", "2018-04", "new"), ("c3", "2018-05", "new"), ("c1", "2018-06", "new")]
    assert [r[9] for r in findings] == [80.0, None, 80.0, None, 80.0, 80.0]
    assert [(r[0], r[2]) for r in _table_rows(together, "escalation", "contract_id, opened")] \
        == [("c2", "2018-01"), ("c3", "2018-03"), ("c3", "2018-05")]
    # Read as rows, without an object each, the escalations are what the objects hold.
    with together.reading() as tx:
        for contracts in (None, ["c3"], ["c1", "c2"], []):
            rows = tx.escalation_rows(contracts)
            assert rows == [e.model_dump() for e in tx.escalations(contracts)]
            assert len(rows) == {None: 3, 1: 2, 2: 1, 0: 0}[
                None if contracts is None else len(contracts)]
    for store in stores:
        store.dispose()


def test_escalations_are_kept_as_one_set_for_each_contract() -> None:
    """A contract's escalations go into one set, in the order given; a contract's escalations
    apart from one another, or two sharing their measure and opening, are refused (as the
    table's key refused them)."""
    from compliance.escalation import ESCALATION_COLUMNS
    from compliance.store.packed import escalation_sets, unpacked_escalations

    def rows(*keys: tuple[str, str, str]) -> dict[str, list[object]]:
        made = [dict.fromkeys(ESCALATION_COLUMNS) | {
            "contract_id": c, "measure_id": m, "opened": o, "level": 1, "history": "[]"}
            for c, m, o in keys]
        return {name: [row[name] for row in made] for name in ESCALATION_COLUMNS}

    given = rows(("b", "M2", "2024-01"), ("b", "M1", "2024-03"), ("a", "M1", "2024-02"))
    sets = escalation_sets(given)
    assert (sets.contracts, sets.sizes) == (["b", "a"], [2, 1])
    assert unpacked_escalations(zip(sets.contracts, sets.documents, strict=True)) == [
        dict(zip(given, values, strict=True)) for values in zip(*given.values(), strict=True)]
    assert escalation_sets(rows()).contracts == []
    with pytest.raises(ValueError, match="not together"):
        escalation_sets(rows(("a", "M1", "2024-01"), ("b", "M1", "2024-01"),
                             ("a", "M2", "2024-01")))
    with pytest.raises(ValueError, match="share their measure and opening"):
        escalation_sets(rows(("a", "M1", "2024-01"), ("a", "M1", "2024-01")))


def test_findings_are_kept_as_one_set_for_each_contract(
        make_store: Callable[[], StoreRef]) -> None:
    store = _loaded(make_store())
    both = pd.concat([_findings(SUNDERLAND_ID, ["2018-01", "2018-02"], "s"),
                      _findings(DARLINGTON_ID, ["2017-06"], "d")])
    with store.transaction() as tx:
        tx.replace_records([SUNDERLAND_ID, DARLINGTON_ID], both, [])
        got = [f.model_dump() for f in tx.findings(SUNDERLAND_ID, "2018-02")]
        assert [f.model_dump() for f in tx.findings(SUNDERLAND_ID, measure="M")] == [
            f.model_dump() for f in tx.findings(SUNDERLAND_ID)]
        assert tx.findings(SUNDERLAND_ID, measure="other") == []
        assert tx.findings("nobody") == []
    assert got == [{
        "id": 2, "contract_id": SUNDERLAND_ID, "measure_id": "M", "period": "2018-02",
        "figure_period": "2018-02", "type": "performance", "severity": "major",
        "rule": "kpi-breach", "description": "s", "value": None, "compared_with": 95.0,
        "status": "breach", "settings": "{}", "facts": "{}"}]
    sets = _table_rows(store, "finding_set", "first_id")
    assert [(r[0], r[1], r[2]) for r in sets] == [(SUNDERLAND_ID, 1, 2), (DARLINGTON_ID, 3, 1)]
    # The view shows them a row each, with the table's columns, as the findings read back.
    with store.engine.connect() as conn:
        view = conn.execute(text("SELECT * FROM finding ORDER BY id"))
        assert list(view.keys()) == ["id", "contract_id", "measure_id", "period",
                                     "figure_period", "type", "severity", "rule",
                                     "description", "value", "compared_with", "status",
                                     "settings", "facts"]
        rows = [tuple(r) for r in view]
    assert rows[1] == tuple(got[0].values())
    assert [r[0] for r in rows] == [1, 2, 3] and rows[2][1] == DARLINGTON_ID

    # Two findings of a contract with the same measure, period, type and rule are refused,
    # and nothing is written.
    twice = pd.concat([_findings(SUNDERLAND_ID, ["2018-03"], "a"),
                       _findings(SUNDERLAND_ID, ["2018-03"], "b")])
    with pytest.raises(ValueError, match="share their measure, period, type and rule"):
        with store.transaction() as tx:
            tx.replace_records(SUNDERLAND_ID, twice, [])
    assert _table_rows(store, "finding_set", "first_id") == sets
    store.dispose()


def test_findings_written_at_once_for_other_contracts_are_numbered_apart(
        make_store: Callable[[], StoreRef]) -> None:
    """Two transactions replacing the records of two contracts at the same time: the second
    numbers its findings only once the first has ended, after the first's."""
    import threading

    store = _loaded(make_store())
    other = Store(store.url)
    done: list[object] = []

    def second() -> None:
        try:
            with other.transaction() as tx:
                tx.replace_records(DARLINGTON_ID, _findings(DARLINGTON_ID, ["2017-06"], "d"),
                                   [])
            done.append("committed")
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            done.append(exc)

    with store.transaction() as tx:
        tx.replace_records(SUNDERLAND_ID, _findings(SUNDERLAND_ID, ["2018-01", "2018-02"],
                                                    "s"), [])
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.5)  # waiting for this transaction (or done too soon)
    thread.join()
    assert done == ["committed"]
    rows = _table_rows(store, "finding", "id")
    assert [(r[0], r[1]) for r in rows] == [(1, SUNDERLAND_ID), (2, SUNDERLAND_ID),
                                            (3, DARLINGTON_ID)]
    store.dispose()
    other.dispose()


def test_upgrade_to_finding_sets_keeps_each_finding_and_its_id(
        cli: Callable[..., Result], db_path: StoreRef) -> None:
    """0008: a table of findings becomes a set for each contract, its findings' ids kept; a
    contract whose findings were not numbered one after the other is numbered again after
    the largest id. Downgraded, the table comes back with the ids."""
    from alembic import command

    assert cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
               "--from", "2018-06", "--to", "2018-09").exit_code == 0
    store = Store(db_path.url)
    rows = _table_rows(store, "finding", "id")
    count = len(rows)
    assert count > 2 and [r[0] for r in rows] == list(range(1, count + 1))
    sets = _table_rows(store, "finding_set", "first_id")
    with store.transaction() as tx:
        found = [f.model_dump() for f in tx.findings(SUNDERLAND_ID)]
    assert len(found) == count

    with store.engine.begin() as conn:
        command.downgrade(store._alembic(conn), "0007")
    assert store.revision() == "0007"
    assert "finding" in inspect(store.engine).get_table_names()
    assert _table_rows(store, "finding", "id") == rows
    # Back and forth: the same sets, the same answers.
    assert store.init() == ["0008", "0009", "0010"]
    assert _table_rows(store, "finding_set", "first_id") == sets
    with store.transaction() as tx:
        assert [f.model_dump() for f in tx.findings(SUNDERLAND_ID)] == found

    # A contract whose findings' ids have a gap is numbered again, after the largest.
    with store.engine.begin() as conn:
        command.downgrade(store._alembic(conn), "0007")
        conn.execute(text(f"UPDATE finding SET id = {count + 100} WHERE id = {count}"))
    assert store.init() == ["0008", "0009", "0010"]
    again = _table_rows(store, "finding", "id")
    assert [r[0] for r in again] == list(range(count + 101, count + 101 + count))
    assert [r[1:] for r in again] == [r[1:] for r in rows]
    store.dispose()


def test_upgrade_to_escalation_sets_keeps_each_escalation(
        cli: Callable[..., Result], db_path: StoreRef) -> None:
    """0009: a table of escalations becomes a set for each contract, read back as the rows
    the table held (the ``escalation`` view shows them so too). Downgraded, the table comes
    back as it was."""
    from alembic import command

    assert cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
               "--from", "2018-06", "--to", "2018-09").exit_code == 0
    assert cli("silence", "--contract", SUNDERLAND_ID, "--measure", "SM8.1", "--from",
               "2018-06", "--until", "2018-12", "--reason", "plan agreed").exit_code == 0
    store = Store(db_path.url)
    order = "contract_id, measure_id, opened"
    rows = _table_rows(store, "escalation", order)
    assert len(rows) > 2 and any(r[-1] for r in rows) and all(isinstance(r[3], int) for r in rows)
    sets = _table_rows(store, "escalation_set", "contract_id")
    assert [(r[0], r[1]) for r in sets] == [(SUNDERLAND_ID, len(rows))]
    with store.transaction() as tx:
        listed = [e.model_dump() for e in tx.escalations([SUNDERLAND_ID])]
    assert [tuple(e.values()) for e in sorted(listed, key=lambda e: (
        e["contract_id"], e["measure_id"], e["opened"]))] == rows

    with store.engine.begin() as conn:
        command.downgrade(store._alembic(conn), "0008")
    assert store.revision() == "0008"
    assert "escalation" in inspect(store.engine).get_table_names()
    assert "escalation_set" not in inspect(store.engine).get_table_names()
    assert _table_rows(store, "escalation", order) == rows
    # Back: the same sets, the same answers.
    assert store.init() == ["0009", "0010"]
    assert _table_rows(store, "escalation", order) == rows
    with store.transaction() as tx:
        assert [e.model_dump() for e in tx.escalations([SUNDERLAND_ID])] == listed
    store.dispose()


def test_a_submission_of_more_rows_than_one_statement_holds_keeps_every_row(
        make_store: Callable[[], StoreRef]) -> None:
    store = _loaded(make_store())
    count = 250  # more than two statements' worth of rows on SQLite, and some left over
    figures = _figures([
        (SUNDERLAND_ID, "KPI1", "2018-09", NAN if i % 3 else float(i), NAN,
         float(i) if i % 2 else NAN, f"s{i}", i, "" if i % 4 else f"note {i}", i + 2)
        for i in range(count)], "big.csv")
    with store.transaction("provider") as tx:
        assert tx.submit(figures, {"big.csv": "5" * 64}) == {
            "files": 1, "figures": count, "new_versions": 0}
    rows = _table_rows(store, "figure", '"row"')
    assert rows == [
        (1, SUNDERLAND_ID, "KPI1", "2018-09", f"s{i}", i, 1, None if i % 3 else float(i),
         None, float(i) if i % 2 else None, "" if i % 4 else f"note {i}", i + 2)
        for i in range(count)]
    store.dispose()


def test_chunked_writes_and_reads_keep_every_row_in_order(
        make_store: Callable[[], StoreRef], monkeypatch: pytest.MonkeyPatch) -> None:
    import compliance.store.db
    import compliance.store.reads

    frame = _assessments()
    versions = {SUNDERLAND_ID: 1, DARLINGTON_ID: 1}
    whole, chunked = _loaded(make_store()), _loaded(make_store())
    figures = _figures([(SUNDERLAND_ID, "KPI1", f"2018-{m:02d}", float(m), NAN, NAN,
                         "" if m % 2 else "survey", m % 2, "", m) for m in range(1, 13)],
                       "year.csv")
    read = {}
    for store, size in ((whole, 10_000), (chunked, 4)):
        monkeypatch.setattr(compliance.store.db, "_INSERT_CHUNK", size)
        monkeypatch.setattr(compliance.store.reads, "FETCH_CHUNK", size)
        with store.transaction() as tx:
            tx.submit(figures, {"year.csv": "4" * 64})
            tx.save_assessments(frame.sample(frac=1, random_state=5), versions)
            read[size] = tx.latest_figures([SUNDERLAND_ID, DARLINGTON_ID])
    pd.testing.assert_frame_equal(read[4], read[10_000])
    assert read[4]["period"].tolist() == [f"2018-{m:02d}" for m in range(1, 13)]
    for table, order in {"figure": "contract_id, measure_id, period, source, version",
                         "assessment_set": "check_run_id",
                         "check_figure": "check_run_id, measure_id"}.items():
        assert _table_rows(chunked, table, order) == _table_rows(whole, table, order), table
    whole.dispose()
    chunked.dispose()


def test_latest_assessments_of_many_contracts_are_each_ones_latest_month(
        cli: Callable[..., Result], db_path: StoreRef) -> None:
    from tests.conftest import DARLINGTON

    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    assert cli("check", "--contract", "sunderland-tfc", "--from", "2018-07", "--to",
               "2018-09").exit_code == 0
    store = Store(db_path.url)
    with store.transaction() as tx:
        latest = tx.latest_assessments(["sunderland-tfc", "darlington-childrens"])
        expected = tx.assessments("sunderland-tfc", "2018-09")
        none = tx.latest_assessments([])
    store.dispose()
    # Darlington was never checked: it has none.
    assert set(latest["period"]) == {"2018-09"} and len(latest) == 20
    pd.testing.assert_frame_equal(
        latest.sort_values("measure_id").reset_index(drop=True),
        expected.sort_values("measure_id").reset_index(drop=True))
    assert none.empty and list(none.columns) == list(expected.columns)


def test_checked_periods_and_current_versions_of_many_contracts(
        make_store: Callable[[], StoreRef]) -> None:
    from compliance.errors import StoreError

    store = _loaded(make_store())
    with store.transaction() as tx:
        assert tx.checked_periods([SUNDERLAND_ID, DARLINGTON_ID]) == {}
        tx.save_assessments(_assessments(), {SUNDERLAND_ID: 1, DARLINGTON_ID: 1})
        assert tx.checked_periods([SUNDERLAND_ID, DARLINGTON_ID]) == {
            cid: (tx.checked_from(cid), tx.checked_through(cid))
            for cid in (SUNDERLAND_ID, DARLINGTON_ID)}
        assert tx.current_versions([DARLINGTON_ID, SUNDERLAND_ID]) == {
            DARLINGTON_ID: tx.schedule_version(DARLINGTON_ID),
            SUNDERLAND_ID: tx.schedule_version(SUNDERLAND_ID)}
        with pytest.raises(StoreError, match="unknown contract 'nowhere'"):
            tx.current_versions([SUNDERLAND_ID, "nowhere"])
    store.dispose()


def test_stored_schedules_read_back_as_loaded(make_store: Callable[[], StoreRef]) -> None:
    from compliance.schedule import load_schedule
    from tests.conftest import DARLINGTON

    loaded = {s.id: s for s in (load_schedule(SUNDERLAND), load_schedule(DARLINGTON))}
    store = Store(make_store().url)
    with store.transaction() as tx:
        for schedule in loaded.values():
            tx.load_schedule(schedule)
    with store.transaction() as tx:
        back = tx.schedules()
        versions = tx.schedule_versions(list(loaded))
    store.dispose()
    assert set(back) == set(loaded)
    for cid, schedule in loaded.items():
        expected = schedule.model_copy(update={"warnings": []})
        assert back[cid] == expected
        assert back[cid].model_dump_json() == expected.model_dump_json()
    assert sorted((s.id, v) for s, v, _ in versions) == [(cid, 1) for cid in sorted(loaded)]
    assert all(s == loaded[s.id].model_copy(update={"warnings": []}) for s, _, _ in versions)


def test_bind_processing_once_per_object_not_per_equal_value() -> None:
    """A column's bind processor runs once for an object repeated down the column; objects
    that are merely equal (the same instant in two time zones) each get their own."""
    import datetime as dt

    from compliance.store import _processed

    calls: list[object] = []

    def process(value: object) -> str:
        calls.append(value)
        return value.isoformat() if isinstance(value, dt.datetime) else repr(value)

    arrived = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    same_instant = dt.datetime(2024, 5, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    values = [arrived] * 1000 + [same_instant, arrived, None, None]
    out = _processed(values, process)
    assert out == [process(v) for v in values]
    assert out[1000] != out[0]  # equal instants, written as given
    calls.clear()
    _processed(values, process)
    assert len(calls) == 3  # arrived, same_instant, None
    # Values made while iterating (as numpy makes its scalars) are each their own, never
    # mistaken for an earlier one whose memory they take over.
    made = (float(i % 7) + 0.5 for i in range(1000))
    assert _processed(made, repr) == [repr(float(i % 7) + 0.5) for i in range(1000)]


def test_a_store_opened_for_reading_reads_the_last_commit_while_a_check_writes(
        make_store: Callable[[], StoreRef]) -> None:
    """A check's helpers read the store while the check holds its write lock: they see what
    was last committed, never the check's own writes, and cannot write themselves."""
    from sqlalchemy.exc import OperationalError

    store = _loaded(make_store())
    figures = _figures([(SUNDERLAND_ID, "KPI1", "2018-09", 90.0, NAN, NAN, "", 0, "", 2)],
                       "a.csv")
    with store.transaction("tester") as tx:
        tx.submit(figures, {"a.csv": "1" * 64})
    with store.transaction("tester") as tx:
        url = tx.shared_url()
        assert url is not None
        # Writes not committed, as a check's are while its helpers read.
        tx.submit(_figures([(SUNDERLAND_ID, "KPI1", "2018-10", 80.0, NAN, NAN, "", 0, "", 2)],
                           "b.csv"), {"b.csv": "2" * 64})
        assert tx.shared_url() is None  # its own figures are not there for others to read
        reader = Store(url, reading=True)
        with reader.reading() as other:
            seen = other.latest_figures([SUNDERLAND_ID])
            if reader.engine.dialect.name == "sqlite":
                with pytest.raises(OperationalError, match="readonly"):
                    other.session.execute(text("DELETE FROM figure"))
        reader.dispose()
        assert tx.latest_figures([SUNDERLAND_ID])["period"].tolist() == ["2018-09", "2018-10"]
    assert seen["period"].tolist() == ["2018-09"] and seen["value"].tolist() == [90.0]
    store.dispose()


def test_only_a_store_others_can_open_is_shared(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, shared in (("sqlite://", None), ("sqlite:///:memory:", None),
                        ("sqlite:///relative.db", f"sqlite:///{tmp_path / 'relative.db'}"),
                        (f"sqlite:///{tmp_path / 'x.db'}", f"sqlite:///{tmp_path / 'x.db'}")):
        store = Store(url)
        with store.transaction("tester") as tx:
            assert tx.shared_url() == shared, url
        store.dispose()


def test_a_transaction_that_has_written_is_not_shared(make_store: Callable[[], StoreRef]) -> None:
    """Once a transaction on SQLite has written anything, a reader could be shut out of the
    file until it commits: it is read by no one else."""
    from compliance.schedule import load_schedule

    ref = make_store()
    store = Store(ref.url)
    with store.transaction("tester") as tx:
        assert tx.shared_url() is not None
        tx.load_schedule(load_schedule(SUNDERLAND))
        shared = tx.shared_url()
    assert (shared is None) is (store.engine.dialect.name == "sqlite")
    store.dispose()


def test_writes_handed_to_the_disk_before_the_commit_change_nothing(
        make_store: Callable[[], StoreRef], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``write_behind`` syncs a SQLite store's own file in the middle of a transaction; what
    the transaction then commits, or rolls back, is as it would be without it. Nothing to
    sync in memory or on PostgreSQL."""
    synced: list[str] = []
    real = getattr(os, "fdatasync", os.fsync)

    def sync(handle: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{handle}"))
        real(handle)

    monkeypatch.setattr(os, "fdatasync", sync)
    ref = make_store()
    store = _loaded(ref)
    sqlite = store.engine.dialect.name == "sqlite"
    rows = [(SUNDERLAND_ID, "KPI1", "2018-09", 90.0, NAN, NAN, "", 0, "", 2)]
    with store.transaction("tester") as tx:
        tx.submit(_figures(rows, "a.csv"), {"a.csv": "1" * 64})
        assert tx.write_behind() is sqlite
        assert tx.latest_figures([SUNDERLAND_ID])["value"].tolist() == [90.0]
    if sqlite:
        assert synced == [str(Path(store.engine.url.database).resolve())]
    else:
        assert synced == []
    with pytest.raises(RuntimeError, match="undone"):
        with store.transaction("tester") as tx:
            tx.submit(_figures([(*rows[0][:2], "2018-10", *rows[0][3:])], "b.csv"),
                      {"b.csv": "2" * 64})
            tx.write_behind()
            raise RuntimeError("undone")
    with store.reading() as tx:
        assert tx.latest_figures([SUNDERLAND_ID])["period"].tolist() == ["2018-09"]
    store.dispose()
    memory = Store("sqlite://")
    memory.init()
    with memory.transaction("tester") as tx:
        assert tx.write_behind() is False
    memory.dispose()
    assert len(synced) == (2 if sqlite else 0)


def test_the_views_show_every_field_the_sets_hold() -> None:
    """The views are made by migrations from the fields they froze: a field the sets gain
    needs a migration that makes the view again (this test then names the new one)."""
    import importlib.util

    from compliance.store import packed

    def frozen(name: str) -> object:
        path = Path(packed.__file__).parent / "migrations" / "versions" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    assessments, findings = frozen("0007_assessment_sets"), frozen("0008_finding_sets")
    assert (assessments.FIELDS, assessments.FLOATS, assessments.INTEGERS) == (  # type: ignore[attr-defined]
        packed.FIELDS, packed.FLOATS, packed.INTEGERS)
    assert (findings.FINDING_FIELDS, findings.FINDING_FLOATS) == (  # type: ignore[attr-defined]
        packed.FINDING_FIELDS, packed.FINDING_FLOATS)


def test_what_a_check_reads_is_read_alike_by_a_transaction_and_by_a_helper(
        make_store: Callable[[], StoreRef], tmp_path: Path) -> None:
    """A check's figures, the times its returns arrived and its silences (compliance.store.
    reads) are what the store's models hold; and a helper reading a SQLite file through the
    standard library reads exactly what a transaction reads."""
    from sqlmodel import col
    from sqlmodel import select as select_models

    from compliance.store import reads
    from compliance.store.models import ReturnArrival, Silence
    from tests.conftest import DARLINGTON, DARLINGTON_RETURN

    ref = make_store()
    run = cli_on(ref.url)
    assert run("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    assert run("submit", "--contract", SUNDERLAND_ID, SUNDERLAND_RETURN).exit_code == 0
    assert run("submit", "--contract", DARLINGTON_ID, DARLINGTON_RETURN).exit_code == 0
    revised = tmp_path / "revised.csv"
    revised.write_text(SUNDERLAND_RETURN.read_text().replace("KPI1,2018-09,99%",
                                                             "KPI1,2018-09,97%"))
    assert run("submit", "--contract", SUNDERLAND_ID, revised).exit_code == 0
    for measure, until in (("KPI1", "2018-12"), ("KPI2", "2019-01"), ("KPI1", "2019-03")):
        assert run("silence", "-c", SUNDERLAND_ID, "-m", measure, "--until", until,
                   "--reason", f"agreed {until}").exit_code == 0
    ids = [SUNDERLAND_ID, DARLINGTON_ID]
    store = Store(ref.url)
    try:
        with store.transaction("tester") as tx:
            figures = tx.latest_figures(ids, "2018-09", parts=False)
            received = tx.returns_received(ids)
            silences = tx.silences(ids)
            arrivals = {(a.contract_id, a.period): a.received_at
                        for a in tx.session.exec(select_models(ReturnArrival))}
            made = tx.session.exec(select_models(Silence).order_by(col(Silence.id))).all()
            expected: dict[tuple[str, str], list[dict[str, object]]] = {}
            for s in made:
                expected.setdefault((s.contract_id, s.measure_id), []).append(
                    {"id": s.id, "start": s.start, "until": s.until, "reason": s.reason,
                     "by": s.created_by, "at": s.created_at})
    finally:
        store.dispose()
    assert len(received) > 2 and received == arrivals
    assert all(isinstance(at, dt.datetime) for at in received.values())
    assert silences == expected and len(silences[(SUNDERLAND_ID, "KPI1")]) == 2
    # The revised figure only, in its latest version.
    kpi1 = figures[(figures["measure"] == "KPI1") & (figures["period"] == "2018-09")]
    assert kpi1["value"].tolist() == [97.0] and kpi1["version"].tolist() == [2]
    path = reads.sqlite_file(ref.url)
    if path is None:
        assert not ref.url.startswith("sqlite")
        return
    with reads.sqlite_reading(path) as reader:
        pd.testing.assert_frame_equal(reader.latest_figures(ids, "2018-09", parts=False),
                                      figures)
        assert reader.returns_received(ids) == received
        assert reader.silences(ids) == silences
        helper_read = [reader.latest_figures(ids), reader.latest_figures([SUNDERLAND_ID]),
                       reader.latest_figures([]), reader.latest_figures(["no-such"]),
                       reader.latest_figures(ids, "2000-01", parts=False)]
    with store.reading() as tx:
        for frame, expected_frame in zip(helper_read, [
                tx.latest_figures(ids), tx.latest_figures([SUNDERLAND_ID]),
                tx.latest_figures([]), tx.latest_figures(["no-such"]),
                tx.latest_figures(ids, "2000-01", parts=False)], strict=True):
            pd.testing.assert_frame_equal(frame, expected_frame)
    store.dispose()
    assert len(helper_read[0]) > len(helper_read[1]) > 0 == len(helper_read[2])


def test_a_helper_reads_figures_whose_first_thousands_are_missing_as_a_transaction_does(
        make_store: Callable[[], StoreRef]) -> None:
    """ADBC's SQLite driver types a column from the values it reads first: a helper reads
    a result typed from all of it, so that numbers after many missing values (read as a
    column of integers) are still read, as floats."""
    from compliance.store import reads

    ref = make_store()
    path = reads.sqlite_file(ref.url)
    if path is None:
        pytest.skip("a helper reads so from a SQLite file only")
    store = _loaded(ref)
    missing = [(SUNDERLAND_ID, f"A{n:04d}", "2018-09", NAN, NAN, NAN, "", 0, "", n + 2)
               for n in range(3000)]
    known = [(SUNDERLAND_ID, f"B{n:04d}", "2018-09", n / 4, float(n), 4.0, "case-system", 1,
              f"note {n}", n + 3002) for n in range(20)]
    with store.transaction() as tx:
        tx.submit(_figures(missing + known, "many.csv"), {"many.csv": "5" * 64})
    with store.reading() as tx:
        expected = tx.latest_figures([SUNDERLAND_ID])
    store.dispose()
    with reads.sqlite_reading(path) as reader:
        read = reader.latest_figures([SUNDERLAND_ID])
    pd.testing.assert_frame_equal(read, expected)
    assert read["value"].isna().sum() == 3000 and read["value"].tolist()[-1] == 19 / 4
    assert read["comment"].tolist()[-1] == "note 19" and read["source_rank"].max() == 1


def test_only_a_plain_sqlite_file_is_read_through_the_standard_library() -> None:
    from compliance.store import reads

    assert reads.sqlite_file("sqlite:////tmp/a/store.db") == "/tmp/a/store.db"
    assert reads.sqlite_file("sqlite:///store.db") == "store.db"
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true",
                "sqlite:///a.db?timeout=5", "postgresql+psycopg://u@h/db"):
        assert reads.sqlite_file(url) is None, url


def test_a_column_as_the_stores_rows_take_it_whatever_its_type() -> None:
    """``columns.objects``: Python values, None for every kind of missing value; a
    categorical column gives the same as its texts."""
    import numpy as np

    from compliance.store.columns import objects

    texts = ["a", None, "b", "a", "c"]
    expected = ["a", None, "b", "a", "c"]
    for column in (pd.Series(texts, dtype=object), pd.Series(pd.Categorical(texts)),
                   pd.Series(pd.Categorical(["a", np.nan, "b", "a", "c"])),
                   np.array(["a", float("nan"), "b", "a", "c"], dtype=object)):
        assert objects(column).tolist() == expected, column
    assert objects(pd.Series(pd.Categorical([], categories=["x"]))).tolist() == []
    assert objects(pd.Series(["x", "y"])).tolist() == ["x", "y"]
    assert objects(np.array([1.5, np.nan])).tolist() == [1.5, None]
