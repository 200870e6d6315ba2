"""Where in the input a warning or an error points: the one record both are told from.

The engine knows the file, the document, the resource and the field of what it warns
about; it hands them over as fields, not as a prefix of the message. The command line
tells them as it always has (`document 3 (Deployment shop/web, line 40) spec...image`),
and `rewriter krm` tells them in its own terms (the resource and field, a KRM result's
`resourceRef` and `field`), without reading its own messages back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    document: int  # from 1 within its file, as lines are
    file: str | None = None  # the input file, when several are read as one stream
    # The resource (`Kind ns/name` in messages); all None when not named
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    item: int | None = None  # the resource's index among a List's items
    field: str | None = None  # the field path within the resource
    line: int | None = None  # from 1 within its file
    # A message about a value says `document 1 (...): path: problem`, one about a field
    # `document 1 (...) path: problem`: both wordings are kept, scripts read them.
    of_value: bool = False

    @property
    def named(self) -> bool:
        return self.kind is not None or self.name is not None

    def label(self) -> str:
        """`Kind ns/name` as in kubectl's output (rewriter.manifest.document.Resource.label)."""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '?'} {name or '?'}"

    def path(self) -> str | None:
        """The field path from the document's root: `items[3].spec...` in a List."""
        item = f"items[{self.item}]" if self.item is not None else None
        if item is None or self.field is None:
            return item or self.field
        return f"{item}.{self.field}"

    def text(self) -> str:
        """`b.yaml: document 3 (Deployment shop/web, line 40) spec...image`, each part
        when known."""
        head = f"{self.file}: " if self.file is not None else ""
        parts = [self.label()] if self.named else []
        if self.line is not None:
            parts.append(f"line {self.line}")
        head += f"document {self.document}" + (f" ({', '.join(parts)})" if parts else "")
        path = self.path()
        if path is None:
            return head
        return f"{head}{':' if self.of_value else ''} {path}"


# How a host tells a location (Location.text for the command line).
Place = Callable[[Location], str]


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning: its words, where it points when known, and the one image it is about
    when it names one (a KRM result then points at that image's first site)."""

    message: str
    where: Location | None = None
    image: str | None = None

    def told(self, place: Place = Location.text) -> str:
        return f"{place(self.where)}: {self.message}" if self.where else self.message
