"""The one error type the command line turns into `error: ...` and exit code 1."""

from __future__ import annotations


class RewriterError(Exception):
    """Anything the user can fix: bad input, a conflict, a failed probe under `fail`.

    `main()` catches this once, prints `error: <message>` to stderr and exits 1; no other
    code prints errors or exits.
    """
