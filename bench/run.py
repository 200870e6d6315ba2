"""Benchmark harness for issues 5 and 13: `python3 bench/run.py [--quick] [--profile]`.

Builds its inputs from `<repo>/../shared/corpus`, starts what it needs on loopback
(127.0.0.0/8 only), measures the seven figures side by side with their baselines and
prints one table: figure, ours, baseline, ratio, target, result. Exits 1 when a figure
fails. `--only NAME` runs one group (throughput, kustomize, probes_and_startup, dense).

--quick samples every 8th document of the corpus, builds the dense streams at 1/8 of their
size and repeats less (under 30 s on an idle two-core machine); the full run takes four to
five minutes there. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
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
from measure import best_of, mib  # noqa: E402

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
    stats = pstats.Stats(profiler, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())
    print(f"\nprofile of figure 1's render ({mib(len(data))}), by own time:")
    rows = sorted(stats.items(), key=lambda item: -item[1][2])
    for (file, line, function), (_, calls, own, cumulative, callers) in rows[:15]:
        where = f"{Path(file).name}:{line}({function})" if line else function
        if not line and callers:  # a builtin: name who calls it
            (cfile, cline, cfunction), *_ = sorted(callers, key=lambda c: -callers[c][2])
            where += f" <- {Path(cfile).name}:{cline}({cfunction})"
        print(f"  {own / total:6.1%} own {cumulative / total:6.1%} cum {calls:>8} calls  {where}")

    # The cyclic garbage collector: it rescans every parsed node still held, more often as
    # the stream grows (figure 1's growth rows).
    for copies in (1, 4):
        stream = inputs.grown(data, copies)
        enabled = best_of(1, lambda s=stream: figures.render_in_process(s, options))[0]
        gc.disable()
        try:
            disabled = best_of(1, lambda s=stream: figures.render_in_process(s, options))[0]
        finally:
            gc.enable()
        print(
            f"\ngc at {copies}x ({mib(len(stream))}): {enabled.cpu:.2f} s CPU, {disabled.cpu:.2f} s"
            f" with gc disabled ({1 - disabled.cpu / enabled.cpu:.0%} of the render is gc)"
        )
        del stream

    # Memory: everything a render holds just before the CLI writes the output.
    from rewriter import cli
    from rewriter.diagnostics import Reporter
    from rewriter.render import find_and_decide, rewrite
    from rewriter.settings import resolve

    tracemalloc.start()
    reporter = Reporter(stream=io.StringIO())
    settings = resolve(figures.flags(options), os.environ)
    plan = find_and_decide(data, settings.options, cli._prober(settings, reporter), reporter)
    after_plan = tracemalloc.get_traced_memory()[0]
    rendered = rewrite(plan, settings.options, reporter)
    after_rewrite = tracemalloc.get_traced_memory()[0]
    output = rendered.stream()
    held, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print(
        f"\npython allocations beyond the {mib(len(data))} input:"
        f" {mib(after_plan)} after find_and_decide(),"
        f" {mib(after_rewrite)} after rewrite(), {mib(held)} after .stream() (peak {mib(peak)});"
        f" output {mib(len(output))}. Largest, by line:"
    )
    for stat in snapshot.statistics("lineno")[:6]:
        frame = stat.traceback[0]
        print(f"  {mib(stat.size):>10} in {stat.count:>7} blocks  {frame.filename}:{frame.lineno}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus, fewer runs")
    parser.add_argument(
        "--profile", action="store_true", help="also profile figure 1's render (time and memory)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--only",
        action="append",
        choices=[figure.__name__ for figure in figures.FIGURES],
        help="run only these figures (repeatable): while working on one of them",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="rewriter-bench-"))
    bench = figures.Bench(workdir, figures.QUICK if args.quick else figures.FULL, args.quick)
    try:
        for figure in figures.FIGURES:
            if args.only is None or figure.__name__ in args.only:
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
