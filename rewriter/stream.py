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
from dataclasses import dataclass

import yaml
from yaml import MarkedYAMLError, YAMLError
from yaml._yaml import CParser

from rewriter.errors import RewriterError

BOM = b"\xef\xbb\xbf"

_MARKER = re.compile(rb"^---(?=[ \t\r\n]|\Z)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Chunk:
    """The bytes of one document, from its `---` line (if any) up to the next one."""

    index: int  # position in the stream, 0-based, as users see documents counted
    data: bytes
    first_line: int  # 1-based line of the stream where this chunk starts

    def where(self, line: int | None = None) -> str:
        """`document N` and, when known, the stream line, for messages."""
        if line is None:
            return f"document {self.index}"
        return f"document {self.index} (line {self.first_line + line})"


def split(data: bytes) -> tuple[bytes, list[Chunk]]:
    """Return the stream's byte-order mark (or b"") and its chunks, in order.

    Text before the first marker (comments, or a document without `---`) is chunk 0 when
    it is not empty; every later chunk starts with its `---` line.
    """
    bom = b""
    if data.startswith(BOM):
        bom, data = BOM, data[len(BOM) :]
    starts = [m.start() for m in _MARKER.finditer(data)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(data))
    chunks: list[Chunk] = []
    line = 1
    for begin, end in itertools.pairwise(starts):
        piece = data[begin:end]
        if not piece:
            continue
        chunks.append(Chunk(len(chunks), piece, line))
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
