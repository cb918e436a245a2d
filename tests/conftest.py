from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
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


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def db_url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def cli(db_url: str) -> Callable[..., Result]:
    """Run the command line against a fresh store, as a user would."""
    runner = CliRunner()

    def run(*args: str | Path) -> Result:
        result = runner.invoke(app, ["--db", db_url, "--user", "tester", *map(str, args)],
                               catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


def dump_store(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare a store before and after a command."""
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute(
            "select name from sqlite_master where type='table' order by name")]
        return {t: sorted(conn.execute(f"select * from {t}").fetchall(), key=repr)
                for t in tables}
