"""Columns of a frame as the store's rows take them: Python values, None for missing.

Plain numpy and pandas: a process that only reads or packs (a check's helper) imports this
without the store's engine."""

from __future__ import annotations

from typing import Any


def objects(values: Any) -> Any:
    """A column as an object array of Python values, NaN and pandas' missing markers as None."""
    import numpy as np
    import pandas as pd
    from pandas.api.types import infer_dtype

    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        # Each category's text once; a missing value's code is -1.
        coded = pd.Categorical(values)
        texts = np.empty(len(coded.categories) + 1, dtype=object)
        texts[:-1] = np.asarray(coded.categories, dtype=object)
        return texts[coded.codes]  # the last, None, for a code of -1
    array = np.asarray(values, dtype=object)
    if infer_dtype(array, skipna=False) == "string":
        return array  # text throughout: nothing is missing
    missing = pd.isna(array)
    if missing.any():
        array = array.copy()
        array[missing] = None
    return array


def integers(values: Any) -> Any:
    """A column of whole numbers, perhaps missing, as Python ints and None."""
    import numpy as np
    import pandas as pd

    numbers = pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype=np.float64,
                                                                        na_value=np.nan)
    known = ~np.isnan(numbers)
    out = np.full(len(numbers), None, dtype=object)
    out[known] = numbers[known].astype(np.int64)  # stored as Python ints
    return out


def texts(values: Any) -> Any:
    """A text column that is never NULL, as an object array: missing and empty values
    become ''."""
    import numpy as np
    from pandas.api.types import infer_dtype

    array = np.asarray(values, dtype=object)
    if infer_dtype(array, skipna=False) == "string":
        return array  # text throughout: nothing to fill
    return np.asarray([v or "" for v in objects(array).tolist()], dtype=object)
