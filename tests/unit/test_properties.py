"""Properties over generated images and manifests: no crash, output parses, idempotent,
and nothing but image fields and pull secrets changes.

The suite runs 200 examples per property (REWRITER_FUZZ=N for more; hypothesis itself is
most of the cost). The long fuzz run is `python3 scripts/fuzz.py --inputs 100000`:
mutations of real corpus documents, about 2 ms each (figures in the README).
"""

from __future__ import annotations

import io
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.helpers import options

from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.reference import ImageRef, InvalidReference
from rewriter.render import find_and_decide, rewrite

EXAMPLES = int(os.environ.get("REWRITER_FUZZ", "200"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def render(data: bytes) -> bytes:
    opts = options()
    report = Reporter(stream=io.StringIO())
    return rewrite(find_and_decide(data, opts, lambda refs: {}, report), opts, report).stream()


REFERENCE_CHARS = "abcz09._-/:@ABZ[]" + "sha256" + "\t {}$#'\"\\é"
images = st.one_of(
    st.text(alphabet=REFERENCE_CHARS, max_size=80),
    st.from_regex(
        r"([a-z0-9]+\.[a-z]{2,3}(:[0-9]{1,5})?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+)*(:[\w][\w.-]{0,20})?(@sha256:[a-f0-9]{64})?",
        fullmatch=True,
    ),
)
styles = st.sampled_from(["plain", "single", "double", "json"])


def quote(value: str, style: str) -> str:
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    if style in ("double", "json"):
        import json

        return json.dumps(value)
    return yaml.safe_dump(value, default_style=None, width=1 << 20).removesuffix("\n...\n").strip()


@PROFILE
@given(
    image=images,
    style=styles,
    pull_secrets=st.sampled_from(
        ["", "  imagePullSecrets: []\n", "  imagePullSecrets:\n  - name: other\n"]
    ),
)
def test_any_image_value(image: str, style: str, pull_secrets: str) -> None:
    text = f"kind: Pod\nmetadata:\n  name: p\nspec:\n{pull_secrets}  containers:\n  - name: c\n    image: {quote(image, style)}\n"
    data = text.encode()
    try:
        out = render(data)
    except RewriterError:
        return  # a clean failure (e.g. a private image on a registry with a port)
    after = yaml.safe_load_all(out)
    pod = next(after)
    try:
        ref = ImageRef.parse(image)
    except InvalidReference:
        assert out == data  # left untouched, with a warning
        return
    assert pod["spec"]["containers"][0]["image"] == "proxy.replicated.com/proxy/acme/" + ref.text
    assert {"name": "acme-registry"} in pod["spec"]["imagePullSecrets"]
    assert render(out) == out


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["0755", "2021-01-01T00:00:00Z", "yes", "~", "1e3", "- x", "a: b", "#c"]),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(max_size=5), "image": images}, optional={"extra": trees}
    ),
    max_size=3,
)
resources = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.just("Pod"),
            "metadata": st.fixed_dictionaries(
                {"name": st.text(max_size=5)}, optional={"namespace": st.sampled_from(["a", "b"])}
            ),
            "spec": st.fixed_dictionaries({"containers": containers}, optional={"x": trees}),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["Deployment", "Job", "Rollout"]),
            "spec": st.fixed_dictionaries(
                {
                    "template": st.fixed_dictionaries(
                        {
                            "spec": st.fixed_dictionaries(
                                {"initContainers": containers, "containers": containers}
                            )
                        }
                    )
                }
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["ConfigMap", "CustomResourceDefinition", "Prometheus"]),
            "data": trees,
            "spec": st.fixed_dictionaries({}, optional={"image": images}),
        }
    ),
    trees,
)


WITH_IMAGES = {"Pod", "Deployment", "Job", "Rollout", "Prometheus"}


def strip_ours(node: Any) -> Any:
    """The document as generated: pull secrets dropped (generated documents have none),
    proxied images undone."""
    if isinstance(node, dict):
        return {k: strip_ours(v) for k, v in node.items() if k != "imagePullSecrets"}
    if isinstance(node, list):
        return [strip_ours(v) for v in node]
    if isinstance(node, str):
        return node.removeprefix("proxy.replicated.com/proxy/acme/")
    return node


@PROFILE
@given(docs=st.lists(resources, min_size=1, max_size=4), flow=st.booleans())
def test_any_manifest_shape(docs: list[Any], flow: bool) -> None:
    data = yaml.safe_dump_all(docs, default_flow_style=flow, sort_keys=False).encode()
    try:
        out = render(data)
    except RewriterError:
        return
    rendered = list(yaml.safe_load_all(out))
    ours = [d for d in rendered[len(docs) :]]
    assert all(d["kind"] == "Secret" for d in ours)
    for before, after in zip(docs, rendered, strict=False):
        if isinstance(before, dict) and before.get("kind") in WITH_IMAGES:
            assert strip_ours(after) == strip_ours(before)
        else:
            assert after == before
    assert render(out) == out
