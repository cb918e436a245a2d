"""Bulk work over many rows, with Python's cyclic garbage collector paused while it runs.

Reading, assessing and writing a million figures makes tens of millions of short-lived
objects and no reference cycles of note; every few hundred allocations the collector would
otherwise walk the objects still alive, and at that scale those walks cost more than a tenth
of the work. Reference counting still frees everything as usual while paused; the collector
resumes, as it was, when the work ends.

Bulk work also has the C allocator keep the memory it frees for the next arrays
(``keep_freed_memory``), once per process.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_KEPT: list[bool] = []


def keep_freed_memory() -> bool:
    """Have glibc's allocator keep the memory a process frees, for its next allocations,
    instead of handing each large block back to the system and taking fresh pages (each
    faulted in and zeroed again) for the next: bulk work makes and drops arrays of millions
    of rows many times over. The memory is the system's again when the process ends. Once per
    process; True where it took (glibc), False elsewhere, where nothing changes."""
    if not _KEPT:
        _KEPT.append(_mallopt_keep())
    return _KEPT[0]


def _mallopt_keep() -> bool:
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False  # not glibc
    # glibc's mallopt parameters: blocks of any size from the heap (not one mapping each),
    # and the heap's freed top kept rather than trimmed.
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (nested blocks are fine); and
    keep freed memory (``keep_freed_memory``)."""
    keep_freed_memory()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def shared_texts(values: Any) -> Any:
    """An object column with equal values held as one object each (missing values kept):
    a million rows of a few hundred distinct texts then hold a few hundred strings."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values)
    shared = np.array(values, dtype=object)
    known = codes >= 0
    shared[known] = np.asarray(uniques, dtype=object)[codes[known]]
    return shared


def texts_in_order(codes: Any, texts: Sequence[Any]) -> tuple[Any, list[Any]]:
    """Codes into ``texts`` (distinct values) recoded to index the same texts sorted, as a
    pandas categorical holds its categories; and the sorted texts."""
    import numpy as np

    order = sorted(range(len(texts)), key=texts.__getitem__)
    rank = np.empty(len(texts), dtype=np.intp)
    rank[order] = np.arange(len(texts), dtype=np.intp)
    recoded = rank[codes] if len(texts) else np.asarray(codes, dtype=np.intp)
    return recoded, [texts[k] for k in order]
