"""`scan --unclaimed`: strings that look like images but sit in no known field.

Almost any word parses as an image reference (`nginx`, `true`), so "looks like an
image" is a heuristic: it parses, carries a tag or digest, and either sits under a key
that says image or names a registry with a dot (`quay.io/...`). What it lists is for a
person to read and, where right, add to `--config`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.manifest.document import Document, Resource
from rewriter.manifest.fields import NEVER_SCANNED, format_path
from rewriter.reference import ImageRef, InvalidReference

_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Unclaimed:
    doc: Document
    resource: Resource
    path: str
    image: str


def find_unclaimed(doc: Document, claimed: set[tuple[int, int]]) -> Iterator[Unclaimed]:
    """`claimed`: the image sites found, by document and the scalar's offset (the node
    itself is gone when the plan released the document's tree)."""
    for resource in doc.resources():
        if resource.kind in NEVER_SCANNED or resource.node is None:  # None: released
            continue
        prefix = (resource.path,) if resource.path else ()
        for node, path, key in _scalars(resource.node, prefix, "", set()):
            at = (doc.index, node.start_mark.index)
            if at not in claimed and looks_like_image(key, str(node.value)):
                yield Unclaimed(doc, resource, format_path(path), str(node.value))


def looks_like_image(key: str, value: str) -> bool:
    try:
        ref = ImageRef.parse(value)
    except InvalidReference:
        return False
    if ref.tag is None and ref.digest is None:
        return False
    return "image" in key.lower() or "." in ref.domain


def _scalars(
    node: Node, path: tuple[str, ...], key: str, seen: set[int]
) -> Iterator[tuple[ScalarNode, tuple[str, ...], str]]:
    # Aliases share nodes: visiting each once keeps alias bombs and cycles linear.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, ScalarNode):
        if node.tag == _STR_TAG:
            yield node, path, key
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            name = str(k.value) if isinstance(k, ScalarNode) else "?"
            yield from _scalars(v, (*path, name), name, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _scalars(item, (*path, f"[{i}]"), key, seen)
