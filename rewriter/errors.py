"""The one error type the command line turns into `error: ...` and exit code 1."""

from __future__ import annotations

from rewriter.location import Location, Place


class RewriterError(Exception):
    """Anything the user can fix: bad input, a conflict, a failed probe under `fail`.

    `main()` catches this once, prints `error: <message>` to stderr and exits 1; no other
    code prints errors or exits. An error about a place in the input carries it as
    `where`, so each host tells it in its own terms (see `told`).
    """

    def __init__(self, message: str = "", where: Location | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(self.told())

    def told(self, place: Place = Location.text) -> str:
        """The message with its location told by `place`."""
        return f"{place(self.where)}: {self.message}" if self.where else self.message


class CannotRewrite(RewriterError):
    """Images that cannot be rewritten, each with its reason and first site, said
    together: one error for the whole render."""

    def __init__(self, failures: list[tuple[str, str, Location]]) -> None:
        self.failures = failures  # image, reason, where
        super().__init__()

    def told(self, place: Place = Location.text) -> str:
        lines = [f"{len(self.failures)} image(s) cannot be rewritten:"]
        lines += [f"  {image}: {reason} [{place(where)}]" for image, reason, where in self.failures]
        return "\n".join(lines)
