from __future__ import annotations

import pytest
from support import CORPUS

from rewriter.errors import RewriterError
from rewriter.manifest import catalogue
from rewriter.manifest.document import parse
from rewriter.manifest.fields import FieldTable, ImageField, PodSpecField, find_images, parse_path
from rewriter.manifest.stream import split


def sites(text: str, table: FieldTable | None = None) -> list[tuple[str, str, str]]:
    _, chunks = split(text.encode())
    doc = parse(chunks[0])
    found = [
        (r.kind, s.path, s.node.value)
        for r in doc.resources()
        for s in find_images(r, table or FieldTable())
    ]
    if doc.plain():  # the one-pass reading of mappings finds the same
        assert found == [
            (r.kind, s.path, s.node.value)
            for r in doc.resources()
            for s in find_images(r, table or FieldTable(), plain=True)
        ]
    return found


def test_plain_documents_of_the_corpus_read_the_same_in_one_pass():
    """find_images(plain=True) reads a mapping's keys in one pass: on every corpus
    document without anchors, merge keys or complex keys it finds the same sites."""
    table = catalogue.builtin()
    plain = 0
    for path in sorted(CORPUS.glob("*.yaml")):
        for chunk in split(path.read_bytes())[1]:
            if b"image" not in chunk.data or b"CustomResourceDefinition" in chunk.data:
                continue
            doc = parse(chunk)
            if not doc.plain():
                continue
            plain += 1
            for r in doc.resources():
                by_lookup = find_images(r, table)
                in_one_pass = find_images(r, table, plain=True)
                assert [(s.path, s.node, s.pod_spec and s.pod_spec.path) for s in in_one_pass] == [
                    (s.path, s.node, s.pod_spec and s.pod_spec.path) for s in by_lookup
                ]
    assert plain > 200


POD = """kind: Pod
spec:
  initContainers: [{name: i, image: init:1}]
  containers: [{name: c, image: app:1}]
  ephemeralContainers: [{name: e, image: debug:1}]
  volumes:
  - name: data
    image: {reference: "data:1"}
  - name: other
    emptyDir: {}
"""


def test_pod_spec_fields():
    assert sites(POD) == [
        ("Pod", "spec.containers[0].image", "app:1"),
        ("Pod", "spec.initContainers[0].image", "init:1"),
        ("Pod", "spec.ephemeralContainers[0].image", "debug:1"),
        ("Pod", "spec.volumes[0].image.reference", "data:1"),
    ]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            "kind: Deployment\nspec: {template: {spec: {containers: [{image: a}]}}}",
            "spec.template.spec.containers[0].image",
        ),
        (
            "kind: Rollout\nspec: {template: {spec: {containers: [{image: a}]}}}",
            "spec.template.spec.containers[0].image",
        ),
        (
            "kind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{image: a}]}}}}}",
            "spec.jobTemplate.spec.template.spec.containers[0].image",
        ),
        (
            "kind: PodTemplate\ntemplate: {spec: {containers: [{image: a}]}}",
            "template.spec.containers[0].image",
        ),
    ],
)
def test_pod_specs_by_shape(text, path):
    assert [s[1] for s in sites(text)] == [path]


def test_spec_of_other_kinds_and_crds_are_not_pod_specs():
    assert sites("kind: Widget\nspec: {containers: [{image: a}]}") == []
    crd = "kind: CustomResourceDefinition\nspec: {template: {spec: {containers: [{image: a}]}}}"
    assert sites(crd) == []


def test_list_items_are_documents():
    text = """kind: DeploymentList
items:
- kind: Deployment
  spec: {template: {spec: {containers: [{image: a}]}}}
- kind: Pod
  spec: {containers: [{image: b}]}
"""
    assert sites(text) == [
        ("Deployment", "items[0].spec.template.spec.containers[0].image", "a"),
        ("Pod", "items[1].spec.containers[0].image", "b"),
    ]


def test_configured_fields():
    table = FieldTable().extended(
        [
            PodSpecField(
                "ClusterServiceVersion",
                parse_path("spec.install.spec.deployments[*].spec.template.spec"),
            )
        ],
        [ImageField("Prom*", parse_path("spec.image"), parse_path("spec.imagePullSecrets"))],
    )
    csv = "kind: ClusterServiceVersion\nspec: {install: {spec: {deployments: [{spec: {template: {spec: {containers: [{image: op}]}}}}]}}}"
    assert sites(csv, table) == [
        (
            "ClusterServiceVersion",
            "spec.install.spec.deployments[0].spec.template.spec.containers[0].image",
            "op",
        )
    ]
    assert sites("kind: Prometheus\nspec: {image: prom:1}", table) == [
        ("Prometheus", "spec.image", "prom:1")
    ]
    assert b"image" in table.trigger_words()


@pytest.mark.parametrize("bad", ["", "a..b", "a[*]b", "[*]", "a[0]"])
def test_invalid_paths(bad):
    with pytest.raises(RewriterError, match="invalid field path"):
        parse_path(bad)


def test_an_aliased_image_is_a_site_at_each_place():
    # Each place is a field the cluster reads; edit.py decides how to write them.
    text = "kind: Pod\nspec:\n  containers:\n  - {name: a, image: &i app:1}\n  - {name: b, image: *i}\n"
    assert [s[1] for s in sites(text)] == ["spec.containers[0].image", "spec.containers[1].image"]
