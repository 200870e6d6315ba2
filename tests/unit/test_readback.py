"""The check of edited documents (readback.verify) read from libyaml's events
(rewriter/manifest/readback.py): it must read what the composed tree reads, find what the tree
check finds, and render the same bytes."""

from __future__ import annotations

import pytest
import yaml
from support import CORPUS, FIXTURES
from support.helpers import options, render
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.errors import RewriterError
from rewriter.manifest import readback
from rewriter.manifest.document import field_at
from rewriter.manifest.readback import read_fields
from rewriter.manifest.stream import split


def _paths(node: Node, at: str = "") -> list[str]:
    """Every field path in a tree without aliases, as fields.format_path writes them."""
    out = [at]
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and not set(".[]") & set(str(key.value)):
                out += _paths(value, f"{at}.{key.value}" if at else str(key.value))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            out += _paths(item, f"{at}[{index}]")
    return out


def _composed(node: Node | None) -> list[str | None]:
    if node is None:
        return []
    return [str(node.value)] if isinstance(node, ScalarNode) else [None]


def _documents() -> list[str]:
    files = sorted(CORPUS.glob("*.yaml"))[::4] + sorted(FIXTURES.rglob("*.yaml"))
    texts: list[str] = []
    for path in files:
        for chunk in split(path.read_bytes())[1]:
            text = chunk.data.decode("utf-8", errors="replace")
            if "image" in text and len(text) < 200_000:
                texts.append(text)
    return texts


def test_reads_what_the_composed_tree_reads() -> None:
    checked = 0
    for text in _documents():
        try:
            root = yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            continue
        if root is None:
            continue
        paths = _paths(root)
        read = read_fields(text, paths)
        if read is None:  # aliases or merges on the way: the caller composes
            assert "*" in text or "<<" in text
            continue
        for path in paths:
            node = field_at(root, path) if path else root
            assert read.get(path, []) == _composed(node), path
        checked += 1
    assert checked > 50


def test_aliases_and_merges_on_the_way_defer_to_the_tree() -> None:
    base = "a: &x {image: one}\n"
    assert read_fields(base + "b: *x\n", ["b.image"]) is None
    assert read_fields(base + "b: {<<: *x}\n", ["b.image"]) is None
    assert read_fields(base + "b: {!!merge m: *x}\n", ["b.image"]) is None
    # Elsewhere they change nothing.
    assert read_fields(base + "b: {image: two}\nc: *x\n", ["b.image"]) == {"b.image": ["two"]}


def test_duplicates_collections_and_odd_keys() -> None:
    text = "a:\n  image: one\n  image: two\nb: [1, {c: d}]\nx.y: z\n? [k]\n: v\n"
    read = read_fields(text, ["a.image", "b", "b[1].c", "b[2]", "x.y", "x"])
    assert read == {"a.image": ["one", "two"], "b": [None], "b[1].c": ["d"]}


@pytest.mark.parametrize("text", ["a: [1\n", "a: 1\n---\nb: 2\n", "a: b: c\n"])
def test_not_one_document_is_a_yaml_error(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        read_fields(text, ["a"])


def test_renders_the_same_bytes_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(CORPUS.glob("*.yaml"))[::3] + sorted((FIXTURES / "semantics").glob("*.yaml"))
    for path in files:
        data = path.read_bytes()
        outcomes: list[bytes | str] = []
        for size in (1 << 30, 0):
            monkeypatch.setattr(readback, "READBACK_SIZE", size)
            try:
                outcomes.append(render(data, options(annotate=True)))
            except RewriterError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], path.name
