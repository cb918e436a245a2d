"""Bulk work over many rows, with Python's cyclic garbage collector paused while it runs.

Reading, assessing and writing a million figures makes tens of millions of short-lived
objects and no reference cycles of note; every few hundred allocations the collector would
otherwise walk the objects still alive, and at that scale those walks cost more than a tenth
of the work. Reference counting still frees everything as usual while paused; the collector
resumes, as it was, when the work ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (nested blocks are fine)."""
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
