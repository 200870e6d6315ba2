"""One parsed document: its text, its node tree with positions, and who it is.

Documents are composed (nodes, not Python values) so that nothing is converted: a
timestamp stays the text it was, and every node keeps the character offsets that let the
editor change one scalar without touching the bytes around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.errors import RewriterError
from rewriter.stream import Chunk, check_depth, yaml_error


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kubernetes object inside a document: the document root, or an item of a `*List`."""

    node: MappingNode
    api_version: str
    kind: str
    name: str
    namespace: str | None
    path: str  # '' for the root, 'items[3]' for a list item: prefixes field paths in messages

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

    @property
    def index(self) -> int:
        return self.chunk.index

    def resources(self) -> Iterator[Resource]:
        """The root object, or each item of a `List`/`*List` document."""
        if not isinstance(self.root, MappingNode):
            return
        kind = scalar(get(self.root, "kind")) or ""
        items = get(self.root, "items")
        if kind.endswith("List") and isinstance(items, SequenceNode):
            for i, item in enumerate(items.value):
                if isinstance(item, MappingNode):
                    yield _resource(item, f"items[{i}]")
        else:
            yield _resource(self.root, "")

    def where(self, resource: Resource | None = None, node: Node | None = None) -> str:
        """`document 3 (Deployment ns/web, line 42)` for messages."""
        parts = []
        if resource is not None:
            parts.append(resource.label())
        if node is not None:
            parts.append(f"line {self.chunk.first_line + node.start_mark.line}")
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"document {self.index}{detail}"


def parse(chunk: Chunk) -> Document:
    """Compose one chunk; errors name the document and line."""
    try:
        text = chunk.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = chunk.data[: exc.start].count(b"\n")
        raise RewriterError(f"{chunk.where(line)}: invalid UTF-8") from None
    check_depth(chunk)
    try:
        # compose, not load: no value is constructed, so nothing can change type, and an
        # alias is one shared node instead of an expanded copy (no billion laughs).
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise yaml_error(chunk, exc) from None
    _refuse_duplicate_keys(chunk, root)
    line_break = "\r\n" if "\r\n" in text else "\n"
    return Document(chunk, text, root, line_break)


def _refuse_duplicate_keys(chunk: Chunk, root: Node | None) -> None:
    """YAML forbids them, and consumers disagree on which one wins: rewriting the first
    `image` while the cluster reads the second would leak a private image unproxied."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in keys:
                        raise RewriterError(
                            f"{chunk.where(key.start_mark.line)}: duplicate key {key.value!r}"
                        )
                    keys.add(key.value)
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def get(node: Node | None, key: str) -> Node | None:
    """The value under `key` in a mapping node, or None."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return cast(Node, v)
    return None


def scalar(node: Node | None) -> str | None:
    """A scalar node's text; None for anything else (maps, lists, absent, null)."""
    if isinstance(node, ScalarNode) and node.tag != "tag:yaml.org,2002:null":
        return str(node.value)
    return None


def get_path(node: Node | None, *keys: str) -> Node | None:
    for key in keys:
        node = get(node, key)
    return node


def annotations_of(resource: Resource) -> dict[str, str]:
    found = get_path(resource.node, "metadata", "annotations")
    result: dict[str, str] = {}
    if isinstance(found, MappingNode):
        for k, v in found.value:
            key, value = scalar(k), scalar(v)
            if key is not None and value is not None:
                result[key] = value
    return result


def _resource(node: MappingNode, path: str) -> Resource:
    meta = get(node, "metadata")
    return Resource(
        node=node,
        api_version=scalar(get(node, "apiVersion")) or "",
        kind=scalar(get(node, "kind")) or "",
        name=scalar(get(meta, "name")) or scalar(get(meta, "generateName")) or "",
        namespace=scalar(get(meta, "namespace")) or None,
        path=path,
    )
