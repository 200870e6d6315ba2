"""Hostile and broken input: it renders correctly, or fails with exit 1, one `error:` line
naming the document, and nothing on stdout. Never a traceback, never a partial stream."""

from __future__ import annotations

import time

import pytest
import yaml
from support.helpers import run

ARGS = ["--app-slug", "acme", "--license-id", "L", "--private", "*", "--offline"]
POD = b"kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: quay.io/a/b:1\n"

BILLION_LAUGHS = POD + b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    b"%c: &%c [%s]\n" % (c, c, b",".join([b"*%c" % (c - 1)] * 9)) for c in range(ord("b"), ord("k"))
)

# Where the refusal comes from the YAML parser, only rewriter's part of the message is
# asserted: the parser's own wording changes between PyYAML and libyaml releases. Deep flow
# nesting is refused by libyaml's scanner (since 0.2.6, PyYAML 6.0.4) or by rewriter's own
# depth check (older libyaml), so only where it is named is fixed.
FAILS = [
    ("malformed", b"kind: Pod\nspec: {containers: [\n", "error: document 1 (Pod, line 3): invalid YAML: "),
    ("tabs", b"kind: Pod\nspec:\n\tcontainers: []\n", "error: document 1 (Pod, line 3): invalid YAML: "),
    ("invalid utf-8 in a pod", b"kind: Pod\nspec: {containers: [{image: \xff}]}\n", "error: document 1 (Pod, line 2): invalid UTF-8"),
    ("invalid utf-8 elsewhere", b"kind: ConfigMap\ndata: {a: \xff}\n", "error: document 1 (ConfigMap): invalid YAML: "),
    ("second document broken", POD + b"---\nkind: ConfigMap\ndata: {a: [}\n", "error: document 2 (ConfigMap, line 9): invalid YAML: "),
    ("duplicate keys", b"kind: Pod\nspec:\n  containers:\n  - image: nginx\n    image: quay.io/x/y\n", "error: document 1 (Pod, line 5): duplicate key 'image'"),
    ("deep flow nesting", b"kind: Pod\nx: " + b"[" * 50000 + b"]" * 50000 + b"\n", "error: document 1 (Pod, line 2): "),
    ("deep block nesting", b"".join(b" " * i + b"k:\n" for i in range(1100)), "error: document 1 (line 501): nested more than 500 levels deep"),
    # Untouched documents are checked by the parser, not the composer, so an undefined
    # alias is reported where it matters: in documents that may hold an image.
    ("undefined alias", b"kind: Pod\nspec: {containers: [{image: *nothing}]}\n", "error: document 1 (Pod, line 2): invalid YAML: "),
    # kubectl: "anchor 's' value contains itself"
    ("recursive alias", b"kind: Pod\nspec: &s\n  containers:\n  - image: quay.io/a/b:1\n  self: *s\n", "error: document 1 (Pod, line 2): an anchor is used inside itself"),
    ("user secret in the way", POD + b"---\nkind: Secret\nmetadata: {name: acme-registry}\n", "error: document 2: a Secret named 'acme-registry' already exists"),
    ("private image on a port", POD.replace(b"quay.io/a/b:1", b"localhost:5000/b:1"), "error: 1 image(s) cannot be rewritten:"),
]


@pytest.mark.parametrize(("data", "message"), [f[1:] for f in FAILS], ids=[f[0] for f in FAILS])
def test_bad_input_fails_cleanly(data, message):
    started = time.monotonic()
    result = run(ARGS, stdin=data)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert result.stdout == b""
    assert stderr.startswith(message)
    assert "Traceback" not in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1
    assert time.monotonic() - started < 10


RENDERS = [
    ("empty", b"", b""),
    ("comment only", b"# nothing here\n", b"# nothing here\n"),
    ("scalar and list documents", b"--- 42\n--- [a, b]\n--- 'text'\n---\n", None),
    ("nulls where maps are expected", b"kind: Pod\nspec: {containers: null, initContainers: [null]}\n---\nkind: Deployment\nspec: {template: ~}\n", None),
    ("billion laughs", BILLION_LAUGHS, None),
    ("BOM and CRLF", b"\xef\xbb\xbf" + POD.replace(b"\n", b"\r\n"), None),
    ("JSON", b'{"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "quay.io/a/b:1"}]}}', None),
    ("huge single line", b"kind: ConfigMap\ndata: {a: " + b"x" * 4_000_000 + b"}\n---\n" + POD, None),
]


@pytest.mark.parametrize(("data", "expected"), [r[1:] for r in RENDERS], ids=[r[0] for r in RENDERS])
def test_odd_but_valid_input_renders(data, expected):
    started = time.monotonic()
    result = run(ARGS, stdin=data)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    if expected is not None:
        assert result.stdout == expected
    else:
        list(yaml.compose_all(result.stdout, Loader=yaml.CSafeLoader))  # parses again
        assert run(ARGS, stdin=result.stdout).stdout == result.stdout  # idempotent
    assert time.monotonic() - started < 10


def test_non_string_images_warn_and_stay():
    data = b"kind: Pod\nspec: {containers: [{image: 42}, {image: [a]}, {image: {x: 1}}, {image: true}]}\n"
    result = run(ARGS, stdin=data)
    assert result.returncode == 0
    assert result.stdout == data
    assert result.stderr.decode().count("not a string") == 2  # maps and lists are not image fields


def test_strict_turns_warnings_into_one_error():
    data = b"kind: Pod\nspec: {containers: [{image: '{{ .Values.image }}'}]}\n"
    result = run([*ARGS, "--strict"], stdin=data)
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == (
        "error: document 1 (Pod ?, line 2): spec.containers[0].image: "
        "invalid image reference '{{ .Values.image }}' (invalid reference format)\n"
    )
