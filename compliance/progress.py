"""Progress of long work, reported to whoever asks for it. Nothing is printed here.

A ``Progress`` hook is called as ``progress(stage, done, total)``: ``stage`` says in words
what is being done now, ``done`` how many of the ``total`` steps of the whole job are
finished. It is called when a stage begins and, with ``done == total``, when the job ends;
``done`` never decreases within one job. Functions that accept a hook take it as the keyword
``progress`` and default to reporting nowhere.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]

__all__ = ["Progress", "no_progress", "offset"]


def no_progress(stage: str, done: int, total: int) -> None:
    """The hook that reports nowhere."""


def offset(progress: Progress | None, before: int, after: int = 0) -> Progress:
    """A hook for one part of a larger job: ``before`` steps of the job come before the
    part, ``after`` steps follow it; the part counts its own steps from 0."""
    if progress is None:
        return no_progress
    report = progress

    def part(stage: str, done: int, total: int) -> None:
        report(stage, before + done, before + total + after)

    return part
