"""Two checkouts of the code checked in turn on copies of one imported store: a change
measured against the code before it in the same command, as the machine's speed moves.

    git worktree add /tmp/before HEAD~1
    python benchmarks/paired.py /tmp/before . [--size 1000000] [--runs 5] [--workdir DIR]

Each run is a fresh process of one checkout's code (its folder first on the path, its own
``benchmarks/run.py``) running ``check_all``, as the benchmark times the check: every
contract for all 25 periods, helpers and all, on a fresh copy of the imported store that
``profile_stage.py`` keeps for the size (made here, or brought to this checkout's schema,
with this checkout's code; both checkouts must read that schema). The checkouts take turns,
BEFORE first. Printed for each: the check's seconds, run by run and their median, and the seconds of
processor time the whole machine was busy over each check (from ``/proc/stat``, where there
is one): nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_CHILD = r"""
import json, os, sys, time
root, db = sys.argv[1], sys.argv[2]
sys.path[:0] = [root, os.path.join(root, "benchmarks")]

def busy():
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")

def main():
    import pandas  # noqa: F401  (imports are not part of the check, as in run.py)
    import compliance.checking, compliance.escalation  # noqa: F401
    import generate, run
    from compliance.store import Store
    store = Store(f"sqlite:///{db}")
    store.init()
    before = busy()
    out = run.check_all(store, generate.periods())
    after = busy()
    store.dispose()
    print(json.dumps({"check_s": out["check_s"],
                      "busy_s": None if before is None else after - before}))

if __name__ == "__main__":
    main()
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Two checkouts' checks, in turn.")
    parser.add_argument("before", type=Path, help="the checkout of the code before")
    parser.add_argument("after", type=Path, help="the checkout of the code after")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/compliance-bench"))
    args = parser.parse_args(argv)
    roots = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, root in roots.items():
        if not (root / "compliance" / "checking.py").exists():
            parser.error(f"{name}: {root} is not a checkout of this project")

    import profile_stage

    _, _, imported = profile_stage.stores(args.size, args.workdir, args.seed)
    results: dict[str, list[dict[str, float | None]]] = {name: [] for name in roots}
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        db = Path(scratch) / "paired.db"
        for turn in range(args.runs):
            for name, root in roots.items():
                shutil.copyfile(imported, db)
                # Run in the checkout's folder: the helpers' fork server (Python 3.11) takes
                # the caller's folder first on its path, before PYTHONPATH.
                done = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(root), str(db)], capture_output=True,
                    text=True, check=False, cwd=root,
                    env={**os.environ, "PYTHONPATH": str(root)})
                if done.returncode:
                    print(done.stderr, file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[name].append(result)
                busy = result["busy_s"]
                print(f"run {turn + 1} {name:6s} check {result['check_s']:.2f}s"
                      + ("" if busy is None else f", processors busy {busy:.2f}s"),
                      file=sys.stderr, flush=True)
    print(f"the check of {args.size:,} figures, {args.runs} runs each, in turn:")
    for name, runs in results.items():
        checks = [r["check_s"] for r in runs if r["check_s"] is not None]
        busy = [r["busy_s"] for r in runs if r["busy_s"] is not None]
        line = (f"  {name:6s} median {statistics.median(checks):.2f}s "
                f"({' / '.join(f'{c:.2f}' for c in checks)})")
        if busy:
            line += f"; processors busy median {statistics.median(busy):.2f}s"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
