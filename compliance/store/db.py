"""The store: contracts and their schedule versions, returns (every version), assessments.

SQLite by default (``compliance.db`` in the working folder), any SQLAlchemy URL otherwise.
Every command's writes happen in one transaction (``Store.transaction``); figures and
assessments are written in bulk.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, col, create_engine

from compliance.batch import collector_paused
from compliance.errors import StoreError
from compliance.periods import add_months
from compliance.schedule import Schedule, schedule_from_json
from compliance.store import reads
from compliance.store.columns import objects, texts
from compliance.store.models import (
    AssessmentSet,
    AuditEntry,
    CheckFigure,
    CheckRun,
    Contract,
    Escalation,
    EscalationNote,
    EscalationSet,
    Figure,
    Finding,
    FindingSet,
    Measure,
    ReturnArrival,
    ScheduleVersion,
    Silence,
    Submission,
)

if TYPE_CHECKING:
    import pandas as pd

    from compliance.store.packed import AssessmentSets, EscalationSets, FindingSets

DEFAULT_URL = "sqlite:///compliance.db"
MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["DEFAULT_URL", "Store", "Transaction", "default_user", "resolve_url"]


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("COMPLIANCE_DB") or DEFAULT_URL


def _shown(url: str) -> str:
    """The URL as messages may show it: never with its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _processed(values: Any, process: Callable[[Any], Any]) -> list[Any]:
    """Each value through a column type's bind processor, each object once: a column often
    holds one object many times (the time a return arrived, say)."""
    # By identity; each value is held here with its result, so that an object made while
    # iterating (a numpy scalar) cannot be freed and its id taken by the next one.
    done: dict[int, tuple[Any, Any]] = {}
    out = []
    for value in values:
        key = id(value)
        if key not in done:
            done[key] = (value, process(value))
        out.append(done[key][1])
    return out


# The page size of a new SQLite store, in bytes.
SQLITE_PAGE_SIZE = 16384

# Rows per INSERT statement on SQLite: at most 999 values in one statement (the smallest
# limit SQLite has had), one statement for many rows costs less than one for each.
_SQLITE_VALUES = 999


def _sqlite_insert(conn: Any, table: Table, constants: Mapping[str, int],
                   data: Mapping[str, Any]) -> int:
    """Rows into a SQLite table inside the connection's transaction, given column by column
    as arrays or lists of values SQLite takes as they are (integers, strings, floats; a NaN
    float is stored as NULL, as SQLite stores every NaN it is given), with integer columns
    of one value for every row written into the statement. Several rows go into each
    statement."""
    import numpy as np

    names = [*constants, *data]
    columns = list(data.values())
    count = len(columns[0]) if columns else 0
    if not count:
        return 0
    width = len(columns)
    # The rows' values one after the other, made column by column in numpy's loops.
    block = np.empty((count, width), dtype=object)
    for j, column in enumerate(columns):
        block[:, j] = column
    flat = block.ravel().tolist()
    del block
    row = "(" + ", ".join([str(int(constants[name])) for name in constants]
                          + ["?"] * width) + ")"
    quoted = ", ".join(f'"{name}"' for name in names)
    into = f'INSERT INTO "{table.name}" ({quoted}) VALUES '
    per = max(_SQLITE_VALUES // width, 1)
    step = per * width
    full = count // per
    if full:
        statement = into + ", ".join([row] * per)
        conn.exec_driver_sql(statement, [tuple(flat[i:i + step])
                                         for i in range(0, full * step, step)])
    if count % per:
        conn.exec_driver_sql(into + ", ".join([row] * (count % per)),
                             tuple(flat[full * step:]))
    return count


def _sqlite_changes(connection: Any) -> int:
    """The rows a SQLite connection has inserted, changed or deleted since it was opened."""
    return int(connection.connection.driver_connection.total_changes)


def _table(model: Any) -> Table:
    """The Core table of a table model."""
    table: Table = model.__table__
    return table


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Store:
    def __init__(self, url: str | None = None, *, reading: bool = False) -> None:
        """The store at ``url``. A store opened for ``reading`` only reads, in transactions
        that see the store as it was when they began: on SQLite they take no write lock, so
        they read while another connection holds it (and has not committed)."""
        self.url = _shown(resolve_url(url))
        url = resolve_url(url)
        try:
            # A command is short-lived: a server connection is closed as soon as it is
            # returned, rather than kept in a pool the command will not use again.
            extra: dict[str, Any] = {}
            if not url.startswith("sqlite"):
                from sqlalchemy.pool import NullPool

                extra["poolclass"] = NullPool
                if reading:
                    extra["isolation_level"] = "REPEATABLE READ"
            self.engine: Engine = create_engine(url, **extra)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use the store {self.url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy import event

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # SQLAlchemy, not the driver, decides when a transaction begins (below).
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=60000")
                if reading:
                    cur.execute("PRAGMA query_only=ON")
                else:
                    # A new store's pages (a store made already keeps its own): a check's
                    # sets of assessments and findings are texts of several kilobytes, each
                    # written into fewer, larger pages the quicker (a national check's
                    # batch 0.039 s rather than 0.056 s in SQLite).
                    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
                cur.close()

            @event.listens_for(self.engine, "begin")
            def _begin(conn: Any) -> None:
                # Take the write lock at the start: two officers' commands then queue one
                # behind the other instead of failing when a reader tries to become a writer.
                # A reader's transaction holds a shared lock from its first read to its end.
                conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    def _alembic(self, connection: Any) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def revision(self) -> str | None:
        """The schema revision of the store (None for an empty store).

        Read from Alembic's version table directly: Alembic is imported only to create or
        upgrade a store.
        """
        from sqlalchemy import inspect, text

        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except OperationalError as exc:
            raise StoreError(f"cannot open the store {self.url}: {exc.orig}") from None
        if len(rows) > 1:
            raise StoreError(f"the store {self.url} records {len(rows)} schema revisions "
                             f"({', '.join(sorted(r[0] for r in rows))}); it needs one")
        return str(rows[0][0]) if rows else None

    @staticmethod
    def head() -> str:
        """This version's schema revision (the newest migration)."""
        from compliance.store.migrations import head_revision

        return head_revision()

    def init(self, to: str = "head") -> list[str]:
        """Create the store, or upgrade it to this version's schema; return what was applied."""
        from alembic import command
        from alembic.script import ScriptDirectory

        before = self.revision()
        try:
            with self.engine.begin() as conn:
                command.upgrade(self._alembic(conn), to)
        except OperationalError as exc:
            raise StoreError(f"cannot create or upgrade the store {self.url}: {exc.orig}") \
                from None
        script = ScriptDirectory(str(MIGRATIONS))
        done = set() if before is None else {
            r.revision for r in script.walk_revisions(base="base", head=before)}
        target = self.head() if to == "head" else to
        chain = [r.revision for r in script.walk_revisions(base="base", head=target)]
        return [r for r in reversed(chain) if r not in done]

    def ensure_current(self) -> None:
        """An empty store is created; a store of an older schema must be upgraded first."""
        revision = self.revision()
        if revision is None:
            from sqlalchemy import inspect

            if inspect(self.engine).get_table_names():
                raise StoreError(f"{self.url} holds tables that are not a compliance store")
            self.init()
        elif revision != self.head():
            raise StoreError(f"the store {self.url} has schema {revision}, older than this "
                             f"version's {self.head()}: run `compliance init` to upgrade it")

    @contextmanager
    def transaction(self, user: str | None = None) -> Iterator[Transaction]:
        """One transaction: everything inside is written, or nothing is."""
        self.ensure_current()
        try:
            with Session(self.engine) as session, session.begin():
                yield Transaction(session, user or default_user())
        except OperationalError as exc:
            raise StoreError(f"the store {self.url} could not be written: {exc.orig}") from None

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """A transaction of a store opened for ``reading``: it reads, and is rolled back."""
        try:
            with Session(self.engine) as session:
                try:
                    yield Transaction(session, "")
                finally:
                    session.rollback()
        except OperationalError as exc:
            raise StoreError(f"the store {self.url} could not be read: {exc.orig}") from None

    def dispose(self) -> None:
        self.engine.dispose()


class Transaction:
    def __init__(self, session: Session, user: str) -> None:
        self.session = session
        self.user = user
        # Whether figures were stored in this transaction (not yet committed, so that only
        # this transaction can read them).
        self.submitted = False
        # On SQLite, the rows the connection had changed when the transaction began.
        self._changes = (_sqlite_changes(session.connection())
                         if session.get_bind().dialect.name == "sqlite" else 0)
        # Schedules parsed in this transaction, by contract, version and digest.
        self._parsed: dict[tuple[str, int, str], Schedule] = {}

    def _schedule(self, row: ScheduleVersion) -> Schedule:
        """A stored schedule version, parsed once per transaction (schedules are frozen)."""
        key = (row.contract_id, row.version, row.sha256)
        schedule = self._parsed.get(key)
        if schedule is None:
            schedule = self._parsed[key] = schedule_from_json(row.spec_json)
        return schedule

    def shared_url(self) -> str | None:
        """The store's URL, for another process to open for ``reading`` what this transaction
        would read; None when it cannot: a store in memory, or figures stored in this
        transaction (not committed, so that only this transaction sees them)."""
        if self.submitted:
            return None
        connection = self.session.connection()
        url = connection.engine.url
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:") or "mode=memory" in str(url.query):
                return None
            # Anything written in this transaction may already need the file to itself, and
            # shut a reader out until the commit.
            if _sqlite_changes(connection) != self._changes:
                return None
            if not database.startswith("file:"):
                url = url.set(database=os.path.abspath(database))
        return url.render_as_string(hide_password=False)

    def write_behind(self) -> bool:
        """Have the disk take what this transaction has written to a SQLite file so far, so
        that its commit has the less to wait for; whether it did. A long check calls it
        between batches, while it waits for its helpers: a commit of a national check
        otherwise waits for the disk to take a quarter of a gigabyte at once.

        Nothing read or committed changes: SQLite writes a transaction's pages to its file
        as its cache fills, and this only waits until the disk has them (a transaction
        rolled back is undone from its journal as before). Nothing on a store in memory or
        on other databases, which write their log as they go. A file that cannot be opened
        or synced here is left to the commit."""
        connection = self.session.connection()
        if connection.dialect.name != "sqlite":
            return False
        row = connection.exec_driver_sql(
            "SELECT file FROM pragma_database_list WHERE name = 'main'").first()
        path = row[0] if row else ""
        if not path:
            return False
        try:
            handle = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            getattr(os, "fdatasync", os.fsync)(handle)
        except OSError:
            return False  # the commit syncs the file, and says what is wrong with it
        finally:
            os.close(handle)
        return True

    def lock(self, contracts: Sequence[str]) -> None:
        """Hold the contracts until this transaction ends, so that two officers working on
        the same contract at once are served one after the other (SQLite's write lock
        already does this for the whole store)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        from sqlalchemy import text

        for cid in sorted(set(contracts)):
            key = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:8], "big",
                                 signed=True)
            self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    # --- bulk writes ---------------------------------------------------------------------

    def _insert(self, table: Any, data: Mapping[str, Any], rows: Any = None,
                constants: Mapping[str, int] | None = None) -> int:
        """Rows into a table, given column by column (equal lengths): COPY on PostgreSQL,
        ``executemany`` elsewhere, inside the session's transaction. Values pass through the
        columns' types as SQLAlchemy's own inserts would pass them.

        ``rows`` (positions into the columns) picks the rows to insert and their order; every
        row in order by default. ``constants`` are integer columns of one value for every
        row. Rows are prepared and sent ``_INSERT_CHUNK`` at a time, so only one chunk's
        Python values are held at once."""
        import numpy as np
        from sqlalchemy import Float

        conn = self.session.connection()
        dialect = conn.dialect
        # The statement is written here for SQLite and PostgreSQL (the columns' types then
        # prepare the values here); any other database gets them through SQLAlchemy.
        direct = dialect.name == "postgresql" or dialect.paramstyle == "qmark"
        sqlite = direct and dialect.name != "postgresql"
        constants = dict(constants or {})
        if constants and not sqlite:  # only SQLite's statements carry them as written
            count = len(next(iter(data.values()))) if rows is None else len(rows)
            data = {**{name: np.full(count, int(value), dtype=np.int64)
                       for name, value in constants.items()}, **data}
            constants = {}
        columns = list(data)
        data = {name: (data[name].to_numpy() if hasattr(data[name], "to_numpy")
                       else data[name] if isinstance(data[name], np.ndarray | list)
                       else list(data[name])) for name in columns}
        lengths = {len(data[name]) for name in columns}
        if len(lengths) > 1:
            raise ValueError(f"columns of unequal lengths for {table.name}: {sorted(lengths)}")
        picked = None if rows is None else np.asarray(rows, dtype=np.int64)
        total = (lengths.pop() if lengths else 0) if picked is None else len(picked)
        if not columns or not total:
            return 0
        floats = [type(table.c[name].type) is Float for name in columns]
        # SQLite stores a NaN it is given as NULL, and takes a float faster than a None.
        nan_is_null = dialect.name == "sqlite"
        processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                      if direct else None for name in columns]

        def chunks(as_lists: bool = True) -> Iterator[list[Any]]:
            for start in range(0, total, _INSERT_CHUNK):
                stop = min(start + _INSERT_CHUNK, total)
                values: list[Any] = []
                for name, is_float, process in zip(columns, floats, processors, strict=True):
                    column = data[name]
                    if picked is None:
                        part = column[start:stop]
                    elif isinstance(column, np.ndarray):
                        part = column[picked[start:stop]]
                    else:
                        part = [column[i] for i in picked[start:stop].tolist()]
                    if is_float and nan_is_null:
                        part = np.asarray(part, dtype=np.float64)
                    elif is_float:  # NaN is NULL
                        part = objects(np.asarray(part, dtype=np.float64))
                    elif process is not None:
                        part = _processed(part, process)
                    if as_lists:
                        part = part.tolist() if isinstance(part, np.ndarray) else list(part)
                    values.append(part)
                yield values

        names = ", ".join(f'"{name}"' for name in columns)
        if not direct:
            for chunk in chunks():
                conn.execute(insert(table), [dict(zip(columns, row, strict=True))
                                             for row in zip(*chunk, strict=True)])
        elif dialect.name == "postgresql":
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cursor, cursor.copy(
                    f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                for chunk in chunks():
                    for row in zip(*chunk, strict=True):
                        copy.write_row(row)
        else:
            for chunk in chunks(as_lists=False):
                _sqlite_insert(conn, table, constants, dict(zip(columns, chunk, strict=True)))
        return total

    def _new_ids(self, table: Any, count: int) -> list[int]:
        """``count`` unused ids for a table's integer primary key, in increasing order."""
        conn = self.session.connection()
        if conn.dialect.name == "postgresql":
            from sqlalchemy import text

            query = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                         "FROM generate_series(1, :count)")
            return sorted(int(i) for i in conn.execute(
                query, {"table": f'"{table.name}"', "count": count}).scalars())
        # SQLite: the transaction holds the store's write lock (BEGIN IMMEDIATE), so nobody
        # else can take ids past the largest one until it ends.
        last = conn.execute(select(func.max(table.c.id))).scalar() or 0
        return list(range(last + 1, last + 1 + count))

    # --- contracts and schedules ------------------------------------------------------------

    def load_schedule(self, schedule: Schedule, effective_from: str | None = None
                      ) -> tuple[int, bool]:
        """Register a schedule; a changed one becomes a new version. Returns (version, new).

        A new version takes effect from ``effective_from``; by default from the month after
        the latest period checked, so that no period already checked changes its targets.
        """
        s = self.session
        contract = s.get(Contract, schedule.id)
        # Absent optional fields are left out: the document reads back the same, sooner.
        spec_json = schedule.model_dump_json(exclude={"warnings"}, exclude_none=True)
        digest = hashlib.sha256(
            schedule.model_dump_json(exclude={"warnings", "path", "sha256"}).encode()
        ).hexdigest()
        if contract is not None:
            current = s.get(ScheduleVersion, (schedule.id, contract.current_version))
            if current is not None and current.sha256 == digest:
                return contract.current_version, False
            version = contract.current_version + 1
            previous = current.effective_from if current is not None else None
            if effective_from is None:
                through = self.checked_through(schedule.id)
                effective_from = add_months(through, 1) if through else previous
            if previous and effective_from and effective_from < previous:
                raise StoreError(f"version {version} of {schedule.id} cannot take effect from "
                                 f"{effective_from}, before version {version - 1} ({previous})")
            contract.current_version = version
            contract.title = schedule.contract.title
            contract.provider = schedule.contract.provider
            contract.commissioner = schedule.contract.commissioner
        else:
            version = 1
            effective_from = None
            s.add(Contract(id=schedule.id, title=schedule.contract.title,
                           commissioner=schedule.contract.commissioner,
                           provider=schedule.contract.provider, current_version=1))
            s.flush()
        s.add(ScheduleVersion(contract_id=schedule.id, version=version, sha256=digest,
                              spec_json=spec_json, source_path=schedule.path,
                              effective_from=effective_from, loaded_by=self.user))
        rows = []
        for m in schedule.measures:
            target, band = m.target_range, m.tolerance_band()
            rows.append(dict(
                contract_id=schedule.id, version=version, measure_id=m.id, kind=m.kind,
                parent=m.parent, title=m.title, unit=m.unit, polarity=m.polarity,
                frequency=schedule.frequency(m), accumulation=m.accumulation, judged=m.judged,
                target_low=target[0] if target else None,
                target_high=target[1] if target else None,
                tolerance_low=band[0] if band else None,
                tolerance_high=band[1] if band else None, lag_months=m.lag_months))
        s.flush()
        if rows:
            s.execute(insert(Measure), rows)
        return version, True

    def schedules(self, ids: Sequence[str] | None = None) -> dict[str, Schedule]:
        """The schedule in force (latest version) of each contract, or of the ids given."""
        query = select(ScheduleVersion).join(
            Contract, (col(Contract.id) == ScheduleVersion.contract_id)
            & (col(Contract.current_version) == ScheduleVersion.version))
        if ids is not None:
            query = query.where(col(ScheduleVersion.contract_id).in_(list(ids)))
        with collector_paused():  # thousands of small objects per schedule
            found = {row.contract_id: self._schedule(row)
                     for row in self.session.execute(query).scalars()}
        if ids is not None:
            missing = [i for i in ids if i not in found]
            if missing:
                known = sorted(self.contract_ids())
                hint = f"; the store holds: {', '.join(known)}" if known else \
                    "; the store holds no contracts yet (compliance contract load FILE)"
                raise StoreError(f"unknown contract {', '.join(map(repr, missing))}{hint}")
        return found

    def schedule_versions(self, ids: Sequence[str]) -> list[tuple[Schedule, int, str | None]]:
        """Every version of the contracts' schedules, with the period each takes effect."""
        query = select(ScheduleVersion).where(col(ScheduleVersion.contract_id).in_(list(ids)))
        with collector_paused():
            return [(self._schedule(row), row.version, row.effective_from)
                    for row in self.session.execute(query).scalars()]

    def contract_ids(self) -> list[str]:
        query = select(col(Contract.id)).order_by(col(Contract.id))
        return list(self.session.execute(query).scalars())

    def schedule_version(self, contract_id: str) -> int:
        contract = self.session.get(Contract, contract_id)
        if contract is None:
            raise StoreError(f"unknown contract {contract_id!r}")
        return contract.current_version

    def current_versions(self, contract_ids: Sequence[str]) -> dict[str, int]:
        """``schedule_version`` of many contracts at once."""
        found: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(contract_ids))):
            query = (select(col(Contract.id), col(Contract.current_version))
                     .where(col(Contract.id).in_(list(chunk))))
            found.update((cid, int(version)) for cid, version in self.session.execute(query))
        for cid in contract_ids:
            if cid not in found:
                raise StoreError(f"unknown contract {cid!r}")
        return {cid: found[cid] for cid in contract_ids}

    # --- returns ----------------------------------------------------------------------------

    @collector_paused()
    def submit(self, figures: pd.DataFrame, files: Mapping[str, str]) -> dict[str, int]:
        """Store a validated return. A figure already held for its period gets a new version.

        ``files`` maps each file's path (as in the figures' ``file`` column) to its SHA-256.
        """
        import numpy as np
        import pandas as pd

        s = self.session
        counts = {"files": len(files), "figures": int(len(figures)), "new_versions": 0}
        if figures.empty:
            return counts
        self.submitted = True
        keys = ["contract", "measure", "period"]
        latest = pd.DataFrame(s.execute(
            select(col(Figure.contract_id), col(Figure.measure_id), col(Figure.period),
                   func.max(Figure.version))
            .where(col(Figure.contract_id).in_(figures["contract"].unique().tolist()))
            .where(col(Figure.period).in_(figures["period"].unique().tolist()))
            .group_by(col(Figure.contract_id), col(Figure.measure_id), Figure.period)
        ).all(), columns=[*keys, "version"])
        if latest.empty:
            versions = np.ones(len(figures), dtype=np.int64)
        else:
            held = figures[keys].merge(latest, on=keys, how="left")["version"]
            versions = held.fillna(0).to_numpy(dtype=np.int64) + 1
        counts["new_versions"] = int((versions > 1).sum())
        columns = {
            "contract_id": objects(figures["contract"]),
            "measure_id": objects(figures["measure"]),
            "period": objects(figures["period"]),
            "source": objects(figures["source"]),
            "source_rank": figures["source_rank"].to_numpy(dtype=np.int64),
            "version": versions,
            "value": figures["value"].to_numpy(dtype=np.float64),
            "numerator": figures["numerator"].to_numpy(dtype=np.float64),
            "denominator": figures["denominator"].to_numpy(dtype=np.float64),
            "comment": texts(figures["comment"]),
            "row": figures["row"].to_numpy(dtype=np.int64),
        }
        file_of = figures["file"].to_numpy(dtype=object)
        # Each contract and period whose first figures arrive now, with its file.
        contract_code, contract_names = pd.factorize(figures["contract"])
        period_code, period_names = pd.factorize(figures["period"])
        pair = contract_code.astype(np.int64) * len(period_names) + period_code
        contract_list = [str(c) for c in contract_names]
        period_list = [str(p) for p in period_names]
        arrived = set(self.returns_received(contract_list))
        for file, digest in files.items():
            mine = file_of == file
            count = int(mine.sum())
            sub = Submission(file=os.path.basename(file), sha256=digest, figures=count,
                             submitted_by=self.user)
            s.add(sub)
            s.flush()
            assert sub.id is not None
            if not count:
                continue
            whole = count == len(figures)
            self._insert(_table(Figure),
                         {name: v if whole else v[mine] for name, v in columns.items()},
                         constants={"submission_id": int(sub.id)})
            first = [(contract_list[p // len(period_list)], period_list[p % len(period_list)])
                     for p in np.sort(pd.unique(pair if whole else pair[mine])).tolist()]
            first = [key for key in first if key not in arrived]
            arrived.update(first)
            self._insert(_table(ReturnArrival), {
                "contract_id": [c for c, _ in first], "period": [p for _, p in first],
                "received_at": [sub.submitted_at] * len(first)},
                constants={"submission_id": int(sub.id)})
        return counts

    def latest_figures(self, contracts: Sequence[str], up_to: str | None = None, *,
                       parts: bool = True) -> pd.DataFrame:
        """Every source of the latest version of each figure of the contracts: contract,
        measure, period and source as categoricals.

        ``parts=False`` leaves out the numerator and denominator each figure came with (the
        assessment reads only the figure itself): two columns fewer to read."""
        return reads.latest_figures(*self._driver(), contracts, up_to, parts=parts)

    def _driver(self) -> tuple[Any, str]:
        """This transaction's DB-API connection, and how its queries mark a parameter."""
        conn = self.session.connection()
        return conn.connection, "?" if conn.dialect.paramstyle == "qmark" else "%s"

    # --- assessments ------------------------------------------------------------------------

    def save_assessments(self, assessments: pd.DataFrame, versions: Mapping[str, int]
                         ) -> dict[str, int]:
        """Store each (contract, period) checked, in bulk: one check run per (contract,
        period), and its assessments as one set (see compliance.store.packed). A set the
        contract and period had before is replaced as the current one, and stays."""
        from compliance.store.packed import assessment_sets

        return self.save_assessment_sets(assessment_sets(assessments), versions)

    def save_assessment_sets(self, sets: AssessmentSets, versions: Mapping[str, int]
                             ) -> dict[str, int]:
        """``save_assessments`` of assessments whose sets are made already
        (``assessment_sets``, in another process, say)."""
        import numpy as np

        if not sets.pairs:
            return {"check_runs": 0, "assessments": 0}
        pairs = sets.pairs
        runs = _table(CheckRun)
        ids = np.asarray(self._new_ids(runs, len(pairs)), dtype=np.int64)
        now = dt.datetime.now(dt.UTC)
        self._insert(runs, {
            "id": ids, "contract_id": [c for c, _ in pairs], "period": [p for _, p in pairs],
            "schedule_version": [versions[c] for c, _ in pairs],
            "assessments": np.asarray(sets.sizes, dtype=np.int64),
            "run_at": [now] * len(pairs), "run_by": [self.user] * len(pairs)})

        table = _table(AssessmentSet)
        # The current sets of the (contract, period)s checked before are replaced by the new:
        # one statement for them all, its rows handed to the driver as they are (a national
        # check's first batch alone names 2,000 of them).
        raw, mark = self._driver()
        cursor = raw.cursor()
        try:
            cursor.executemany(
                f"UPDATE assessment_set SET replaced_by = {mark} WHERE contract_id = {mark} "
                f"AND period = {mark} AND replaced_by IS NULL",
                [(i, c, p) for (c, p), i in zip(pairs, ids.tolist(), strict=True)])
        finally:
            cursor.close()
        self._insert(table, {
            "check_run_id": ids, "contract_id": [c for c, _ in pairs],
            "period": [p for _, p in pairs], "assessments": sets.documents})
        return {"check_runs": len(pairs), "assessments": int(sum(sets.sizes))}

    def _sets(self, query: Any) -> pd.DataFrame:
        """The assessments of the sets a query of assessment_set's rows finds."""
        from compliance.store.packed import unpacked

        sets = _table(AssessmentSet)
        rows = self.session.connection().execute(query.with_only_columns(
            sets.c.contract_id, sets.c.period, sets.c.check_run_id, sets.c.assessments))
        return unpacked((str(c), str(p), int(r), doc) for c, p, r, doc in rows)

    def assessments(self, contract: str, period: str) -> pd.DataFrame:
        """The current assessments of a contract's period (none if it was never checked)."""
        sets = _table(AssessmentSet)
        return self._sets(select(sets).where(sets.c.contract_id == contract)
                          .where(sets.c.period == period)
                          .where(sets.c.replaced_by.is_(None)))

    def latest_assessments(self, contracts: Sequence[str]) -> pd.DataFrame:
        """The assessments of the latest period any check of each contract covered, for many
        contracts in one query per 500 (a contract never checked has none), by contract and
        measure."""
        import pandas as pd

        from compliance.store.packed import COLUMNS

        sets, runs = _table(AssessmentSet), _table(CheckRun)
        frames = []
        for chunk in _chunks(list(dict.fromkeys(contracts))):
            latest = (select(runs.c.contract_id, func.max(runs.c.period).label("period"))
                      .where(runs.c.contract_id.in_(list(chunk)))
                      .group_by(runs.c.contract_id).subquery())
            frames.append(self._sets(
                select(sets).join(latest, (latest.c.contract_id == sets.c.contract_id)
                                  & (latest.c.period == sets.c.period))
                .where(sets.c.replaced_by.is_(None))))
        found = [frame for frame in frames if len(frame)]
        if not found:
            return pd.DataFrame(columns=list(COLUMNS))
        frame = found[0] if len(found) == 1 else pd.concat(found, ignore_index=True)
        return frame.sort_values(["contract_id", "measure_id"], kind="stable",
                                 ignore_index=True)

    def checked_from(self, contract: str) -> str | None:
        """The earliest period any check of the contract has covered."""
        query = select(func.min(CheckRun.period)).where(col(CheckRun.contract_id) == contract)
        return self.session.execute(query).scalar()

    def checked_through(self, contract: str) -> str | None:
        """The latest period any check of the contract has covered."""
        query = select(func.max(CheckRun.period)).where(col(CheckRun.contract_id) == contract)
        return self.session.execute(query).scalar()

    def checked_periods(self, contracts: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``checked_from`` and ``checked_through`` of many contracts at once (those never
        checked are left out)."""
        found: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(list(dict.fromkeys(contracts))):
            query = (select(col(CheckRun.contract_id), func.min(CheckRun.period),
                            func.max(CheckRun.period))
                     .where(col(CheckRun.contract_id).in_(list(chunk)))
                     .group_by(col(CheckRun.contract_id)))
            found.update((cid, (first, last))
                         for cid, first, last in self.session.execute(query))
        return found

    def figure_history(self, contract: str, measure: str) -> list[dict[str, Any]]:
        """Every version of every figure of a measure, and the checks that used each."""
        query = (select(Figure, Submission).join(Submission,
                                                 col(Submission.id) == col(Figure.submission_id))
                 .where(col(Figure.contract_id) == contract)
                 .where(col(Figure.measure_id) == measure)
                 .order_by(col(Figure.period), col(Figure.version), col(Figure.source_rank)))
        used: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        # Every set of assessments is its checks' evidence (each assessment names the figure
        # version it used); checks replaced before sets were kept left theirs in check_figure.
        evidence = _table(CheckFigure)
        sets = _table(AssessmentSet)
        runs = _table(CheckRun)
        facts = (runs.c.id, runs.c.period, runs.c.run_at, runs.c.run_by)
        links: list[tuple[Any, ...]] = list(self.session.execute(
            select(evidence.c.figure_period, evidence.c.version, evidence.c.source, *facts)
            .join(runs, runs.c.id == evidence.c.check_run_id)
            .where(runs.c.contract_id == contract)
            .where(evidence.c.measure_id == measure)).all())
        made = {run: (period, at, by) for run, period, at, by in self.session.execute(
            select(*facts).where(runs.c.contract_id == contract))}
        assessed = self._sets(select(sets).where(sets.c.contract_id == contract))
        assessed = assessed[(assessed["measure_id"] == measure).to_numpy()
                            & assessed["figure_version"].notna().to_numpy()]
        for figure_period, version, source, run in zip(
                assessed["figure_period"], assessed["figure_version"], assessed["source"],
                assessed["check_run_id"], strict=True):
            links.append((figure_period, int(version), source or "", int(run), *made[run]))
        for figure_period, version, source, run_id, period, at, by in sorted(
                links, key=lambda r: r[3]):
            used.setdefault((figure_period, version, source), []).append(
                {"check": run_id, "period": period, "at": at, "by": by})
        latest: dict[str, int] = {}
        rows = []
        for figure, submission in self.session.execute(query):
            latest[figure.period] = max(latest.get(figure.period, 0), figure.version)
            rows.append({
                "period": figure.period, "version": figure.version, "source": figure.source,
                "value": figure.value, "comment": figure.comment, "file": submission.file,
                "row": figure.row, "submitted_at": submission.submitted_at,
                "submitted_by": submission.submitted_by,
                "used_by": used.get((figure.period, figure.version, figure.source), []),
            })
        for row in rows:
            row["latest"] = row["version"] == latest[row["period"]]
        return rows

    # --- records of the rules --------------------------------------------------------------

    def replace_records(self, contracts: str | Sequence[str],
                        findings: pd.DataFrame | FindingSets,
                        escalations: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
                        | EscalationSets) -> dict[str, int]:
        """Records are derived from the figures: a check replaces the whole set of each
        contract given (one, or many at once) with the findings and escalations given.

        Each contract's findings are kept as one set (compliance.store.packed), and numbered
        as replacing the contracts' rows of a table one after the other would number them.
        The findings are the rules' frame of them, or its sets when they have been made
        already (``finding_sets(findings)``, in another process, say). Each contract's
        escalations are kept as one set too: they are rows, their columns (lists of equal
        length by column name, each contract's together; none when empty), or their sets
        (``escalation_sets(columns)``)."""
        from compliance.store.packed import (
            STORED_ESCALATION_COLUMNS,
            EscalationSets,
            FindingSets,
            escalation_sets,
            finding_sets,
        )

        conn = self.session.connection()
        ids = [contracts] if isinstance(contracts, str) else list(dict.fromkeys(contracts))
        rank = {cid: i for i, cid in enumerate(ids)}
        sets = findings if isinstance(findings, FindingSets) else finding_sets(findings)
        if isinstance(escalations, EscalationSets):
            escalated = escalations
        elif isinstance(escalations, Mapping):
            escalated = escalation_sets(escalations)
        else:
            # Rows: each contract's together, in the contracts' order.
            rows = sorted(escalations, key=lambda row: rank.get(row["contract_id"], -1))
            escalated = escalation_sets({name: [row.get(name) for row in rows]
                                         for name in STORED_ESCALATION_COLUMNS})
        if any(cid not in rank for cid in sets.contracts):
            raise ValueError("findings of a contract whose records are not replaced")
        if any(cid not in rank for cid in escalated.contracts):
            raise ValueError("escalations of a contract whose records are not replaced")
        counts = [0] * len(ids)
        for cid, size in zip(sets.contracts, sets.sizes, strict=True):
            counts[rank[cid]] = size
        firsts = self._first_finding_ids(ids, counts)
        table = _table(FindingSet)
        for held in (table, _table(EscalationSet)):
            for chunk in _chunks(ids):
                conn.execute(delete(held).where(held.c.contract_id.in_(list(chunk))))
        order = sorted(range(len(sets.contracts)), key=lambda k: rank[sets.contracts[k]])
        self._insert(table, {
            "contract_id": [sets.contracts[k] for k in order],
            "first_id": [firsts[rank[sets.contracts[k]]] for k in order],
            "size": [sets.sizes[k] for k in order],
            "findings": [sets.documents[k] for k in order]})
        order = sorted(range(len(escalated.contracts)),
                       key=lambda k: rank[escalated.contracts[k]])
        self._insert(_table(EscalationSet), {
            "contract_id": [escalated.contracts[k] for k in order],
            "size": [escalated.sizes[k] for k in order],
            "escalations": [escalated.documents[k] for k in order]})
        return {"findings": sum(counts), "escalations": sum(escalated.sizes)}

    def _first_finding_ids(self, contracts: Sequence[str], counts: Sequence[int]
                           ) -> list[int]:
        """The id of each contract's first finding (``counts`` of each), numbered as SQLite
        numbers a table's rows if each contract's old findings were deleted and its new ones
        inserted, one contract after the other: a new row takes the largest id held at that
        moment plus one."""
        sets = _table(FindingSet)
        conn = self.session.connection()
        if conn.dialect.name == "postgresql":
            # Numbered by one transaction at a time, until it ends (SQLite's write lock does
            # this for the whole store): another check's findings, of other contracts, would
            # otherwise be numbered from the same largest id.
            from sqlalchemy import text

            conn.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                         _FINDING_NUMBERING)
        held = {str(cid): int(last) for cid, last in conn.execute(
            select(sets.c.contract_id, sets.c.first_id + sets.c.size - 1)
            .where(sets.c.size > 0))}
        replaced = set(contracts)
        largest = max((i for c, i in held.items() if c not in replaced), default=0)
        # The largest id among the contracts still waiting for their turn.
        waiting = [0] * (len(contracts) + 1)
        for k in range(len(contracts) - 1, -1, -1):
            waiting[k] = max(waiting[k + 1], held.get(contracts[k], 0))
        firsts: list[int] = []
        for k, count in enumerate(counts):
            start = max(largest, waiting[k + 1]) + 1
            firsts.append(start)
            if count:
                largest = start + count - 1
        return firsts

    def findings(self, contract: str, period: str | None = None,
                 measure: str | None = None) -> list[Finding]:
        """A contract's findings (of a period, of a measure), by period, measure and type."""
        from compliance.store.packed import unpacked_findings

        sets = _table(FindingSet)
        rows = self.session.connection().execute(
            select(sets.c.contract_id, sets.c.first_id, sets.c.findings)
            .where(sets.c.contract_id == contract))
        found = [Finding(**row) for row in unpacked_findings(
            (str(c), int(first), doc) for c, first, doc in rows)
            if (period is None or row["period"] == period)
            and (measure is None or row["measure_id"] == measure)]
        found.sort(key=lambda f: (f.period, f.measure_id, f.type))
        return found

    def escalations(self, contracts: Sequence[str] | None = None) -> list[Escalation]:
        """The escalations of the contracts given (all when None), in the order the
        escalation list shows them: by contract, then opening, then measure."""
        return [Escalation(**row) for row in self.escalation_rows(contracts)]

    def escalation_rows(self, contracts: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The escalations of ``escalations`` as rows (a dict of each one's columns, as
        ``model_dump`` gives them), read without making an object of each: a national list
        holds some 85,000."""
        from compliance.store.packed import unpacked_escalations

        sets = _table(EscalationSet)
        query = select(sets.c.contract_id, sets.c.escalations)
        found: list[tuple[str, str]] = []
        if contracts is None:
            found.extend((str(c), doc) for c, doc in self.session.connection().execute(query))
        else:
            for chunk in _chunks(list(dict.fromkeys(contracts))):
                found.extend((str(c), doc) for c, doc in self.session.connection().execute(
                    query.where(sets.c.contract_id.in_(chunk))))
        rows = unpacked_escalations(found)
        rows.sort(key=lambda row: (row["contract_id"], row["opened"], row["measure_id"]))
        return rows

    def assessment(self, contract: str, measure: str, period: str) -> dict[str, Any] | None:
        """The current assessment of a contract's measure for a period (None if the period
        was never checked, or the measure not assessed)."""
        found = self.assessments(contract, period)
        found = found[(found["measure_id"] == measure).to_numpy()]
        return None if found.empty else {str(k): v for k, v in found.iloc[0].items()}

    def measure_count(self, contracts: Sequence[str] | None = None) -> int:
        """How many measures the schedules in force of the contracts (all of them, or those
        named) hold together."""
        query = select(func.count()).select_from(_table(Measure)).join(
            _table(Contract), (col(Contract.id) == col(Measure.contract_id))
            & (col(Contract.current_version) == col(Measure.version)))
        if contracts is not None:
            query = query.where(col(Measure.contract_id).in_(list(contracts)))
        return int(self.session.execute(query).scalar_one())

    def first_figure_periods(self, contracts: Sequence[str]) -> dict[str, str]:
        """The earliest period each contract holds a figure for (those with none are left
        out), from the returns' arrivals: one row per contract and period."""
        arrival = _table(ReturnArrival)
        found: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(contracts))):
            query = (select(arrival.c.contract_id, func.min(arrival.c.period))
                     .where(arrival.c.contract_id.in_(list(chunk)))
                     .group_by(arrival.c.contract_id))
            found.update((str(c), str(p)) for c, p in self.session.execute(query))
        return found

    def returns_received(self, contracts: Sequence[str]) -> dict[tuple[str, str], Any]:
        """When the first figure for each contract and period arrived."""
        return reads.returns_received(*self._driver(), contracts)

    # --- silences, acknowledgements and notes ------------------------------------------

    def add_silence(self, contract: str, measure: str, start: str, until: str,
                    reason: str) -> int:
        silence = Silence(contract_id=contract, measure_id=measure, start=start, until=until,
                          reason=reason, created_by=self.user)
        self.session.add(silence)
        self.session.flush()
        assert silence.id is not None
        return silence.id

    def silences(self, contracts: Sequence[str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The silences of the contracts' measures, by contract and measure, in the order
        they were made."""
        return reads.silences(*self._driver(), contracts)

    def add_note(self, contract: str, measure: str, opened: str, kind: str, text: str) -> None:
        self.session.add(EscalationNote(contract_id=contract, measure_id=measure,
                                        opened=opened, kind=kind, text=text,
                                        created_by=self.user))

    def notes(self, contracts: Sequence[str]
              ) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        query = (select(EscalationNote)
                 .where(col(EscalationNote.contract_id).in_(list(contracts)))
                 .order_by(col(EscalationNote.id)))
        found: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for row in self.session.execute(query).scalars():
            found.setdefault((row.contract_id, row.measure_id, row.opened), []).append(
                row.model_dump())
        return found

    # --- audit ------------------------------------------------------------------------------

    def audit(self, command: str, arguments: Mapping[str, Any], counts: Mapping[str, Any]) -> None:
        self.session.add(AuditEntry(actor=self.user, command=command,
                                    arguments=json.dumps(arguments, default=str, sort_keys=True),
                                    counts=json.dumps(counts, default=str, sort_keys=True)))

    def audit_entries(self, limit: int = 50) -> list[AuditEntry]:
        query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
        return list(self.session.execute(query).scalars())


# The advisory lock findings are numbered under on PostgreSQL: the two-key form, whose keys
# are apart from the one-key locks of contracts (Transaction.lock).
_FINDING_NUMBERING = {"space": 0x636F6D70, "key": 1}

# Rows an insert prepares and sends at a time.
_INSERT_CHUNK = 50_000


