"""All or nothing under faults: commands killed at random points, officers working at once.

The normal suite kills a handful of commands; `COMPLIANCE_FAULT_TRIALS=50 pytest
tests/test_faults.py` runs as many as you like.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    EXAMPLES,
    ROOT,
    SUNDERLAND,
    SUNDERLAND_RETURN,
    Result,
    StoreRef,
    connect,
    dump_store,
)

TRIALS = int(os.environ.get("COMPLIANCE_FAULT_TRIALS", "4"))


def command(url: str, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "compliance.cli", "--db", url, "--user", "tester",
            *map(str, args)]


def run_to_end(url: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(url, *args), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def kill_after(url: str, delay: float, *args: str | Path) -> int:
    proc = subprocess.Popen(command(url, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def counts(store: StoreRef) -> dict[str, int]:
    with connect(store) as conn:
        return {table: conn.execute(f'select count(*) from "{table}"').fetchone()[0]  # type: ignore[index]
                for table in ("submission", "figure", "check_run", "assessment", "check_figure",
                              "finding", "escalation", "audit")}


def records(store: StoreRef) -> dict[str, list[str]]:
    """The rules' records, without the ids that differ between two runs of a command."""
    with connect(store) as conn:
        return {"finding": sorted(repr(tuple(r)[1:]) for r in
                                  conn.execute("select * from finding").fetchall()),
                "escalation": sorted(repr(tuple(r)) for r in
                                     conn.execute("select * from escalation").fetchall())}


def timed(url: str, *args: str | Path) -> float:
    start = time.perf_counter()
    result = run_to_end(url, *args)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - start


@pytest.mark.parametrize("what", ["submit", "check"])
def test_a_killed_command_leaves_the_store_as_before_or_as_after(
        what: str, make_store: Callable[[], StoreRef]) -> None:
    rng = random.Random(20181012)
    months = [EXAMPLES / f"sunderland-tfc-2018-{m:02d}.csv" for m in (6, 7, 8, 9)]
    # How long the command takes when it is left alone, to spread the kills over its run.
    reference = make_store()
    assert run_to_end(reference.url, "contract", "load", SUNDERLAND).returncode == 0
    if what == "check":
        for path in months:
            done = run_to_end(reference.url, "submit", "--contract", "sunderland-tfc", path)
            assert done.returncode == 0, done.stderr
    args: tuple[str | Path, ...] = (
        ("submit", "--contract", "sunderland-tfc", *months) if what == "submit"
        else ("check", "--contract", "sunderland-tfc", "--from", "2018-06", "--to", "2018-09"))
    before_ref = counts(reference)
    duration = timed(reference.url, *args)
    after_ref = counts(reference)
    assert after_ref != before_ref

    outcomes = {"before": 0, "after": 0}
    for _ in range(TRIALS):
        store = make_store()
        assert run_to_end(store.url, "contract", "load", SUNDERLAND).returncode == 0
        if what == "check":
            for path in months:
                done = run_to_end(store.url, "submit", "--contract", "sunderland-tfc", path)
                assert done.returncode == 0, done.stderr
        before = dump_store(store)
        assert counts(store) == before_ref
        kill_after(store.url, rng.uniform(0.05, duration * 1.1), *args)
        now = counts(store)
        if now == before_ref:
            assert dump_store(store) == before
            outcomes["before"] += 1
        else:
            # The whole command landed: the same rows as a run left alone.
            assert now == after_ref
            outcomes["after"] += 1
            if what == "check":
                assert records(store) == records(reference)
        # The store is usable afterwards: running the command again completes it.
        assert run_to_end(store.url, *args).returncode == 0
    assert sum(outcomes.values()) == TRIALS
    print(f"{what}: {TRIALS} kills, store as before {outcomes['before']} times, "
          f"as after {outcomes['after']} times")


@pytest.mark.parametrize("what", ["check", "submit"])
def test_officers_at_the_same_time_get_one_set_of_records(
        what: str, cli: Callable[..., Result], db_path: StoreRef) -> None:
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    months = [EXAMPLES / f"sunderland-tfc-2018-{m:02d}.csv" for m in (6, 7, 8, 9)]
    if what == "check":
        for path in months:
            assert cli("submit", "--contract", "sunderland-tfc", path).exit_code == 0
        args: tuple[str | Path, ...] = ("check", "--contract", "sunderland-tfc", "--period",
                                        "2018-09", "--format", "json")
    else:
        args = ("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    procs = [subprocess.Popen(command(db_path.url, *args), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in results]
    totals = counts(db_path)
    if what == "check":
        assert totals["check_run"] == 8
        assert totals["assessment"] == 20  # one set, whatever the order
        alone = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                    "--format", "json").json()
        assert counts(db_path)["finding"] == totals["finding"]
        assert counts(db_path)["escalation"] == totals["escalation"]
        import json

        assert all(json.loads(out)["escalations"] == alone["escalations"]
                   for out, _ in results)
    else:
        # Eight submissions of the same return: eight versions of each figure, none lost.
        assert totals["submission"] == 8
        assert totals["figure"] == 8 * 21
        with connect(db_path) as conn:
            versions = sorted(v for (v,) in conn.execute(
                "select version from figure where measure_id = 'KPI1'"))
        assert versions == list(range(1, 9))
