from __future__ import annotations

import pytest
import yaml

from rewriter import edit
from rewriter.document import get, get_path, parse
from rewriter.stream import split

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
