"""Read an edited document back and check it (`verify`): where the check from the splices
(splicecheck.py) cannot read a scalar on its own (anchors, `--annotate`, images over
several lines), the edited text must still be YAML, and each image and each field that
says which object it is must read as decided at the same field path.

Fields are read from libyaml's events, in constant memory, from READBACK_SIZE on
(`read_fields`). Composing the edited text builds a node tree of ~35 times the text (a 10 MiB
Pod: ~350 MiB) next to the plan's own tree of the same document. Here libyaml's events
go by one at a time and only the scalars at the wanted paths are kept: what grows with
the document is the parse time, not the memory.

Only what the event stream shows without resolving is read this way. An alias or a
`<<` merge on the way to a wanted field means the field may read as another node's
value; the reader then answers None and the caller composes instead (documents with
anchors are the rare case, and the tree composes what kubectl reads).
"""

from __future__ import annotations

from collections.abc import Collection

from yaml import events
from yaml._yaml import CParser
from yaml.composer import ComposerError
from yaml.error import YAMLError
from yaml.nodes import Node, ScalarNode

from rewriter.errors import RewriterError
from rewriter.manifest.document import MERGE_TAG, Document, compose, field_at

_NOT_A_NAME = frozenset(".[]")  # a key with these could spell another field's path

_STARTS = (events.MappingStartEvent, events.SequenceStartEvent)
_ENDS = (events.MappingEndEvent, events.SequenceEndEvent)


class _Frame:
    """A mapping or sequence on a wanted path, being read."""

    __slots__ = ("expect_key", "index", "key", "mapping", "path")

    def __init__(self, path: str, mapping: bool) -> None:
        self.path = path
        self.mapping = mapping
        self.key: str | None = None  # the key whose value comes next (mappings)
        self.expect_key = True
        self.index = 0  # the next item's index (sequences)


def read_fields(text: str, paths: Collection[str]) -> dict[str, list[str | None]] | None:
    """What each of `paths` (as `fields.format_path` writes them: `items[1].spec.x[0].y`)
    holds in the single document `text`: every node found there, a scalar's text or None
    for a collection (a path met twice, by a duplicate key, lists both). Paths not in
    the document are absent.

    None when an alias or a merge key lies on the way to a wanted path. Raises
    yaml.YAMLError when the text is not one well-formed YAML document, as compose would.
    """
    wanted = set(paths)
    # Every collection on the way to a wanted path is followed; any other is skipped.
    prefixes = {""}
    for field in wanted:
        for at, char in enumerate(field):
            if char in ".[":
                prefixes.add(field[:at])
    found: dict[str, list[str | None]] = {}
    stack: list[_Frame] = []
    skip = 0  # depth inside a collection nobody asked about
    documents = 0
    parser = CParser(text)
    try:
        while True:
            event = parser.get_event()
            if skip:
                if isinstance(event, _STARTS):
                    skip += 1
                elif isinstance(event, _ENDS):
                    skip -= 1
                continue
            if isinstance(event, _ENDS):
                stack.pop()
                continue
            if isinstance(event, events.StreamEndEvent):
                return found
            if isinstance(event, events.DocumentStartEvent):
                documents += 1
                if documents > 1:  # as compose() refuses it
                    raise ComposerError(
                        "expected a single document in the stream",
                        None,
                        "but found another document",
                    )
                continue
            if not isinstance(event, events.NodeEvent):
                continue  # stream start, document end
            # A node: where is it?
            path: str | None = ""
            if stack:
                frame = stack[-1]
                if frame.mapping and frame.expect_key:
                    frame.expect_key = False
                    if isinstance(event, events.AliasEvent):
                        return None  # an aliased key: its text is elsewhere
                    if isinstance(event, events.ScalarEvent):
                        key = str(event.value)
                        if key == "<<" or event.tag == MERGE_TAG:
                            return None  # the merged map may supply wanted keys
                        frame.key = None if _NOT_A_NAME.intersection(key) else key
                    else:
                        frame.key = None  # a collection as a key: not a field name
                        skip = 1
                    continue
                if frame.mapping:
                    frame.expect_key = True
                    if frame.key is None:
                        path = None
                    else:
                        path = f"{frame.path}.{frame.key}" if frame.path else frame.key
                else:
                    path = f"{frame.path}[{frame.index}]"
                    frame.index += 1
            if isinstance(event, events.ScalarEvent):
                if path in wanted:
                    found.setdefault(path, []).append(str(event.value))
            elif isinstance(event, events.AliasEvent):
                if path in wanted or path in prefixes:
                    return None
            else:  # a collection starts
                if path in wanted:
                    found.setdefault(path, []).append(None)
                if path is not None and path in prefixes:
                    stack.append(_Frame(path, isinstance(event, events.MappingStartEvent)))
                else:
                    skip = 1
    finally:
        parser.dispose()


# Edited documents from this many characters on are checked from libyaml's events
# (read_fields) instead of being composed again: the tree of a 10 MiB Pod held
# ~350 MiB on top of the plan's own. Smaller ones compose faster than Python can follow
# events, and their trees are small.
READBACK_SIZE = 1 << 18


def verify(
    doc: Document,
    text: str,
    expected: list[tuple[str, str]],
    identity: dict[str, list[str | None]],
) -> None:
    """Re-parse an edited document and check every image reads as decided.

    A safety net for the text surgery: a bug there becomes an error, never a broken or
    silently different manifest in someone's cluster. What the guarantee needs: the
    edited text is one YAML document; it holds the same objects (`identity`: the fields
    that say which object each resource is, and no new List item, by field path), which
    decide what the finder reads; and each image found before reads as decided at its
    field path (`expected`). Paths are followed directly, not found again by walking the
    field tables over every resource (that walk cost as much as the compose on dense
    streams).
    """
    paths = [path for path, _ in expected] + list(identity)
    try:
        read = read_fields(text, paths) if len(text) >= READBACK_SIZE else None
        if read is None:
            root = compose(text, shape_only=True)
            read = {path: _reading(field_at(root, path)) for path in paths}
    except YAMLError as exc:
        raise RewriterError(
            f"{doc.where()}: internal error: edit broke the document: {exc}"
        ) from None
    for path, was in identity.items():
        if read.get(path, []) != was:
            raise RewriterError(
                f"{doc.where()}: internal error: {path or 'the document'} reads"
                f" {read.get(path, [])!r} after the edit, was {was!r}"
            )
    for path, value in expected:
        actual = read.get(path, [])
        if actual != [value]:
            shown = actual[0] if len(actual) == 1 else (actual or None)
            raise RewriterError(
                f"{doc.where()}: internal error: {path} reads {shown!r} "
                f"after the edit, expected {value!r}"
            )


def _reading(node: Node | None) -> list[str | None]:
    """A node as readback.read_fields reports it: [text] for a scalar, [None] for a
    collection, [] when absent."""
    if node is None:
        return []
    return [str(node.value)] if isinstance(node, ScalarNode) else [None]
