"""Acceptance over the real corpus: every file renders with `--private '*' --offline`,
checked against an independent walk of the input (not the finder under test)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from helpers import CORPUS, run

from rewriter.reference import ImageRef, InvalidReference

FILES = sorted(CORPUS.glob("*.yaml"))
ARGS = ["--app-slug", "acme", "--license-id", "L", "--private", "*", "--offline"]
PROXY = "proxy.replicated.com/proxy/acme/"
SECRET = {"name": "acme-registry"}
# A file whose private image sits on a registry with a port: it must fail cleanly.
FAILS = {"kubevirt-examples.yaml": "registry:5000/kubevirt/network-passt-binding-cni:devel"}


def pod_specs(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """SPEC section 3, written out by hand."""
    kind = resource.get("kind")
    if kind == "CustomResourceDefinition":
        return []

    def at(*keys: str) -> Any:
        node: Any = resource
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    candidates = [
        at("spec", "template", "spec"),
        at("spec", "jobTemplate", "spec", "template", "spec"),
    ]
    if kind == "Pod":
        candidates.append(at("spec"))
    if kind == "PodTemplate":
        candidates.append(at("template", "spec"))
    return [c for c in candidates if isinstance(c, dict) and "containers" in c]


def resources(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        return []
    if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        return [item for item in doc["items"] if isinstance(item, dict)]
    return [doc]


def valid(image: Any) -> bool:
    try:
        ImageRef.parse(image)
    except InvalidReference:
        return False
    return True


def expected_transform(doc: Any, namespaces: set[str | None]) -> Any:
    """What the output document must be: images proxied, our pull secret first."""
    for resource in resources(doc):
        for spec in pod_specs(resource):
            needs_secret = False
            for key in ("containers", "initContainers", "ephemeralContainers"):
                for container in spec.get(key) or []:
                    if valid(container.get("image")):
                        container["image"] = PROXY + container["image"]
                        needs_secret = True
            for volume in spec.get("volumes") or []:
                image = (volume.get("image") or {}).get("reference")
                if valid(image):
                    volume["image"]["reference"] = PROXY + image
                    needs_secret = True
            if needs_secret:
                spec["imagePullSecrets"] = [SECRET, *(spec.get("imagePullSecrets") or [])]
                namespaces.add(resource.get("metadata", {}).get("namespace"))
    return doc


def chunks(data: bytes) -> list[bytes]:
    return [c for c in re.split(rb"(?m)^(?=---(?:[ \t\r\n]|$))", data) if c]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_renders_as_the_independent_walk_says(path):
    data = path.read_bytes()
    result = run(ARGS, stdin=data)
    if path.name in FAILS:
        assert result.returncode == 1
        assert result.stdout == b""
        stderr = result.stderr.decode()
        assert stderr.startswith("error: ") and FAILS[path.name] in stderr
        assert "Traceback" not in stderr
        return
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout

    namespaces: set[str | None] = set()
    expected = [expected_transform(d, namespaces) for d in yaml.load_all(data, yaml.CSafeLoader)]
    actual = list(yaml.load_all(out, yaml.CSafeLoader))
    secrets = actual[len(expected) :]
    # Every value other than the rewritten ones keeps its value and type.
    assert actual[: len(expected)] == expected
    # One Secret per namespace with a consumer, sorted, none without a consumer.
    assert [s["kind"] for s in secrets] == ["Secret"] * len(secrets)
    assert [s["metadata"].get("namespace") for s in secrets] == sorted(
        namespaces, key=lambda ns: (ns is not None, ns or "")
    )
    # Documents without a change are byte for byte the same.
    for before, after in zip(chunks(data), chunks(out), strict=False):
        if expected_transform(yaml.load(before, yaml.CSafeLoader), set()) == yaml.load(
            before, yaml.CSafeLoader
        ):
            assert after == before
    # A second pass changes nothing.
    again = run(ARGS, stdin=out)
    assert again.returncode == 0
    assert again.stdout == out


def test_whole_corpus_as_one_stream_is_idempotent_and_deterministic():
    data = b"".join(
        b"---\n" + p.read_bytes().rstrip(b"\n") + b"\n" for p in FILES if p.name not in FAILS
    )
    first = run(ARGS, stdin=data)
    assert first.returncode == 0, first.stderr.decode()
    assert run(ARGS, stdin=data).stdout == first.stdout
    assert run(ARGS, stdin=first.stdout).stdout == first.stdout
