"""The visit of a stream's documents (rewriter/visit.py): a batch at a time, and still
told in document order."""

from __future__ import annotations

import io

import pytest
from support.helpers import options

from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.render import find_and_decide


@pytest.mark.parametrize("lean", [False, True], ids=["kept", "lean"])
def test_a_document_that_cannot_be_read_stops_the_render_after_the_warnings_before_it(
    lean: bool,
) -> None:
    """Documents are read a batch at a time (visit.BATCH), but what the user is told
    comes in document order: the warnings of the documents before the broken one, then
    its error, and none of the documents after it."""
    good = "apiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\nspec:\n  containers: [{name: a, image: '%s'}]\n"
    stream = "---\n".join(
        [
            good % (1, "BAD IMAGE"),
            good % (2, "quay.io/a/b:1"),
            "kind: Pod\nspec: [\n",
            good % (4, "ALSO BAD"),
        ]
    )
    said = io.StringIO()
    with pytest.raises(RewriterError, match=r"^document 3"):
        find_and_decide(
            stream.encode(), options(), lambda refs: {}, Reporter(stream=said), lean=lean
        )
    warnings = said.getvalue()
    assert "document 1 (Pod p1" in warnings and "invalid image reference 'BAD IMAGE'" in warnings
    assert "ALSO BAD" not in warnings
