"""Acceptance over the real corpus: every file renders with `--private '*' --offline`, and
what kubectl reads from the output is the expected transform of what it read from the
input (tests/support/kubeoracle.py: kubectl decodes, an independent walk says what must change)."""

from __future__ import annotations

import re

import pytest
import yaml
from support import CORPUS, kubeoracle
from support.helpers import run

FILES = sorted(CORPUS.glob("*.yaml"))
ARGS = list(kubeoracle.DEFAULT_ARGS)
# A file whose private image sits on a registry with a port: it must fail cleanly, naming it.
FAILS = {
    "kubevirt-examples.yaml": "registry:5000/kubevirt/network-passt-binding-cni:devel",
    "openshift-pipelines-csv.yaml": "image-registry.openshift-image-registry.svc:5000/openshift/cli:latest",
}
# Files rewriter gets wrong today, each with the issue item whose fix makes it pass; the
# fixer removes the line (strict: an unexpected pass fails the suite).
WRONG_TODAY: dict[str, str] = {}


def chunks(data: bytes) -> list[bytes]:
    return [c for c in re.split(rb"(?m)^(?=---(?:[ \t\r\n]|$))", data) if c]


def _param(path):  # type: ignore[no-untyped-def]
    marks = []
    if path.name in WRONG_TODAY:
        marks.append(pytest.mark.xfail(strict=True, reason=WRONG_TODAY[path.name]))
    return pytest.param(path, id=path.name, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_corpus_file_renders_as_kubectl_and_the_independent_walk_say(path, kube_oracle):
    data = path.read_bytes()
    outcome = kubeoracle.check_render(kube_oracle, data, ARGS)
    if path.name in FAILS:
        assert outcome.returncode == 1
        assert FAILS[path.name] in outcome.stderr
        return
    out = outcome.stdout
    rules = kubeoracle.Rules.from_args(ARGS)
    # Documents without a change are byte for byte the same.
    for before, after in zip(chunks(data), chunks(out), strict=False):
        objects = [
            o for d in yaml.load_all(before, yaml.CSafeLoader) for o in kubeoracle.flatten(d)
        ]
        if not kubeoracle.changes(objects, rules):
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
