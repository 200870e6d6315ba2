"""Acceptance over the real corpus: every file renders with `--private '*' --offline`,
checked against an independent walk of the input (not the finder under test)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import CORPUS, run

import rewriter
from rewriter.reference import ImageRef, InvalidReference

FILES = sorted(CORPUS.glob("*.yaml"))
ARGS = ["--app-slug", "acme", "--license-id", "L", "--private", "*", "--offline"]
PROXY = "proxy.replicated.com/proxy/acme/"
SECRET = {"name": "acme-registry"}
# A file whose private image sits on a registry with a port: it must fail cleanly.
FAILS = {
    "kubevirt-examples.yaml": "registry:5000/kubevirt/network-passt-binding-cni:devel",
    "openshift-pipelines-csv.yaml": "image-registry.openshift-image-registry.svc:5000/openshift/cli:latest",
}


CATALOGUE = yaml.safe_load((Path(rewriter.__file__).parent / "catalogue.yaml").read_text())


def split_path(text: str) -> list[str]:
    return [seg for part in text.split(".") for seg in part.replace("[*]", " [*]").split()]


def at(node: Any, path: list[str]) -> list[tuple[Any, Any]]:
    """(parent, key) pairs the path reaches; key is an index for list items."""
    found = [(None, None, node)]
    for seg in path:
        nxt = []
        for _, _, value in found:
            if seg == "[*]":
                if isinstance(value, list):
                    nxt += [(value, i, v) for i, v in enumerate(value)]
            elif isinstance(value, dict) and seg in value:
                nxt.append((value, seg, value[seg]))
        found = nxt
    return [(parent, key) for parent, key, _ in found]


def applies(entry: dict[str, Any], resource: dict[str, Any]) -> bool:
    return fnmatch.fnmatchcase(str(resource.get("kind")), entry["kind"]) and fnmatch.fnmatchcase(
        str(resource.get("apiVersion")), entry.get("apiVersion", "*")
    )


def pod_specs(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """SPEC section 3 written out by hand, plus the catalogue's pod specs."""
    kind = resource.get("kind")
    if kind == "CustomResourceDefinition":
        return []
    paths = ["spec.template.spec", "spec.jobTemplate.spec.template.spec"]
    paths += ["spec"] if kind == "Pod" else []
    paths += ["template.spec"] if kind == "PodTemplate" else []
    paths += [e["path"] for e in CATALOGUE["podSpecs"] if applies(e, resource)]
    specs = []
    for path in paths:
        for parent, key in at(resource, split_path(path)):
            spec = parent[key]
            if (
                isinstance(spec, dict)
                and "containers" in spec
                and all(spec is not s for s in specs)
            ):
                specs.append(spec)
    return specs


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


def proxy(parent: Any, key: Any) -> bool:
    if isinstance(parent[key], str) and valid(parent[key]):
        parent[key] = PROXY + parent[key]
        return True
    return False


def add_secret(holder: dict[str, Any], key: str) -> None:
    holder[key] = [SECRET, *(holder.get(key) or [])]


def expected_transform(doc: Any, namespaces: set[str | None]) -> Any:
    """What the output document must be: images proxied, our pull secret first."""
    for resource in resources(doc):
        needs_secret = False
        for spec in pod_specs(resource):
            proxied = False
            for key in ("containers", "initContainers", "ephemeralContainers"):
                for container in spec.get(key) or []:
                    proxied |= proxy(container, "image")
            for volume in spec.get("volumes") or []:
                if isinstance(volume.get("image"), dict):
                    proxied |= proxy(volume["image"], "reference")
            if proxied:
                add_secret(spec, "imagePullSecrets")
            needs_secret |= proxied
        if resource.get("kind") == "CustomResourceDefinition":
            continue
        for entry in CATALOGUE["images"]:
            if not applies(entry, resource):
                continue
            proxied = False
            for parent, key in at(resource, split_path(entry["path"])):
                proxied |= proxy(parent, key)
            needs_secret |= proxied
            target = entry.get("pullSecrets")
            if proxied and target not in (None, "none"):
                *holder_path, secrets_key = split_path(target)
                for holder, holder_key in at(resource, holder_path):
                    if SECRET not in (holder[holder_key].get(secrets_key) or []):
                        add_secret(holder[holder_key], secrets_key)
        if needs_secret:
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
        assert len([line for line in stderr.splitlines() if line.startswith("error: ")]) == 1
        assert FAILS[path.name] in stderr
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


def test_the_corpus_is_there():
    # shared/ lies beside the checkout; without it the tests above would pass vacuously.
    assert len(FILES) >= 30, f"corpus not found at {CORPUS}"
