"""Clocks: in-process best-of-N, and child processes with their own wall time, CPU time and
peak RSS (from `os.wait4` in `child.py`, so each figure is that one command's)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from inputs import REPO

T = TypeVar("T")

# Variables of ours that must not leak into a timed render from the caller's shell.
_DROPPED_PREFIXES = ("REWRITER_", "ARGOCD_ENV_", "ARGOCD_APP_", "HELM_")


@dataclass(frozen=True)
class Timed:
    wall: float  # seconds, the best of the runs
    cpu: float  # seconds of process CPU time in that run
    runs: int


def best_of(runs: int, work: Callable[[], T]) -> tuple[Timed, T]:
    """Run `work` `runs` times; the fastest run's wall and CPU time, and its result."""
    best: tuple[float, float] | None = None
    result: T
    for _ in range(max(runs, 1)):
        # Every run starts from the same heap: what an earlier run left behind would
        # otherwise be collected, at random, inside this one.
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = work()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if best is None or wall < best[0]:
            best = (wall, cpu)
    assert best is not None
    return Timed(best[0], best[1], max(runs, 1)), result


@dataclass(frozen=True)
class ProcessRun:
    args: tuple[str, ...]
    wall: float  # seconds from spawn to exit
    cpu: float  # user + system seconds of the child
    max_rss: int  # bytes, peak resident set of the child
    returncode: int
    stderr: str

    def check(self, what: str) -> ProcessRun:
        if self.returncode != 0:
            raise RuntimeError(f"{what} exited {self.returncode}:\n{self.stderr[-4000:]}")
        return self


def bench_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a timed child: this checkout first on the path, a throwaway
    HOME and cache directory, none of the caller's rewriter/Argo CD/Helm variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / "cache")
    env.update(extra or {})
    return env


CHILD = Path(__file__).resolve().parent / "child.py"


def run_process(
    args: Sequence[str],
    stdin: Path | None,
    env: Mapping[str, str],
    stdout: Path | None = None,
    timeout: float = 300.0,
) -> ProcessRun:
    """Run a command to completion and return what it cost; killed after `timeout`.

    Spawned through `child.py`, which times it and reads its peak RSS: see there why.
    """
    with (
        open(stdin if stdin is not None else os.devnull, "rb") as fin,
        open(stdout if stdout is not None else os.devnull, "wb") as fout,
        tempfile.TemporaryFile() as ferr,
        tempfile.NamedTemporaryFile(suffix=".json") as report,
    ):
        wrapper = [sys.executable, "-S", str(CHILD), report.name, str(timeout), *args]
        subprocess.run(wrapper, stdin=fin, stdout=fout, stderr=ferr, env=env, timeout=timeout + 30)
        ferr.seek(0)
        stderr = ferr.read().decode(errors="replace")
        try:
            cost = json.loads(Path(report.name).read_text())
        except ValueError:
            raise RuntimeError(f"{args[0]}: no report from bench/child.py:\n{stderr}") from None
    return ProcessRun(
        args=tuple(args),
        wall=cost["wall"],
        cpu=cost["cpu"],
        max_rss=cost["max_rss"],
        returncode=cost["returncode"],
        stderr=stderr,
    )


def best_process(runs: int, run: Callable[[], ProcessRun]) -> ProcessRun:
    """The fastest of `runs` runs (each checked by the caller's `run`)."""
    results = [run() for _ in range(max(runs, 1))]
    return min(results, key=lambda result: result.wall)


def rewriter_args(*options: str) -> list[str]:
    """`python -m rewriter OPTIONS` with this interpreter (not a shim on PATH)."""
    return [sys.executable, "-m", "rewriter", *options]


def mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"
