"""The check of a released document's edits: near-free, and still a safety net.

Every edited document is checked before it is written, so that a bug in the text
surgery becomes an error rather than a broken or silently different manifest. The check
used to compose the edited text again and read every image and identity field back at
its path: on a stream of small workloads that second compose was a quarter of the
render. For documents without anchors (released after the finder's visit: plan.Site)
the splices themselves say what the edited text must be, and that is checked instead:

- the edited text is the original with the splices applied, and nothing else changed:
  it is made here (`edited`), from the original and the splices checked, which must
  not overlap, so every byte between them is the original's;
- each replaced span is the image scalar the finder read (its text, tags and quotes
  included, reads as the image found, as a block value and as a flow item) and its new
  text reads as the decided image, a string, in both contexts;
- libyaml's C parser (`raw_parse`, no Python objects) reads the edited text as one
  document with exactly as many events as the original plus those the inserted pull
  secret entries add (Splice.events): a replaced scalar is one event before and after,
  so a splice that spilled into its neighbours, re-parented a node or added a List item
  or a document changes the count, or the syntax.

Readings of a scalar are memoized by its text: a chart repeats a few images thousands of
times. Where the original scalar cannot be read on its own (it spans lines: block and
folded scalars), `edited` answers None and the caller composes the edited text as before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import NoReturn

import yaml
from yaml._yaml import CParser
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from rewriter.errors import RewriterError
from rewriter.manifest.document import Document, compose
from rewriter.manifest.edit import Splice, ordered, replace_span

_CORE_TAG = "tag:yaml.org,2002:"
_STR_TAG = _CORE_TAG + "str"

# A replaced image scalar: its span in the original text, the value it read as, the
# value it must read as after the edit, and the splice that makes the change.
Replacement = tuple[int, int, str, str, Splice]


def edited(
    doc: Document,
    original: str,
    replaced: Sequence[Replacement],
    inserted: Sequence[Splice],
    counts: Counts | None = None,
) -> str | None:
    """The edited text: `original` with the splices applied, checked; raises
    RewriterError (an internal error) when they do not do what they should. None when a
    replaced scalar cannot be read on its own (the caller then applies the splices and
    checks by composing). With `counts`, the parser events are counted with other
    documents' (see Counts), by the time its `flush()` returns."""
    if doc.events is None:
        return None
    for start, end, before, after, made in replaced:
        if not (start <= made.start <= made.end <= end):
            _fail(doc, f"a splice at {made.start} leaves the image scalar at {start}")
        raw = original[start:end]
        was = _reads(raw) if "\n" not in raw and "\r" not in raw else None
        if was is None:
            return None  # a scalar over several lines, read only in its context
        now = _reads(original[start : made.start] + made.text + original[made.end : end])
        if was != before or now != after:
            _fail(doc, f"an image reads {now!r} after the edit, expected {after!r}")
    text = _applied(doc, original, ordered([r[4] for r in replaced] + list(inserted)))
    expected = doc.events + sum(s.events for s in inserted)
    if counts is None:
        _count(doc, text, expected)
    else:
        counts.add(doc, text, expected)
    return text


class Counts:
    """The parser events of edited documents, counted a batch at a time: libyaml reads
    several documents joined as one stream, which costs less than a parser per document
    (on a stream of small workloads, a parser per document was a tenth of the render).

    Each document joined after another starts with its `---` marker, and each ends its
    last line, so the joined stream holds the same documents, and
    its count is theirs less the stream's start and end events each alone adds. When
    the sum does not add up (or the joined text does not parse), each document is
    counted alone, and the first wrong one is reported as before.
    """

    BATCH = 1 << 16  # characters: enough to spread a parser's cost, little to hold

    def __init__(self) -> None:
        self._batch: list[tuple[Document, str, int]] = []
        self._size = 0

    def add(self, doc: Document, edited: str, expected: int) -> None:
        if not edited.endswith("\n"):  # nothing can follow it: counted alone, in order
            self.flush()
            _count(doc, edited, expected)
            return
        if not _MARKER.match(edited):  # it can only start a stream
            self.flush()
        self._batch.append((doc, edited, expected))
        self._size += len(edited)
        if self._size >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        """Count the documents added since the last flush; raise as _count would."""
        batch, self._batch, self._size = self._batch, [], 0
        if not batch:
            return
        try:
            events = CParser("".join(text for _, text, _ in batch)).raw_parse()
        except yaml.YAMLError:
            events = None
        if events != sum(expected for *_, expected in batch) - 2 * (len(batch) - 1):
            for doc, text, expected in batch:
                _count(doc, text, expected)


_MARKER = re.compile(r"---(?:[ \t\r\n]|$)")


def _applied(doc: Document, original: str, splices: list[Splice]) -> str:
    """`original` with `splices` (sorted) applied, which must not overlap. The edited
    text is made here, from the original and the splices checked, and nowhere else: no
    byte outside them can differ."""
    pieces: list[str] = []
    at = 0  # in the original
    for made in splices:
        if made.start < at:
            _fail(doc, f"splices overlap at {made.start}")
        pieces.append(original[at : made.start])
        pieces.append(made.text)
        at = made.end
    pieces.append(original[at:])
    return "".join(pieces)


# One edit of a big document (render._rewrite_lean), in text order: the span replaced,
# its new text and, for a replaced image scalar, its text before and the image it read
# as and must read as (None for an inserted pull secret entry).
Edit = tuple[int, int, str, tuple[str, str, str] | None]


@functools.lru_cache(maxsize=4096)
def rewritten(raw: str, style: str | None, before: str, after: str) -> str:
    """The scalar written as `raw` (reading `before`) rewritten to read `after`, as
    edit.replace_span writes it: memoized, a big document repeats a few images."""
    made = replace_span(raw, 0, len(raw), style, before, after)
    return raw[: made.start] + made.text + raw[made.end :]


def check_stream(
    doc: Document,
    original: bytes,
    edited: Sequence[bytes],
    edits: Iterable[Edit],
    inserted_events: int,
) -> None:
    """`check` for a big document's edits, given as a stream in text order rather than
    as splices, and its edited text in pieces (render._rewrite_lean): the same three
    proofs, without a list per site or a second copy of the text."""
    if doc.events is None:
        _fail(doc, "no count of the original's events")
    now = _Pieces(edited)
    at = 0  # in the original
    for start, end, text, replaced in edits:
        if start < at:
            _fail(doc, f"edits overlap at {start}")
        written = text.encode("utf-8")
        if now.read(start - at) != original[at:start] or now.read(len(written)) != written:
            _fail(doc, f"the text around {start} changed beyond the edits")
        at = end
        if replaced is not None:
            raw, before, after = replaced
            if _reads(raw) != before or _reads(text) != after:
                _fail(doc, f"an image reads {_reads(text)!r} after the edit, expected {after!r}")
    if now.read(len(original) - at) != original[at:] or now.read(1):
        _fail(doc, "the text after the last edit changed")
    _count(doc, _Pieces(edited), doc.events + inserted_events)


class _Pieces:
    """Pieces of bytes read as one stream (libyaml's parser reads it with `read`)."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = pieces
        self.piece = 0
        self.at = 0  # in the current piece

    def read(self, size: int = -1) -> bytes:
        """The next `size` bytes (fewer at the end; all that is left for -1)."""
        parts: list[bytes] = []
        while (size < 0 or size > 0) and self.piece < len(self.pieces):
            current = self.pieces[self.piece]
            taken = current[self.at :] if size < 0 else current[self.at : self.at + size]
            parts.append(taken)
            self.at += len(taken)
            if size > 0:
                size -= len(taken)
            if self.at >= len(current):
                self.piece, self.at = self.piece + 1, 0
        return b"".join(parts)


def _count(doc: Document, edited: str | bytes | _Pieces, expected: int) -> None:
    """libyaml reads the edited text as one document of `expected` events."""
    try:
        events = CParser(edited).raw_parse()
    except yaml.YAMLError as exc:
        raise RewriterError(
            f"{doc.where()}: internal error: edit broke the document: {exc}"
        ) from None
    if events != expected:
        _fail(doc, f"the edited text has {events} parser events, expected {expected}")


@functools.lru_cache(maxsize=4096)
def _reads(raw: str) -> str | None:
    """The string a one-line scalar written as `raw` (with its tag or quotes) reads as,
    the same as a block mapping's value and as a flow sequence's item; None when it is
    no string (`42`, `!!binary`), not one scalar, or the two contexts disagree."""
    read: set[str] = set()
    for text in (f"k: {raw}\n", f"[{raw}]\n"):
        try:
            root = compose(text)
        except yaml.YAMLError:
            return None
        node = None
        if isinstance(root, MappingNode) and len(root.value) == 1:
            node = root.value[0][1]
        elif isinstance(root, SequenceNode) and len(root.value) == 1:
            node = root.value[0]
        if not isinstance(node, ScalarNode):
            return None
        # As visit._image_ref takes it: a string, or a custom tag (a string to kubectl).
        if node.tag != _STR_TAG and node.tag.startswith(_CORE_TAG):
            return None
        read.add(str(node.value))
    return read.pop() if len(read) == 1 else None


def _fail(doc: Document, problem: str) -> NoReturn:
    raise RewriterError(f"{doc.where()}: internal error: {problem}")
