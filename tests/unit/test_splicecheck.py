"""The check of a released document's edits (rewriter/manifest/splicecheck.py): the
edited text it makes is the original with the splices, and nothing else; a bug in the
surgery (overlapping splices, an image that reads otherwise, an insertion whose count of
parser events does not add up) is an internal error."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import pytest
from support.helpers import DEPLOYMENT_LIST as LIST
from support.helpers import options, render

from rewriter import render as render_module
from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.manifest import edit, splicecheck
from rewriter.render import find_and_decide


def _edit(text: str):  # type: ignore[no-untyped-def]
    """The released document of `text`, its original text, the splices and the text
    they make."""
    opts = options()
    plan = find_and_decide(text.encode(), opts, lambda refs: {}, Reporter(stream=io.StringIO()))
    doc = next(item for item in plan.items if isinstance(item, render_module.Document))
    assert doc.released and doc.events is not None
    original = doc.chunk.data.decode()
    replaced, inserted = render_module._released_splices(original, plan.found, opts)
    edited = edit.apply(original, [r[4] for r in replaced] + inserted)
    return doc, original, replaced, inserted, edited


def test_the_splices_as_made_pass_and_make_the_edited_text() -> None:
    doc, original, replaced, inserted, applied = _edit(LIST)
    assert [s.events for s in inserted] == [7]  # imagePullSecrets: [{name: ...}]
    assert splicecheck.edited(doc, original, replaced, inserted) == applied


def test_overlapping_splices_are_an_internal_error() -> None:
    doc, original, replaced, inserted, _ = _edit(LIST)
    start = replaced[0][4].start
    over = edit.Splice(start - 2, start + 1, "x")
    with pytest.raises(RewriterError, match="internal error: splices overlap"):
        splicecheck.edited(doc, original, replaced, [*inserted, over])


@pytest.mark.parametrize(
    "broken",
    [
        ("            - name: a\n", "          x:\n"),  # re-parented
        ("items:\n", "  - {kind: Pod}\n"),  # a new List item
        ("kind: List\n", "---\n"),  # two documents
    ],
)
def test_an_entry_inserted_where_it_changes_the_shape_is_an_internal_error(
    broken: tuple[str, str],
) -> None:
    """An edit bug that inserts text, counted as adding no events: the parser's count
    of the edited text tells."""
    doc, original, replaced, inserted, _ = _edit(LIST)
    after, text = broken
    at = original.index(after) + len(after)
    rogue = edit.Splice(at, at, text)
    with pytest.raises(RewriterError, match="internal error"):
        splicecheck.edited(doc, original, replaced, [*inserted, rogue])


def _tamper_replacement(source: str, index: int, **change: object):  # type: ignore[no-untyped-def]
    doc, original, replaced, inserted, _ = _edit(source)
    start, end, before, after, made = replaced[index]
    replaced[index] = (start, end, before, after, dataclasses.replace(made, **change))
    return doc, original, replaced, inserted


@pytest.mark.parametrize("index", [0, 1], ids=["plain", "quoted"])
@pytest.mark.parametrize("text", ["quay.io/acme/api:2", "[proxy", "42", "'x'", "a # b"], ids=str)
def test_a_replacement_that_reads_otherwise_is_an_internal_error(index: int, text: str) -> None:
    doc, original, replaced, inserted = _tamper_replacement(LIST, index, text=text)
    with pytest.raises(RewriterError, match="internal error"):
        splicecheck.edited(doc, original, replaced, inserted)


def test_a_splice_beyond_its_scalar_is_an_internal_error() -> None:
    doc, original, replaced, inserted, _ = _edit(LIST)
    start, end, before, after, made = replaced[0]
    wider = dataclasses.replace(made, end=made.end + 1)
    replaced[0] = (start, end, before, after, wider)
    with pytest.raises(RewriterError, match="leaves the image scalar"):
        splicecheck.edited(doc, original, replaced, inserted)


def test_an_insertion_that_adds_other_events_is_an_internal_error() -> None:
    doc, original, replaced, inserted, _ = _edit(LIST)
    # The block entry as an edit bug might write it: the list item's mapping lost.
    bad = dataclasses.replace(inserted[0], text=inserted[0].text.replace("- name: ", "- "))
    with pytest.raises(RewriterError, match="parser events"):
        splicecheck.edited(doc, original, replaced, [bad])


def test_a_block_scalar_image_is_checked_by_composing() -> None:
    text = LIST.replace(
        "image: quay.io/acme/api:1", "image: >-\n                quay.io/acme/api:1"
    )
    doc, original, replaced, inserted, _ = _edit(text)
    assert splicecheck.edited(doc, original, replaced, inserted) is None
    out = render(text).decode()
    assert 'image: "proxy.replicated.com/proxy/acme/quay.io/acme/api:1"' in out


@pytest.mark.parametrize(
    ("holder", "events"),
    [
        ("          imagePullSecrets: [{name: other}]\n", 4),  # an item prepended
        ("          imagePullSecrets:\n            - name: other\n", 4),
        ("          imagePullSecrets:\n", 5),  # null: filled
        ("          imagePullSecrets: {}\n", 4),  # a mapping: replaced
    ],
)
def test_inserted_entries_count_their_events(holder: str, events: int) -> None:
    text = LIST.replace("          containers:\n", holder + "          containers:\n")
    doc, original, replaced, inserted, applied = _edit(text)
    assert [s.events for s in inserted] == [events]
    assert splicecheck.edited(doc, original, replaced, inserted) == applied


def _pods(count: int) -> list[render_module.Document]:
    """The released documents of a stream of `count` one-image Pods."""
    stream = "".join(
        f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\n"
        "spec:\n  containers: [{name: a, image: quay.io/acme/api:1}]\n"
        for i in range(count)
    )
    opts = options()
    plan = find_and_decide(stream.encode(), opts, lambda refs: {}, Reporter(stream=io.StringIO()))
    docs = [item for item in plan.items if isinstance(item, render_module.Document)]
    assert len(docs) == count and all(doc.events for doc in docs)
    return docs


def test_counts_of_a_batch_add_up() -> None:
    counts = splicecheck.Counts()
    for doc in _pods(5):
        assert doc.events is not None
        text = doc.chunk.data.decode()
        # The last one without its line break: counted alone, after the others.
        counts.add(doc, text if doc.index < 4 else text.rstrip("\n"), doc.events)
    counts.flush()


@pytest.mark.parametrize(
    "broken",
    [
        lambda text: text.replace("spec:", "spec: [", 1),  # no longer parses
        lambda text: text.replace("{name: a,", "{name: a, x: y,", 1),  # two more events
    ],
    ids=["syntax", "count"],
)
def test_one_wrong_document_in_a_batch_is_named(broken: Callable[[str], str]) -> None:
    counts = splicecheck.Counts()
    for doc in _pods(5):
        assert doc.events is not None
        text = doc.chunk.data.decode()
        counts.add(doc, broken(text) if doc.index == 3 else text, doc.events)
    with pytest.raises(RewriterError, match=r"^document 4: internal error"):
        counts.flush()
