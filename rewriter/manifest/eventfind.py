"""The finder for big documents: read from libyaml's events, never composed whole.

A composed tree costs ~35 times its text: a Pod of 200,000 containers (10 MiB) took
~500 MiB. Here the events go by one at a time and two things are kept:

- a pruned tree of real nodes, just what the finder's other readers need: the fields
  that say which object it is (`apiVersion`, `kind`, `metadata`'s names and
  annotations), and every mapping on a pod spec path of the field table (for any kind:
  the kind may come last) with its first key, the keys that make it a pod spec and its
  whole `imagePullSecrets`. `document._resource`, `fields.follow` and `edit`'s pull
  secret entry then work on it unchanged;
- the image scalars under those pod specs (`containers[*].image` and the rest of
  fields.POD_SPEC_IMAGES) as positions in compact arrays, not nodes.

Every event is still looked at: the count (for the check of the edits,
rewriter/manifest/splicecheck.py) and the duplicate-key check cover the whole document. What the
pruned tree cannot show exactly makes `read` answer None, and the caller composes the
document as before: anchors, aliases, tags, merge keys, keys that are collections, a
duplicate key or a syntax error (composing reports them), `*List` kinds, Secrets and
ConfigMaps, custom resource image fields and RELATED_IMAGE_ values.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yaml import YAMLError
from yaml._yaml import CParser
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.manifest.document import MAP_TAG as _MAP
from rewriter.manifest.document import MERGE_TAG, PLAIN
from rewriter.manifest.document import SEQ_TAG as _SEQ
from rewriter.manifest.document import STR_TAG as _STR
from rewriter.manifest.fields import POD_SPEC_CONTAINERS, POD_SPEC_IMAGES, FieldTable
from rewriter.manifest.fields import Path as FieldPath

_IDENTITY: tuple[FieldPath, ...] = (
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "generateName"),
    ("metadata", "namespace"),
    ("metadata", "annotations"),
    ("metadata", "labels"),
)
_PULL_SECRETS = "imagePullSecrets"


class Unreadable(Exception):
    """The events show something the pruned tree cannot stand for: compose instead."""


@dataclass(slots=True)
class Images:
    """The image scalars found under one pod spec at one of POD_SPEC_IMAGES, in text
    order: their spans, lines, list indexes, texts and styles."""

    starts: array[int] = field(default_factory=lambda: array("q"))
    ends: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    indexes: array[int] = field(default_factory=lambda: array("q"))  # in the list
    values: list[str] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)
    plain: list[bool] = field(default_factory=list)  # plain and untagged: resolved lazily
    pool: dict[str, str] = field(default_factory=dict)  # one copy of each image text

    def node(self, at: int) -> ScalarNode:
        """The scalar as a composer would have made it (marks without columns)."""
        value = self.values[at]
        tag = (MERGE_TAG if value == "<<" else PLAIN) if self.plain[at] else _STR
        start = _mark(self.starts[at], self.lines[at])
        end = _mark(self.ends[at], self.lines[at])
        return ScalarNode(tag, value, start, end, self.styles[at])


@dataclass(slots=True)
class Read:
    """A document as the events showed it: the pruned tree, the images by pod spec path
    and image path (an index into POD_SPEC_IMAGES), and the number of events."""

    root: MappingNode
    images: dict[tuple[str, int], Images]
    events: int


class _Frame:
    """A collection being read."""

    __slots__ = ("entries", "gpath", "item", "key", "keys", "node", "path")

    def __init__(
        self, mapping: bool, gpath: FieldPath | None, path: str, node: Node | None, item: int
    ) -> None:
        self.keys: set[str] | None = set() if mapping else None  # None: a sequence
        self.gpath = gpath  # the path with `[*]` for items; None off the tracked paths
        self.path = path  # the field path as fields.format_path writes it
        self.node = node  # the pruned tree's node, when kept
        self.item = item  # the index of the nearest list item on the path
        self.key: ScalarNode | None = None  # a mapping's key whose value comes next
        self.entries = 0  # entries or items read so far


class _Paths:
    """What each generic path (`[*]` for items) means to the finder, for one table."""

    def __init__(self, table: FieldTable) -> None:
        specs = {f.path for f in table.pod_specs}
        self.specs = specs
        # A pod spec's keys kept with a placeholder: those that make it one.
        self.markers = {(*s, key) for s in specs for key in POD_SPEC_CONTAINERS}
        self.captured = set(_IDENTITY) | {(*s, _PULL_SECRETS) for s in specs}
        self.images: dict[FieldPath, list[tuple[int, int]]] = {}
        for s in specs:
            for i, image in enumerate(POD_SPEC_IMAGES):
                self.images.setdefault((*s, *image), []).append((len(s), i))
        kept: set[FieldPath] = set()
        for path in (*self.captured, *specs):
            kept.update(path[:n] for n in range(len(path) + 1))
        self.kept = kept  # collections kept in the pruned tree
        tracked = set(kept)
        for path in self.images:
            tracked.update(path[:n] for n in range(len(path)))
        self.tracked = tracked  # collections followed (kept or leading to images)


def read(data: bytes, table: FieldTable) -> Read | None:
    """The pruned tree and images of one ASCII document (positions are character
    offsets only then); None when it must be composed (see the module's docstring)."""
    try:
        return _read(data, _Paths(table))
    except (Unreadable, YAMLError):
        return None


def _read(data: bytes, paths: _Paths) -> Read:
    parser = CParser(data)
    stack: list[_Frame] = []
    capture: list[Node] = []  # the collections of a subtree kept whole, innermost last
    images: dict[tuple[str, int], Images] = {}
    root: MappingNode | None = None
    events = 0
    documents = 0
    try:
        while True:
            event = parser.get_event()
            if event is None:
                break
            events += 1
            if isinstance(event, CollectionEndEvent):
                frame = stack.pop()
                if frame.node is not None:
                    frame.node.end_mark = event.end_mark
                    if capture and capture[-1] is frame.node:
                        capture.pop()
                continue
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise Unreadable
                continue
            if not isinstance(event, NodeEvent):
                continue  # stream start and end, document end
            if isinstance(event, AliasEvent):
                raise Unreadable
            assert isinstance(event, (ScalarEvent, CollectionStartEvent))
            if event.anchor is not None or event.tag is not None:
                raise Unreadable
            if not stack:  # the root
                if not isinstance(event, MappingStartEvent):
                    raise Unreadable
                root = MappingNode(_MAP, [], *_marks(event), event.flow_style)
                stack.append(_Frame(True, (), "", root, 0))
                continue
            parent = stack[-1]
            keys = parent.keys
            if keys is not None and parent.key is None:  # a key
                if not isinstance(event, ScalarEvent):
                    raise Unreadable  # a collection as a key
                name = event.value
                if name in keys or (name == "<<" and event.implicit[0]):
                    raise Unreadable  # a duplicate (composing reports it) or a merge
                keys.add(name)
                parent.key = _scalar(event)
                continue
            # A value or an item: where is it?
            key = parent.key
            item = parent.item
            if key is not None:
                parent.key = None
                name = str(key.value)
                gpath = (*parent.gpath, name) if parent.gpath is not None else None
                path = f"{parent.path}.{name}" if parent.path else name
            else:
                item = parent.entries
                gpath = (*parent.gpath, "[*]") if parent.gpath is not None else None
                path = f"{parent.path}[{item}]"
            collection = isinstance(event, (MappingStartEvent, SequenceStartEvent))
            node: Node | None = None
            if capture or gpath in paths.captured or (collection and gpath in paths.kept):
                node = _node(event)
            elif not collection and gpath in paths.images:
                assert gpath is not None and isinstance(event, ScalarEvent)
                for depth, which in paths.images[gpath]:
                    spec = stack[depth].path
                    found = images.get((spec, which))
                    if found is None:
                        found = images[(spec, which)] = Images()
                    _note_image(found, event, item)
            if parent.node is not None:
                _attach(parent, key, node, event, gpath in paths.markers)
            parent.entries += 1
            if collection:
                if node is not None and (capture or gpath in paths.captured):
                    capture.append(node)
                followed = node is not None or gpath in paths.tracked
                mapping = isinstance(event, MappingStartEvent)
                stack.append(_Frame(mapping, gpath if followed else None, path, node, item))
    finally:
        parser.dispose()
    if root is None or stack:
        raise Unreadable
    return Read(root, images, events)


def _note_image(found: Images, event: ScalarEvent, item: int) -> None:
    start, end = event.start_mark, event.end_mark
    assert start is not None and end is not None
    if start.line != end.line:
        raise Unreadable  # a scalar over several lines: read in its context only
    found.starts.append(start.index)
    found.ends.append(end.index)
    found.lines.append(start.line)
    found.indexes.append(item)
    found.values.append(found.pool.setdefault(event.value, event.value))
    found.styles.append(event.style)
    found.plain.append(bool(event.implicit[0]))


def _scalar(event: ScalarEvent) -> ScalarNode:
    tag = (MERGE_TAG if event.value == "<<" else PLAIN) if event.implicit[0] else _STR
    return ScalarNode(tag, event.value, *_marks(event), event.style)


def _node(event: NodeEvent) -> Node:
    if isinstance(event, ScalarEvent):
        return _scalar(event)
    if isinstance(event, MappingStartEvent):
        return MappingNode(_MAP, [], *_marks(event), event.flow_style)
    assert isinstance(event, SequenceStartEvent)
    return SequenceNode(_SEQ, [], *_marks(event), event.flow_style)


def _attach(
    parent: _Frame, key: ScalarNode | None, node: Node | None, event: NodeEvent, marker: bool
) -> None:
    """Add a node to its kept parent: every item of a kept list (indexes must match);
    in a kept mapping, the kept entries, its first entry (edit.py inserts before it)
    and the keys that make a pod spec one, the last two with a placeholder value when
    not kept themselves."""
    holder = parent.node
    if isinstance(holder, SequenceNode):
        holder.value.append(node if node is not None else _placeholder(event))
    elif node is not None or parent.entries == 0 or marker:
        assert isinstance(holder, MappingNode) and key is not None
        holder.value.append((key, node if node is not None else _placeholder(event)))


def _placeholder(event: NodeEvent) -> ScalarNode:
    """A value the pruned tree does not hold (never read: only its key is)."""
    start = _marks(event)[0]
    return ScalarNode(_STR, "", start, start)


def _marks(event: Event) -> tuple[Any, Any]:
    """An event's marks: libyaml's own Mark class, which nodes hold as the composer's."""
    return event.start_mark, event.end_mark


def _mark(index: int, line: int) -> Any:
    return Mark("", index, line, 0, None, None)  # type: ignore[arg-type]


def pod_spec_images(read: Read, spec_path: str) -> Iterator[tuple[int, Images]]:
    """The images under the pod spec at `spec_path`, by POD_SPEC_IMAGES order."""
    for which in range(len(POD_SPEC_IMAGES)):
        found = read.images.get((spec_path, which))
        if found is not None:
            yield which, found
