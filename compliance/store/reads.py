"""What a check reads of some contracts, through any DB-API connection: their latest figures,
when their returns arrived, and their silences.

``Transaction`` reads them so through its own connection. A check's helper process reads a
SQLite store so through the standard library's ``sqlite3`` (``SqliteReader``), without the
store's engine (SQLAlchemy): each helper starts the sooner.
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

    where = f"contract_id IN ({', '.join(mark for _ in contracts)})"
    params: list[Any] = list(contracts)
    if up_to is not None:
        where += f" AND period <= {mark}"
        params.append(up_to)
    names = [n for n in FIGURE_COLUMNS if parts or n not in ("numerator", "denominator")]
    fields = ", ".join(_FIGURE_FIELDS.get(n, n) for n in names)
    cursor: Any = connection.cursor()
    chunks: list[pd.DataFrame] = []
    try:
        if contracts:
            cursor.execute(f"SELECT 1 FROM figure WHERE {where} AND version > 1 LIMIT 1",
                           params)
            revised = cursor.fetchone() is not None
            if revised:
                # Only the latest version of each figure: its sources share it.
                query = (
                    f"SELECT {', '.join('f.' + f for f in fields.split(', '))} "
                    f"FROM figure AS f JOIN (SELECT contract_id, measure_id, period, "
                    f"max(version) AS version FROM figure WHERE {where} "
                    f"GROUP BY contract_id, measure_id, period) AS latest "
                    f"ON f.contract_id = latest.contract_id "
                    f"AND f.measure_id = latest.measure_id "
                    f"AND f.period = latest.period AND f.version = latest.version "
                    f"ORDER BY f.contract_id, f.measure_id, f.period, f.source")
            else:
                query = (f"SELECT {fields} FROM figure WHERE {where} "
                         f"ORDER BY contract_id, measure_id, period, source")
            cursor.execute(query, params)
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


def _rows_frame(rows: list[Any], columns: Sequence[str]) -> pd.DataFrame:
    """Rows of ``latest_figures`` as a frame, their numbers as floats."""
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=list(columns), coerce_float=True)
    return frame.astype({name: "float64" for name in ("value", "numerator", "denominator")
                         if name in frame.columns})


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
    the standard library, in one read transaction: it sees the store as last committed."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def latest_figures(self, contracts: Sequence[str], up_to: str | None = None, *,
                       parts: bool = True) -> pd.DataFrame:
        return latest_figures(self.connection, "?", contracts, up_to, parts=parts)

    def returns_received(self, contracts: Sequence[str]) -> dict[tuple[str, str], dt.datetime]:
        return returns_received(self.connection, "?", contracts)

    def silences(self, contracts: Sequence[str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        return silences(self.connection, "?", contracts)


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
    """A read transaction on a SQLite file, as ``Store(url, reading=True).reading()`` holds
    one: it waits for a writer as long as the store does, and changes nothing."""
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=60000")
        connection.execute("PRAGMA query_only=ON")
        connection.execute("BEGIN")
        try:
            yield SqliteReader(connection)
        finally:
            connection.execute("ROLLBACK")
    finally:
        connection.close()
