"""Surgical edits to a document's text, located by the node positions from the parser.

Re-serializing a document would change what the user wrote (quotes, key order, comments,
`0755`, long strings); editing the characters of one scalar, or inserting one key, keeps
everything else byte for byte. Every edit is a (start, end, text) splice on the
document's text; they are applied together from the end so offsets stay valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.document import Document, get


@dataclass(frozen=True, slots=True, order=True)
class Splice:
    start: int
    end: int
    text: str


def replace_scalar(
    doc: Document, node: ScalarNode, value: str, quoted: str | None = None
) -> Splice:
    """Write `value` in place of a scalar, in the same style when it is safe.

    An image reference (no blanks, quotes, `#` or backslashes) is a valid plain, single-
    or double-quoted scalar as it stands; any other value comes with its `quoted` form,
    written in place of the whole scalar.
    """
    start, end = node.start_mark.index, node.end_mark.index
    raw = doc.text[start:end]
    written = str(node.value)
    if quoted is not None:
        return Splice(start + _properties_length(raw), start + len(raw.rstrip()), quoted)
    if node.style in (None, "") and raw.endswith(written) and "\n" not in raw:
        # Plain: the value is the tail of the span (anchors or tags may come first).
        return Splice(end - len(written), end, value)
    if node.style in ("'", '"') and raw.endswith(node.style):
        opening = raw.index(node.style)
        inner = raw[opening + 1 : -1]
        if inner == written:
            return Splice(start + opening + 1, end - 1, value)
    # Escapes, block scalars, folded lines: write a double-quoted scalar instead, valid in
    # any context. The span starts after any anchor or tag, which are kept.
    # A block scalar's span takes in the line breaks after it; they stay.
    props = _properties_length(raw)
    return Splice(start + props, start + len(raw.rstrip()), json.dumps(value))


def add_pull_secret(doc: Document, holder: MappingNode, key: str, secret: str) -> Splice | None:
    """Add `{name: secret}` to the list under `key` of `holder`, creating it if needed.

    None when the list already names the secret (idempotence).
    """
    entries = get(holder, key)
    if isinstance(entries, SequenceNode):
        for item in entries.value:
            name = get(item, "name")
            if isinstance(name, ScalarNode) and name.value == secret:
                return None
        return _prepend_item(doc, entries, secret)
    if entries is not None:  # `imagePullSecrets: null`, `~` or empty
        return Splice(entries.start_mark.index, entries.end_mark.index, _flow_list(secret))
    brk = doc.line_break
    return _prepend_entry(
        doc, holder, key, lambda indent: f"{brk}{indent}- name: {secret}", _flow_list(secret)
    )


def set_annotation(doc: Document, resource: MappingNode, key: str, value: str) -> Splice | None:
    """Set `metadata.annotations[key]` to the string `value`; None when already so."""
    metadata = get(resource, "metadata")
    if not isinstance(metadata, MappingNode):
        return None
    quoted = json.dumps(value)
    annotations = get(metadata, "annotations")
    if isinstance(annotations, MappingNode):
        current = get(annotations, key)
        if isinstance(current, ScalarNode):
            return None if current.value == value else replace_scalar(doc, current, value, quoted)
        return _prepend_entry(doc, annotations, key, lambda indent: f" {quoted}", quoted)
    flow = f"{{{json.dumps(key)}: {quoted}}}"
    if annotations is not None:  # `annotations: null` or empty
        return Splice(annotations.start_mark.index, annotations.end_mark.index, flow)
    brk = doc.line_break
    return _prepend_entry(
        doc, metadata, "annotations", lambda indent: f"{brk}{indent}  {key}: {quoted}", flow
    )


def apply(text: str, splices: list[Splice]) -> str:
    """Apply non-overlapping splices (in any order) to `text`."""
    pieces: list[str] = []
    position = len(text)
    for splice in sorted(splices, reverse=True):
        pieces.append(text[splice.end : position])
        pieces.append(splice.text)
        position = splice.start
    pieces.append(text[:position])
    return "".join(reversed(pieces))


def _prepend_item(doc: Document, seq: SequenceNode, secret: str) -> Splice:
    at = seq.start_mark.index
    if seq.flow_style:  # `[...]`: insert after the bracket
        separator = ", " if seq.value else ""
        return Splice(at + 1, at + 1, f'{{"name": "{secret}"}}{separator}')
    # Block list: the mark is on the first `-`; put ours before it at the same column.
    indent = " " * seq.start_mark.column
    return Splice(at, at, f"- name: {secret}{doc.line_break}{indent}")


def _prepend_entry(
    doc: Document, mapping: MappingNode, key: str, block: Callable[[str], str], flow: str
) -> Splice:
    """Insert `key` first in a mapping: `key:` + block(indent) in block style, else flow."""
    at = mapping.start_mark.index
    if mapping.flow_style or not mapping.value:  # `{...}` (JSON documents too)
        separator = ", " if mapping.value else ""
        return Splice(at + 1, at + 1, f"{json.dumps(key)}: {flow}{separator}")
    # Block mapping: insert before the first key at its column, so the new key is a
    # sibling even when the first key shares its line with a `- ` list indicator.
    first_key: Node = mapping.value[0][0]
    at = first_key.start_mark.index
    indent = " " * first_key.start_mark.column
    return Splice(at, at, f"{key}:{block(indent)}{doc.line_break}{indent}")


def _flow_list(secret: str) -> str:
    return f'[{{"name": "{secret}"}}]'


def _properties_length(raw: str) -> int:
    """Length of leading `&anchor` / `!tag` properties and the blanks after them."""
    position = 0
    while position < len(raw) and raw[position] in "&!":
        while position < len(raw) and not raw[position].isspace():
            position += 1
        while position < len(raw) and raw[position].isspace():
            position += 1
    return position
