"""The command line as a user meets it: exit codes, formats, store behaviour."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compliance.cli import app
from tests.conftest import (
    DARLINGTON,
    DARLINGTON_RETURN,
    ROOT,
    SUNDERLAND,
    SUNDERLAND_RETURN,
    Result,
    StoreRef,
    connect,
    dump_store,
)


def test_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys\nfrom compliance.cli import app\ntry:\n    app(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = ('pandas', 'sqlalchemy', 'sqlmodel', 'durable', 'numpy')\n"
            "print('loaded:' + ','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert "Usage" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "loaded:"


def test_usage_error_exits_2(cli: Callable[..., Result]) -> None:
    assert cli("check", "--contract", "x").exit_code == 2  # no period
    assert cli("check", "--period", "2018-09", "--format", "yaml").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_bad_period_is_a_located_error(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", SUNDERLAND, "--period", "2018-13")
    assert result.exit_code == 1
    assert "month 13 is outside 1-12" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_contract(cli: Callable[..., Result]) -> None:
    cli("contract", "load", SUNDERLAND)
    result = cli("check", "--contract", "sunderland", "--period", "2018-09")
    assert result.exit_code == 1
    assert "unknown contract 'sunderland'; the store holds: sunderland-tfc" in result.stderr


def test_empty_store(cli: Callable[..., Result]) -> None:
    result = cli("check", "--period", "2018-09")
    assert result.exit_code == 1
    assert "holds no contracts" in result.stderr


def test_table_scorecard(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "September 2018" in out and "2018/19" in out
    assert "✗ Breach" in out and "✓ Met" in out and "~ Within tolerance" in out
    assert "? Not reported" in out and "○ Monitor only" in out
    assert "85.8% (Aug 2018)" in out
    assert "165 of 330" in out


def test_csv_format(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 20
    by_measure = {r["measure"]: r for r in rows}
    assert by_measure["SM1.1"]["status"] == "breach"
    assert by_measure["SM1.1"]["tolerance"] == "22.1-28.9"
    assert by_measure["SM6.1"]["reason"].startswith("Unable to report")


def test_recheck_changes_nothing(cli: Callable[..., Result], db_path: StoreRef) -> None:
    first = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                "--period", "2018-09", "--format", "json")
    second = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                 "--format", "json")
    assert first.json() == second.json()
    with connect(db_path) as conn:
        assert conn.execute("select count(*) from assessment").fetchone() == (20,)
        assert conn.execute("select count(*) from schedule_version").fetchone() == (1,)
        assert conn.execute("select count(*) from check_run").fetchone() == (2,)


def test_check_every_contract_and_a_range(cli: Callable[..., Result], db_path: StoreRef) -> None:
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    assert cli("submit", "--contract", "darlington-childrens",
               DARLINGTON_RETURN).exit_code == 0
    result = cli("check", "--from", "2017-07", "--to", "2017-09", "--format", "json")
    assert result.exit_code == 0, result.stderr
    docs = result.json()
    assert [(d["contract"], d["period"]) for d in docs] == [
        ("darlington-childrens", p) for p in ("2017-07", "2017-08", "2017-09")] + [
        ("sunderland-tfc", p) for p in ("2017-07", "2017-08", "2017-09")]
    with connect(db_path) as conn:
        assert conn.execute("select count(*) from assessment").fetchone() == (3 * 11 + 3 * 20,)


def test_schedule_reload_makes_a_new_version(cli: Callable[..., Result], tmp_path: Path,
                                             db_path: StoreRef) -> None:
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    assert "unchanged" in cli("contract", "load", SUNDERLAND).stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(SUNDERLAND.read_text().replace(
        "target: 22\n    tolerance: [22.1, 28.9]", "target: 30\n    tolerance: [30.1, 35]"))
    result = cli("contract", "load", changed)
    assert "schedule version 2" in result.stderr
    cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    doc = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
              "--format", "json").json()
    sm11 = next(a for a in doc["assessments"] if a["measure"] == "SM1.1")
    assert sm11["target"] == 30 and sm11["status"] == "met"


def test_every_write_is_audited(cli: Callable[..., Result], db_path: StoreRef) -> None:
    cli("contract", "load", SUNDERLAND)
    cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    cli("check", "--contract", "sunderland-tfc", "--period", "2018-09", "--format", "json")
    with connect(db_path) as conn:
        rows = conn.execute("select command, actor, counts from audit order by id").fetchall()
    assert [r[0] for r in rows] == ["contract load", "submit", "check"]
    assert {r[1] for r in rows} == {"tester"}
    assert json.loads(rows[1][2])["figures"] == 21


def test_failed_check_leaves_store_unchanged(cli: Callable[..., Result], db_path: StoreRef,
                                             tmp_path: Path) -> None:
    cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN, "--period",
        "2018-09", "--format", "json")
    before = dump_store(db_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("measure,period,value\nKPI1,2018-10,abc\n")
    result = cli("check", "--contract", SUNDERLAND, "--returns", bad, "--period", "2018-10")
    assert result.exit_code == 1
    assert f"{bad}, row 2, column 'value', measure KPI1: error: 'abc' is not a number" \
        in result.stderr
    assert dump_store(db_path) == before


def test_compliance_db_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    runner = CliRunner()
    result = runner.invoke(app, ["contract", "load", str(SUNDERLAND)],
                           env={"COMPLIANCE_DB": f"sqlite:///{path}"})
    assert result.exit_code == 0, result.stderr
    with connect(path) as conn:
        assert conn.execute("select id from contract").fetchall() == [("sunderland-tfc",)]


def test_init_creates_store(cli: Callable[..., Result], db_path: StoreRef) -> None:
    result = cli("init")
    assert result.exit_code == 0
    assert "store ready" in result.stderr
    tables = set(dump_store(db_path))
    assert {"contract", "schedule_version", "measure", "submission", "figure", "assessment",
            "check_run", "audit"} <= tables


def test_bad_store_url(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--db", "nosuchdb://x", "init"])
    assert result.exit_code == 1
    assert "cannot use the store" in result.stderr


def test_demo_runs_both_seeds(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "compliance.cli", "demo"], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Together for Children" in out.stdout
    assert "Darlington" in out.stdout
    assert "Breach: 8" in out.stdout


@pytest.mark.parametrize("command", ["init", "contract validate", "contract load",
                                     "contract list", "submit", "check", "demo", "escalations",
                                     "explain", "rules validate", "rules show", "history",
                                     "audit", "report", "export", "silence", "ack", "note",
                                     "overdue"])
def test_every_command_is_documented(command: str) -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"## compliance {command}" in text
