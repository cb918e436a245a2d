"""What PostgreSQL's foreign keys cost a bulk COPY of figures.

    bash .ci/with-postgres bash -c '.venv/bin/python benchmarks/pg_foreign_keys.py \\
        /tmp/compliance-bench/profile-1000000-imported.db --db "$COMPLIANCE_TEST_PG"'

Reads the figures of a SQLite store (``profile_stage.py --stage check`` leaves one with 1M
figures as ``profile-SIZE-imported.db``) and copies them, with psycopg's ``COPY ... FROM
STDIN``, into a scratch table of the same columns and primary key in the PostgreSQL database
named by ``--db``: once without foreign keys, once referencing a contract and a submission
table as the store's figure table does. Medians of ``--repeat`` runs; the scratch tables are
dropped afterwards.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

from run import print_medians  # the harness next to this file

COLUMNS = ["submission_id", "contract_id", "measure_id", "period", "source", "source_rank",
           "version", "value", "numerator", "denominator", "comment", "row"]
TABLE = """CREATE TABLE {name} (
    submission_id integer NOT NULL {submission},
    contract_id varchar(100) NOT NULL {contract},
    measure_id varchar(100) NOT NULL, period varchar(7) NOT NULL, source varchar NOT NULL,
    source_rank integer NOT NULL, version integer NOT NULL, value float8, numerator float8,
    denominator float8, comment text NOT NULL, "row" integer NOT NULL,
    PRIMARY KEY (contract_id, measure_id, period, source, version))"""


def main(argv: list[str] | None = None) -> int:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a SQLite store holding figures")
    parser.add_argument("--db", required=True, help="PostgreSQL URL (a scratch database)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    source = sqlite3.connect(args.store)
    quoted = ", ".join(f'"{c}"' for c in COLUMNS)
    rows = source.execute(f"SELECT {quoted} FROM figure").fetchall()
    source.close()
    contracts = sorted({r[1] for r in rows})
    submissions = sorted({r[0] for r in rows})
    url = args.db.replace("postgresql+psycopg://", "postgresql://")
    times: dict[str, list[float]] = {"without foreign keys": [], "with foreign keys": []}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS fk_bench_figure, fk_bench_contract, "
                     "fk_bench_submission")
        conn.execute("CREATE TABLE fk_bench_contract (id varchar(100) PRIMARY KEY)")
        conn.execute("CREATE TABLE fk_bench_submission (id integer PRIMARY KEY)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO fk_bench_contract VALUES (%s)",
                               [(c,) for c in contracts])
            cursor.executemany("INSERT INTO fk_bench_submission VALUES (%s)",
                               [(s,) for s in submissions])
        try:
            for _ in range(args.repeat):
                for way in times:
                    conn.execute("DROP TABLE IF EXISTS fk_bench_figure")
                    keyed = way == "with foreign keys"
                    conn.execute(TABLE.format(
                        name="fk_bench_figure",
                        submission="REFERENCES fk_bench_submission (id)" if keyed else "",
                        contract="REFERENCES fk_bench_contract (id)" if keyed else ""))
                    start = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cursor, cursor.copy(
                            f"COPY fk_bench_figure ({quoted}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    times[way].append(time.perf_counter() - start)
        finally:
            conn.execute("DROP TABLE IF EXISTS fk_bench_figure, fk_bench_contract, "
                         "fk_bench_submission")
    print(f"{len(rows):,} figures copied into PostgreSQL")
    print_medians(times, 22)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
