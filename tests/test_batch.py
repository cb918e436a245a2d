"""Bulk work runs with the cyclic garbage collector paused, and leaves it as it found it;
and it has the allocator keep freed memory."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from compliance.batch import collector_paused
from tests.conftest import SUNDERLAND, SUNDERLAND_RETURN, Result


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_restored_after_even_on_error() -> None:
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still holds it
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_schedules_import_and_check_run_with_the_collector_paused(
        cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    from compliance import escalation, returns
    from compliance import schedule as schedule_module
    from compliance.store import Transaction
    from compliance.store import db as store_module

    seen: dict[str, bool] = {}

    def spy(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen[name] = gc.isenabled()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)

    spy(returns, "parse_return")
    spy(Transaction, "_insert")
    spy(escalation, "run_rules")
    spy(schedule_module, "_validate")  # reading a schedule file
    spy(store_module, "schedule_from_json")  # reading a stored schedule
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert seen == {"parse_return": False, "_insert": False, "run_rules": False,
                    "_validate": False, "schedule_from_json": False}
    assert gc.isenabled()


_FREED = """
import os, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
if sys.argv[1] == "keep":
    from compliance.batch import collector_paused, keep_freed_memory
    with collector_paused():
        pass
    assert keep_freed_memory()
before = rss()
block = b"\\x01" * (64 << 20)
held = rss() - before
del block
print(held >> 20, (rss() - before) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's allocator only")
def test_bulk_work_keeps_freed_memory_for_the_next_arrays() -> None:
    """A 64 MB block, freed: handed back to the system by default, kept by a process that
    has done bulk work (its next arrays reuse the pages instead of faulting fresh ones in)."""
    def run(mode: str) -> list[int]:
        done = subprocess.run([sys.executable, "-c", _FREED, mode], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
        return [int(n) for n in done.stdout.split()]

    held, left = run("default")
    assert held >= 60 and left < 8
    held, left = run("keep")
    assert held >= 60 and left >= 60


def test_codes_are_recoded_to_their_texts_in_order() -> None:
    """``texts_in_order``: the texts sorted as a categorical holds them, each code pointing at
    the same text as before; no texts, no codes."""
    import numpy as np

    from compliance.batch import texts_in_order

    texts = ["b", "KPI10", "a", "KPI2", ""]
    codes = np.array([0, 1, 2, 3, 4, 0, 3], dtype=np.int32)
    recoded, ordered = texts_in_order(codes, texts)
    assert ordered == sorted(texts)
    assert [ordered[c] for c in recoded.tolist()] == [texts[c] for c in codes.tolist()]
    empty, none = texts_in_order(np.empty(0, dtype=np.int32), [])
    assert none == [] and empty.dtype == np.intp and len(empty) == 0
