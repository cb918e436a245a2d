"""What a check reads of some contracts, through any DB-API connection: their latest figures,
when their returns arrived, and their silences.

``Transaction`` reads them so through its own connection. A check's helper process reads a
SQLite store through ADBC's SQLite driver (``SqliteReader``), which gives the figures as Arrow
columns, and without the store's engine (SQLAlchemy): each helper starts the sooner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FIGURE_COLUMNS = ["contract", "measure", "period", "value", "numerator", "denominator",
                  "source", "source_rank", "comment", "version"]
# The figure table's names of the columns named otherwise in ``latest_figures``' frame.
_FIGURE_FIELDS = {"contract": "contract_id", "measure": "measure_id"}
# Columns of figures with few distinct texts: held as categoricals (each text once, and a
# code per row), which the assessment groups and compares by code.
_CODED = ("contract", "measure", "period", "source")
# Rows a read fetches at a time.
FETCH_CHUNK = 100_000
# Contracts named in one query.
_CONTRACTS_AT_ONCE = 500


def latest_figures(connection: Any, mark: str, contracts: Sequence[str],
                   up_to: str | None = None, *, parts: bool = True) -> pd.DataFrame:
    """Every source of the latest version of each figure of the contracts (see
    ``Transaction.latest_figures``), through a DB-API ``connection`` whose parameters are
    written ``mark``."""
    import pandas as pd

    names = _figure_names(parts)
    chunks: list[pd.DataFrame] = []
    if contracts:
        cursor: Any = connection.cursor()
        try:
            cursor.execute(*_revised_query(mark, contracts, up_to))
            revised = cursor.fetchone() is not None
            cursor.execute(*_figures_query(mark, contracts, up_to, names, revised))
            # Read a chunk at a time: only one chunk's rows are held as tuples at once.
            while rows := cursor.fetchmany(FETCH_CHUNK):
                chunks.append(_rows_frame(rows, names))
        finally:
            cursor.close()
    if not chunks:
        chunks.append(_rows_frame([], names))
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    del chunks
    # Contract, measure, period and source as categoricals (their texts in order), made
    # once for all the chunks.
    for name in _CODED:
        frame[name] = pd.Categorical(frame[name].to_numpy(dtype=object))
    return frame


def _figure_names(parts: bool) -> list[str]:
    return [n for n in FIGURE_COLUMNS if parts or n not in ("numerator", "denominator")]


def _where(mark: str, contracts: Sequence[str], up_to: str | None
           ) -> tuple[str, list[Any]]:
    where = f"contract_id IN ({_marks(mark, contracts)})"
    params: list[Any] = list(contracts)
    if up_to is not None:
        where += f" AND period <= {mark}"
        params.append(up_to)
    return where, params


def _revised_query(mark: str, contracts: Sequence[str], up_to: str | None
                   ) -> tuple[str, list[Any]]:
    """A query with a row when any of the figures read has been revised."""
    where, params = _where(mark, contracts, up_to)
    return f"SELECT 1 FROM figure WHERE {where} AND version > 1 LIMIT 1", params


def _figures_query(mark: str, contracts: Sequence[str], up_to: str | None,
                   names: Sequence[str], revised: bool) -> tuple[str, list[Any]]:
    """The query of ``latest_figures``' columns ``names``, in order of contract, measure,
    period and source; when any figure has been revised (``revised``), of the latest
    version of each figure only (its sources share it)."""
    where, params = _where(mark, contracts, up_to)
    fields = [_FIGURE_FIELDS.get(n, n) for n in names]
    if not revised:
        return (f"SELECT {', '.join(fields)} FROM figure WHERE {where} "
                f"ORDER BY contract_id, measure_id, period, source"), params
    return (f"SELECT {', '.join('f.' + f for f in fields)} "
            f"FROM figure AS f JOIN (SELECT contract_id, measure_id, period, "
            f"max(version) AS version FROM figure WHERE {where} "
            f"GROUP BY contract_id, measure_id, period) AS latest "
            f"ON f.contract_id = latest.contract_id "
            f"AND f.measure_id = latest.measure_id "
            f"AND f.period = latest.period AND f.version = latest.version "
            f"ORDER BY f.contract_id, f.measure_id, f.period, f.source"), params


def _rows_frame(rows: list[Any], columns: Sequence[str]) -> pd.DataFrame:
    """Rows of ``latest_figures`` as a frame, their numbers as floats."""
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=list(columns), coerce_float=True)
    return frame.astype({name: "float64" for name in _NUMBERS if name in frame.columns})


# The figures' numbers: floats, NaN where missing.
_NUMBERS = ("value", "numerator", "denominator")


def returns_received(connection: Any, mark: str, contracts: Sequence[str]
                     ) -> dict[tuple[str, str], dt.datetime]:
    """When the first figure for each contract and period arrived."""
    found: dict[tuple[str, str], dt.datetime] = {}
    moments: dict[Any, dt.datetime] = {}  # a return's periods share its time: read it once
    for chunk in _chunks(list(dict.fromkeys(contracts))):
        for c, p, at in _rows(connection, "SELECT contract_id, period, received_at FROM "
                              f"return_arrival WHERE contract_id IN ({_marks(mark, chunk)})",
                              chunk):
            moment = moments.get(at)
            if moment is None:
                moment = moments[at] = _moment(at)
            found[(c, p)] = moment
    return found


def silences(connection: Any, mark: str, contracts: Sequence[str]
             ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The silences of the contracts' measures, by contract and measure, in the order they
    were made."""
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(list(dict.fromkeys(contracts))):
        rows.extend(_rows(connection, "SELECT id, contract_id, measure_id, start, until, "
                          "reason, created_by, created_at FROM silence WHERE contract_id IN "
                          f"({_marks(mark, chunk)})", chunk))
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sid, contract, measure, start, until, reason, by, at in sorted(rows,
                                                                       key=lambda r: r[0]):
        found.setdefault((contract, measure), []).append(
            {"id": sid, "start": start, "until": until, "reason": reason, "by": by,
             "at": _moment(at)})
    return found


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CONTRACTS_AT_ONCE):
        yield items[start:start + _CONTRACTS_AT_ONCE]


def _marks(mark: str, values: Sequence[Any]) -> str:
    return ", ".join(mark for _ in values)


def _rows(connection: Any, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    if hasattr(connection, "adbc_get_info"):
        # ADBC's driver hands the rows over as Arrow columns (read as one batch, typed from
        # all its values): taken a column at a time, not a row at a time in Python.
        cursor = _arrow_cursor(connection)
        try:
            cursor.execute(query, list(params))
            table = cursor.fetch_arrow_table()
        finally:
            cursor.close()
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))
    cursor = connection.cursor()
    try:
        cursor.execute(query, list(params))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _moment(value: Any) -> dt.datetime:
    """A stored time as the store's models read it, in UTC: SQLite keeps it as text in UTC
    without an offset (``YYYY-MM-DD HH:MM:SS.ffffff``), a server as a timestamp with its
    zone."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a stored time: {value!r}")
    if value.utcoffset() is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class SqliteReader:
    """What a check reads (see ``compliance.checking._read``), from a SQLite file through
    ADBC's SQLite driver (``sqlite_reading``), in one read transaction: it sees the store as
    last committed.

    The driver hands a query's result over as Arrow columns: the figures become a frame
    without a Python tuple per row (about a third of the time the standard library's
    ``sqlite3`` takes for a batch of a national check), and give the same frame as
    ``latest_figures`` through a transaction."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def latest_figures(self, contracts: Sequence[str], up_to: str | None = None, *,
                       parts: bool = True) -> pd.DataFrame:
        names = _figure_names(parts)
        if contracts:
            revised = bool(_rows(self.connection, *_revised_query("?", contracts, up_to)))
            cursor = _arrow_cursor(self.connection)
            try:
                cursor.execute(*_figures_query("?", contracts, up_to, names, revised))
                table = cursor.fetch_arrow_table()
            finally:
                cursor.close()
            if table.num_rows:
                return _arrow_frame(table, names)
        # No figure: the empty frame, typed as a transaction's (no query is made for it).
        return latest_figures(self.connection, "?", [], parts=parts)

    def returns_received(self, contracts: Sequence[str]) -> dict[tuple[str, str], dt.datetime]:
        return returns_received(self.connection, "?", contracts)

    def silences(self, contracts: Sequence[str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        return silences(self.connection, "?", contracts)


# Rows ADBC's SQLite driver reads into one batch of Arrow columns. It works out a column's
# type from the values of its first batch, and fails on a later batch whose values are of
# another type (a batch of missing values is taken for integers): a result is read as one
# batch, typed from all its values.
_ARROW_BATCH_ROWS = 1 << 30


def _arrow_cursor(connection: Any) -> Any:
    """A cursor of an ADBC connection that reads a result as one batch."""
    cursor = connection.cursor()
    cursor.adbc_statement.set_options(
        **{"adbc.sqlite.query.batch_rows": str(_ARROW_BATCH_ROWS)})
    return cursor


def _arrow_frame(table: Any, names: Sequence[str]) -> pd.DataFrame:
    """An Arrow table of ``latest_figures``' columns ``names`` as the frame it gives: the
    coded columns as categoricals with their texts in order, the numbers as floats (NaN
    where missing)."""
    import numpy as np
    import pandas as pd

    from compliance.batch import texts_in_order

    columns: dict[str, Any] = {}
    for index, name in enumerate(names):
        column = table.column(index).combine_chunks()
        if name in _CODED:
            encoded = column.dictionary_encode()
            codes, texts = texts_in_order(encoded.indices.to_numpy(zero_copy_only=False),
                                          encoded.dictionary.to_pylist())
            columns[name] = pd.Categorical.from_codes(
                codes, pd.Index(np.array(texts, dtype=object)))
        elif name in _NUMBERS:
            # A column of missing values only comes as integers: as floats, all NaN.
            columns[name] = np.asarray(column.to_numpy(zero_copy_only=False),
                                       dtype=np.float64)
        elif name in ("source_rank", "version"):
            columns[name] = np.asarray(column.to_numpy(zero_copy_only=False),
                                       dtype=np.int64)
        else:
            columns[name] = column.to_pandas().to_numpy(dtype=object)
    return pd.DataFrame(columns, columns=list(names))


def sqlite_file(url: str) -> str | None:
    """The file of a plain SQLite URL (``sqlite:///path``, as ``Transaction.shared_url``
    gives it); None for any other URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix):]
    return None if path in ("", ":memory:") or path.startswith("file:") else path


@contextmanager
def sqlite_reading(path: str) -> Iterator[SqliteReader]:
    """A read transaction on a SQLite file through ADBC's SQLite driver, as
    ``Store(url, reading=True).reading()`` holds one: it waits for a writer as long as the
    store does, and changes nothing.

    The driver links its own copy of SQLite: a process that reads so must have no other
    connection to the file (a connection's closing would release the other library's locks
    on it). A check's helpers read only so; the checking process, which writes, never does.
    """
    import adbc_driver_sqlite.dbapi

    # Not in autocommit: the driver's connection is one transaction (begun now, rolled
    # back when it closes), every read seeing the same committed store.
    connection = adbc_driver_sqlite.dbapi.connect(path, autocommit=False)
    try:
        for pragma in ("PRAGMA busy_timeout=60000", "PRAGMA query_only=ON"):
            _rows(connection, pragma, [])
        yield SqliteReader(connection)
    finally:
        connection.close()
