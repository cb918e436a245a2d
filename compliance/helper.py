"""A second process that runs one function on jobs sent to it, one at a time, in order.

The caller's own thread sends each job and reads each answer: there are no threads in the
caller to contend with its work, and the caller decides when the pickling and unpickling
happen. The process is spawned, not forked, so that nothing of the caller's open store,
threads or locks goes with it; it starts as a fresh interpreter (as any spawned process,
it imports the caller's main script under another name, so a script must keep its own work
under ``if __name__ == "__main__":``).

Where the platform has it, helpers are forked from a fork server instead: a process
spawned fresh once per caller, which imports the modules the caller names (``preload``)
once; each helper forked from it then starts with them imported, at no cost, instead of
importing them again. (The server starts with the first helper, or earlier with ``warm``,
and keeps the ``preload`` it started with.) Nothing of the caller goes with them either way.

A job's exception is raised again in the caller, with the helper's traceback as its cause;
a helper that dies (killed, out of memory) is an error in the caller, never a silent hang.

Where the system has anonymous memory files (``memfd_create``, Linux), a helper writes each
answer into one and hands over only its descriptor (the memory is freed once the caller has
read it and closed it, whichever process ends first). Its answers are then small messages,
which never fill the connection: the caller may send several jobs at once (``queued``), and
the helper goes from one to the next without waiting for the caller to take each answer.
Elsewhere answers go through the connection itself, one job at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Helper", "HelperDied", "cores", "warm"]


class HelperDied(RuntimeError):
    """The helper process ended without answering."""


class _RemoteTraceback(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _context(preload: Sequence[str]) -> Any:
    """How helpers are started: forked from the fork server where there is one (the modules
    of ``preload`` imported there, when it starts), else spawned."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


def warm(preload: Sequence[str] = ()) -> None:
    """Start the fork server, which imports ``preload``, without waiting for it: helpers
    started a little later then wait the less. Nothing where there is no fork server."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    _context(preload)
    forkserver.ensure_running()


def cores() -> int:
    """Processors this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Helper:
    """``send(*args)`` hands ``target(*args)`` to the helper; ``receive()`` waits for the
    answer to the earliest job whose answer is not yet received. Where answers come in memory
    files (``queued``), several jobs may be sent before their answers are received, as long
    as each job is small (a few kilobytes: the caller must never block sending while the
    helper waits for it to read). Otherwise one job at a time: a job's answer is received
    before the next job is sent (the helper would otherwise block, its answer unread, while
    the caller blocks sending)."""

    # Whether several jobs may be sent before their answers are received.
    queued = hasattr(os, "memfd_create")

    def __init__(self, target: Callable[..., Any], preload: Sequence[str] = ()) -> None:
        context = _context(preload)
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, target), daemon=True,
                                        name="compliance-helper")
        self._process.start()
        theirs.close()
        self._waiting = 0  # jobs sent whose answers are not yet received

    def send(self, *args: Any) -> None:
        if self._waiting and not self.queued:
            raise RuntimeError("receive the helper's answer before sending another job")
        try:
            self._conn.send(args)
        except (BrokenPipeError, EOFError, ConnectionResetError) as exc:
            raise self._died() from exc
        self._waiting += 1

    def receive(self) -> Any:
        if not self._waiting:
            raise RuntimeError("no job was sent to the helper")
        try:
            ok, answer = _receive(self._conn)
        except (EOFError, ConnectionResetError) as exc:
            raise self._died() from exc
        self._waiting -= 1
        if ok:
            return answer
        error, text = answer
        raise error from _RemoteTraceback(text)

    def close(self) -> None:
        """Stop the helper; a job it is on is abandoned."""
        if self._process.is_alive():
            if self._waiting:
                self._process.terminate()
            else:
                try:
                    self._conn.send(None)
                except OSError:
                    self._process.terminate()
        self._conn.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _died(self) -> HelperDied:
        self._process.join(timeout=5)
        return HelperDied(f"the helper process ended without answering (exit code "
                          f"{self._process.exitcode})")


def _serve(conn: Any, target: Callable[..., Any]) -> None:
    """The helper's loop: each job run and answered until it is told to stop."""
    import pickle
    import signal
    import traceback

    # An interrupt at the terminal reaches every process of the group: the caller handles it,
    # and stops the helper.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            answer: tuple[bool, Any] = (True, target(*job))
        except BaseException as exc:  # noqa: BLE001  (every failure goes back to the caller)
            answer = (False, (exc, traceback.format_exc()))
        try:
            try:
                _send(conn, answer)
            except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
                problem = f"the helper's answer could not be sent back: {exc}"
                if not answer[0]:
                    original = answer[1][0]
                    problem = f"{type(original).__name__}: {original} ({problem})"
                conn.send((False, (RuntimeError(problem), traceback.format_exc())))
        except OSError:
            return  # the caller has gone: nothing to answer


# The message that says an answer waits in a memory file (its descriptor follows).
_IN_MEMORY_FILE = "answer in a memory file"


def _send(conn: Any, answer: tuple[bool, Any]) -> None:
    """Send an answer: through an anonymous memory file where the system has them (see the
    module's description), else through the connection.

    Where making a memory file fails (a sandbox that forbids it, say), the answer goes
    through the connection: the caller reads it either way, and a caller that queued jobs
    never blocks sending them, so it reads the answer however large."""
    handle = _memory_file() if Helper.queued else None
    if handle is None:
        conn.send(answer)
        return
    from multiprocessing import reduction

    try:
        data = reduction.ForkingPickler.dumps(answer)  # as the connection pickles it
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
        del view
        conn.send((_IN_MEMORY_FILE, len(data)))
        reduction.send_handle(conn, handle, None)
    finally:
        os.close(handle)


def _memory_file() -> int | None:
    """A new anonymous memory file's descriptor; None where one cannot be made."""
    try:
        return os.memfd_create("compliance-answer", os.MFD_CLOEXEC)
    except OSError:
        return None


def _receive(conn: Any) -> Any:
    """An answer as ``_send`` sent it."""
    message = conn.recv()
    if message[0] == _IN_MEMORY_FILE:
        message = _read_memory_file(conn, message[1])
    return message


def _read_memory_file(conn: Any, size: int) -> Any:
    """The answer waiting in the memory file whose descriptor comes next on ``conn``."""
    import mmap
    import pickle
    from multiprocessing import reduction

    handle = reduction.recv_handle(conn)
    try:
        with mmap.mmap(handle, size, prot=mmap.PROT_READ) as memory:
            return pickle.loads(memory)
    finally:
        os.close(handle)
