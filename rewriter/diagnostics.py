"""Diagnostics: warnings and errors go to stderr (and a log file), never to stdout.

Also what a person watching a render sees of its probes: a progress line while they
last (on a terminal only), one summary line once they are done, and one warning per
registry whose images were not found or not probed. The probe itself knows nothing of
terminals; it calls `ProbeProgress.update` from the thread that waits for it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rewriter.errors import RewriterError
from rewriter.files import open_log
from rewriter.location import Notice
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict

if TYPE_CHECKING:
    from rewriter.decide import Decision
    from rewriter.reference import ImageRef

SHOWN_IMAGES = 3  # images named in a grouped warning; the rest are counted
PROGRESS_AFTER = 1.0  # seconds of probing before a progress line appears


class Reporter:
    """Writes `warning: ...` / `error: ...` lines to stderr and, when set, a log file.

    Helm 4 discards a post-renderer's stderr, so the log file is the only way its users
    can read why a render failed. `quiet`: stderr gets errors only (the log file still
    gets everything); `verbose`: also one line per image saying what was decided.
    """

    def __init__(self, stream: TextIO | None = None, log: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.log = log
        self.log_path: Path | str | None = None
        self.warnings: list[str] = []
        self.quiet = False
        self.verbose = False

    def warn(self, warning: str | Notice) -> None:
        """`warning: ...`; a Notice's location told as the command line tells it."""
        message = warning.told() if isinstance(warning, Notice) else warning
        self.warnings.append(message)
        self._write(f"warning: {message}", shown=not self.quiet)

    def error(self, message: str) -> None:
        """`error: ...` on stderr and in the log; never raises: a log that cannot take
        the line is said below it, indented."""
        # One `error:` line, any details indented below it.
        first, *details = message.split("\n")
        lines = [first, *(d if d[:1] in (" ", "\t", "") else f"  {d}" for d in details)]
        try:
            self._write("error: " + "\n".join(lines))
        except RewriterError as exc:
            self._say(f"  {exc}\n")

    def open_log(self, path: Path | str) -> None:
        """Append to `path` from now on (see open_log)."""
        self.log = open_log(path)
        self.log_path = path

    def info(self, message: str) -> None:
        """A line for the person running the command (verbose lines, the probe summary);
        not a warning, and silent under --quiet."""
        self._write(message, shown=not self.quiet)

    def is_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _write(self, line: str, shown: bool = True) -> None:
        if shown:
            self._say(line + "\n")
        if self.log is None:
            return
        try:
            self.log.write(line + "\n")
            self.log.flush()
        except OSError as exc:
            # A full disk, a quota: the log is given up (said once, as the error of the
            # command), never a traceback.
            log, self.log = self.log, None
            with contextlib.suppress(OSError):
                log.close()
            raise RewriterError(
                f"cannot write log file {self.log_path or log.name}: {exc.strerror}"
            ) from None

    def _say(self, text: str) -> None:
        # Nothing is left to tell of a stderr that cannot be written to.
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class ProbeProgress:
    """`probing 12/200 images on 3 registries, 1.4 s` rewritten in place on a terminal,
    once probing has lasted over a second; erased when it ends."""

    def __init__(self, reporter: Reporter, registries: int) -> None:
        self.reporter = reporter
        self.registries = registries
        self.started = time.monotonic()
        self.live = reporter.is_terminal() and not reporter.quiet
        self.shown = False

    def update(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        if not self.live or elapsed < PROGRESS_AFTER:
            return
        line = (
            f"probing {done}/{plural(total, 'image')} on "
            f"{registries_text(self.registries)}, "
            f"{elapsed:.1f} s"
        )
        self.reporter.stream.write(f"\r\x1b[K{line}")
        self.reporter.stream.flush()
        self.shown = True

    def finish(self) -> float:
        """Erase the progress line; the seconds probing took."""
        if self.shown:
            self.reporter.stream.write("\r\x1b[K")
            self.reporter.stream.flush()
        return time.monotonic() - self.started


def registries_text(count: int) -> str:
    return f"{count} registry" if count == 1 else f"{count} registries"


def probe_summary(answers: Mapping[ProbeKey, ProbeResult], seconds: float) -> str:
    """`probed 200 images on 3 registries in 7.5 s: 120 public, 80 private, 0 failed`;
    `answers` are those the registries were asked for (no cached ones)."""
    counts = {verdict: 0 for verdict in Verdict}
    for result in answers.values():
        counts[result.verdict] += 1
    registries = len({key[0] for key in answers})
    tally = [
        f"{counts[Verdict.PUBLIC]} public",
        f"{counts[Verdict.PRIVATE]} private",
        *([f"{counts[Verdict.MISSING]} not found"] if counts[Verdict.MISSING] else []),
        f"{counts[Verdict.UNKNOWN]} failed",
    ]
    return (
        f"probed {plural(len(answers), 'image')} on {registries_text(registries)} "
        f"in {seconds:.1f} s: {', '.join(tally)}"
    )


def probe_warnings(
    refs: Iterable[ImageRef], answers: Mapping[ProbeKey, ProbeResult], policy: str
) -> list[Notice]:
    """One warning per registry and cause for images not found on their registry or
    without an answer, in the words of the decision (`not found on its registry (404);
    treated as private`, `probe failed: X; --on-probe-error=P`): the image when there is
    one, else the count and the first few names (--verbose names each)."""
    # The words of the decision, shared.
    from rewriter.decide import missing_reason, unknown_reason

    groups: dict[tuple[str, str], list[str]] = {}
    seen: set[ProbeKey] = set()
    for ref in refs:
        result = answers.get(ref.probe_key)
        if result is None or ref.probe_key in seen:
            continue
        if result.verdict is Verdict.MISSING:
            reason = missing_reason(result.detail)
        elif result.verdict is Verdict.UNKNOWN:
            reason = unknown_reason(result.detail, policy)
        else:
            continue
        seen.add(ref.probe_key)
        groups.setdefault((ref.registry, reason), []).append(ref.text)
    notices = []
    for (registry, reason), images in groups.items():
        if len(images) == 1:
            notices.append(Notice(f"{images[0]}: {reason}", image=images[0]))
            continue
        shown = ", ".join(images[:SHOWN_IMAGES])
        more = f" and {len(images) - SHOWN_IMAGES} more" if len(images) > SHOWN_IMAGES else ""
        notices.append(Notice(f"{len(images)} images on {registry}: {reason} ({shown}{more})"))
    return notices


def tell_decisions(reporter: Reporter, decided: Mapping[str, Decision]) -> None:
    """--verbose: `IMAGE: ACTION (REASON) -> NEW` for each distinct image (Plan.decided),
    in the order first found."""
    for text, decision in decided.items():
        line = f"{text}: {decision.action.value} ({decision.reason})"
        reporter.info(line + (f" -> {decision.new_text}" if decision.new_text else ""))
