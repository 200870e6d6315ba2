"""Every edited document is checked before it is written, so that a bug in the text
surgery becomes an error rather than a broken or silently different manifest: from its
splices where it can be (rewriter/manifest/splicecheck.py), else by reading the edited
text back (rewriter/manifest/readback.py).

What each image must read as comes in as `Expected`: its field path, the image text,
and the resource it is in (whose identity fields must read as before).
"""

from __future__ import annotations

from collections.abc import Sequence

from yaml.nodes import SequenceNode

from rewriter.manifest import edit, readback, splicecheck
from rewriter.manifest.document import Document, Resource, get

Expected = Sequence[tuple[str, str, Resource]]

# The fields that say which object a resource is to the finder (its tables apply by
# kind and apiVersion) and to the Secrets (they go by namespace).
_IDENTITY = ("apiVersion", "kind", "metadata.namespace")


def checked(
    doc: Document,
    original: str,
    replaced: list[splicecheck.Replacement],
    inserted: list[edit.Splice],
    expected: Expected,
    counts: splicecheck.Counts | None = None,
) -> bytes:
    """A document without anchors edited, checked from its splices; by reading it back
    where that check cannot read a scalar on its own. With `counts`, its parser events
    are counted when that is flushed."""
    text = splicecheck.edited(doc, original, replaced, inserted, counts)
    if text is None:
        text = edit.apply(original, [r[4] for r in replaced] + inserted)
        verify(doc, text, expected)
    return text.encode("utf-8")


def edited(doc: Document, splices: list[edit.Splice], expected: Expected) -> bytes:
    """A document edited from its tree (anchors, --annotate), checked by reading it back."""
    text = edit.apply(doc.text, splices)
    verify(doc, text, expected)
    return text.encode("utf-8")


def verify(doc: Document, text: str, expected: Expected) -> None:
    """Compose an edited document again (or read it from events) and check every image
    reads as expected and every resource is still the object it was (readback.verify)."""
    readback.verify(
        doc, text, [(path, image) for path, image, _ in expected], _identity_fields(doc, expected)
    )


def _identity_fields(doc: Document, expected: Expected) -> dict[str, list[str | None]]:
    """How the fields in _IDENTITY of each resource holding an image read in the document
    as composed, by path; and an absent List item after the last."""
    fields: dict[str, list[str | None]] = {}
    for resource in {resource.path: resource for *_, resource in expected}.values():
        for name, value in zip(_IDENTITY, resource.identity, strict=True):
            fields[f"{resource.path}.{name}" if resource.path else name] = list(value)
    if doc.released:
        count = doc.list_items
    else:
        items = get(doc.root, "items")
        count = len(items.value) if isinstance(items, SequenceNode) else None
    if count is not None and any(path.startswith("items[") for path in fields):
        fields[f"items[{count}]"] = []
    return fields
