"""Documents settled while visited (rewriter/settled.py, find_and_decide(lean=True)): the
same output, warnings and failures as when every site is kept as a Found."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
from support import CORPUS, FIXTURES
from support.helpers import options

from rewriter.decide import Rules
from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.manifest.document import Document
from rewriter.plan import Plan, Settled
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict
from rewriter.reference import ImageRef
from rewriter.render import find_and_decide, rewrite
from rewriter.render_options import Options


def _render(data: bytes, opts: Options, lean: bool, prober=None) -> tuple[bytes | str, str]:  # type: ignore[no-untyped-def]
    """The output (or the error) and the warnings of one render."""
    said = io.StringIO()
    report = Reporter(stream=said)
    try:
        plan = find_and_decide(data, opts, prober or (lambda refs: {}), report, lean=lean)
        out: bytes | str = rewrite(plan, opts, report).stream()
    except RewriterError as exc:
        out = str(exc)
    return out, said.getvalue()


def _plan(data: str, opts: Options, prober=None) -> Plan:  # type: ignore[no-untyped-def]
    report = Reporter(stream=io.StringIO())
    return find_and_decide(data.encode(), opts, prober or (lambda refs: {}), report, lean=True)


SEMANTICS = sorted((FIXTURES / "semantics").glob("*.yaml"))
CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))


@pytest.mark.parametrize(
    "opts",
    [
        options(),
        options(rules=Rules(app_slug="acme", private=("quay.io/*",), public=("*",))),
        options(additional_namespaces=("*",)),
        options(pull_secrets=False),
        options(rules=Rules(app_slug="acme", local_registry="reg.local/ns")),
    ],
    ids=["private", "mixed", "all-namespaces", "no-pull-secrets", "local-registry"],
)
def test_settled_documents_render_as_kept_ones(opts: Options) -> None:
    # The whole corpus once; a third of it with the other options.
    corpus = CORPUS_FILES if opts == options() else CORPUS_FILES[::3]
    for path in corpus + SEMANTICS:
        data = path.read_bytes()
        assert _render(data, opts, lean=True) == _render(data, opts, lean=False), path.name


WORKLOADS = """\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
spec:
  containers:
  - name: a
    image: quay.io/a/app:1
  - name: c
    image: "invalid IMAGE"
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  containers:
  - {name: b, image: docker.io/b/app:1}
"""


def test_a_collision_after_settling_names_every_site_and_warns_once() -> None:
    """Both Pods are settled before the two images turn out to share a name."""
    opts = options(rules=Rules(app_slug="acme", local_registry="reg.local/x"))
    out, warnings = _render(WORKLOADS.encode(), opts, lean=True)
    assert (out, warnings) == _render(WORKLOADS.encode(), opts, lean=False)
    assert out == (
        "2 image(s) cannot be rewritten:\n"
        "  quay.io/a/app:1: local registry; quay.io/a/app and docker.io/b/app would all"
        " become reg.local/x/app: use --keep-path"
        " [document 1 (Pod x/a, line 7) spec.containers[0].image]\n"
        "  docker.io/b/app:1: local registry; docker.io/b/app and quay.io/a/app would all"
        " become reg.local/x/app: use --keep-path"
        " [document 2 (Pod b, line 16) spec.containers[0].image]"
    )
    assert warnings.count("invalid image reference 'invalid IMAGE'") == 1


def test_only_documents_a_rule_decides_are_settled() -> None:
    asked: list[Sequence[ImageRef]] = []

    def prober(refs: Sequence[ImageRef]) -> dict[ProbeKey, ProbeResult]:
        asked.append(refs)
        return {ref.probe_key: ProbeResult(Verdict.PRIVATE, "401", False) for ref in refs}

    opts = options(rules=Rules(app_slug="acme", private=("quay.io/*",)))
    plan = _plan(WORKLOADS, opts, prober)
    assert [type(item) for item in plan.items] == [Settled, Document]
    assert [[ref.text for ref in refs] for refs in asked] == [["docker.io/b/app:1"]]
    assert [f.ref.text for f in plan.found] == ["docker.io/b/app:1"]
    assert list(plan.decided) == ["quay.io/a/app:1", "docker.io/b/app:1"]  # first found first
    assert set(plan.consumers) == {"x"}  # the kept Pod's namespace is added by rewrite()
    asked.clear()
    data = WORKLOADS.encode()
    assert _render(data, opts, True, prober) == _render(data, opts, False, prober)


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("anchors", "spec:\n  containers:\n  - &c {name: a, image: quay.io/a/b:1}\n"),
        (
            "image over two lines",
            "spec:\n  containers:\n  - name: a\n    image: >-\n      quay.io/a/b:1\n",
        ),
        ("a probe to ask", "spec:\n  containers:\n  - {name: a, image: docker.io/a/b:1}\n"),
    ],
)
def test_documents_settle_only_when_they_can(name: str, document: str) -> None:
    opts = options(rules=Rules(app_slug="acme", private=("quay.io/*",)))
    plan = _plan("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n" + document, opts)
    assert [type(item) for item in plan.items] == [Document], name


def test_written_settled_documents_let_their_input_go() -> None:
    plan = _plan(WORKLOADS.replace('"invalid IMAGE"', "quay.io/a/other:1"), options())
    (settled, _) = plan.items
    assert isinstance(settled, Settled)
    rewrite(plan, options(), Reporter(stream=io.StringIO()))
    assert settled.chunk.data == b""
