"""rewriter/manifest/prefilter.py: a document skips composing only when its bytes prove it holds
nothing the render needs (issue 13, item 6)."""

from __future__ import annotations

import pytest

from rewriter.manifest.prefilter import could_spell, root_kind

CRD = b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec: {}\n"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (CRD, "CustomResourceDefinition"),
        (b"---\napiVersion: v1\nkind: 'ConfigMap'\ndata: {a: b}\n", "ConfigMap"),
        (b"# c\nmetadata: {name: x}\nkind: !!str Secret\n", "Secret"),
        (b"spec:\n  kind: Pod\n  x: [1, {kind: y}]\nkind: CustomResourceDefinition\n", "CustomResourceDefinition"),
    ],
)
def test_a_kind_the_bytes_prove(data: bytes, kind: str) -> None:
    assert root_kind(data) == kind


@pytest.mark.parametrize(
    "data",
    [
        # A duplicate `kind`: YAML readers disagree on which one wins.
        b"kind: CustomResourceDefinition\nkind: Deployment\n",
        # The only column-0 `kind:` CRD line continues a quoted scalar; kubectl reads a
        # Deployment.
        b'kind: Deployment\nmetadata:\n  annotations:\n    x: "a\nkind: CustomResourceDefinition"\n',
        b'x: "a\nkind: CustomResourceDefinition"\n"kind": Deployment\n',
        # Other spellings of a root key: quoted, explicit, anchored, tagged, aliased.
        b'kind: ConfigMap\n"kind": Deployment\n',
        b"kind: ConfigMap\n? kind\n: Deployment\n",
        b"kind: ConfigMap\n&a k: v\n",
        b"kind: ConfigMap\n!!str k: v\n",
        b"kind: *k\n",
        b"kind: !custom ConfigMap\n",
        b"kind: [ConfigMap]\n",
        # Not a block mapping at column 0.
        b'{"kind": "ConfigMap"}',
        b"  kind: ConfigMap\n  data: {}\n",
        b"- kind: ConfigMap\n",
        b"",
    ],
)
def test_a_kind_the_bytes_do_not_prove(data: bytes) -> None:
    assert root_kind(data) is None


@pytest.mark.parametrize(
    ("data", "spelled"),
    [
        (b"containers: []", True),
        (b'"\\x69mage": quay.io/a/b:1', True),
        (b'"im\\u0061ge": quay.io/a/b:1', True),
        (b'"ima\\\n  ge": quay.io/a/b:1', True),
        (b"? !!binary aW1hZ2U=\n: quay.io/a/b:1", True),
        (b"%TAG !e! tag:yaml.org,2002:\n--- {a: b}", True),
        (b'data: {regex: "a\\\\d+", text: "tab\\there"}', False),
        (b"kind: ConfigMap\nbinaryData: {a: aGk=}", False),
    ],
)
def test_could_spell(data: bytes, spelled: bool) -> None:
    assert could_spell(data, [b"image", b"containers"]) is spelled
