"""Diagnostics: warnings and errors go to stderr (and a log file), never to stdout."""

from __future__ import annotations

import sys
from typing import TextIO


class Reporter:
    """Writes `warning: ...` / `error: ...` lines to stderr and, when set, a log file.

    Helm 4 discards a post-renderer's stderr, so the log file is the only way its users
    can read why a render failed.
    """

    def __init__(self, stream: TextIO | None = None, log: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.log = log
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._write(f"warning: {message}")

    def error(self, message: str) -> None:
        self._write(f"error: {message}")

    def _write(self, line: str) -> None:
        for out in (self.stream, self.log):
            if out is not None:
                out.write(line + "\n")
                out.flush()
