"""One parsed document: its text, its node tree with positions, and who it is.

Documents are composed (nodes, not Python values) so that nothing is converted: a
timestamp stays the text it was, and every node keeps the character offsets that let the
editor change one scalar without touching the bytes around it.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import yaml
from yaml._yaml import CParser
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from rewriter.errors import RewriterError
from rewriter.manifest.stream import Chunk, check_depth, yaml_error

MERGE_TAG = "tag:yaml.org,2002:merge"
# One physical step: a collection and the index of an entry (a mapping's value) or item
# in its `value` list. A route from the document root follows the text, not the
# decoded object: through aliases and into the maps a `<<` merges.
Step = tuple[Node, int]
Route = tuple[Step, ...]


Reading = tuple[str | None, ...]  # a field as the check of edits reads it: see reading()


@dataclass(slots=True)
class Resource:
    """A Kubernetes object inside a document: the document root, or an item of a `*List`.

    Not frozen: a render drops `node` once the document has been visited (render.find_and_decide),
    keeping only what the rewrite needs: names, annotations and the identity fields.
    """

    node: MappingNode | None
    api_version: str
    kind: str
    name: str
    namespace: str | None
    path: str  # '' for the root, 'items[3]' for a list item: prefixes field paths in messages
    # apiVersion, kind and metadata.namespace as the check of edited documents reads them
    identity: tuple[Reading, Reading, Reading] = ((), (), ())
    annotations: dict[str, str] | None = None  # annotations_of(), kept when `node` goes

    def label(self) -> str:
        """`Kind ns/name` as in kubectl's output, for messages."""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '?'} {name or '?'}"


@dataclass(slots=True)
class Document:
    chunk: Chunk
    text: str
    root: Node | None
    line_break: str  # '\r\n' when the document uses it, so inserted lines match
    # Whether the text has an anchor: only then can one node be read at two places, and
    # only then do edits need the alias bookkeeping of edit.py.
    shared: bool = field(default=False)
    # Whether the tree (and the text) were let go after the document was visited: the
    # rewrite then works from positions (plan.Site) and decodes the chunk again.
    released: bool = field(default=False)
    list_items: int | None = None  # the number of `items` of a List, kept on release
    # How many events libyaml's parser gives for the text (stream and document markers
    # included): the check of a released document's edits (rewriter/manifest/splicecheck.py)
    # counts them again. None with anchors or complex keys, which are checked otherwise.
    events: int | None = None

    @property
    def index(self) -> int:
        return self.chunk.index

    def resources(self) -> Iterator[Resource]:
        """The root object, or each item of a `List`/`*List` document."""
        if not isinstance(self.root, MappingNode):
            return
        kind_node = get(self.root, "kind")
        items = get(self.root, "items") if (scalar(kind_node) or "").endswith("List") else None
        if isinstance(items, SequenceNode):
            self.list_items = len(items.value)  # kept by release()
            for i, item in enumerate(items.value):
                if isinstance(item, MappingNode):
                    yield _resource(item, f"items[{i}]")
        else:
            yield _resource(self.root, "", kind_node)

    def plain(self) -> bool:
        """Whether the tree reads as written: no anchors, merge keys or complex keys, so
        each mapping's entries are its keys, each a scalar, each once (duplicates are
        refused), and a key can be found in one pass over them rather than by `get`."""
        return self.events is not None and "<<" not in self.text

    def release(self) -> None:
        """Let go of the tree and the text (the chunk keeps the bytes); `list_items`,
        set by resources(), stays."""
        self.root, self.text, self.released = None, "", True

    def forget_input(self) -> None:
        """Let go of the input bytes of a released document once its edited text is made:
        on a stream of small workloads, the input and the output together were a third of
        the render's memory. (A plan is rewritten once; messages need only the numbers.)"""
        self.chunk.data = b""

    def where(
        self, resource: Resource | None = None, node: Node | None = None, line: int | None = None
    ) -> str:
        """`document 3 (Deployment ns/web, line 42)` for messages (`b.yaml: document 3
        (...)` with several input files); `line` in the document (0-based) when the node
        is gone."""
        parts = []
        if resource is not None:
            parts.append(resource.label())
        if node is not None:
            line = node.start_mark.line
        if line is not None:
            parts.append(f"line {self.chunk.line(line)}")
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{self.chunk.name()}{detail}"


def parse(chunk: Chunk, lazy_tags: bool = False) -> Document:
    """Compose one chunk; errors name the document and line.

    `lazy_tags`: plain scalars are tagged PLAIN rather than resolved (see _LazyComposer),
    for a tree read only through scalar() and tag_of(); documents with anchors are
    resolved in full all the same (edit.py's writer reads their tags)."""
    try:
        text = chunk.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = chunk.data[: exc.start].count(b"\n")
        raise RewriterError(f"{chunk.where(line)}: invalid UTF-8") from None
    check_depth(chunk)
    try:
        # compose, not load: no value is constructed, so nothing can change type, and an
        # alias is one shared node instead of an expanded copy (no billion laughs).
        shared = _has_anchor(text)
        root = compose(text, lazy=lazy_tags and not shared)
    except yaml.YAMLError as exc:
        raise yaml_error(chunk, exc) from None
    if shared:
        _refuse_cycles(chunk, root)
    events = _refuse_duplicate_keys(chunk, root, shared)
    return Document(chunk, text, root, line_break_of(text), shared, events=events)


def line_break_of(text: str) -> str:
    """The line break a document's inserted lines use: CRLF when the document has one."""
    return "\r\n" if "\r\n" in text else "\n"


# CSafeLoader's table (a class attribute): first character -> [(tag, pattern)]
_IMPLICIT: dict[str | None, list[tuple[str, re.Pattern[str]]]] = Resolver.yaml_implicit_resolvers
_ANY_FIRST = _IMPLICIT.get(None, [])
# The core tags a composer gives (shared with eventfind, which builds nodes of its own).
STR_TAG, SEQ_TAG, MAP_TAG = (f"tag:yaml.org,2002:{name}" for name in ("str", "seq", "map"))
_STR, _SEQ, _MAP = STR_TAG, SEQ_TAG, MAP_TAG


class _Composer(CParser):
    """libyaml's composer with CSafeLoader's tag resolution, without its Python layers.

    `yaml.compose(text, Loader=CSafeLoader)` builds a loader (constructor and resolver
    state) per document and resolves every node through generic Python methods: on a
    stream of small workloads that was ~5 times the cost of the composing itself.
    `resolve` below gives the same tags (the same table, in the same order); there are
    no path resolvers in a safe loader, so descending and ascending do nothing.

    The composer calls both for every node: as builtins that ignore their arguments
    (`operator.is_` takes the two, `tuple` none) each call costs no Python frame, where
    a method doing `pass` cost ~5% of the composing.
    """

    descend_resolver = staticmethod(operator.is_)
    ascend_resolver = staticmethod(tuple)

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _implicit_tag(value) if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP


class _ShapeComposer(_Composer):
    """A composer that resolves only merge keys: every other plain scalar gets the str
    tag. For reading an edited document back (readback.verify), which compares scalars by
    their text and needs `<<` to follow merges, not what type a value would load as;
    matching each plain scalar against the resolver's patterns was a fifth of the cost."""

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return MERGE_TAG if implicit[0] and value == "<<" else _STR
        return _SEQ if kind is SequenceNode else _MAP


# The tag _LazyComposer gives a plain scalar without a tag: resolved only when read.
PLAIN = "tag:rewriter,2026:plain"
_NULL = "tag:yaml.org,2002:null"


class _LazyComposer(_Composer):
    """A composer that leaves plain scalars unresolved (tagged PLAIN) but for merge keys.

    A workload's tree is read at a handful of scalars (kind, names, images), and
    matching each of its scalars against the resolver's patterns was a fifth of the
    composing. scalar() and tag_of() resolve the few that are read; quoted and
    explicitly tagged scalars get their tags as before."""

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                return MERGE_TAG if value == "<<" else PLAIN
            return _STR
        return _SEQ if kind is SequenceNode else _MAP


def tag_of(node: Node) -> str:
    """A node's tag as CSafeLoader resolves it, whichever composer made the node."""
    if node.tag != PLAIN:
        return str(node.tag)
    return _implicit_tag(str(node.value))


def _implicit_tag(value: str) -> str:
    """The tag CSafeLoader's resolver gives a plain scalar: the same table, in the same
    order (by first character, then the patterns for any); str when none matches."""
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            return tag
    for tag, regexp in _ANY_FIRST:
        if regexp.match(value):
            return tag
    return _STR


def compose(text: str, shape_only: bool = False, lazy: bool = False) -> Node | None:
    """The node tree of one YAML document, as `yaml.compose(text, Loader=CSafeLoader)`;
    with `shape_only`, scalars tagged str but for merge keys (see _ShapeComposer); with
    `lazy`, plain ones tagged PLAIN (see _LazyComposer)."""
    kind = _ShapeComposer if shape_only else _LazyComposer if lazy else _Composer
    composer = kind(text)
    try:
        return composer.get_single_node()
    finally:
        composer.dispose()


def _has_anchor(text: str) -> bool:
    """Whether the text writes an anchor: `&` at the start of a node, after a blank or a
    flow indicator (`a&b` inside a URL is none). Cheap, so that documents without
    anchors (nearly all) never pay for the alias bookkeeping; `&` itself is rare."""
    at = text.find("&")
    while at >= 0:
        before = text[at - 1] if at else " "
        after = text[at + 1 : at + 2]
        if before in " \t\r\n,[{" and after and after not in " \t\r\n,[]{}":
            return True
        at = text.find("&", at + 1)
    return False


def _refuse_duplicate_keys(chunk: Chunk, root: Node | None, shared: bool = True) -> int | None:
    """YAML forbids them, and consumers disagree on which one wins: rewriting the first
    `image` while the cluster reads the second would leak a private image unproxied.

    A key given explicitly and also by a `<<` merge is no duplicate when it follows the
    merge: every reader takes the explicit one. Before the merge, readers disagree
    (kubectl, whose go-yaml v2 lets the later `<<` overwrite it, against kustomize's
    yaml.v3 and the YAML merge spec, where the explicit key wins), so that is refused too.

    `shared`: the text has anchors, so the walk may meet a node twice (only then is the
    bookkeeping of nodes seen needed). Only collections are stacked: scalars hold no keys.

    Returns the number of parser events the tree stands for (see Document.events), which
    the walk counts for free: None when `shared` or a key is a collection (an alias is
    one event for a whole subtree; a complex key is never walked).
    """
    stack = [root]
    seen: set[int] = set()
    # Stream start and end, document start and end; then each scalar, and each
    # collection's start and end.
    events: int | None = 4
    scalars = 0
    while stack:
        node = stack.pop()
        if node is None:
            events = None  # an empty document: never edited
            continue
        if shared:
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, MappingNode):
            keys: dict[str, Node] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if key.tag == MERGE_TAG:
                        _check_merge(chunk, key, value, keys)
                    if key.value in keys:
                        raise RewriterError(
                            f"{chunk.where(key.start_mark.line)}: duplicate key {key.value!r}"
                        )
                    keys[key.value] = key
                    scalars += 1
                else:
                    events = None
                if isinstance(value, ScalarNode):
                    scalars += 1
                else:
                    stack.append(value)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                if isinstance(item, ScalarNode):
                    scalars += 1
                else:
                    stack.append(item)
        else:
            scalars += 1  # a scalar document
            continue
        if events is not None:
            events += 2
    return None if shared or events is None else events + scalars


def _check_merge(chunk: Chunk, key: ScalarNode, value: Node, before: dict[str, Node]) -> None:
    """A `<<` needs a mapping or a list of mappings (kubectl refuses anything else), and
    must not supply a key given explicitly before it (see _refuse_duplicate_keys)."""
    maps = value.value if isinstance(value, SequenceNode) else [value]
    if not maps or not all(isinstance(m, MappingNode) for m in maps):
        raise RewriterError(
            f"{chunk.where(key.start_mark.line)}: a merge key `<<` needs a mapping or a "
            "list of mappings"
        )
    for merged in maps:
        for merged_key, _ in items(cast(MappingNode, merged)):
            name = scalar(merged_key)
            if name is not None and name in before:
                line = before[name].start_mark.line
                raise RewriterError(
                    f"{chunk.where(line)}: key {name!r} is given before a `<<` merge that "
                    "also supplies it, and YAML readers disagree on which one wins "
                    "(kubectl takes the merged one); put the key after the `<<`"
                )


def _refuse_cycles(chunk: Chunk, root: Node | None) -> None:
    """An alias inside its own anchor (`&a [*a]`) composes into a cycle; kubectl refuses
    it, and following it would never end."""
    on_path: set[int] = set()
    done: set[int] = set()
    # Iterative depth-first search: (node, children left to visit).
    stack: list[tuple[Node, Iterator[Node]]] = []

    def children(node: Node) -> Iterator[Node]:
        if isinstance(node, MappingNode):
            for _, value in node.value:
                yield value
        elif isinstance(node, SequenceNode):
            yield from node.value

    if root is None:
        return
    stack.append((root, children(root)))
    on_path.add(id(root))
    while stack:
        node, rest = stack[-1]
        child = next(rest, None)
        if child is None:
            stack.pop()
            on_path.discard(id(node))
            done.add(id(node))
        elif id(child) in on_path:
            raise RewriterError(
                f"{chunk.where(child.start_mark.line)}: an anchor is used inside itself"
            )
        elif id(child) not in done:
            on_path.add(id(child))
            stack.append((child, children(child)))


def get(node: Node | None, key: str) -> Node | None:
    """The value under `key` in a mapping node as kubectl reads it, or None.

    Keys a `<<` merges count; an explicit key wins over them (one before the merge is
    refused at parse time), and in `<<: [*a, *b]` the earlier map wins.
    """
    if isinstance(node, MappingNode):
        # The hot path of the finder: a plain scan, merges looked for only on a miss.
        # (A non-scalar key's value is a list, never equal; `key` is never "<<".)
        entries: list[tuple[Node, Node]] = node.value  # (no cast(): a call per lookup)
        for k, v in entries:
            if k.value == key:
                return v
        for k, _ in entries:
            if k.tag == MERGE_TAG:
                found = entry(node, key)
                return found[1] if found else None
    return None


def entry(node: MappingNode, key: str) -> tuple[Route, Node] | None:
    """Where `key` of a mapping lives in the text: the steps from `node` to its value
    (through `<<` merges) and the value. The one place merge keys are resolved."""
    merge: tuple[int, Node] | None = None
    for i, (k, v) in enumerate(node.value):
        if isinstance(k, ScalarNode):
            if k.tag == MERGE_TAG:
                merge = (i, v)
            elif k.value == key:
                return ((node, i),), v
    if merge is None:
        return None
    i, value = merge
    if isinstance(value, MappingNode):
        found = entry(value, key)
        return (((node, i), *found[0]), found[1]) if found else None
    if isinstance(value, SequenceNode):
        for j, merged in enumerate(value.value):
            found = entry(merged, key) if isinstance(merged, MappingNode) else None
            if found:
                return (((node, i), (value, j), *found[0]), found[1])
    return None


def items(node: MappingNode) -> list[tuple[Node, Node]]:
    """The entries of a mapping as kubectl reads them: explicit keys, then the keys the
    merges add that are not given explicitly (the earlier merged map winning)."""
    if not any(k.tag == MERGE_TAG for k, _ in node.value):
        return cast(list[tuple[Node, Node]], node.value)
    explicit = [(k, v) for k, v in node.value if k.tag != MERGE_TAG]
    names = {scalar(k) for k, _ in explicit}
    result = list(explicit)
    for k, v in node.value:
        if k.tag != MERGE_TAG:
            continue
        maps = v.value if isinstance(v, SequenceNode) else [v]
        for merged in maps:
            if isinstance(merged, MappingNode):
                for mk, mv in items(merged):
                    if scalar(mk) not in names:
                        names.add(scalar(mk))
                        result.append((mk, mv))
    return result


def route(root: Node | None, path: str) -> Route | None:
    """The physical steps to the node at a logical field path (`items[1].spec.x[0].y`)."""
    steps: list[Step] = []
    node = root
    for name, index in _PATH_TOKEN.findall(path):
        if name:
            found = entry(node, name) if isinstance(node, MappingNode) else None
            if found is None:
                return None
            steps.extend(found[0])
            node = found[1]
        else:
            if not isinstance(node, SequenceNode) or int(index) >= len(node.value):
                return None
            steps.append((node, int(index)))
            node = node.value[int(index)]
    return tuple(steps)


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def scalar(node: Node | None) -> str | None:
    """A scalar node's text; None for anything else (maps, lists, absent, null)."""
    if isinstance(node, ScalarNode) and node.tag != _NULL:
        if node.tag == PLAIN and node.value in _NULLS:
            return None
        return str(node.value)
    return None


# The plain scalars CSafeLoader resolves to null (its pattern, spelled out).
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))


def get_path(node: Node | None, *keys: str) -> Node | None:
    for key in keys:
        node = get(node, key)
    return node


def annotations_of(resource: Resource) -> dict[str, str]:
    if resource.node is None:  # released: what was read before
        return resource.annotations or {}
    found = get_path(resource.node, "metadata", "annotations")
    result: dict[str, str] = {}
    if isinstance(found, MappingNode):
        for k, v in items(found):
            key, value = scalar(k), scalar(v)
            if key is not None and value is not None:
                result[key] = value
    return result


def reading(node: Node | None) -> Reading:
    """A node as readback.read_fields reports it: (text,) for a scalar, (None,) for a
    collection, () when absent."""
    if node is None:
        return ()
    return (str(node.value),) if isinstance(node, ScalarNode) else (None,)


def _resource(node: MappingNode, path: str, kind: Node | None = None) -> Resource:
    """The object at `node`; `kind`: its `kind` node when the caller has read it."""
    meta = get(node, "metadata")
    api_version, namespace = get(node, "apiVersion"), get(meta, "namespace")
    if kind is None:
        kind = get(node, "kind")
    return Resource(
        node=node,
        api_version=scalar(api_version) or "",
        kind=scalar(kind) or "",
        name=scalar(get(meta, "name")) or scalar(get(meta, "generateName")) or "",
        namespace=scalar(namespace) or None,
        path=path,
        identity=(reading(api_version), reading(kind), reading(namespace)),
    )


_FIELD_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_at(root: Node | None, path: str) -> Node | None:
    """The node at a field path as the finder writes it (`items[1].spec.containers[0].image`)."""
    node = root
    for name, index in _steps(path):
        if name:
            node = get(node, name)
        elif isinstance(node, SequenceNode) and index < len(node.value):
            node = node.value[index]
        else:
            return None
    return node


@functools.lru_cache(maxsize=4096)  # every Pod of a chart has the same few paths
def _steps(path: str) -> tuple[tuple[str, int], ...]:
    return tuple((name, int(index or 0)) for name, index in _FIELD_STEP.findall(path))
