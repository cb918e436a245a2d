"""How fast SQLite itself takes a checked store's assessments one row each: the floor under
writing them that way, which is why the store keeps each contract's month as one set.

    python benchmarks/sqlite_floor.py STORE.db [--repeat 3] [--values 999]

STORE.db is a SQLite store that a check has filled (``profile_stage.py --stage check`` leaves
one as ``/tmp/compliance-bench/profile-SIZE.db``; ``run.py --keep`` keeps its stores). Its
assessment rows (the ``assessment`` view of the current sets) are read once, then written
into an empty table of the same columns and primary key (no foreign keys, no other index) in
a fresh database file, two ways:

- ``executemany``: Python's sqlite3 module, many rows a statement (as the store writes them:
  as many rows as fit in ``--values`` values);
- ``insert-select``: SQLite copying the rows from the store's view, with no Python at all.
  Since the store keeps sets, this includes taking each set apart with SQLite's JSON
  functions: 12.7 s for the 1M store, where copying them from a table took 1.25 s.

The first is what any Python writer of these rows pays at least; the gap to the second is the
binding of each value from Python. Medians of ``--repeat`` runs, each on a new file.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from run import print_medians  # the harness next to this file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--values", type=int, default=999,
                        help="values per INSERT statement (at most SQLite's variable limit)")
    args = parser.parse_args(argv)

    source = sqlite3.connect(args.store)
    columns = [r[1] for r in source.execute("PRAGMA table_info(assessment)")]
    rows = source.execute(
        "SELECT * FROM assessment ORDER BY contract_id, period, measure_id").fetchall()
    source.close()
    if not rows:
        raise SystemExit(f"{args.store}: no assessments; run a check on it first")
    width = len(columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    table = (f"CREATE TABLE assessment ({quoted}, "
             "PRIMARY KEY (contract_id, period, measure_id))")
    flat = [value for row in rows for value in row]
    per = max(args.values // width, 1)
    step = per * width
    full = len(rows) // per
    statement = ("INSERT INTO assessment VALUES "
                 + ", ".join(["(" + ", ".join("?" * width) + ")"] * per))
    rest = ("INSERT INTO assessment VALUES "
            + ", ".join(["(" + ", ".join("?" * width) + ")"] * (len(rows) - full * per)))

    times: dict[str, list[float]] = {"executemany": [], "insert-select": []}
    with tempfile.TemporaryDirectory() as folder:
        for run in range(args.repeat):
            for way in times:
                path = os.path.join(folder, f"{way}-{run}.db")
                conn = sqlite3.connect(path, isolation_level=None)
                conn.execute(table)
                if way == "insert-select":
                    conn.execute("ATTACH DATABASE ? AS store", (str(args.store),))
                start = time.perf_counter()
                conn.execute("BEGIN")
                if way == "executemany":
                    conn.executemany(statement, [tuple(flat[i:i + step])
                                                 for i in range(0, full * step, step)])
                    if len(rows) > full * per:
                        conn.execute(rest, tuple(flat[full * step:]))
                else:
                    conn.execute(f"INSERT INTO main.assessment SELECT {quoted} "
                                 "FROM store.assessment ORDER BY contract_id, period, "
                                 "measure_id")
                conn.execute("COMMIT")
                times[way].append(time.perf_counter() - start)
                conn.close()
    print(f"{len(rows):,} assessments of {width} columns, {per} rows a statement, "
          f"SQLite {sqlite3.sqlite_version}")
    print_medians(times, 14)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
