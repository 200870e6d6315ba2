"""Split a multi-document YAML stream into the raw bytes of each document.

Most of a rendered stream never changes (CRDs alone are most of the bytes of an operator
install), so the stream is cut at document markers without parsing it, and each piece
keeps its exact bytes. Only pieces that may hold an image are parsed later; the rest are
checked for well-formedness in C and written back as they came.

A line that starts with `---` followed by a blank or the end of the line is always a
document marker in YAML: it cannot appear inside a scalar at column 0 (the spec forbids
it), so cutting there agrees with what libyaml sees.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import yaml
from yaml import MarkedYAMLError, YAMLError
from yaml._yaml import CParser

from rewriter.errors import RewriterError

BOM = b"\xef\xbb\xbf"

# A marker after a line break (the one at the very start is the first chunk's anyway):
# written with its `\n`, the expression has a literal prefix that `re` finds at memchr
# speed, where `^` in MULTILINE mode is tried at every byte (0.076 s to 0.023 s on 13 MiB).
_MARKER = re.compile(rb"\n---(?=[ \t\r\n]|\Z)")


@dataclass(frozen=True, slots=True)
class Origin:
    """The input file a chunk came from, when several files are read as one stream."""

    name: str
    first_index: int  # the stream index of the file's first chunk
    lines_before: int  # stream lines before the file's first line


class Chunk:
    """The bytes of one document, from its `---` line (if any) up to the next one.

    `index`: its position in the stream, 0-based (messages count from 1, as lines);
    `first_line`: the 1-based line of the stream where it starts; `origin`: the input
    file, when several are read as one stream.

    A plain class: the two numbers are kept as one int (two int objects were ~56 bytes
    per document on a stream of small workloads, whose memory is at its limit), and a
    frozen dataclass's __init__ cost four times a plain one's. Only `data` ever changes
    (Document.forget_input)."""

    __slots__ = ("_place", "data", "origin")

    def __init__(
        self, index: int, data: bytes, first_line: int, origin: Origin | None = None
    ) -> None:
        self._place = index << _LINE_BITS | first_line
        self.data = data
        self.origin = origin

    @property
    def index(self) -> int:
        return self._place >> _LINE_BITS

    @property
    def first_line(self) -> int:
        return self._place & _LINE_MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chunk):
            return NotImplemented
        return (self._place, self.data, self.origin) == (other._place, other.data, other.origin)

    def __hash__(self) -> int:
        return hash((self._place, self.data, self.origin))

    def __repr__(self) -> str:
        return (
            f"Chunk(index={self.index}, data={self.data!r}, first_line={self.first_line}, "
            f"origin={self.origin!r})"
        )

    @property
    def number(self) -> int:
        """The document's number as messages give it: from 1, within its file."""
        first = self.origin.first_index if self.origin is not None else 0
        return self.index - first + 1

    def line(self, line: int) -> int:
        """The 1-based line of the input (the file, with several) of `line` in the chunk."""
        before = self.origin.lines_before if self.origin is not None else 0
        return self.first_line + line - before

    def name(self) -> str:
        """`document 3`, or `b.yaml: document 3` with several input files."""
        prefix = f"{self.origin.name}: " if self.origin is not None else ""
        return f"{prefix}document {self.number}"

    def short(self) -> str:
        """`3`, or `b.yaml:3` with several input files: the DOC column of tables."""
        prefix = f"{self.origin.name}:" if self.origin is not None else ""
        return f"{prefix}{self.number}"

    def where(self, line: int | None = None) -> str:
        """`document N` with, when known, the resource (read loosely from the bytes:
        see guess_label) and the line, for messages about reading the chunk."""
        parts = [label] if (label := guess_label(self.data)) else []
        if line is not None:
            parts.append(f"line {self.line(line)}")
        return self.name() + (f" ({', '.join(parts)})" if parts else "")


_KIND = re.compile(rb"(?m)^kind:[ \t]*[\"']?([A-Za-z][A-Za-z0-9]*)[\"']?[ \t]*(?:#|\r?$)")
_METADATA = re.compile(rb"(?m)^metadata:[ \t]*(?:#.*)?\r?$")
_INDENT = re.compile(rb"(?:[ \t]*(?:#.*)?\r?\n)*([ \t]+)[^\s#]")
_UNINDENTED = re.compile(rb"(?m)^(?=[^\s#])")
_VALUE = rb":[ \t]*[\"']?([A-Za-z0-9][A-Za-z0-9._:-]*)[\"']?[ \t]*(?:#|\r?$)"


_LINE_BITS = 40  # a stream of more lines than this would not fit in memory
_LINE_MASK = (1 << _LINE_BITS) - 1


def guess_label(data: bytes) -> str | None:
    """`Kind ns/name` read with regular expressions from a document's bytes: a column-0
    `kind:` and the `name:` / `namespace:` right under a column-0 `metadata:`.

    Only a label for messages about a document that could not be read (invalid YAML, a
    duplicate key): never used for a decision. None when no kind and no name is found.
    """
    found = _KIND.search(data)
    kind = found.group(1).decode() if found else None
    if found and _KIND.search(data, found.end()):
        kind = "?"  # two kinds (a duplicate key): which one is not guessed
    name = namespace = None
    meta = _METADATA.search(data)
    if meta is not None:
        start = meta.end() + 1
        indent = _INDENT.match(data, start)
        if indent is not None:
            end_match = _UNINDENTED.search(data, start)
            block = data[start : end_match.start() if end_match else len(data)]
            pad = re.escape(indent.group(1))
            if named := re.search(rb"(?m)^" + pad + rb"name" + _VALUE, block):
                name = named.group(1).decode()
            if spaced := re.search(rb"(?m)^" + pad + rb"namespace" + _VALUE, block):
                namespace = spaced.group(1).decode()
    if kind is None and name is None:
        return None
    if name is None:
        return kind
    return f"{kind or '?'} {namespace + '/' if namespace else ''}{name}"


def split(data: bytes, files: Sequence[tuple[str, int]] = ()) -> tuple[bytes, list[Chunk]]:
    """Return the stream's byte-order mark (or b"") and its chunks, in order.

    Text before the first marker (comments, or a document without `---`) is chunk 0 when
    it is not empty; every later chunk starts with its `---` line.

    `files` names the input files of a stream read from several: each file's name and
    the offset in `data` where its own bytes start (in order, the first at 0). Each chunk
    then knows its file, so messages count documents and lines within that file. A
    chunk belongs to the file its last byte is in (a `---` line put between two files
    starts the second file's first chunk).
    """
    bom = b""
    if data.startswith(BOM):
        bom, data = BOM, data[len(BOM) :]
    starts = [0, *(m.start() + 1 for m in _MARKER.finditer(data))]
    starts.append(len(data))
    bounds = [(name, max(0, offset - len(bom))) for name, offset in files]
    chunks: list[Chunk] = []
    line = 1
    origin: Origin | None = None
    for begin, end in itertools.pairwise(starts):
        piece = data[begin:end]
        if not piece:
            continue
        while bounds and bounds[0][1] < end:
            name, offset = bounds.pop(0)
            origin = Origin(name, len(chunks), data.count(b"\n", 0, offset))
        chunks.append(Chunk(len(chunks), piece, line, origin))
        line += piece.count(b"\n")
    return bom, chunks


# Real manifests nest a few dozen levels, CRD schemas under a hundred. Kept well below
# libyaml's own limit (1000 levels since 0.2.6, bundled by PyYAML 6.0.4), so the refusal
# is always this check's, whichever libyaml PyYAML was built with.
MAX_DEPTH = 500
# Cheap signs that a document might nest deeply: nesting needs brackets, indentation or
# chained `- ` indicators. Most documents show none of them and skip the exact count.
_DEEP_INDENT = re.compile(rb"\n {%d}" % (MAX_DEPTH // 2))
_DASH_CHAIN = b"- - - - - - - - - - - - - - - - "  # `- - - x`: a list per indicator


def check_depth(chunk: Chunk) -> None:
    """Refuse documents nested deeper than MAX_DEPTH.

    libyaml handles deep flow nesting in quadratic time and the composer recurses once
    per level, so a hostile document could hang or crash the process; counting events
    stops at the first level past the limit, before either can happen.
    """
    data = chunk.data
    if len(data) <= MAX_DEPTH:  # each level opens with a character of its own
        return
    if (
        data.count(b"[") + data.count(b"{") < MAX_DEPTH // 2
        and not _DEEP_INDENT.search(data)
        and _DASH_CHAIN not in data
    ):
        return
    depth = 0
    try:
        for event in yaml.parse(data, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line if event.start_mark else None
                    raise RewriterError(
                        f"{chunk.where(line)}: nested more than {MAX_DEPTH} levels deep"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except YAMLError as exc:
        raise yaml_error(chunk, exc) from None


def check_syntax(chunk: Chunk) -> None:
    """Parse the chunk in C without building anything; raise on malformed YAML.

    Used for documents that are passed through untouched: they still have to be valid,
    since a broken stream must fail here rather than in the cluster.
    """
    check_depth(chunk)
    try:
        CParser(chunk.data).raw_parse()
    except YAMLError as exc:
        raise yaml_error(chunk, exc) from None


def yaml_error(chunk: Chunk, exc: YAMLError) -> RewriterError:
    """Turn a PyYAML error into one line naming the document and the stream line."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = chunk.where(mark.line if mark is not None else None)
        return RewriterError(f"{where}: invalid YAML: {problem}")
    return RewriterError(f"{chunk.where()}: invalid YAML: {_one_line(str(exc))}")


def _one_line(text: str) -> str:
    return " ".join(text.split())
