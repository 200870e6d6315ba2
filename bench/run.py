"""Benchmark harness for issue 5: `python3 bench/run.py [--quick] [--profile]`.

Builds its inputs from `<repo>/../shared/corpus`, starts what it needs on loopback
(127.0.0.0/8 only), measures the six figures side by side with their baselines and prints
one table: figure, ours, baseline, ratio, target, result. Exits 1 when a figure fails.

--quick samples every 8th document of the corpus and repeats less (under 30 s on an idle
two-core machine); the full run takes two to three minutes there. See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]  # this checkout's rewriter, not an installed one

import figures  # noqa: E402
import inputs  # noqa: E402
from measure import mib  # noqa: E402

COLUMNS = ("figure", "ours", "baseline", "ratio", "target", "result")


def table(rows: list[figures.Row]) -> str:
    cells = [COLUMNS] + [
        (row.figure, row.ours, row.baseline, row.ratio, row.target, row.result) for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def profile(quick: bool) -> None:
    """Where figure 1's render spends its time and memory (cProfile, tracemalloc)."""
    data = inputs.corpus_stream(quick)
    options = figures.RULES_ONLY
    figures.render_in_process(data, options)  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    figures.render_in_process(data, options)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    print(f"\nprofile of figure 1's render ({mib(len(data))}), by own time:")
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    for (file, line, function), (_, calls, own, cumulative, _) in rows[:15]:
        where = f"{Path(file).name}:{line}({function})" if line else function
        print(f"  {own / total:6.1%} own {cumulative / total:6.1%} cum {calls:>8} calls  {where}")
    tracemalloc.start(10)
    figures.render_in_process(data, options)
    _, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print(
        f"\npython allocations: peak {mib(peak)} for {mib(len(data))} of input; still held"
        " at the end, by line:"
    )
    for stat in snapshot.statistics("lineno")[:8]:
        frame = stat.traceback[0]
        print(f"  {mib(stat.size):>10}  {Path(frame.filename).name}:{frame.lineno}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus, fewer runs")
    parser.add_argument(
        "--profile", action="store_true", help="also profile figure 1's render (time and memory)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="rewriter-bench-"))
    bench = figures.Bench(workdir, figures.QUICK if args.quick else figures.FULL, args.quick)
    try:
        for figure in figures.FIGURES:
            figure(bench)
        if args.profile:
            profile(args.quick)
    finally:
        if args.keep:
            print(f"bench: work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = sorted(bench.rows, key=lambda row: row.figure.split(" ", 1)[0])
    print()
    print(table(rows))
    print()
    for note in sorted(bench.notes, key=lambda text: text.split(":", 1)[0]):
        print(f"- {note}")
    mode = "quick" if args.quick else "full"
    print(f"\n{mode} run: {time.perf_counter() - started:.0f} s, Python {sys.version.split()[0]}")
    return 1 if any(row.result == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
