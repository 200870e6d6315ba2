"""Big documents read from libyaml's events (rewriter/manifest/eventfind.py, find_and_decide(lean=True)):
the render writes the same bytes, warnings and errors as when they are composed, and
holds no tree or object per image."""

from __future__ import annotations

import io

import pytest
from support import CORPUS, FIXTURES
from support.helpers import options

from rewriter import render as render_module
from rewriter import visit
from rewriter.decide import Rules
from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.manifest import eventfind
from rewriter.manifest.fields import FieldTable
from rewriter.plan import Repeated
from rewriter.render import find_and_decide, rewrite

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: wide
  namespace: shop
  annotations: {a: b, n: null}
spec:
{spec}"""

CONTAINERS = """\
  containers:
    - name: a
      image: quay.io/acme/api:1
    - {name: b, image: 'quay.io/acme/api:1'}
    - name: c
      image: "quay.io/acme/web:2"
    - name: d
      image: quay.io/acme/api:1
"""

def _pod(spec: str, kind: str = "Pod") -> str:
    return POD.replace("{spec}", spec).replace("kind: Pod", f"kind: {kind}")


CASES = {
    "block": _pod(CONTAINERS),
    "first key not containers": _pod("  hostNetwork: true\n" + CONTAINERS),
    "pull secrets block": _pod("  imagePullSecrets:\n  - name: other\n" + CONTAINERS),
    "pull secrets flow": _pod("  imagePullSecrets: [{name: other}]\n" + CONTAINERS),
    "pull secrets null": _pod("  imagePullSecrets:\n" + CONTAINERS),
    "pull secrets ours": _pod("  imagePullSecrets: [{name: acme-registry}]\n" + CONTAINERS),
    "pull secrets last": _pod(CONTAINERS + "  imagePullSecrets: []\n"),
    "flow pod spec": _pod("  {containers: [{name: a, image: quay.io/acme/api:1}]}\n"),
    "init and volumes": _pod(
        CONTAINERS.replace("containers:", "initContainers:")
        + "  volumes:\n    - name: v\n      image: {reference: quay.io/acme/data:1}\n"
    ),
    "init only": _pod(CONTAINERS.replace("containers:", "initContainers:")),
    "deployment": _pod(
        "  template:\n    spec:\n" + "".join("    " + line for line in CONTAINERS.splitlines(True)),
        "Deployment",
    ),
    "cronjob": _pod(
        "  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n"
        "            - {name: a, image: quay.io/acme/api:1}\n",
        "CronJob",
    ),
    "not strings": _pod(CONTAINERS.replace("quay.io/acme/web:2", "42").replace('"42"', "42")),
    "invalid image": _pod(CONTAINERS.replace("quay.io/acme/web:2", "UPPER/Case")),
    "port fails": _pod(CONTAINERS.replace("quay.io/acme/api:1", "reg.example:5000/api:1")),
    "multi-line image": _pod(CONTAINERS.replace("image: quay.io/acme/api:1", "image: >-\n        quay.io/acme/api:1", 1)),
    "tagged image": _pod(CONTAINERS.replace("image: quay.io", "image: !!str quay.io", 1)),
    "anchor": _pod(CONTAINERS.replace("- name: a", "- &c name: a")),
    "merge": _pod(CONTAINERS + "    - {<<: {name: e}, image: quay.io/acme/x:1}\n"),
    "duplicate key": _pod(CONTAINERS + "  containers: []\n"),
    "complex key": _pod(CONTAINERS + "  ? [a]\n  : b\n"),
    "list": "apiVersion: v1\nkind: List\nitems:\n  - " + _pod(CONTAINERS).replace("\n", "\n    "),
    "not ascii": _pod(CONTAINERS).replace("name: wide", "name: wide # é"),
    "not yaml": _pod(CONTAINERS + "  x: [\n"),
    "crlf": _pod(CONTAINERS).replace("\n", "\r\n"),
}


def _render(data: bytes, lean: bool, **kwargs: object) -> tuple[bytes | str, str]:
    stream = io.StringIO()
    report = Reporter(stream=stream)
    opts = options(**kwargs)
    try:
        out: bytes | str = rewrite(find_and_decide(data, opts, lambda refs: {}, report, lean=lean), opts, report).stream()
    except RewriterError as exc:
        out = str(exc)
    return out, stream.getvalue()


@pytest.mark.parametrize("name", sorted(CASES))
def test_events_render_what_the_tree_renders(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(visit, "LEAN_SIZE", 0)
    data = CASES[name].encode()
    assert _render(data, True) == _render(data, False)
    strict = _render(data, True, strict=True)
    assert strict == _render(data, False, strict=True)
    public = Rules(app_slug="acme", private=("quay.io/*",), public=("*:5000/*",))
    assert _render(data, True, rules=public) == _render(data, False, rules=public)


def test_the_corpus_renders_the_same_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visit, "LEAN_SIZE", 0)
    files = sorted(CORPUS.glob("*.yaml"))[::2] + sorted((FIXTURES / "semantics").glob("*.yaml"))
    for path in files:
        data = path.read_bytes()
        assert _render(data, True) == _render(data, False), path.name


def test_repeated_images_are_one_found_with_compact_sites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visit, "LEAN_SIZE", 0)
    data = CASES["block"].encode()
    plan = find_and_decide(data, options(), lambda refs: {}, Reporter(stream=io.StringIO()), lean=True)
    assert [type(f) for f in plan.found] == [Repeated, Repeated, Repeated]
    first = plan.found[0]
    assert isinstance(first, Repeated)
    assert [path for _, _, _, path in first.sites()] == [
        "spec.containers[0].image",
        "spec.containers[3].image",
    ]
    assert first.doc.released and first.doc.root is None


@pytest.mark.parametrize("name", ["anchor", "merge", "duplicate key", "complex key", "tagged image", "multi-line image", "not yaml"])
def test_what_events_cannot_show_is_composed(name: str) -> None:
    assert eventfind.read(CASES[name].encode(), FieldTable()) is None


def test_the_event_count_is_libyamls() -> None:
    from yaml._yaml import CParser

    data = CASES["pull secrets block"].encode()
    read = eventfind.read(data, FieldTable())
    assert read is not None and read.events == CParser(data).raw_parse()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda pieces: [pieces[0].replace(b"kind: Pod", b"kind: Pox")],  # beyond the edits
        lambda pieces: [pieces[0] + b"x: 1\n"],  # text added at the end
        lambda pieces: [pieces[0][:-1]],  # text lost at the end
        lambda pieces: [p.replace(b"- name: c\n", b"- name: c\n\n") for p in pieces],
    ],
)
def test_a_big_document_edited_otherwise_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, tamper
) -> None:  # type: ignore[no-untyped-def]
    from rewriter.manifest import splicecheck

    monkeypatch.setattr(visit, "LEAN_SIZE", 0)
    check = splicecheck.check_stream
    monkeypatch.setattr(
        splicecheck, "check_stream", lambda doc, data, pieces, *rest: check(doc, data, tamper(pieces), *rest)
    )
    out, _ = _render(CASES["block"].encode(), True)
    assert isinstance(out, str) and "internal error" in out


def test_a_big_document_is_written_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visit, "LEAN_SIZE", 0)
    monkeypatch.setattr(render_module, "_PIECE", 64)
    data = CASES["block"].encode()
    assert _render(data, True) == _render(data, False)
