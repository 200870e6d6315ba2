from __future__ import annotations

import pytest
import yaml

from rewriter.manifest import edit
from rewriter.manifest.document import get, get_path, parse
from rewriter.manifest.stream import split

NEW = "proxy.example/proxy/acme/nginx:1"


def doc_of(text: str):
    _, chunks = split(text.encode())
    return parse(chunks[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image: nginx:1\n", f"image: {NEW}\n"),
        ("image: 'nginx:1'  # pinned\n", f"image: '{NEW}'  # pinned\n"),
        ('image: "nginx:1"\n', f'image: "{NEW}"\n'),
        ("image: &img nginx:1\n", f"image: &img {NEW}\n"),
        ("image: !!str nginx:1\n", f"image: !!str {NEW}\n"),
        ('image: "ngin\\x78:1"\n', f'image: "{NEW}"\n'),
        ("image: >-\n  nginx:1\n", f'image: "{NEW}"\n'),
        ('{"image": "nginx:1"}\n', f'{{"image": "{NEW}"}}\n'),
    ],
)
def test_replace_scalar_keeps_style_and_surroundings(text, expected):
    doc = doc_of(text)
    node = get(doc.root, "image")
    out = edit.apply(doc.text, [edit.replace_scalar(doc, node, NEW)])
    assert out == expected
    assert yaml.safe_load(out)["image"] == NEW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "spec:\n  containers:\n  - image: a\n",
            "spec:\n  imagePullSecrets:\n  - name: s\n  containers:\n  - image: a\n",
        ),
        (
            "spec:\n  imagePullSecrets:\n  - name: other\n  containers: []\n",
            "spec:\n  imagePullSecrets:\n  - name: s\n  - name: other\n  containers: []\n",
        ),
        (
            "spec:\n  imagePullSecrets: []\n  containers: []\n",
            'spec:\n  imagePullSecrets: [{"name": "s"}]\n  containers: []\n',
        ),
        (
            "spec:\n  imagePullSecrets: [{name: o}]\n",
            'spec:\n  imagePullSecrets: [{"name": "s"}, {name: o}]\n',
        ),
        (
            "spec:\n  imagePullSecrets: null\n  containers: []\n",
            'spec:\n  imagePullSecrets: [{"name": "s"}]\n  containers: []\n',
        ),
        (
            '{"spec": {"containers": []}}',
            '{"spec": {"imagePullSecrets": [{"name": "s"}], "containers": []}}',
        ),
        ("spec: {}\n", 'spec: {"imagePullSecrets": [{"name": "s"}]}\n'),
        (
            "spec:\r\n  containers: []\r\n",
            "spec:\r\n  imagePullSecrets:\r\n  - name: s\r\n  containers: []\r\n",
        ),
    ],
)
def test_add_pull_secret_inserts_without_touching_the_rest(text, expected):
    doc = doc_of(text)
    splice = edit.add_pull_secret(doc, get(doc.root, "spec"), "imagePullSecrets", "s")
    assert splice is not None
    assert edit.apply(doc.text, [splice]) == expected


def test_add_pull_secret_next_to_a_list_indicator():
    text = "items:\n- containers: []\n  name: x\n"
    doc = doc_of(text)
    holder = get(doc.root, "items").value[0]
    out = edit.apply(doc.text, [edit.add_pull_secret(doc, holder, "imagePullSecrets", "s")])
    assert yaml.safe_load(out) == {
        "items": [{"imagePullSecrets": [{"name": "s"}], "containers": [], "name": "x"}]
    }


def test_add_pull_secret_is_idempotent():
    doc = doc_of("spec:\n  imagePullSecrets:\n  - name: s\n")
    assert edit.add_pull_secret(doc, get(doc.root, "spec"), "imagePullSecrets", "s") is None


def test_apply_splices_in_any_order():
    text = "0123456789"
    splices = [edit.Splice(8, 9, "X"), edit.Splice(1, 1, "ab"), edit.Splice(4, 6, "")]
    assert edit.apply(text, splices) == "0ab12367X9"
    assert get_path(None, "a") is None


# --- anchors, tags and empty values (issue 13 items 2-4) ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "spec:\n  imagePullSecrets: &x [{name: o}]\n",
            'spec:\n  imagePullSecrets: &x [{"name": "s"}, {name: o}]\n',
        ),
        (
            "spec:\n  imagePullSecrets: !!seq\n  - name: o\n",
            "spec:\n  imagePullSecrets: !!seq\n  - name: s\n  - name: o\n",
        ),
        (
            "spec:\n  imagePullSecrets: &x # ours\n  - name: o\n",
            "spec:\n  imagePullSecrets: &x # ours\n  - name: s\n  - name: o\n",
        ),
        (
            "spec: &s {containers: []}\n",
            'spec: &s {"imagePullSecrets": [{"name": "s"}], containers: []}\n',
        ),
        (
            "spec:\n  imagePullSecrets:\n  x: 1\n",
            'spec:\n  imagePullSecrets: [{"name": "s"}]\n  x: 1\n',
        ),
        (
            "spec:\n  imagePullSecrets: ~  # none\n",
            'spec:\n  imagePullSecrets: [{"name": "s"}]  # none\n',
        ),
    ],
)
def test_add_pull_secret_after_anchors_tags_and_into_empty_values(text, expected):
    doc = doc_of(text)
    splice = edit.add_pull_secret(doc, get(doc.root, "spec"), "imagePullSecrets", "s")
    assert splice is not None
    assert edit.apply(doc.text, [splice]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata: &m {name: a}\n", 'metadata: &m {"annotations": {"k": "v"}, name: a}\n'),
        (
            "metadata:\n  annotations:\n  name: a\n",
            'metadata:\n  annotations: {"k": "v"}\n  name: a\n',
        ),
    ],
)
def test_set_annotation_on_anchored_and_empty_metadata(text, expected):
    doc = doc_of(text)
    out = edit.apply(doc.text, [edit.set_annotation(doc, doc.root, "k", "v")])
    assert out == expected


def changes_for(doc, paths_and_values):  # type: ignore[no-untyped-def]
    from rewriter.manifest.document import route

    located = []
    for path, value in paths_and_values:
        steps = route(doc.root, path)
        parent, index = steps[-1]
        last = parent.value[index]
        node = last[1] if isinstance(last, tuple) else last  # a mapping entry, or an item
        located.append((steps, edit.scalar_change(node, value)))
    return edit.apply(doc.text, edit.splices(doc, located))


def test_an_anchored_image_is_rewritten_and_its_alias_keeps_the_old_value():
    doc = doc_of("c: {image: &i a:1}\nenv: {value: *i}\n")
    assert changes_for(doc, [("c.image", "p/a:1")]) == "c: {image: &i p/a:1}\nenv: {value: a:1}\n"


def test_an_alias_of_an_image_is_written_out_with_the_new_value():
    doc = doc_of("note: &i a:1\nc: {image: *i}\n")
    assert changes_for(doc, [("c.image", "p/a:1")]) == 'note: &i a:1\nc: {image: "p/a:1"}\n'


def test_one_node_every_reader_changes_alike_is_edited_once():
    doc = doc_of("items:\n- &c {image: a:1}\n- *c\n")
    out = changes_for(doc, [("items[0].image", "p/a:1"), ("items[1].image", "p/a:1")])
    assert out == "items:\n- &c {image: p/a:1}\n- *c\n"


def test_a_merge_that_not_every_reader_wants_changed_is_written_inline():
    doc = doc_of("x-defaults: &d {image: a:1, name: d}\nc: {<<: *d, name: c}\n")
    out = changes_for(doc, [("c.image", "p/a:1")])
    assert (
        out == 'x-defaults: &d {image: a:1, name: d}\nc: {<<: {image: "p/a:1", name: d}, name: c}\n'
    )
