"""Surgical edits to a document's text, located by the node positions from the parser.

Re-serializing a document would change what the user wrote (quotes, key order, comments,
`0755`, long strings); editing the characters of one scalar, or inserting one key, keeps
everything else byte for byte. Every edit is a (start, end, text) splice on the
document's text; they are applied together from the end so offsets stay valid.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import yaml
from yaml._yaml import CParser
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.errors import RewriterError
from rewriter.manifest.document import MERGE_TAG, Document, Route, entry, get


# Hashable and never changed, but not frozen: a frozen __init__ sets each field through
# object.__setattr__, four times the cost, and a render makes two per workload.
@dataclass(slots=True, order=True, unsafe_hash=True)
class Splice:
    start: int
    end: int
    text: str
    # How many parser events the splice adds to the document (an inserted pull secret
    # entry: 4 or 7; a replaced scalar: 0): the check of edited documents
    # (rewriter/manifest/splicecheck.py) expects the edited text to have exactly that many more.
    events: int = 0


def replace_scalar(
    doc: Document, node: ScalarNode, value: str, quoted: str | None = None
) -> Splice:
    """Write `value` in place of a scalar, in the same style when it is safe."""
    start, end = node.start_mark.index, node.end_mark.index
    return replace_span(doc.text, start, end, node.style, str(node.value), value, quoted)


def replace_span(
    text: str,
    start: int,
    end: int,
    style: str | None,
    written: str,
    value: str,
    quoted: str | None = None,
) -> Splice:
    """`replace_scalar` from the scalar's span, style and value, for documents whose
    tree is gone (plan.Site).

    An image reference (no blanks, quotes, `#` or backslashes) is a valid plain, single-
    or double-quoted scalar as it stands; any other value comes with its `quoted` form,
    written in place of the whole scalar.
    """
    raw = text[start:end]
    if quoted is not None:
        return Splice(start + properties_length(raw), start + len(raw.rstrip()), quoted)
    if style in (None, "") and raw.endswith(written) and "\n" not in raw:
        # Plain: the value is the tail of the span (anchors or tags may come first).
        return Splice(end - len(written), end, value)
    if style in ("'", '"') and raw.endswith(style):
        opening = raw.index(style)
        inner = raw[opening + 1 : -1]
        if inner == written:
            return Splice(start + opening + 1, end - 1, value)
    # Escapes, block scalars, folded lines: write a double-quoted scalar instead, valid in
    # any context. The span starts after any anchor or tag, which are kept.
    # A block scalar's span takes in the line breaks after it; they stay.
    props = properties_length(raw)
    return Splice(start + props, start + len(raw.rstrip()), json.dumps(value))


@dataclass(slots=True)  # not frozen: made once per image, and frozen init is slower
class Change:
    """One change to one node, in a form that can be made in place (a splice) or, when
    an alias must be written out, inside the flow-style copy that replaces it."""

    node: Node
    action: str  # "scalar": the value becomes `text`; "prepend": the flow item `text` goes
    # first in a list; "entry": key `key` with the flow value `text` goes first in a
    # mapping (`block` gives the block form); "fill": `text` replaces a value (an empty
    # one, or a collection where a string belongs)
    text: str
    key: str = ""
    quoted: str | None = None  # "scalar": the quoted form when `text` is no image reference
    block: Callable[[str], str] | None = field(default=None, compare=False)


def scalar_change(node: ScalarNode, value: str, quoted: str | None = None) -> Change:
    return Change(node, "scalar", value, quoted=quoted)


def pull_secret_change(holder: MappingNode, key: str, secret: str) -> tuple[Route, Change] | None:
    """Add `{name: secret}` to the list under `key` of `holder`, creating it if needed:
    the change and the steps from `holder` to the node it changes (a `<<` may supply the
    list). None when the list already names the secret (idempotence)."""
    found = entry(holder, key)
    item = _secret_item(secret)
    if found is None:
        return (), Change(holder, "entry", f"[{item}]", key=key, block=_block_item(secret))
    steps, entries = found
    if isinstance(entries, SequenceNode):
        for existing in entries.value:
            name = get(existing, "name")
            if isinstance(name, ScalarNode) and name.value == secret:
                return None
        return steps, Change(entries, "prepend", item, quoted=secret)
    # `imagePullSecrets: null`, `~` or empty (a mapping there is refused by the cluster
    # anyway; it is replaced as a whole, like a null)
    return steps, Change(entries, "fill", f"[{item}]")


@functools.lru_cache(maxsize=16)  # one secret name per render
def _secret_item(secret: str) -> str:
    return f'{{"name": {json.dumps(secret)}}}'


def annotation_change(resource: MappingNode, key: str, value: str) -> tuple[Route, Change] | None:
    """Set `metadata.annotations[key]` to the string `value`; None when already so."""
    found = entry(resource, "metadata")
    if found is None or not isinstance(found[1], MappingNode):
        return None
    steps, metadata = found[0], found[1]
    quoted = json.dumps(value)
    in_metadata = entry(metadata, "annotations")
    if in_metadata is not None and isinstance(in_metadata[1], MappingNode):
        steps, annotations = (*steps, *in_metadata[0]), in_metadata[1]
        current = entry(annotations, key)
        if current is not None and isinstance(current[1], ScalarNode):
            if current[1].value == value:
                return None
            return (*steps, *current[0]), scalar_change(current[1], value, quoted)
        if current is not None:  # a list or mapping there: replaced, never a second key
            return (*steps, *current[0]), Change(current[1], "fill", quoted)
        return steps, Change(annotations, "entry", quoted, key=key, block=lambda _: f" {quoted}")
    flow = f"{{{json.dumps(key)}: {quoted}}}"
    if in_metadata is not None:  # `annotations: null` or empty
        return (*steps, *in_metadata[0]), Change(in_metadata[1], "fill", flow)
    return steps, Change(
        metadata, "entry", flow, key="annotations", block=_block_annotation(key, quoted)
    )


def splice(doc: Document, change: Change) -> Splice:
    """The change made in place, keeping everything around it, with the number of parser
    events it adds (Splice.events): a collection's block form is written to give the
    events of its flow form `change.text`."""
    node = change.node
    if change.action == "scalar":
        assert isinstance(node, ScalarNode)
        return replace_scalar(doc, node, change.text, change.quoted)
    if change.action == "prepend":
        assert isinstance(node, SequenceNode)
        made = _prepend_item(doc, node, change.text, change.quoted or "")
        return Splice(made.start, made.end, made.text, flow_events(change.text))
    if change.action == "entry":
        assert isinstance(node, MappingNode) and change.block is not None
        made = _prepend_entry(doc, node, change.key, change.block, change.text)
        return Splice(made.start, made.end, made.text, 1 + flow_events(change.text))  # 1: key
    # With anchors the node may hold aliases (an alias bomb must not be expanded here);
    # such documents are checked by composing them again, not by counting events.
    events = 0 if doc.shared else flow_events(change.text) - node_events(node)
    made = _fill(doc, node, change)
    return Splice(made.start, made.end, made.text, events)


@functools.lru_cache(maxsize=256)  # the same pull secret entry in every workload
def flow_events(text: str) -> int:
    """The parser events of a flow node written on its own (without the stream's and
    the document's start and end)."""
    return int(CParser(text).raw_parse()) - 4


def node_events(node: Node) -> int:
    """The parser events a node without aliases stands for."""
    if isinstance(node, MappingNode):
        return 2 + sum(node_events(k) + node_events(v) for k, v in node.value)
    if isinstance(node, SequenceNode):
        return 2 + sum(node_events(item) for item in node.value)
    return 1


def _fill(doc: Document, node: Node, change: Change) -> Splice:
    # "fill": the value, empty or not, is replaced from right after its key's `:` (a
    # value on the lines below may stand at the key's own column, as a block list may,
    # where a scalar may not); a blank keeps the `:` ending the key. Trailing line
    # breaks and indentation belong to what follows.
    start, end = _span(doc, node)
    end = start + len(doc.text[start:end].rstrip())
    colon = start
    while colon > 0 and doc.text[colon - 1] in " \t\r\n":
        colon -= 1
    if colon > 0 and doc.text[colon - 1] == ":":
        return Splice(colon, end, f" {change.text}")
    return Splice(start, end, change.text if start < end else f" {change.text}")


def add_pull_secret(doc: Document, holder: MappingNode, key: str, secret: str) -> Splice | None:
    """`pull_secret_change` made in place."""
    if holder.value and not holder.flow_style and entry(holder, key) is None:
        # The common case, a block pod spec without the list: the entry's text depends
        # only on the first key's column (the same in every workload of a chart).
        first_key: Node = holder.value[0][0]
        at = first_key.start_mark.index
        text, events = _new_list(key, secret, first_key.start_mark.column, doc.line_break)
        return Splice(at, at, text, events)
    found = pull_secret_change(holder, key, secret)
    return splice(doc, found[1]) if found else None


@functools.lru_cache(maxsize=256)
def _new_list(key: str, secret: str, column: int, line_break: str) -> tuple[str, int]:
    """The text and events of the splice _prepend_entry makes for a new list of `secret`
    under `key` before a block mapping's first key at `column`."""
    indent = " " * column
    lines = _block_item(secret)(indent).replace("\n", line_break)
    return f"{key}:{lines}{line_break}{indent}", 1 + flow_events(f"[{_secret_item(secret)}]")


def set_annotation(doc: Document, resource: MappingNode, key: str, value: str) -> Splice | None:
    """`annotation_change` made in place."""
    found = annotation_change(resource, key, value)
    return splice(doc, found[1]) if found else None


def ordered(splices: Iterable[Splice], reverse: bool = False) -> list[Splice]:
    """Splices sorted as their order compares them (by start, end, text, events), with
    the fields compared in C: the dataclass's `__lt__` is a Python call per comparison,
    and every edited document sorts its splices twice (here and in its check)."""
    return sorted(splices, key=_ORDER, reverse=reverse)


_ORDER = operator.attrgetter("start", "end", "text", "events")


def apply(text: str, splices: list[Splice]) -> str:
    """Apply non-overlapping splices (in any order) to `text`."""
    pieces: list[str] = []
    position = len(text)
    for splice in ordered(splices, reverse=True):
        pieces.append(text[splice.end : position])
        pieces.append(splice.text)
        position = splice.start
    pieces.append(text[:position])
    return "".join(reversed(pieces))


def _prepend_item(doc: Document, seq: SequenceNode, item: str, secret: str) -> Splice:
    at = _content_start(doc, seq)  # after an anchor or tag (`&x [...]`, `!!seq`)
    if seq.flow_style:  # `[...]`: insert after the bracket
        separator = ", " if seq.value else ""
        return Splice(at + 1, at + 1, f"{item}{separator}")
    # Block list: `at` is on the first `-`; put ours before it at the same column.
    indent = " " * _column(doc, at)
    return Splice(at, at, f"- name: {secret}{doc.line_break}{indent}")


def _prepend_entry(
    doc: Document, mapping: MappingNode, key: str, block: Callable[[str], str], flow: str
) -> Splice:
    """Insert `key` first in a mapping: `key:` + block(indent) in block style, else flow."""
    if mapping.flow_style or not mapping.value:  # `{...}` (JSON documents too)
        at = _content_start(doc, mapping)  # after an anchor or tag (`&s {...}`)
        separator = ", " if mapping.value else ""
        return Splice(at + 1, at + 1, f"{json.dumps(key)}: {flow}{separator}")
    # Block mapping: insert before the first key at its column, so the new key is a
    # sibling even when the first key shares its line with a `- ` list indicator.
    first_key: Node = mapping.value[0][0]
    at = first_key.start_mark.index
    indent = " " * first_key.start_mark.column
    # `block` writes "\n" for its line breaks; the document's own are used.
    lines = block(indent).replace("\n", doc.line_break)
    return Splice(at, at, f"{key}:{lines}{doc.line_break}{indent}")


def _block_item(secret: str) -> Callable[[str], str]:
    return lambda indent: f"\n{indent}- name: {secret}"


def _block_annotation(key: str, quoted: str) -> Callable[[str], str]:
    return lambda indent: f"\n{indent}  {key}: {quoted}"


def _span(doc: Document, node: Node) -> tuple[int, int]:
    """A node's text without its anchor and tag (a copy must not define the anchor again)."""
    start, end = node.start_mark.index, node.end_mark.index
    return start + properties_length(doc.text[start:end]), end


def _content_start(doc: Document, node: Node) -> int:
    """Where a collection's own text begins: after properties, blanks and comments."""
    at, end = _span(doc, node)
    text = doc.text
    while at < end:
        if text[at] in " \t\r\n":
            at += 1
        elif text[at] == "#":
            newline = text.find("\n", at, end)
            at = end if newline < 0 else newline + 1
        else:
            break
    return at


def _column(doc: Document, at: int) -> int:
    return at - (doc.text.rfind("\n", 0, at) + 1)


def properties_length(raw: str) -> int:
    """Length of leading `&anchor` / `!tag` properties and the blanks after them."""
    position = 0
    while position < len(raw) and raw[position] in "&!":
        while position < len(raw) and not raw[position].isspace():
            position += 1
        while position < len(raw) and raw[position].isspace():
            position += 1
    return position


# --- documents with anchors: one node read at several places ----------------------------

Slot = tuple[int, int]  # id() of a collection and an index into its `value`
_Located = tuple[Route, Change]


def splices(doc: Document, changes: list[_Located]) -> list[Splice]:
    """The splices that make `changes`, each given with its route from the document root.

    Without anchors every node is read at one place, and each change is made in place
    (once: several images may ask for the same pull secret). With anchors a node may be
    read at several places (aliases, `<<` merges), and changing it in place is right only
    when every place asks for the same change: List items aliasing one Pod want one edit.
    Otherwise the aliases of the node where the readers join are written out explicitly
    (a flow-style copy, the changes of the places it serves made inside it), until every
    node left in place is read only by places that want its change. An annotation that
    aliases an image thus keeps its value when the image is proxied.
    """
    if not doc.shared:
        unique = {(id(c.node), c.action, c.key): c for _, c in changes}
        return [splice(doc, c) for c in unique.values()]
    return _Shared(doc).splices(changes)


class _Shared:
    """The alias bookkeeping of one document with anchors."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.aliases: dict[Slot, tuple[Node, int, int]] = {}  # slot -> target, text span
        self.order: list[Node] = []  # every collection, each before the ones it holds
        self._scan()

    def splices(self, changes: list[_Located]) -> list[Splice]:
        expanded: set[Slot] = set()
        while True:
            counts = self._readers(expanded)
            groups = _group(changes, expanded)
            joins: set[Slot] = set()
            for (slot, _, _, _), group in groups.items():
                if not self._uniform(slot, group, counts):
                    joins |= self._join(group[0][0], counts, expanded)
            if not joins:
                break
            expanded |= joins
        result: list[Splice] = []
        inside: dict[Slot, dict[tuple[int, ...], list[Change]]] = {}
        for (slot, relative, _, _), group in groups.items():
            if slot is None:
                result.append(splice(self.doc, group[0][1]))
            else:
                inside.setdefault(slot, {}).setdefault(relative, []).append(group[0][1])
        for slot in expanded:
            target, start, end = self.aliases[slot]
            result.append(Splice(start, end, _Writer(self.doc, inside.get(slot, {})).write(target)))
        return result

    def _scan(self) -> None:
        """Find each alias's slot and text, and order the collections.

        The composer gives an alias the very node of its anchor, so the events tell where
        the aliases are: in text order, the first time the walk meets a node is its
        anchor, every later time an alias, the n-th of the parser's alias events."""
        spans = [
            (_index(event.start_mark), _index(event.end_mark))
            for event in yaml.parse(self.doc.text, Loader=yaml.CSafeLoader)
            if isinstance(event, yaml.AliasEvent)
        ]
        root = self.doc.root
        if root is None:
            return
        seen = {id(root)}
        count = 0
        stack: list[Iterator[tuple[Node, int, Node]]] = [iter(_slots(root))]
        if isinstance(root, (MappingNode, SequenceNode)):
            self.order.append(root)
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            parent, index, node = item
            if id(node) in seen:
                if index >= 0:  # values and items; an alias as a key is never changed
                    start, end = spans[count]
                    self.aliases[(id(parent), index)] = (node, start, end)
                count += 1
                continue
            seen.add(id(node))
            if isinstance(node, (MappingNode, SequenceNode)):
                self.order.append(node)
                stack.append(iter(_slots(node)))
        # Aliases point back to anchors, so text order puts every collection after one
        # holder; readers are counted in reverse post-order instead, below.
        self.order = _topological(self.order)

    def _readers(self, expanded: set[Slot]) -> dict[int, int]:
        """How many places read each node (a `<<` reads the maps it merges), not counting
        aliases that are written out."""
        counts: dict[int, int] = {}
        if self.doc.root is not None:
            counts[id(self.doc.root)] = 1
        for node in self.order:
            mine = counts.get(id(node), 0)
            for parent, index, child in _slots(node):
                if index >= 0 and (id(parent), index) not in expanded:
                    counts[id(child)] = counts.get(id(child), 0) + mine
        return counts

    def _uniform(self, slot: Slot | None, group: list[_Located], counts: dict[int, int]) -> bool:
        """Whether every reader of the changed node (in place) or of the written-out alias
        asks for this same change."""
        first = group[0][1]
        # In place: the node's readers; inside a copy: the readers of the alias's holder.
        readers = counts.get(id(first.node) if slot is None else slot[0], 1)
        places = {tuple((id(p), i) for p, i in route) for route, _ in group}
        return len(places) == readers and all(c == first for _, c in group)

    def _join(self, route: Route, counts: dict[int, int], expanded: set[Slot]) -> set[Slot]:
        """The aliases to write out for a change that not every reader wants: those of
        the first node on its route that is read at more places than its parent."""
        for parent, index in route:
            child = _child(parent, index)
            if counts.get(id(child), 0) > counts.get(id(parent), 0):
                found = {
                    slot
                    for slot, (target, _, _) in self.aliases.items()
                    if target is child and slot not in expanded
                }
                if found:
                    return found
        raise RewriterError(
            f"{self.doc.where()}: internal error: a node read at several places has no alias"
        )


def _group(
    changes: list[_Located], expanded: set[Slot]
) -> dict[tuple[Slot | None, tuple[int, ...], int | str, str], list[_Located]]:
    """Changes made in place, by node (slot None); changes inside a written-out alias, by
    the alias and the indexes that lead from it to the node."""
    groups: dict[tuple[Slot | None, tuple[int, ...], int | str, str], list[_Located]] = {}
    for route, change in changes:
        key: tuple[Slot | None, tuple[int, ...], int | str, str] = (
            None,
            (),
            id(change.node),
            f"{change.action}:{change.key}",
        )
        for depth, (parent, index) in enumerate(route):
            if (id(parent), index) in expanded:
                relative = tuple(i for _, i in route[depth + 1 :])
                key = ((id(parent), index), relative, change.action, change.key)
                break
        groups.setdefault(key, []).append((route, change))
    return groups


def _index(mark: object) -> int:
    index = getattr(mark, "index", None)
    assert isinstance(index, int)  # libyaml marks every event
    return index


def _slots(node: Node) -> list[tuple[Node, int, Node]]:
    """A collection's children in text order: (collection, index, child); keys get -1."""
    if isinstance(node, MappingNode):
        return [x for i, (k, v) in enumerate(node.value) for x in ((node, -1, k), (node, i, v))]
    if isinstance(node, SequenceNode):
        return [(node, i, v) for i, v in enumerate(node.value)]
    return []


def _child(parent: Node, index: int) -> Node:
    value = parent.value[index]
    return value[1] if isinstance(parent, MappingNode) else value  # type: ignore[no-any-return]


def _topological(nodes: list[Node]) -> list[Node]:
    """Collections ordered so that each comes after every collection that holds it."""
    done: set[int] = set()
    post: list[Node] = []
    for start in nodes:
        if id(start) in done:
            continue
        done.add(id(start))
        stack: list[tuple[Node, Iterator[tuple[Node, int, Node]]]] = [(start, iter(_slots(start)))]
        while stack:
            node, rest = stack[-1]
            item = next(rest, None)
            if item is None:
                stack.pop()
                post.append(node)
                continue
            child = item[2]
            if (
                item[1] >= 0
                and id(child) not in done
                and isinstance(child, (MappingNode, SequenceNode))
            ):
                done.add(id(child))
                stack.append((child, iter(_slots(child))))
    post.reverse()
    return post


class _Writer:
    """A node written out in flow style, with the changes that belong inside it.

    Anchors are dropped (the copy must not redefine one, or later aliases would read
    the copy); aliases and merges inside are written out too, `<<` kept as a merge key.
    """

    def __init__(self, doc: Document, changes: dict[tuple[int, ...], list[Change]]) -> None:
        self.doc = doc
        self.changes = changes

    def write(self, node: Node, at: tuple[int, ...] = ()) -> str:
        mine = self.changes.get(at, [])
        for change in mine:
            if change.action == "scalar":
                return json.dumps(change.text)
            if change.action == "fill":
                return change.text
        if isinstance(node, MappingNode):
            parts = [f"{json.dumps(c.key)}: {c.text}" for c in mine if c.action == "entry"]
            for i, (key, value) in enumerate(node.value):
                if not isinstance(key, ScalarNode):
                    raise RewriterError(
                        f"{self.doc.where(node=key)}: a complex mapping key inside an alias "
                        "that must be written out"
                    )
                name = "<<" if key.tag == MERGE_TAG else self._scalar(key)
                parts.append(f"{name}: {self.write(value, (*at, i))}")
            return "{" + ", ".join(parts) + "}"
        if isinstance(node, SequenceNode):
            parts = [c.text for c in mine if c.action == "prepend"]
            parts += [self.write(item, (*at, i)) for i, item in enumerate(node.value)]
            return "[" + ", ".join(parts) + "]"
        assert isinstance(node, ScalarNode)
        return self._scalar(node)

    def _scalar(self, node: ScalarNode) -> str:
        """The scalar as written when that is valid in flow context, else double-quoted
        (it is a string then: plain numbers, booleans and nulls are written as they were)."""
        start, end = node.start_mark.index, node.end_mark.index
        raw = self.doc.text[start:end]
        props = raw[: properties_length(raw)].split()
        tags = " ".join(p for p in props if p.startswith("!"))
        body = raw[properties_length(raw) :]
        prefix = f"{tags} " if tags else ""
        if node.style in ("'", '"') and "\n" not in body:
            return prefix + body
        if node.style in (None, "") and body and not _FLOW_UNSAFE.search(body):
            return prefix + body
        if not body and node.tag == NULL_TAG:
            return prefix + "null" if not tags else prefix + '""'
        return prefix + json.dumps(str(node.value))


NULL_TAG = "tag:yaml.org,2002:null"
_FLOW_UNSAFE = re.compile(r"[,\[\]{}#\n]|: |:$")
