"""Profile the import or the check at one size, with cProfile.

    python benchmarks/profile_stage.py --size 100000 --stage check [--top 40] [--workdir DIR]

Generates the data set (as ``run.py`` does), builds a SQLite store with its schedules and,
for the check, its figures (kept in the work folder and reused), then runs the stage under
cProfile. Prints the functions with the most time of their own and the most time including
what they call, and saves the profile as ``WORKDIR/profile-SIZE-STAGE.prof`` (open it with
``python -m pstats`` or snakeviz).

The check runs whole in this process (``COMPLIANCE_CHECK_HELPER=0``), unless ``--helper`` is
given: cProfile sees only its own process.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
import run  # noqa: E402


def stores(size: int, work: Path, seed: int = 1, *, imported: bool = True
           ) -> tuple[Path, Path, Path]:
    """The data set of ``size`` figures and two SQLite stores of it in ``work``, made with
    this checkout's code unless they are there already (and brought to its schema): one
    holding the schedules, and (``imported``) one holding the figures too. Returns the data
    folder and the two files."""
    from compliance.store import Store

    work.mkdir(parents=True, exist_ok=True)
    data = run.ensure_data(size, work, seed)
    loaded = work / f"profile-{size}-schedules.db"
    done = work / f"profile-{size}-imported.db"
    db = work / f"profile-{size}.db"
    url = f"sqlite:///{db}"
    if not loaded.exists():
        db.unlink(missing_ok=True)
        store = Store(url)
        store.init()
        print(f"schedules loaded in {run.load_schedules(store, data):.1f}s", file=sys.stderr)
        store.dispose()
        shutil.copyfile(db, loaded)
    if imported and not done.exists():
        shutil.copyfile(loaded, db)
        store = Store(url)
        print(f"imported in {run.import_return(store, data / 'returns.csv')['import_s']:.1f}s",
              file=sys.stderr)
        store.dispose()
        shutil.copyfile(db, done)
    for kept in (loaded, done) if imported else (loaded,):
        # A store kept from an older schema is brought up to this checkout's, once.
        store = Store(f"sqlite:///{kept}")
        store.init()
        store.dispose()
    return data, loaded, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile import or check at one size.")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--stage", choices=["import", "check"], default="check")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/compliance-bench"))
    parser.add_argument("--helper", action="store_true",
                        help="let a large check judge batches in its helper process, as it "
                             "does by default (the profile then sees only the checking "
                             "process: reading, receiving and writing)")
    args = parser.parse_args(argv)
    if not args.helper:
        # The whole check in this process, where the profiler sees it.
        os.environ["COMPLIANCE_CHECK_HELPER"] = "0"

    import pandas  # noqa: F401  (not part of the profile)

    import compliance.checking  # noqa: F401
    import compliance.escalation  # noqa: F401
    from compliance.store import Store

    work: Path = args.workdir
    data, loaded, imported = stores(args.size, work, args.seed, imported=args.stage == "check")
    db = work / f"profile-{args.size}.db"
    url = f"sqlite:///{db}"
    shutil.copyfile(imported if args.stage == "check" else loaded, db)

    store = Store(url)
    store.init()  # a store kept from an older schema is brought up to this one
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    if args.stage == "import":
        run.import_return(store, data / "returns.csv")
    else:
        run.check_all(store, generate.periods())
    profiler.disable()
    spent = time.perf_counter() - start
    store.dispose()
    target = work / f"profile-{args.size}-{args.stage}.prof"
    profiler.dump_stats(str(target))
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.strip_dirs().sort_stats(order).print_stats(args.top)
        print(f"--- {args.stage} of {args.size:,} figures, by {order} "
              f"({spent:.1f}s under the profiler) ---")
        print(text.getvalue().split("\n\n", 2)[-1])
    print(f"profile saved to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
