"""The check of an edited document (rewriter/editcheck.py): by reading it back where its
splices cannot tell (anchors, --annotate, images over several lines), every image must
read as decided and every resource must still be the object it was."""

from __future__ import annotations

import io

import pytest
from support.helpers import DEPLOYMENT_LIST as LIST
from support.helpers import options

from rewriter import editcheck
from rewriter import render as render_module
from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.manifest import readback
from rewriter.render import find_and_decide


def _plan_of(text: str):  # type: ignore[no-untyped-def]
    opts = options()
    report = Reporter(stream=io.StringIO())
    return find_and_decide(text.encode(), opts, lambda refs: {}, report), opts


@pytest.mark.parametrize("size", [0, 1 << 30], ids=["events", "compose"])
@pytest.mark.parametrize(
    "broken",
    [
        ("quay.io/acme/api:1", "quay.io/acme/api:2"),  # not the decided value
        ("kind: Deployment", "kind: Deploymentx"),  # another object
        ("namespace: shop", "namespace: other"),
        ("            - name: a\n", "            - name: a\n          x:\n"),  # re-parented
        ("items:\n", "items:\n  - {kind: Pod}\n"),  # a new List item
        ("image: proxy", "image: [proxy"),  # not YAML
        ("kind: List\n", "kind: List\n---\n"),  # two documents
    ],
)
def test_a_broken_edit_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, size: int, broken: tuple[str, str]
) -> None:
    monkeypatch.setattr(readback, "READBACK_SIZE", size)
    plan, _ = _plan_of(LIST)
    doc = next(item for item in plan.items if isinstance(item, render_module.Document))
    decision = plan.found[0].decision
    assert decision is not None and decision.new_text
    good = LIST.replace("quay.io/acme/api:1", decision.new_text)  # the image as edited
    editcheck.verify(doc, good, render_module._expected(plan.found))
    tampered = good.replace(*broken, 1)
    assert tampered != good
    with pytest.raises(RewriterError, match="internal error"):
        editcheck.verify(doc, tampered, render_module._expected(plan.found))
