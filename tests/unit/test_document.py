"""document.py: the node access reads merge keys as kubectl does (issue 13 item 1)."""

from __future__ import annotations

import pytest

from rewriter.errors import RewriterError
from rewriter.manifest.document import annotations_of, get_path, parse, route, scalar
from rewriter.manifest.stream import split


def doc_of(text: str):  # type: ignore[no-untyped-def]
    _, chunks = split(text.encode())
    return parse(chunks[0])


MERGES = """\
a: &a {image: a:1, name: a}
b: &b {image: b:1, pull: Always}
one: {<<: *a}
both: {<<: [*a, *b]}
reversed: {<<: [*b, *a]}
after: {<<: *a, image: mine:1}
nested: {<<: {<<: *b}}
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("one", "image"), "a:1"),
        (("both", "image"), "a:1"),  # the earlier map wins
        (("both", "pull"), "Always"),
        (("reversed", "image"), "b:1"),
        (("after", "image"), "mine:1"),  # an explicit key after the merge wins
        (("nested", "pull"), "Always"),
        (("one", "pull"), None),
    ],
)
def test_get_reads_merge_keys_like_kubectl(path, expected):
    assert scalar(get_path(doc_of(MERGES).root, *path)) == expected


def test_route_leads_through_the_merge_to_the_anchored_node():
    doc = doc_of(MERGES)
    steps = route(doc.root, "both.pull")
    assert steps is not None
    parent, index = steps[-1]
    assert parent.value[index][1] is get_path(doc.root, "b", "pull")


def test_annotations_through_a_merge():
    doc = doc_of("metadata:\n  annotations:\n    <<: {a: '1'}\n    b: '2'\n")
    (resource,) = doc.resources()
    assert annotations_of(resource) == {"b": "2", "a": "1"}


def test_a_key_after_a_merge_that_supplies_it_is_no_duplicate():
    assert doc_of("x: &x {image: a}\ny: {<<: *x, image: b}\n").shared


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x: &x {image: a}\ny:\n  image: b\n  <<: *x\n",
            r"^document 1 \(line 3\): key 'image' is given before a `<<` merge that also "
            r"supplies it, and YAML readers disagree",
        ),
        ("y:\n  <<: 1\n", r"^document 1 \(line 2\): a merge key `<<` needs a mapping"),
        ("y:\n  <<: [{a: 1}, 2]\n", r"^document 1 \(line 2\): a merge key `<<` needs a mapping"),
        ("a: 1\na: 2\n", r"^document 1 \(line 2\): duplicate key 'a'$"),
        ("x: &x [1, *x]\n", r"^document 1 \(line 1\): an anchor is used inside itself$"),
    ],
)
def test_refused(text, message):
    with pytest.raises(RewriterError, match=message):
        doc_of(text)


@pytest.mark.parametrize(
    ("text", "shared"),
    [
        ("a: &x 1\nb: *x\n", True),
        ("- &x 1\n", True),
        ("a: {b: &x 1}\n", True),
        ("url: http://x?a=1&b=2\n", False),
        ("a: 1\n", False),
    ],
)
def test_shared_only_when_an_anchor_is_written(text, shared):
    assert doc_of(text).shared is shared


def _scalars(node, seen=None):  # type: ignore[no-untyped-def]
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    if isinstance(node, ScalarNode):
        yield node
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield from _scalars(key)
            yield from _scalars(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _scalars(item)


LAZY = """\
a: [42, "42", true, 'true', ~, null, "", 0755, 2021-01-01, 1.5, .inf, x, <<]
b: {<<: {c: d}, e: !!str 42, f: !!int "7", g: !custom x, h: ! 3, i:, j: NULL}
"""


def test_lazy_tags_read_as_the_resolved_ones():
    """parse(lazy_tags=True) leaves plain scalars to be resolved when read: tag_of() and
    scalar() give what full resolution gives, merge keys are merges from the start."""
    from support import CORPUS

    from rewriter.manifest.document import MERGE_TAG, PLAIN, compose, tag_of

    texts = [LAZY] + [
        c.data.decode() for p in sorted(CORPUS.glob("*.yaml"))[::5] for c in split(p.read_bytes())[1]
    ]
    lazy_seen = 0
    for text in texts:
        try:
            full = list(_scalars(compose(text)))
        except Exception:  # not YAML: not this test's business
            continue
        lazy = list(_scalars(compose(text, lazy=True)))
        assert [tag_of(n) for n in lazy] == [n.tag for n in full]
        assert [scalar(n) for n in lazy] == [scalar(n) for n in full]
        assert all((n.tag == MERGE_TAG) == (m.tag == MERGE_TAG) for n, m in zip(lazy, full, strict=True))
        lazy_seen += sum(n.tag == PLAIN for n in lazy)
    assert lazy_seen > 1000
