from __future__ import annotations

import pytest

from rewriter.errors import RewriterError
from rewriter.manifest.stream import check_syntax, guess_label, split


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
    assert str(error.value).startswith("document 2 (line 5): invalid YAML: ")


def test_check_syntax_rejects_invalid_utf8():
    _, chunks = split(b"a: \xff\n")
    with pytest.raises(RewriterError, match="document 1"):
        check_syntax(chunks[0])


def test_split_with_files_counts_documents_and_lines_within_each_file():
    # What `rewriter render a.yaml b.yaml c.yaml` reads: a `---` line is put before a
    # file that does not start with one (b.yaml), none before one that does (c.yaml).
    a, b, c = b"a: 1\n---\nb: 2\n", b"# b\nc: 3\n---\nd: 4\n", b"---\ne: 5\n"
    data = a + b"---\n" + b + c
    _, chunks = split(data, [("a.yaml", 0), ("b.yaml", len(a) + 4), ("c.yaml", len(a + b) + 4)])
    assert [c.data for c in chunks] == [
        b"a: 1\n",
        b"---\nb: 2\n",
        b"---\n# b\nc: 3\n",
        b"---\nd: 4\n",
        b"---\ne: 5\n",
    ]
    assert [c.name() for c in chunks] == [
        "a.yaml: document 1",
        "a.yaml: document 2",
        "b.yaml: document 1",
        "b.yaml: document 2",
        "c.yaml: document 1",
    ]
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]  # the stream's own count stays
    assert chunks[2].line(2) == 2  # `c: 3` is b.yaml's line 2
    assert chunks[3].line(1) == 4  # `d: 4`
    assert chunks[4].line(1) == 2  # `e: 5`
    assert chunks[3].short() == "b.yaml:2"


def test_split_with_files_and_a_byte_order_mark():
    a, b = b"\xef\xbb\xbfa: 1\n", b"b: [\n"
    _, chunks = split(a + b"---\n" + b, [("a.yaml", 0), ("b.yaml", len(a) + 4)])
    with pytest.raises(RewriterError, match=r"^b\.yaml: document 1 \(line 2\): invalid YAML"):
        check_syntax(chunks[1])


def test_without_files_documents_count_from_1_in_the_stream():
    _, chunks = split(b"a: 1\n---\nb: 2\n")
    assert [(c.name(), c.short(), c.line(1)) for c in chunks] == [
        ("document 1", "1", 2),
        ("document 2", "2", 3),
    ]


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n",
            "Deployment shop/web",
        ),
        (b"kind: 'Pod'  # c\nmetadata:\n    labels:\n      name: not-this\n    name: p\n", "Pod p"),
        (b"metadata:\n  name: web\nspec:\n  name: x\n", "? web"),
        (b"kind: Pod\nspec:\n  name: x\n", "Pod"),
        (b"kind: Pod\nmetadata: {name: flow}\n", "Pod"),
        (b"kind: Pod\nmetadata:\n  namespace: a\nspec:\n  name: not-metadata\n", "Pod"),
        (b"kind: Pod\nkind: Job\nmetadata:\n  name: j\n", "? j"),  # a duplicate key
        (b"a:\n  kind: Pod\n  metadata:\n    name: x\n", None),  # not at column 0
        (b"data: |\n  kind: Pod\n", None),
        (b"", None),
    ],
)
def test_guess_label_reads_kind_and_name_loosely(data, label):
    assert guess_label(data) == label


def test_yaml_errors_name_the_resource_when_its_bytes_tell():
    text = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec: {a: [\n"
    _, chunks = split(b"a: 1\n---\n" + text)
    with pytest.raises(RewriterError) as error:
        check_syntax(chunks[1])
    assert str(error.value).startswith("document 2 (Deployment shop/web, line 9): invalid YAML: ")
