"""The whole path at national scale, timed stage by stage against its baselines.

    python benchmarks/run.py --size 10000 100000 1000000 [--db URL] [--repeat 3]

For each size, a seeded data set is generated (``benchmarks/generate.py``: schedules and one
combined return with a ``contract`` column), then each repeat runs in a fresh child process on a
fresh store, through the library functions the command line uses:

- schedules: ``load_schedule`` + ``tx.load_schedule`` for every contract (as ``contract load``),
  in a process of its own;
- import: ``tx.schedules`` + ``parse_returns`` + ``tx.submit`` + commit (as ``submit``);
- check: ``run_check`` of every contract for all 25 periods + commit (as ``check --from --to``),
  its time split, as the check itself accounts for it (``CheckResult.seconds``), into assess
  (reading the figures, ``assess``, ``add_features``), rules (``run_rules``) and write
  (``save_assessment_sets``, ``replace_records``, commit); when a helper process judges batches,
  assess and rules overlap the reading and writing, and the stages add up to more than the check;
- peak memory: the child's resident-set high-water mark (``ru_maxrss``) after the check, plus
  that of the check's helper process.

Baselines, measured in the same run: SQLite's own ``.import`` of the same CSV into a bare table
(the ``sqlite3`` command line), and a bare pandas pass that reads the figures from the store
and computes only the RAG status. Then ``compliance --help`` (wall time and whether pandas or
SQLAlchemy were imported) and one contract's monthly check from the command line against
``python -c "import pandas, sqlmodel, typer, durable.lang"``.

Prints one table (medians over the repeats) and PASS/FAIL for each target of the issue.
Results are also written as JSON to ``WORKDIR/results.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (the generator next to this file)

PYTHON = sys.executable
BIN = Path(PYTHON).parent
BARE_IMPORT = "import pandas, sqlmodel, typer, durable.lang"
USER = "benchmark"

# Targets of the issue.
IMPORT_VS_SQLITE = 3.0
CHECK_SECONDS_1M = 5.0
CHECK_VS_PANDAS = 3.0
PEAK_MB_1M = 2048.0
SCALING = 11.0
HELP_SECONDS = 0.15
CLI_CHECK_VS_IMPORT = 1.3


# --- the child: one repeat of one size, in a fresh process ----------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class ChildPeak:
    """The resident-set high-water marks (``VmHWM``) of this process's descendants while it
    watches, added up: the check's helpers and the fork server they are forked from (an
    upper bound on what they held at once: a forked helper counts the pages it shares).
    Sampled from /proc every 20 ms (``ru_maxrss`` of the children would count this process's
    own pages, which a child shares while it is being started)."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ChildPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return sum(self.peaks.values())

    def _watch(self) -> None:
        me = str(os.getpid())
        children: set[str] = set()
        for tick in itertools.count():
            if tick % 25 == 0:  # a look for new children twice a second
                children |= set(self._children(me))
            for pid in list(children):
                try:
                    with open(f"/proc/{pid}/status") as handle:
                        for line in handle:
                            if line.startswith("VmHWM:"):
                                self.peaks[pid] = int(line.split()[1]) / 1024.0
                except OSError:
                    children.discard(pid)  # ended
            if self._stop.wait(0.02):
                return

    @staticmethod
    def _children(ancestor: str) -> Iterator[str]:
        """Every descendant of a process: its children, theirs (the check's helpers are the
        children of the fork server the checking process starts), and so on."""
        if not os.path.isdir("/proc"):
            return  # no /proc: the helpers' memory is not measured (0)
        parents: dict[str, str] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as handle:
                        # The parent's pid is the second field after the name in brackets.
                        parents[entry.name] = handle.read().rsplit(b")", 1)[1].split()[1] \
                            .decode()
                except (OSError, IndexError):
                    continue  # gone meanwhile
        found = {ancestor}
        while True:
            more = {pid for pid, parent in parents.items()
                    if parent in found and pid not in found}
            if not more:
                break
            found |= more
        yield from sorted(found - {ancestor})


def _bare_rag(url: str) -> tuple[float, int]:
    """Read the figures and the measures' clauses from the store and compute only the RAG."""
    import numpy as np
    import pandas as pd

    start = time.perf_counter()
    if url.startswith("sqlite:///"):
        import sqlite3

        con: Any = sqlite3.connect(url[len("sqlite:///"):])
    else:
        from sqlalchemy import create_engine

        con = create_engine(url).connect()
    figures = pd.read_sql("SELECT contract_id, measure_id, period, value FROM figure", con)
    measures = pd.read_sql("SELECT contract_id, measure_id, polarity, target_low, target_high, "
                           "tolerance_low, tolerance_high FROM measure", con)
    con.close()
    frame = figures.merge(measures, on=["contract_id", "measure_id"], how="left")
    v = frame["value"].to_numpy(dtype=float)
    lo, hi = frame["target_low"].to_numpy(dtype=float), frame["target_high"].to_numpy(dtype=float)
    tlo = frame["tolerance_low"].to_numpy(dtype=float)
    thi = frame["tolerance_high"].to_numpy(dtype=float)
    pol = frame["polarity"].to_numpy()
    higher, lower = pol == "higher_is_better", pol == "lower_is_better"
    with np.errstate(invalid="ignore"):
        met = np.where(higher, v >= hi, np.where(lower, v <= lo, (v >= lo) & (v <= hi)))
        within = ~np.isnan(tlo) & np.where(higher, v >= tlo,
                                           np.where(lower, v <= thi, (v >= tlo) & (v <= thi)))
    rag = np.where(np.isnan(lo), "grey", np.where(np.isnan(v), "red", np.where(
        met, "green", np.where(within, "amber", "red"))))
    frame["rag"] = rag
    return time.perf_counter() - start, int(len(frame))


def load_schedules(store: Any, data: Path) -> float:
    """Every schedule of the data set into the store, as `compliance contract load` does."""
    from compliance.schedule import load_schedule

    start = time.perf_counter()
    with store.transaction(USER) as tx:
        files = sorted((data / "contracts").glob("*.yaml"))
        for file in files:
            tx.load_schedule(load_schedule(file))
        tx.audit("contract load", {"files": len(files)}, {"contracts": len(files)})
    return time.perf_counter() - start


def import_return(store: Any, returns: Path) -> dict[str, Any]:
    """The combined return into the store, as `compliance submit FILE` does."""
    from compliance.returns import file_digest, parse_returns

    out: dict[str, Any] = {}
    start = time.perf_counter()
    with store.transaction(USER) as tx:
        t = time.perf_counter()
        schedules = tx.schedules(None)
        out["import_schedules_s"] = time.perf_counter() - t
        t = time.perf_counter()
        figures = parse_returns([returns], schedules, None)
        out["import_parse_s"] = time.perf_counter() - t
        t = time.perf_counter()
        tx.lock(sorted(set(figures["contract"])))
        counts = tx.submit(figures, {str(returns): file_digest(returns)})
        tx.audit("submit", {"files": [str(returns)]}, counts)
        out["import_store_s"] = time.perf_counter() - t
        commit = time.perf_counter()
    out["import_commit_s"] = time.perf_counter() - commit
    out["import_s"] = time.perf_counter() - start
    out["figures_stored"] = counts["figures"]
    return out


def check_all(store: Any, periods: list[str]) -> dict[str, Any]:
    """Every contract checked for every period, as `compliance check --from --to` does."""
    from compliance import checking

    out: dict[str, Any] = {}
    start = time.perf_counter()
    with store.transaction(USER) as tx:
        # As `compliance check` does: the helpers start while the schedules are read.
        checking.start_helpers(tx, None, periods)
        result = checking.run_check(tx, tx.schedules(None), periods)
        tx.audit("check", {"periods": periods}, result.counts)
        commit = time.perf_counter()
    ended = time.perf_counter()
    out["check_s"] = ended - start
    out["commit_s"] = ended - commit
    out["check_counts"] = {k: int(v) for k, v in result.counts.items()}
    # The check's own account of its stages (with a helper process, assess and rules run
    # there while the reading and writing go on here: the stages overlap).
    seconds = result.seconds
    out["read_s"] = seconds["read"]
    out["assess_s"] = seconds["read"] + seconds["assess"]
    out["rules_s"] = seconds["rules"]
    out["write_s"] = seconds["write"] + (ended - commit)
    out["batches"] = len(result.parts)
    out["helped_batches"] = result.helped
    return out


def child(args: argparse.Namespace) -> int:
    """One repeat: import, check and baselines on a store holding the schedules; or, with
    ``--schedules-only``, loading the schedules into the store."""
    began = time.perf_counter()
    import pandas  # noqa: F401  (imports are not part of any stage)

    import compliance.checking  # noqa: F401
    import compliance.escalation  # noqa: F401
    from compliance.store import Store

    data = Path(args.data)
    summary = json.loads((data / "summary.json").read_text())
    out: dict[str, Any] = {"size": args.size[0], "figures": summary["figures"],
                           "contracts": summary["contracts"],
                           "startup_s": time.perf_counter() - began}
    store = Store(args.db)
    store.init()
    if args.schedules_only:
        # The schedules are loaded by a process of their own, as `contract load` is before
        # `submit` and `check`: what that leaves in memory is not charged to the others.
        out["schedules_s"] = load_schedules(store, data)
        store.dispose()
        if args.template:
            shutil.copyfile(args.db[len("sqlite:///"):], args.template)
        Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
        return 0

    # What is measured so far is written after each stage, so that a run cut short by its
    # timeout still says how far it got.
    def save(stage: str) -> None:
        out["done"] = stage
        Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")

    save("schedules")
    out.update(import_return(store, data / "returns.csv"))
    out["peak_after_import_mb"] = _rss_mb()
    save("import")

    with ChildPeak() as helper:
        out.update(check_all(store, generate.periods()))
    # This process and the check's helper, as if both peaked at once: an upper bound.
    out["helper_peak_mb"] = helper.mb
    out["peak_mb"] = _rss_mb() + helper.mb
    store.dispose()
    save("check")

    out["pandas_rag_s"], out["pandas_rows"] = _bare_rag(args.db)
    save("all")
    return 0


# --- the parent ------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _wall(command: Sequence[str], runs: int, env: dict[str, str] | None = None,
          warmup: int = 1) -> float:
    """Median wall time of a command (output discarded); raises if it fails."""
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env, cwd=ROOT)
        spent = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace')[-2000:]}")
        if i >= warmup:
            times.append(spent)
    return statistics.median(times)


def _hidden(url: str) -> str:
    """A store URL as printed: without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _reset_store(url: str) -> None:
    """An empty store at the URL: the SQLite file removed, or every view and table dropped."""
    path = _sqlite_file(url)
    if path is not None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from sqlalchemy import MetaData, create_engine, inspect, text

    engine = create_engine(url)
    with engine.begin() as conn:
        for view in inspect(conn).get_view_names():
            conn.execute(text(f'DROP VIEW "{view}"'))
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


def sqlite_import_seconds(csv_path: Path, work: Path) -> float:
    """SQLite's own .import of the CSV into a bare table (created from the header)."""
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise SystemExit("the sqlite3 command line is needed for the baseline: "
                         "apt-get update && apt-get install -y sqlite3")
    db = work / "bare-import.db"
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run([sqlite3, str(db), ".mode csv", f".import {csv_path} figures"], check=True,
                   cwd=work)
    spent = time.perf_counter() - start
    db.unlink(missing_ok=True)
    return spent


def ensure_data(size: int, work: Path, seed: int) -> Path:
    folder = work / f"data-{size}-seed{seed}"
    summary = folder / "summary.json"
    if summary.exists():
        known = json.loads(summary.read_text())
        if known.get("figures") == size and known.get("seed") == seed:
            return folder
    _log(f"generating {size:,} figures into {folder}")
    generate.generate(size, folder, seed)
    return folder


def help_measure(runs: int) -> dict[str, Any]:
    compliance = str(BIN / "compliance")
    seconds = _wall([compliance, "--help"], runs)
    probe = ("import contextlib, io, json, sys\n"
             "from compliance.cli import app\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        app(['--help'])\n    except SystemExit:\n        pass\n"
             "heavy = ['pandas', 'sqlalchemy', 'sqlmodel', 'numpy', 'durable', 'alembic']\n"
             "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n")
    done = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    return {"help_s": seconds, "help_imports": imported}


def cli_check_seconds(url: str, contract: str, period: str, runs: int) -> tuple[float, float]:
    """Median wall times of one contract's check and of the bare import line, run in turn
    (one of each, ``runs`` times after a warm-up), so that both see the same machine."""
    command = [str(BIN / "compliance"), "--db", url, "-q", "check", "--contract", contract,
               "--period", period, "--format", "json"]
    bare = [PYTHON, "-c", BARE_IMPORT]
    checks, imports = [], []
    for _ in range(runs):
        checks.append(_wall(command, 1, warmup=0 if checks else 1))
        imports.append(_wall(bare, 1, warmup=0 if imports else 1))
    return statistics.median(checks), statistics.median(imports)


def run_size(size: int, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    data = ensure_data(size, work, args.seed)
    db_url = args.db or f"sqlite:///{work / f'store-{size}.db'}"
    template = work / f"schedules-{size}.db" if _sqlite_file(db_url) else None
    if template is not None:
        template.unlink(missing_ok=True)
    results = []
    repeats = dict(args.repeat_at).get(size, args.repeat)
    for repeat in range(repeats):
        _log(f"size {size:,}: repeat {repeat + 1} of {repeats}")
        bare = sqlite_import_seconds(data / "returns.csv", work)
        _reset_store(db_url)
        loaded = template is not None and template.exists()
        if loaded:
            assert template is not None
            shutil.copyfile(template, _sqlite_file(db_url))  # type: ignore[arg-type]
        out = work / f"child-{size}-{repeat}.json"
        out.unlink(missing_ok=True)
        base = [PYTHON, str(Path(__file__).resolve()), "--child", "--size", str(size),
                "--data", str(data), "--db", db_url]
        schedules_s = None
        if not loaded:
            first = work / f"child-{size}-{repeat}-schedules.json"
            subprocess.run([*base, "--out", str(first), "--schedules-only",
                            *(["--template", str(template)] if template is not None else [])],
                           cwd=ROOT, timeout=args.timeout, check=True)
            schedules_s = json.loads(first.read_text())["schedules_s"]
        command = [*base, "--out", str(out)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, timeout=args.timeout)
            failure = f"exit status {done.returncode}" if done.returncode else None
        except subprocess.TimeoutExpired:
            failure = f"stopped after the {args.timeout:.0f}s timeout"
        result = json.loads(out.read_text()) if out.exists() else {
            "size": size, "done": "nothing"}
        result["sqlite_import_s"] = bare
        if schedules_s is not None:
            result["schedules_s"] = schedules_s
        result["child_wall_s"] = time.perf_counter() - start
        if failure:
            result["failed"] = f"{failure}; measured up to: {result.get('done')}"
            _log(f"  FAILED: {result['failed']}")
            results.append(result)
            break
        results.append(result)
        _log(f"  import {result['import_s']:.2f}s (sqlite .import {bare:.2f}s), "
             f"check {result['check_s']:.2f}s (assess {result['assess_s']:.2f}, rules "
             f"{result['rules_s']:.2f}, write {result['write_s']:.2f}), pandas RAG "
             f"{result['pandas_rag_s']:.2f}s, peak {result['peak_mb']:.0f} MB")
    # One contract's monthly check from the command line, on the store as the last repeat
    # left it (every contract checked for every period).
    if results and results[-1].get("done") == "all":
        cli, bare_line = cli_check_seconds(db_url, "hub-0001", generate.periods()[-1],
                                           args.cli_runs)
        for result in results:
            result["cli_check_s"] = cli
            result["cli_bare_import_s"] = bare_line
        _log(f"  one contract's check from the command line: {cli:.2f}s "
             f"(the bare import line, run in turn: {bare_line:.2f}s)")
    if not args.keep:
        _reset_store(db_url)
        if template is not None:
            template.unlink(missing_ok=True)
    return results


def print_medians(times: dict[str, list[float]], width: int) -> None:
    """Each way's median and its runs, a line each (as the side benchmarks report)."""
    for way, seconds in times.items():
        print(f"  {way:{width}s} median {statistics.median(seconds):.2f}s "
              f"({', '.join(f'{s:.2f}' for s in seconds)})")


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarise(by_size: dict[int, list[dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    keys = ["figures", "contracts", "schedules_s", "import_s", "import_schedules_s",
            "import_parse_s", "import_store_s", "import_commit_s", "assess_s", "rules_s",
            "write_s", "read_s", "check_s", "sqlite_import_s", "pandas_rag_s",
            "peak_mb", "helper_peak_mb", "peak_after_import_mb", "cli_check_s",
            "cli_bare_import_s"]
    table: dict[int, dict[str, Any]] = {}
    for size, results in by_size.items():
        row = {k: median_of(results, k) for k in keys}
        row["figures"] = row["figures"] or size
        row["import_ratio"] = _ratio(row["import_s"], row["sqlite_import_s"])
        row["check_ratio"] = _ratio(row["check_s"], row["pandas_rag_s"])
        row["import_fps"] = row["figures"] / row["import_s"] if row["import_s"] else None
        row["check_fps"] = row["figures"] / row["check_s"] if row["check_s"] else None
        row["repeats"] = len(results)
        row["failed"] = "; ".join(r["failed"] for r in results if r.get("failed")) or None
        table[size] = row
    return table


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}x"


def render(table: dict[int, dict[str, Any]], extra: dict[str, Any]) -> tuple[str, list[str]]:
    header = ["figures", "contracts", "schedules s", "import s", "assess s", "rules s",
              "write s", "check s", "sqlite .import s", "import / .import", "pandas RAG s",
              "check / pandas", "import fig/s", "check fig/s", "peak MB", "CLI check s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for _, r in sorted(table.items()):
        cells = [_cell(int(r["figures"])), _cell(int(r["contracts"] or 0)),
                 _cell(r["schedules_s"]), _cell(r["import_s"]), _cell(r["assess_s"]),
                 _cell(r["rules_s"]), _cell(r["write_s"]), _cell(r["check_s"]),
                 _cell(r["sqlite_import_s"]), _times(r["import_ratio"]),
                 _cell(r["pandas_rag_s"]), _times(r["check_ratio"]),
                 _cell(r["import_fps"], 0), _cell(r["check_fps"], 0), _cell(r["peak_mb"], 0),
                 _cell(r["cli_check_s"])]
        lines.append("| " + " | ".join(cells) + " |")
    for size, r in sorted(table.items()):
        if r["failed"]:
            lines.append(f"\n{size:,} figures: {r['failed']}")
    verdicts = targets(table, extra)
    return "\n".join(lines), verdicts


def targets(table: dict[int, dict[str, Any]], extra: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def verdict(ok: bool | None, text: str) -> None:
        out.append(f"{'N/A ' if ok is None else 'PASS' if ok else 'FAIL'}  {text}")

    big = table.get(1_000_000)
    small = table.get(100_000)
    if big is None:
        largest = max(table) if table else None
        note = f"; largest size run: {largest:,}" if largest else ""
        verdict(None, f"the 1M-figure targets (not run at 1,000,000{note})")
    else:
        unfinished = f"the 1M run did not get that far ({big['failed']})"

        def guess(key: str) -> str:
            """A linear extrapolation from 100k, clearly labelled as such."""
            if small is None or small.get(key) is None:
                return ""
            return f"; EXTRAPOLATED linearly from 100k: ~{small[key] * 10:.0f}"

        if big["import_ratio"] is None:
            verdict(None, f"import of 1M figures <= {IMPORT_VS_SQLITE:g}x SQLite .import: "
                    f"{unfinished}{guess('import_s')}s")
        else:
            verdict(big["import_ratio"] <= IMPORT_VS_SQLITE,
                    f"import of 1M figures {big['import_s']:.2f}s <= {IMPORT_VS_SQLITE:g}x "
                    f"SQLite .import {big['sqlite_import_s']:.2f}s "
                    f"(ratio {big['import_ratio']:.2f}x)")
        if big["check_s"] is None:
            verdict(None, f"check of 1M figures <= {CHECK_SECONDS_1M:g}s and <= "
                    f"{CHECK_VS_PANDAS:g}x bare pandas: {unfinished}{guess('check_s')}s")
        else:
            verdict(big["check_s"] <= CHECK_SECONDS_1M,
                    f"check of 1M figures {big['check_s']:.2f}s <= {CHECK_SECONDS_1M:g}s")
            if big["check_ratio"] is None:
                verdict(None, f"check of 1M figures <= {CHECK_VS_PANDAS:g}x bare pandas: "
                        f"{unfinished}")
            else:
                verdict(big["check_ratio"] <= CHECK_VS_PANDAS,
                        f"check of 1M figures {big['check_s']:.2f}s <= {CHECK_VS_PANDAS:g}x "
                        f"bare pandas RAG {big['pandas_rag_s']:.2f}s "
                        f"(ratio {big['check_ratio']:.2f}x)")
        if big["peak_mb"] is None:
            verdict(None, f"peak memory at 1M figures <= {PEAK_MB_1M:.0f} MB: {unfinished}"
                    + (f" (after import: {big['peak_after_import_mb']:.0f} MB)"
                       if big["peak_after_import_mb"] else ""))
        else:
            verdict(big["peak_mb"] <= PEAK_MB_1M,
                    f"peak memory at 1M figures {big['peak_mb']:.0f} MB <= {PEAK_MB_1M:.0f} MB")
    for stage in ("import_s", "check_s"):
        if small is None or big is None or small[stage] is None or big[stage] is None:
            verdict(None, f"{stage[:-2]} grows linearly from 100k to 1M (needs both sizes)")
            continue
        growth = big[stage] / small[stage]
        verdict(growth <= SCALING, f"{stage[:-2]} grows {growth:.2f}x from 100k to 1M figures "
                f"(<= {SCALING:g}x)")
    heavy = [m for m in extra["help_imports"] if m in ("pandas", "sqlalchemy")]
    verdict(extra["help_s"] <= HELP_SECONDS,
            f"compliance --help {extra['help_s']:.3f}s <= {HELP_SECONDS:g}s")
    verdict(not heavy, "compliance --help imports neither pandas nor sqlalchemy"
            + (f" (it imports {', '.join(heavy)})" if heavy else
               f" (heavy modules imported: {', '.join(extra['help_imports']) or 'none'})"))
    for size, r in sorted(table.items()):
        if r["cli_check_s"] is None:
            continue
        bare = r["cli_bare_import_s"] or extra["bare_import_s"]
        verdict(r["cli_check_s"] <= CLI_CHECK_VS_IMPORT * bare,
                f"one contract's monthly check from the command line on the {size:,}-figure "
                f"store {r['cli_check_s']:.2f}s <= {CLI_CHECK_VS_IMPORT:g}x `python -c "
                f"\"{BARE_IMPORT}\"` {bare:.2f}s (ratio {r['cli_check_s'] / bare:.2f}x)")
    return out


@contextmanager
def _phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    _log(f"{name}: {time.perf_counter() - start:.1f}s")


def _size_repeats(text: str) -> tuple[int, int]:
    size, _, repeats = text.partition("=")
    try:
        return int(size), int(repeats)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SIZE=N") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time import and check at several sizes against their baselines.")
    parser.add_argument("--size", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="numbers of figures (default: 10000 100000 1000000)")
    parser.add_argument("--db", help="store URL (default: a SQLite file in the work folder); "
                        "every table in it is dropped before each repeat")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per size (median)")
    parser.add_argument("--repeat-at", type=_size_repeats, action="append", default=[],
                        metavar="SIZE=N", help="a different number of repeats for one size, "
                        "e.g. 1000000=1; repeatable")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/compliance-bench"),
                        help="where data and stores are kept (default /tmp/compliance-bench)")
    parser.add_argument("--cli-runs", type=int, default=5,
                        help="runs of each command-line timing (median)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds a child may take before the run is abandoned")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    # The child process of one repeat.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--template", help=argparse.SUPPRESS)
    parser.add_argument("--schedules-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    # The package's modules compiled once, as an installed package has them (an editable
    # install under PYTHONDONTWRITEBYTECODE would otherwise compile them on every command).
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "compliance")], check=True)
    env_note = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    by_size: dict[int, list[dict[str, Any]]] = {}
    for size in sorted(args.size):
        with _phase(f"size {size:,}"):
            by_size[size] = run_size(size, args, work)
    extra = help_measure(args.cli_runs + 2)
    extra["bare_import_s"] = _wall([PYTHON, "-c", BARE_IMPORT], args.cli_runs)
    table = summarise(by_size)
    text, verdicts = render(table, extra)
    command = "python benchmarks/run.py " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    (work / "results.json").write_text(json.dumps(
        {"command": command, "environment": env_note, "summary": table, "extra": extra,
         "runs": by_size}, indent=2, default=str), encoding="utf-8")
    print(f"\n$ {command}\n")
    print(f"store: {'SQLite, a file in ' + str(work) if not args.db else _hidden(args.db)}\n")
    print(text)
    print(f"\ncompliance --help: {extra['help_s']:.3f}s; `python -c \"{BARE_IMPORT}\"`: "
          f"{extra['bare_import_s']:.2f}s\n")
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
