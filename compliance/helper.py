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
read it and closed it, whichever process ends first); the caller sends a large job so too.
Every message is then small, and never fills the connection: the caller may send several
jobs at once (``queued``), however large, without waiting for the helper to read them, and
the helper goes from one to the next without waiting for the caller to take each answer.
Elsewhere jobs and answers go through the connection itself, one job at a time.
"""

from __future__ import annotations

import os
from collections import deque
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
    answer to the earliest job whose answer is not yet received. Where jobs and answers go
    in memory files when large (``queued``), several jobs may be sent before their answers
    are received. Otherwise one job at a time: a job's answer is received before the next
    job is sent (the helper would otherwise block, its answer unread, while the caller blocks
    sending)."""

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
        self._taken: deque[tuple[bool, Any]] = deque()  # of those, answers read already

    def send(self, *args: Any) -> None:
        if self._waiting and not self.queued:
            raise RuntimeError("receive the helper's answer before sending another job")
        try:
            if not self.queued:
                self._conn.send(args)
            else:
                data = _pickled(args)
                if not _deliver(self._conn, data, large=False):
                    # A large job, and no memory file for it: once the helper's answers so
                    # far are read, it is free to read the job, and the connection to take it.
                    while len(self._taken) < self._waiting:
                        self._taken.append(self._answer())
                    self._conn.send_bytes(data)
        except (BrokenPipeError, EOFError, ConnectionResetError) as exc:
            raise self._died() from exc
        self._waiting += 1

    def receive(self) -> Any:
        if not self._waiting:
            raise RuntimeError("no job was sent to the helper")
        ok, answer = self._taken.popleft() if self._taken else self._answer()
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

    def _answer(self) -> tuple[bool, Any]:
        try:
            answer: tuple[bool, Any] = _receive(self._conn)
        except (EOFError, ConnectionResetError) as exc:
            raise self._died() from exc
        return answer

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
            job = _receive(conn)
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


# The message that says a job or an answer waits in a memory file (its descriptor follows).
_IN_MEMORY_FILE = "in a memory file"
# A message of at most this many bytes goes through the connection itself, whose buffer
# holds it whether or not the other side is reading (Linux's smallest socket buffer is 4 KB).
_SMALL = 2048


def _send(conn: Any, answer: tuple[Any, ...]) -> None:
    """Send an answer (see ``_deliver``).

    Where making a memory file fails (a sandbox that forbids it, say), an answer goes
    through the connection: the caller reads it either way, and a caller that queued jobs
    never blocks sending them, so it reads the answer however large. A caller sends a large
    job so only once it has read the answers to the jobs before it (``Helper.send``)."""
    _deliver(conn, _pickled(answer))


def _pickled(message: tuple[Any, ...]) -> memoryview:
    """A message pickled as the connection pickles it (a view of the pickler's buffer)."""
    from multiprocessing import reduction

    data: memoryview = reduction.ForkingPickler.dumps(message)
    return data


def _deliver(conn: Any, data: memoryview, *, large: bool = True) -> bool:
    """Send a pickled job or answer: when large, through an anonymous memory file where the
    system has them (see the module's description), else through the connection. Whether it
    was sent: a large message is not when no memory file can be made for it, unless
    ``large``."""
    from multiprocessing import reduction

    handle = _memory_file() if Helper.queued and len(data) > _SMALL else None
    if handle is None:
        if len(data) > _SMALL and not large:
            return False
        conn.send_bytes(data)
        return True
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
        del view
        conn.send((_IN_MEMORY_FILE, len(data)))
        reduction.send_handle(conn, handle, None)
    finally:
        os.close(handle)
    return True


def _memory_file() -> int | None:
    """A new anonymous memory file's descriptor; None where one cannot be made."""
    try:
        return os.memfd_create("compliance-message", os.MFD_CLOEXEC)
    except OSError:
        return None


def _receive(conn: Any) -> Any:
    """A job or an answer as ``_send`` sent it (a job of ``Helper.close``: None)."""
    message = conn.recv()
    if isinstance(message, tuple) and message and message[0] == _IN_MEMORY_FILE:
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
