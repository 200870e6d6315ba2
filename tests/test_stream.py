from __future__ import annotations

import pytest

from rewriter.errors import RewriterError
from rewriter.stream import check_syntax, split


@pytest.mark.parametrize(
    ("data", "pieces"),
    [
        (b"", []),
        (b"a: 1\n", [b"a: 1\n"]),
        (b"a: 1\n---\nb: 2\n", [b"a: 1\n", b"---\nb: 2\n"]),
        (b"---\na: 1\n---\n", [b"---\na: 1\n", b"---\n"]),
        (
            b"# head\n--- |\n  text\n--- {a: 1}\n",
            [b"# head\n", b"--- |\n  text\n", b"--- {a: 1}\n"],
        ),
        (b"a: |\n  ----\n  --- not at column 0\n", [b"a: |\n  ----\n  --- not at column 0\n"]),
        (b"----\n", [b"----\n"]),
        (b"a: 1\r\n---\r\nb: 2\r\n", [b"a: 1\r\n", b"---\r\nb: 2\r\n"]),
        (b"a: 1\n---", [b"a: 1\n", b"---"]),
    ],
)
def test_split_cuts_at_document_markers_only(data, pieces):
    bom, chunks = split(data)
    assert bom == b""
    assert [c.data for c in chunks] == pieces
    assert b"".join(c.data for c in chunks) == data


def test_split_keeps_the_byte_order_mark_apart_and_counts_lines():
    bom, chunks = split(b"\xef\xbb\xbfa: 1\nb: 2\n---\nc: 3\n")
    assert bom == b"\xef\xbb\xbf"
    assert [(c.index, c.first_line) for c in chunks] == [(0, 1), (1, 3)]


def test_check_syntax_names_document_and_stream_line():
    _, chunks = split(b"a: 1\n---\nb: 2\nc: [unclosed\n")
    check_syntax(chunks[0])
    with pytest.raises(RewriterError) as error:
        check_syntax(chunks[1])
    assert str(error.value).startswith("document 1 (line 5): invalid YAML: ")


def test_check_syntax_rejects_invalid_utf8():
    _, chunks = split(b"a: \xff\n")
    with pytest.raises(RewriterError, match="document 0"):
        check_syntax(chunks[0])
