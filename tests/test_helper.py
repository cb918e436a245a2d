"""The helper process a large check judges its batches in: answers in order, every failure
raised in the caller, never a hang."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from typing import Any

import pytest

from compliance.errors import ComplianceError, Problem
from compliance.helper import Helper, HelperDied, warm


def _work(kind: str, value: Any) -> object:
    if kind == "count":
        return len(value)
    if kind == "refuse memory files":
        os.memfd_create = _refused  # type: ignore[assignment]  (in the helper's process)
        return value
    if kind == "square":
        return value * value
    if kind == "pid":
        return os.getpid()
    if kind == "parent":
        return os.getppid()
    if kind == "fail":
        raise ValueError(f"no good: {value}")
    if kind == "user":
        raise ComplianceError(Problem("bad figure", file="r.csv", row=value))
    if kind == "unpicklable":
        return threading.Lock()
    if kind == "unpicklable error":
        error = ValueError("carries a lock")
        error.lock = threading.Lock()  # type: ignore[attr-defined]
        raise error
    if kind == "sleep":
        time.sleep(value)
        return value
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "large":
        return [f"text {k} " * 10 for k in range(value)], {"n": value}
    raise AssertionError(kind)


def test_jobs_are_answered_in_order_by_another_process() -> None:
    with Helper(_work) as helper:
        answers = []
        for value in range(5):
            helper.send("square", value)
            answers.append(helper.receive())
        helper.send("pid", 0)
        assert helper.receive() != os.getpid()
    assert answers == [0, 1, 4, 9, 16]


def test_helpers_are_forked_from_one_fork_server_where_there_is_one() -> None:
    """Two helpers share a parent that is not the caller: the fork server, which imports
    what they need once."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    with Helper(_work) as first, Helper(_work) as second:
        for helper in (first, second):
            helper.send("parent", 0)
        parents = {first.receive(), second.receive()}
    assert len(parents) == 1 and os.getpid() not in parents


def test_warming_starts_the_fork_server_that_helpers_are_then_forked_from() -> None:
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    warm(("json",))
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert server is not None and server != os.getpid()
    with Helper(_work) as helper:
        helper.send("parent", 0)
        assert helper.receive() == server


def test_a_jobs_exception_is_raised_in_the_caller_with_the_helpers_traceback() -> None:
    with Helper(_work) as helper:
        helper.send("fail", 7)
        with pytest.raises(ValueError, match="no good: 7") as caught:
            helper.receive()
        assert "_work" in str(caught.value.__cause__)
        assert "raise ValueError" in str(caught.value.__cause__)
        # The helper goes on after a failed job.
        helper.send("square", 3)
        assert helper.receive() == 9


def test_a_users_mistake_keeps_its_problems_across_processes() -> None:
    error = ComplianceError(Problem("bad figure", file="r.csv", row=4))
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ComplianceError and again.problems == error.problems
    assert str(again) == str(error) == "r.csv, row 4: error: bad figure"
    with Helper(_work) as helper:
        helper.send("user", 4)
        with pytest.raises(ComplianceError) as caught:
            helper.receive()
    assert caught.value.problems == error.problems


def test_what_cannot_be_sent_back_is_an_error_not_a_hang() -> None:
    with Helper(_work) as helper:
        helper.send("unpicklable", 0)
        with pytest.raises(RuntimeError, match="could not be sent back"):
            helper.receive()
        helper.send("unpicklable error", 0)
        with pytest.raises(RuntimeError, match="ValueError: carries a lock"):
            helper.receive()
        helper.send("square", 2)
        assert helper.receive() == 4


def test_a_helper_that_dies_is_an_error_in_the_caller() -> None:
    with Helper(_work) as helper:
        helper.send("die", 0)
        with pytest.raises(HelperDied, match=f"exit code -{int(signal.SIGKILL)}"):
            helper.receive()


def _refused(*_: object) -> int:
    raise PermissionError("memfd_create is not allowed here")


def test_large_jobs_are_queued_as_small_ones_are() -> None:
    """A job of megabytes (a batch's plan) is sent at once, while the helper is busy, and
    answered in its place."""
    rows = [f"row {k}" for k in range(50_000)]
    with Helper(_work) as helper:
        if not Helper.queued:
            helper.send("count", rows)
            assert helper.receive() == 50_000
            return
        helper.send("sleep", 1)
        began = time.monotonic()
        helper.send("count", rows)
        helper.send("square", 3)
        assert time.monotonic() - began < 0.5  # not waiting for the helper to read it
        assert [helper.receive(), helper.receive(), helper.receive()] == [1, 50_000, 9]


def test_a_large_job_without_a_memory_file_waits_for_the_answers_before_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where neither side can make a memory file, a large answer and a large job both go
    through the connection: the caller reads the answers so far before sending the job, so
    that neither waits for the other for ever, and still gives them in order."""
    if not Helper.queued:
        pytest.skip("one job at a time here")
    rows = [f"row {k}" for k in range(50_000)]
    seen: list[object] = []
    with Helper(_work) as helper:
        helper.send("refuse memory files", 0)
        assert helper.receive() == 0
        monkeypatch.setattr(os, "memfd_create", _refused, raising=False)

        def run() -> None:
            helper.send("large", 30_000)  # its answer fills the connection
            helper.send("count", rows)    # and the job could not go in after it
            helper.send("square", 4)
            seen.extend([helper.receive()[1], helper.receive(), helper.receive()])

        worker = threading.Thread(target=run)
        worker.start()
        worker.join(timeout=60)
        if worker.is_alive():
            helper._process.kill()
            worker.join()
            pytest.fail("the caller and the helper each waited for the other")
    assert seen == [{"n": 30_000}, 50_000, 16]


def test_one_job_at_a_time_unless_answers_come_in_memory_files(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Helper(_work) as helper:
        with pytest.raises(RuntimeError, match="no job"):
            helper.receive()
        helper.send("square", 1)
        if Helper.queued:
            helper.send("square", 2)
            assert [helper.receive(), helper.receive()] == [1, 4]
        else:
            with pytest.raises(RuntimeError, match="before sending another"):
                helper.send("square", 2)
            assert helper.receive() == 1
    # A caller without memory files sends one job at a time.
    monkeypatch.setattr(Helper, "queued", False)
    with Helper(_work) as helper:
        helper.send("large", 20_000)
        with pytest.raises(RuntimeError, match="before sending another"):
            helper.send("square", 2)
        assert helper.receive()[1] == {"n": 20_000}


def test_queued_jobs_are_answered_in_order_large_and_small_leaving_nothing_open() -> None:
    """With answers in memory files, the helper goes through queued jobs without waiting
    for its answers to be taken: answers of megabytes (a batch's judgement) and small ones
    come back whole and in order, failures in their place, and the caller holds no more
    descriptors afterwards than before."""
    if not Helper.queued or not os.path.isdir("/proc/self/fd"):
        pytest.skip("no anonymous memory files on this platform")
    size = 60_000

    def open_count() -> int:
        return len(os.listdir("/proc/self/fd"))

    with Helper(_work) as helper:
        helper.send("square", 2)
        assert helper.receive() == 4
        before = open_count()
        jobs = [("large", size), ("square", 7), ("fail", 3), ("large", size), ("large", 3)]
        for job in jobs:
            helper.send(*job)
        time.sleep(0.5)  # the helper answers them all before any is taken
        for kind, value in jobs:
            if kind == "fail":
                with pytest.raises(ValueError, match="no good: 3"):
                    helper.receive()
            elif kind == "square":
                assert helper.receive() == 49
            else:
                assert helper.receive() == ([f"text {k} " * 10 for k in range(value)],
                                            {"n": value})
        assert open_count() == before


def test_closing_stops_the_process() -> None:
    helper = Helper(_work)
    helper.send("square", 5)
    assert helper.receive() == 25
    process = helper._process
    helper.close()
    assert not process.is_alive() and process.exitcode == 0


def test_closing_abandons_a_job_under_way(capfd: pytest.CaptureFixture[str]) -> None:
    helper = Helper(_work)
    helper.send("sleep", 60)
    began = time.monotonic()
    helper.close()
    assert time.monotonic() - began < 30
    assert not helper._process.is_alive()
    assert "Traceback" not in capfd.readouterr().err


def test_an_answer_goes_through_the_connection_where_no_memory_file_can_be_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``_send`` falls back to the connection when making a memory file fails (a sandbox
    forbidding it), and ``_receive`` reads either; a large answer in a memory file too."""
    import multiprocessing

    from compliance import helper as helpers

    ours, theirs = multiprocessing.Pipe()
    small = (True, {"n": 3})
    large = (True, [f"text {k} " * 10 for k in range(30_000)])
    if Helper.queued:
        helpers._send(theirs, large)
        assert helpers._receive(ours) == large

    def refused(*_: object) -> int:
        raise PermissionError("memfd_create is not allowed here")

    monkeypatch.setattr(os, "memfd_create", refused, raising=False)
    assert helpers._memory_file() is None
    helpers._send(theirs, small)
    assert helpers._receive(ours) == small
    ours.close()
    theirs.close()
