"""The oracle's contract (tests/support/kubeoracle.py), pinned against the real kubectl: if a
kubectl upgrade reads differently, these say so before the property tests mislead."""

from __future__ import annotations

import pytest
from support import kubeoracle

POD = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: quay.io/a/b:1}\n"


def test_empty_and_comment_only_streams_read_as_nothing(kube_oracle: kubeoracle.Kubectl) -> None:
    assert kube_oracle.read(b"") == []
    assert kube_oracle.read(b"# only a comment\n---\n# another\n") == []


def test_objects_in_order_lists_flattened_namespace_left_unset(
    kube_oracle: kubeoracle.Kubectl,
) -> None:
    stream = (
        POD + b"---\n# a comment document\n---\n"
        b"apiVersion: v1\nkind: List\nitems:\n"
        b"- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: shop}}\n"
        b"- {apiVersion: example.com/v1, kind: Widget, metadata: {name: w}}\n"
    )
    objects = kube_oracle.read(stream)
    assert [(o["kind"], kubeoracle.namespace(o)) for o in objects] == [
        ("Pod", None),
        ("ConfigMap", "shop"),
        ("Widget", None),  # an unknown kind is served from the stream itself
    ]


def test_kubectl_resolves_merge_keys_aliases_and_tags(kube_oracle: kubeoracle.Kubectl) -> None:
    stream = b"""\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - <<: {name: c, image: &img quay.io/a/b:1}
  - {name: d, image: !!binary cXVheS5pby9hL2M6Mg==}
  initContainers:
  - {name: e, image: 0755}
  ephemeralContainers: [{name: f, image: *img}]
"""
    (pod,) = kube_oracle.read(stream)
    assert kubeoracle.images(pod) == {
        "spec.containers[0].image": "quay.io/a/b:1",
        "spec.containers[1].image": "quay.io/a/c:2",  # !!binary: the bytes, as a string
        "spec.initContainers[0].image": 493,  # YAML 1.1: an octal int, not a string
        "spec.ephemeralContainers[0].image": "quay.io/a/b:1",
    }
    assert kubeoracle.pull_secrets(pod) == {"spec": None}


def test_kubectl_takes_the_last_duplicate_key(kube_oracle: kubeoracle.Kubectl) -> None:
    (pod,) = kube_oracle.read(POD + b"  - {name: d, image: a, image: b}\n")
    assert pod["spec"]["containers"][1]["image"] == "b"


def test_what_kubectl_refuses_is_an_exception(kube_oracle: kubeoracle.Kubectl) -> None:
    with pytest.raises(kubeoracle.Refused, match="contains itself"):
        kube_oracle.read(b"kind: Pod\nspec: &s {x: *s}\n")


def test_the_expected_transform(kube_oracle: kubeoracle.Kubectl) -> None:
    stream = POD.replace(b"spec:\n", b"spec:\n  imagePullSecrets: [{name: theirs}]\n")
    stream += b"  - {name: d, image: postgres:16}\n  - {name: e, image: '{{ .Values.x }}'}\n"
    args = "--app-slug acme --license-id L --public docker.io/library/* --private * --offline"
    rules = kubeoracle.Rules.from_args(args.split())
    expectation = kubeoracle.expect(kube_oracle.read(stream), rules)
    (pod,) = expectation.objects
    assert kubeoracle.images(pod) == {
        "spec.containers[0].image": "proxy.replicated.com/proxy/acme/quay.io/a/b:1",
        "spec.containers[1].image": "postgres:16",
        "spec.containers[2].image": "{{ .Values.x }}",
    }
    assert kubeoracle.pull_secrets(pod) == {"spec": [{"name": "theirs"}, {"name": "acme-registry"}]}
    assert expectation.secrets == {None: [{}]}
    assert expectation.refusals == []
