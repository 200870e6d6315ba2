from __future__ import annotations

import io

import pytest
import yaml
from support.helpers import options, render

from rewriter.decide import Rules
from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.plan import describe
from rewriter.render import find_and_decide, rewrite

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  annotations: {{}}
spec:
  template:
    spec:
      containers:
      - name: web
        image: quay.io/acme/web:1  # the app
"""


def secrets_of(out: bytes) -> list[dict]:
    return [d for d in yaml.safe_load_all(out) if d and d.get("kind") == "Secret"]


def test_fidelity_of_a_changed_document():
    text = """\
# a comment that stays
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    created: 2021-01-01T00:00:00Z
    mode: 0755
    long: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbb"
spec:
  zeta: 1
  alpha: 2
  template:
    spec:
      containers:
      - name: web    # trailing comment
        image: 'quay.io/acme/web:1'
        args: [--flag, "yes", on]
"""
    out = render(text).decode()
    first = out.split("---\n")[0]
    expected = text.replace(
        "    spec:\n      containers:",
        "    spec:\n      imagePullSecrets:\n      - name: acme-registry\n      containers:",
    ).replace("'quay.io/acme/web:1'", "'proxy.replicated.com/proxy/acme/quay.io/acme/web:1'")
    assert first == expected


def test_untouched_documents_are_byte_for_byte():
    text = "kind: ConfigMap\ndata:   {a: 'x'}   # odd spacing\n---\n--- \n# only a comment\n"
    assert render(text) == text.encode()


def test_one_secret_per_namespace_sorted_after_the_documents():
    text = DEPLOY.format(ns="b") + "---\n" + DEPLOY.format(ns="a") + "---\n" + DEPLOY.format(ns="b")
    out = render(text)
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Deployment"] * 3 + ["Secret"] * 2
    assert [d["metadata"]["namespace"] for d in docs[3:]] == ["a", "b"]
    secret = docs[3]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "rewriter"}
    import base64
    import json

    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    auth = base64.b64encode(b"LICENSE_ID:L").decode()
    assert config == {
        "auths": {
            "proxy.replicated.com": {"auth": auth},
            "registry.replicated.com": {"auth": auth},
        }
    }


def test_namespace_less_workloads_get_a_namespace_less_secret_unless_namespace_given():
    text = DEPLOY.format(ns="x").replace("  namespace: x\n", "")
    assert [s["metadata"].get("namespace") for s in secrets_of(render(text))] == [None]
    out = render(text, options(namespace="prod"))
    assert [s["metadata"]["namespace"] for s in secrets_of(out)] == ["prod"]


def test_additional_namespaces_and_star():
    text = (
        "kind: Namespace\nmetadata: {name: extra}\n---\nkind: ConfigMap\nmetadata: {name: c, namespace: other}\n---\n"
        + DEPLOY.format(ns="app")
    )
    out = render(text, options(additional_namespaces=("named",)))
    assert [s["metadata"]["namespace"] for s in secrets_of(out)] == ["app", "named"]
    out = render(text, options(additional_namespaces=("*",)))
    assert [s["metadata"]["namespace"] for s in secrets_of(out)] == ["app", "extra", "other"]


def test_public_images_need_no_secret_and_no_license():
    out = render(
        DEPLOY.format(ns="a"), options(rules=Rules(app_slug="acme", public=("*",)), credentials=())
    )
    assert out == DEPLOY.format(ns="a").encode()


def test_missing_credentials_are_an_error_when_a_secret_is_needed():
    with pytest.raises(RewriterError, match="no credentials"):
        render(DEPLOY.format(ns="a"), options(credentials=()))


def test_user_secret_in_the_way_is_an_error_ours_is_replaced():
    user = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: acme-registry, namespace: a}\n"
    with pytest.raises(
        RewriterError,
        match=r"document 2: a Secret named 'acme-registry' already exists in namespace a",
    ):
        render(DEPLOY.format(ns="a") + user)
    # In another namespace it is no conflict.
    render(DEPLOY.format(ns="b") + user)
    first = render(DEPLOY.format(ns="a"))
    assert render(first) == first


@pytest.mark.parametrize("labels", ["{}", "{app.kubernetes.io/managed-by: rewriter}"])
def test_a_secret_named_like_ours_inside_a_list_is_in_the_way(labels: str) -> None:
    # Even our own label does not help: a List item cannot be dropped as a document can,
    # and appending ours would give the cluster two.
    listed = (
        "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n"
        f"  metadata: {{name: acme-registry, namespace: a, labels: {labels}}}\n"
    )
    with pytest.raises(RewriterError) as error:
        render(DEPLOY.format(ns="a") + listed)
    assert str(error.value) == (
        "document 2 items[0]: a Secret named 'acme-registry' already exists in namespace a "
        "inside a List; rename it or choose another name with --secret-name"
    )
    render(DEPLOY.format(ns="b") + listed)  # another namespace: no conflict


def test_existing_pull_secrets_are_kept_and_ours_added_once():
    text = DEPLOY.format(ns="a").replace(
        "    spec:\n", "    spec:\n      imagePullSecrets:\n      - name: mine\n"
    )
    out = render(text)
    spec = next(yaml.safe_load_all(out))["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "acme-registry"}, {"name": "mine"}]
    assert render(out) == out


def test_sync_wave_and_helm_hooks_order_the_secret():
    waves = DEPLOY.format(ns="a").replace(
        "annotations: {}", "annotations: {argocd.argoproj.io/sync-wave: '3'}"
    )
    early = waves.replace("'3'", "'-2'").replace("name: web", "name: early")
    hook = DEPLOY.format(ns="a").replace(
        "annotations: {}", "annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: '-5'}"
    )
    (secret,) = secrets_of(render(waves + "---\n" + early + "---\n" + hook))
    assert secret["metadata"]["annotations"] == {
        "argocd.argoproj.io/sync-wave": "-2",
        "helm.sh/hook": "pre-install,pre-upgrade",
        "helm.sh/hook-weight": "-6",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }


def test_an_unannotated_consumer_is_wave_0_for_the_secret():
    late = DEPLOY.format(ns="a").replace(
        "annotations: {}", "annotations: {argocd.argoproj.io/sync-wave: '5'}"
    )
    plain = DEPLOY.format(ns="a").replace("name: web", "name: plain")
    (secret,) = secrets_of(render(late))
    assert secret["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "5"}
    # With a consumer in wave 0 (no annotation), the Secret must be there by wave 0.
    (secret,) = secrets_of(render(late + "---\n" + plain))
    assert "annotations" not in secret["metadata"]


def test_all_unproxyable_images_are_reported_together():
    text = (
        DEPLOY.format(ns="a").replace("quay.io/acme/web:1", "localhost:5000/a:1")
        + "---\n"
        + DEPLOY.format(ns="b").replace("quay.io/acme/web:1", "Reg.io/b:1")
    )
    with pytest.raises(RewriterError) as error:
        render(text)
    message = str(error.value)
    assert message.startswith("2 image(s) cannot be rewritten:")
    assert "localhost:5000/a:1" in message and "Reg.io/b:1" in message
    assert "document 2 (Deployment b/web, line 25)" in message


def test_unparseable_values_warn_and_stay_strict_fails():
    text = (
        DEPLOY.format(ns="a").replace("quay.io/acme/web:1", "'{{ .Values.image }}'")
        + "        ports: []\n      - name: n\n        image: 42\n"
    )
    stream = io.StringIO()
    report = Reporter(stream=stream)
    opts = options()
    out = rewrite(
        find_and_decide(text.encode(), opts, lambda refs: {}, report), opts, report
    ).stream()
    assert out == text.encode()
    assert stream.getvalue().splitlines() == [
        "warning: document 1 (Deployment a/web, line 12): spec.template.spec.containers[0].image: invalid image reference '{{ .Values.image }}' (invalid reference format); left unchanged",
        "warning: document 1 (Deployment a/web, line 15): spec.template.spec.containers[1].image: not a string (int: '42'); left unchanged",
    ]
    with pytest.raises(RewriterError, match="invalid image reference"):
        render(text, options(strict=True))


def test_json_documents_stay_json():
    text = '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "quay.io/a/b:1"}]}}\n'
    out = render(text).decode().split("---\n")[0]
    import json

    assert json.loads(out)["spec"] == {
        "imagePullSecrets": [{"name": "acme-registry"}],
        "containers": [{"name": "c", "image": "proxy.replicated.com/proxy/acme/quay.io/a/b:1"}],
    }


def test_crlf_and_bom_survive():
    text = "\ufeff" + DEPLOY.format(ns="a").replace("\n", "\r\n")
    out = render(text.encode("utf-8"))
    assert out.startswith(b"\xef\xbb\xbf")
    first = out.split(b"---\n")[0]
    assert b"\r\n      imagePullSecrets:\r\n      - name: acme-registry\r\n" in first
    assert b"\n" not in first.replace(b"\r\n", b"")


def test_custom_resource_fields_get_pull_secrets_where_the_kind_takes_them():
    from rewriter.manifest.fields import FieldTable, ImageField, parse_path

    fields = FieldTable().extended(
        [],
        [
            ImageField("Prometheus", parse_path("spec.image"), parse_path("spec.imagePullSecrets")),
            ImageField("Thing", parse_path("spec.image")),
        ],
    )
    text = "kind: Prometheus\nmetadata: {name: p, namespace: m}\nspec:\n  image: quay.io/p/p:1\n---\nkind: Thing\nmetadata: {name: t, namespace: m}\nspec:\n  image: quay.io/t/t:1\n"
    stream = io.StringIO()
    report = Reporter(stream=stream)
    opts = options(fields=fields)
    out = rewrite(
        find_and_decide(text.encode(), opts, lambda refs: {}, report), opts, report
    ).stream()
    docs = list(yaml.safe_load_all(out))
    assert docs[0]["spec"] == {
        "imagePullSecrets": [{"name": "acme-registry"}],
        "image": "proxy.replicated.com/proxy/acme/quay.io/p/p:1",
    }
    assert docs[1]["spec"] == {"image": "proxy.replicated.com/proxy/acme/quay.io/t/t:1"}
    assert "Thing has no pull secret field" in stream.getvalue()


def test_bad_yaml_names_the_document_and_line():
    with pytest.raises(RewriterError, match=r"^document 2 \(Pod, line 4\): invalid YAML: "):
        render("a: 1\n---\nkind: Pod\nspec: {containers: [image: x}\n")


def test_each_distinct_image_is_probed_once():
    asked = []

    def prober(refs):
        asked.append(sorted(r.text for r in refs))
        return {}

    text = DEPLOY.format(ns="a") + "---\n" + DEPLOY.format(ns="b")
    render(text, options(rules=Rules(app_slug="acme")), prober=prober)
    assert asked == [["quay.io/acme/web:1"]]


def test_annotate_records_the_original_images_once():
    text = DEPLOY.format(ns="a").replace("  annotations: {}\n", "  annotations:\n    keep: me\n")
    out = render(text, options(annotate=True))
    meta = next(yaml.safe_load_all(out))["metadata"]
    assert meta["annotations"] == {
        "rewriter/original-images": '{"spec.template.spec.containers[0].image":"quay.io/acme/web:1"}',
        "keep": "me",
    }
    assert render(out, options(annotate=True)) == out
    bare = render(DEPLOY.format(ns="a").replace("  annotations: {}\n", ""), options(annotate=True))
    assert "rewriter/original-images" in next(yaml.safe_load_all(bare))["metadata"]["annotations"]


def test_annotate_paths_start_at_the_list_item() -> None:
    item = DEPLOY.format(ns="a").replace("\n", "\n  ")
    listed = f"apiVersion: v1\nkind: List\nitems:\n- {item}"
    items = next(yaml.safe_load_all(render(listed, options(annotate=True))))["items"]
    assert items[0]["metadata"]["annotations"] == {
        "rewriter/original-images": '{"spec.template.spec.containers[0].image":"quay.io/acme/web:1"}'
    }


def test_local_registry_secret_holds_only_its_credentials_and_anonymous_needs_none():
    import base64
    import json

    rules = Rules(app_slug="acme", local_registry="reg.local/ns")
    out = render(DEPLOY.format(ns="a"), options(rules=rules, credentials=(("reg.local", "u:p"),)))
    (secret,) = secrets_of(out)
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config == {"auths": {"reg.local": {"auth": base64.b64encode(b"u:p").decode()}}}
    anonymous = render(
        DEPLOY.format(ns="a"), options(rules=rules, credentials=(), pull_secrets=False)
    )
    assert secrets_of(anonymous) == []
    assert b"imagePullSecrets" not in anonymous
    assert b"image: reg.local/ns/web:1" in anonymous


def test_related_images_are_opt_in():
    import dataclasses

    from rewriter.manifest import catalogue

    text = (
        DEPLOY.format(ns="a")
        + "        env:\n        - {name: RELATED_IMAGE_DB, value: quay.io/acme/db:2}\n        - {name: OTHER, value: quay.io/acme/x:1}\n"
    )
    assert b"proxy/acme/quay.io/acme/db:2" not in render(text)
    fields = dataclasses.replace(catalogue.builtin(), related_images=True)
    out = render(text, options(fields=fields))
    assert b"value: proxy.replicated.com/proxy/acme/quay.io/acme/db:2}" in out
    assert b"value: quay.io/acme/x:1}" in out


# --- what may skip composing (issue 13, item 6) -----------------------------------------

POD_IMAGE = "quay.io/acme/web:1"
PROXIED = "proxy.replicated.com/proxy/acme/quay.io/acme/web:1"


def images_of(out: bytes) -> list[str]:
    docs = [d for d in yaml.safe_load_all(out) if d and d.get("kind") != "Secret"]
    return [c["image"] for d in docs for c in d["spec"]["template"]["spec"]["containers"]]


def test_a_crd_line_inside_a_scalar_does_not_skip_the_deployment() -> None:
    text = DEPLOY.format(ns="a").replace(
        "  annotations: {}\n", '  annotations:\n    note: "a\nkind: CustomResourceDefinition"\n'
    )
    assert images_of(render(text)) == [PROXIED]


def test_a_duplicate_kind_is_refused() -> None:
    text = "kind: CustomResourceDefinition\n" + DEPLOY.format(ns="a")
    with pytest.raises(
        RewriterError, match=r"^document 1 \(\? a/web, line 3\): duplicate key 'kind'$"
    ):
        render(text)


@pytest.mark.parametrize("key", ['"\\x69mage"', '"im\\u0061ge"'])
def test_an_escaped_image_key_is_found(key: str) -> None:
    # Neither `image` nor `containers` appears in the bytes, yet kubectl reads both.
    text = DEPLOY.format(ns="a").replace("image: quay.io", f"{key}: quay.io")
    text = text.replace("containers:", '"cont\\x61iners":')
    out = render(text)
    assert images_of(out) == [PROXIED]
    assert f"{key}: {PROXIED}".encode() in out  # the key is written as the user wrote it


CONFIGMAP_WITH_A_POD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: a}
spec:
  template:
    spec:
      containers:
      - image: quay.io/acme/web:1
data:
  image: quay.io/acme/web:1
"""


def test_a_configmap_holds_no_image_unless_the_config_names_it() -> None:
    from rewriter.manifest.fields import FieldTable, ImageField, parse_path

    assert render(CONFIGMAP_WITH_A_POD) == CONFIGMAP_WITH_A_POD.encode()
    fields = FieldTable().extended([], [ImageField("ConfigMap", parse_path("data.image"))])
    out = render(CONFIGMAP_WITH_A_POD, options(fields=fields)).decode()
    assert f"  image: {PROXIED}\n" in out
    assert f"      - image: {POD_IMAGE}\n" in out  # pod shapes never apply to a ConfigMap


def test_a_secret_is_composed_only_when_it_may_be_named_like_ours() -> None:
    other = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: other, namespace: a}\n"
    assert render(DEPLOY.format(ns="a") + other).count(b"kind: Secret") == 2
    escaped = other.replace("name: other", 'name: "acme-regis\\x74ry"')
    with pytest.raises(RewriterError, match="a Secret named 'acme-registry' already exists"):
        render(DEPLOY.format(ns="a") + escaped)


# --- merge keys, aliases, tags and empty values (issue 13 items 1-5, 9) -------------------


def test_an_image_reached_only_through_a_merge_is_proxied() -> None:
    text = (
        "kind: Pod\nmetadata: {name: p, namespace: a}\nspec:\n  containers:\n"
        "  - &base {name: a, image: quay.io/acme/web:1}\n  - <<: *base\n    name: b\n"
    )
    out = render(text).decode().split("---\n")[0]
    assert out == (
        "kind: Pod\nmetadata: {name: p, namespace: a}\nspec:\n"
        "  imagePullSecrets:\n  - name: acme-registry\n  containers:\n"
        f"  - &base {{name: a, image: {PROXIED}}}\n  - <<: *base\n    name: b\n"
    )


def test_a_list_s_second_pod_with_a_merged_spec_gets_the_pull_secret() -> None:
    text = (
        "kind: List\nitems:\n"
        "- kind: Pod\n  metadata: {name: one, namespace: a}\n"
        "  spec: &s {containers: [{name: c, image: quay.io/acme/web:1}]}\n"
        "- kind: ConfigMap\n  x: *s\n"
        "- kind: Pod\n  metadata: {name: two, namespace: a}\n  spec:\n    <<: *s\n"
    )
    docs = list(yaml.safe_load_all(render(text)))
    one, config, two = docs[0]["items"]
    assert one["spec"]["imagePullSecrets"] == [{"name": "acme-registry"}]
    assert two["spec"]["imagePullSecrets"] == [{"name": "acme-registry"}]
    assert two["spec"]["containers"][0]["image"] == PROXIED
    # The ConfigMap aliases the same mapping, and keeps it as it was.
    assert config["x"] == {"containers": [{"name": "c", "image": POD_IMAGE}]}


def test_a_pod_spec_aliased_by_list_items_is_written_once() -> None:
    text = (
        "kind: List\nitems:\n"
        "- kind: Pod\n  metadata: {name: one, namespace: a}\n"
        "  spec: &s\n    containers:\n    - {name: c, image: quay.io/acme/web:1}\n"
        "- kind: Pod\n  metadata: {name: two, namespace: a}\n  spec: *s\n"
    )
    out = render(text).decode().split("---\n")[0]
    assert out == (
        "kind: List\nitems:\n"
        "- kind: Pod\n  metadata: {name: one, namespace: a}\n"
        "  spec: &s\n    imagePullSecrets:\n    - name: acme-registry\n"
        f"    containers:\n    - {{name: c, image: {PROXIED}}}\n"
        "- kind: Pod\n  metadata: {name: two, namespace: a}\n  spec: *s\n"
    )


def test_an_annotation_aliasing_the_image_keeps_its_value() -> None:
    text = (
        "kind: Pod\nmetadata:\n  name: p\n  annotations: {source: &i quay.io/acme/web:1}\n"
        "spec:\n  containers:\n  - {name: c, image: *i}\n"
    )
    (pod,) = [d for d in yaml.safe_load_all(render(text)) if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"] == {"source": POD_IMAGE}
    assert pod["spec"]["containers"][0]["image"] == PROXIED


@pytest.mark.parametrize(
    "metadata",
    ["metadata: &m {name: p}\n", "metadata:\n  name: p\n  annotations:\n"],
    ids=["anchored flow metadata", "empty annotations"],
)
def test_annotate_on_anchored_or_empty_metadata(metadata: str) -> None:
    text = (
        f"kind: Pod\n{metadata}spec:\n  containers:\n  - {{name: c, image: quay.io/acme/web:1}}\n"
    )
    (pod,) = [
        d for d in yaml.safe_load_all(render(text, options(annotate=True))) if d["kind"] == "Pod"
    ]
    assert pod["metadata"]["annotations"] == {
        "rewriter/original-images": '{"spec.containers[0].image":"quay.io/acme/web:1"}'
    }


@pytest.mark.parametrize("key", ["initContainers", "ephemeralContainers"])
def test_a_pod_spec_without_containers_is_still_one(key: str) -> None:
    text = f"kind: Pod\nmetadata: {{name: p}}\nspec:\n  {key}:\n  - {{name: c, image: quay.io/acme/web:1}}\n"
    (pod,) = [d for d in yaml.safe_load_all(render(text)) if d["kind"] == "Pod"]
    assert pod["spec"][key][0]["image"] == PROXIED
    assert pod["spec"]["imagePullSecrets"] == [{"name": "acme-registry"}]


def test_a_custom_tag_is_the_string_kubectl_reads() -> None:
    text = "kind: Pod\nspec:\n  containers:\n  - {name: c, image: !img quay.io/acme/web:1}\n"
    assert f"image: !img {PROXIED}}}".encode() in render(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!binary cXVheS5pby9hY21lL3dlYjox", "tagged !!binary; write the image as a plain string"),
        ("!!int quay.io/acme/web:1", "not a string (int: 'quay.io/acme/web:1')"),
    ],
)
def test_a_tagged_image_that_is_no_string_is_refused(value: str, message: str) -> None:
    text = f"kind: Pod\nspec:\n  containers:\n  - name: c\n    image: {value}\n"
    with pytest.raises(RewriterError) as caught:
        render(text)
    assert str(caught.value) == f"document 1 (Pod ?, line 5): spec.containers[0].image: {message}"


def test_messages_of_several_files_name_the_file_and_its_line():
    first = DEPLOY.format(ns="a")
    second = "kind: ConfigMap\n---\n" + DEPLOY.format(ns="b").replace("web:1", "web:{{ v }}")
    data = (first + "---\n" + second).encode()
    stream = io.StringIO()
    files = [("a.yaml", 0), ("b.yaml", len(first) + 4)]
    plan = find_and_decide(data, options(), lambda refs: {}, Reporter(stream=stream), files=files)
    assert stream.getvalue().startswith(
        "warning: b.yaml: document 2 (Deployment b/web, line 14): "
        "spec.template.spec.containers[0].image: invalid image reference"
    )
    assert [describe(f) for f in plan.found] == [
        "a.yaml: document 1 (Deployment a/web, line 12) spec.template.spec.containers[0].image"
    ]


@pytest.mark.parametrize(
    "value",
    ["\n      a: b", "\n    - a", " [a, b]", " {a: b}", "\n      - a\n      # trailing comment"],
)
def test_annotate_replaces_a_non_string_annotation_value(value: str) -> None:
    # Never a second `rewriter/original-images` key: consumers disagree on which wins.
    text = DEPLOY.format(ns="a").replace(
        "  annotations: {}\n",
        f"  annotations:\n    rewriter/original-images:{value}\n    keep: me\n",
    )
    out = render(text, options(annotate=True))
    assert out.count(b"rewriter/original-images") == 1
    meta = next(yaml.safe_load_all(out))["metadata"]
    assert meta["annotations"] == {
        "rewriter/original-images": '{"spec.template.spec.containers[0].image":"quay.io/acme/web:1"}',
        "keep": "me",
    }
