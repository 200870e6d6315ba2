"""`rewriter krm`, the kustomize KRM function: the ResourceList contract on its own, then
through real `kubectl kustomize` (container form: kubectl has no --enable-exec, so a
stand-in `docker` runs the function here, exactly as kustomize invokes it)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support import ROOT
from support import kustomizehost as kh
from support.helpers import SHOP_SECRET, by_id, run

from rewriter.cli import main

KUSTOMIZE, RULES = kh.KUSTOMIZE, kh.RULES
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
  file:
    path: web.yaml
    index: 0
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
    # One located result per image that cannot be rewritten (issue 17 item 12).
    assert answer["results"][-1] == {
        "message": "localhost:5000/api:1: rule --private '*'; a private image on a registry "
        "with a port cannot be proxied",
        "severity": "error",
        "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                        "namespace": "shop"},
        "field": {"path": "spec.template.spec.containers[0].image"},
        "file": {"path": "web.yaml", "index": 0},
    }  # fmt: skip
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
            "    options: {cache: probes.sqlite, log-file: /tmp/x, proxy-host: evil.example}\n",
            "functionConfig: cache, log-file, proxy-host may not be set by the repository, "
            "only by the Application or the sidecar (hosts that receive credentials, files, "
            "the cache, the log, TLS and probe reach)",
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


def kustomize(
    kubectl: str, directory: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
    full_env["PATH"] = f"{KUSTOMIZE / 'bin'}{os.pathsep}{full_env['PATH']}"
    full_env.update(env or {})
    return subprocess.run(
        [kubectl, "kustomize", *args, str(directory)],
        capture_output=True,
        env=full_env,
        check=False,
    )


def test_through_kubectl_kustomize_equals_render(kubectl: str, tmp_path: Path) -> None:
    shutil.copytree(KUSTOMIZE / "app", tmp_path / "app")
    shutil.copytree(KUSTOMIZE / "krm", tmp_path / "krm")
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
    shutil.copytree(KUSTOMIZE / "app", tmp_path / "app")
    shutil.copytree(KUSTOMIZE / "krm", tmp_path / "krm")
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


# --- through the real kustomize: the exec form ------------------------------------------
# `kustomize build --enable-alpha-plugins --enable-exec` (tests/hosts/build kustomize) runs
# rewriter-krm.sh in the kustomization's directory with the ResourceList on stdin, its
# stderr passed through, and fails the build on a non-zero exit ("couldn't execute
# function"). It reads the answer's `results` but neither prints them nor looks at their
# severity (kyaml fn/runtime/runtimeutil: kept for a results file that `kustomize build`
# never asks for), so the exit code and stderr are what a user sees.
# Each run is judged against `rewriter render` of `kustomize build BASE`, and against the
# pipe `kustomize build BASE | rewriter`.


def assert_forms_agree(
    kustomize: Path, base: Path, options: kh.Options, env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[bytes]:
    """exec function == pipe == render, for one base; returns the function's build."""
    reference = kh.reference(kustomize, base, options, env, tmp_path / "reference")
    assert reference.rendered.returncode == 0, reference.rendered.stderr.decode()
    function = kh.build_with_function(
        kustomize, kh.exec_overlay(tmp_path / "function", base, options), env
    )
    assert function.returncode == 0, function.stderr.decode()
    piped = kh.pipe(base, options, env)
    assert piped.returncode == 0, piped.stderr.decode()
    # The pipe is the render of the same stream: the same bytes (documents it leaves
    # alone come out as kustomize wrote them).
    assert piped.stdout == reference.rendered.stdout
    # The function's build holds exactly the render's resources, serialized by kustomize.
    assert by_id(function.stdout) == by_id(reference.rendered.stdout)
    assert function.stdout == reference.rewritten
    # Each form tells the same warnings (the function names resources, the pipe lines).
    assert len(kh.warnings(function.stderr)) == len(kh.warnings(piped.stderr))
    assert function.stderr.decode() == "".join(f"{line}\n" for line in kh.warnings(function.stderr))
    return function


def test_exec_function_under_kustomize_equals_pipe_and_render(
    kustomize: Path, tmp_path: Path
) -> None:
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    function = assert_forms_agree(kustomize, base, kh.HOST_OPTIONS, env, tmp_path)
    assert function.stderr == b""
    built = by_id(function.stdout)
    secret = built[("v1", "Secret", "shop", "acme-registry")]
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "rewriter"}
    web = built[("apps/v1", "Deployment", "shop", "demo-web")]["spec"]["template"]["spec"]
    assert web["imagePullSecrets"] == [{"name": "acme-registry"}, {"name": "dockerhub"}]
    assert [c["image"] for c in web["containers"]] == [
        "proxy.replicated.com/proxy/acme/quay.io/my-org/api:v1.0.1",
        "nginx:1.25",
        "redis:7.2",  # retagged by the base's images: before rewriter saw it
    ]
    # kustomize strips its internal annotations from what it prints.
    assert b"config.k8s.io/id" not in function.stdout
    assert b"internal.config.kubernetes.io" not in function.stdout
    # cache: none, a home of the test's own: nothing written there.
    assert not (tmp_path / "cache").exists() and not (tmp_path / "home").exists()


def test_exec_function_warning_comes_back_as_a_result(kustomize: Path, tmp_path: Path) -> None:
    """kustomize shows the function's stderr, not its `results`: the warning must be on
    both, and the answer (results included) must be one kustomize accepts."""
    base = kh.app_base(tmp_path, templated=True)
    env = kh.host_env(tmp_path, kustomize)
    assert_forms_agree(kustomize, base, kh.HOST_OPTIONS, env, tmp_path / "forms")
    # The same function, through a wrapper that keeps what kustomize sent and what
    # rewriter answered (in its working directory: the kustomization's).
    capturing = (
        "#!/bin/sh\n"
        "cat > request.yaml\n"
        'rewriter krm "$@" < request.yaml > answer.yaml\n'
        "status=$?\n"
        "cat answer.yaml\n"
        'exit "$status"\n'
    )
    overlay = kh.exec_overlay(tmp_path / "capture", base, kh.HOST_OPTIONS, script=capturing)
    function = kh.build_with_function(kustomize, overlay, env)
    assert function.returncode == 0, function.stderr.decode()
    assert function.stderr.decode() == (
        f"warning: Job shop/demo-setup spec.template.spec.containers[0].image: {kh.TEMPLATED_WARNING}\n"
    )
    job = by_id(function.stdout)[("batch/v1", "Job", "shop", "demo-setup")]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "{{ .Values.setup.image }}"
    assert b"results" not in function.stdout

    request = yaml.safe_load((overlay / "request.yaml").read_bytes())
    answer = yaml.safe_load((overlay / "answer.yaml").read_bytes())
    assert answer["results"] == [
        {
            "message": kh.TEMPLATED_WARNING,
            "severity": "warning",
            "resourceRef": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": "demo-setup",
                "namespace": "shop",
            },
            "field": {"path": "spec.template.spec.containers[0].image"},
        }
    ]
    # Every item comes back in place with kustomize's annotations as they were sent
    # (its ids map answers to resources); the Secret is a new item, without an id.
    sent = [item["metadata"]["annotations"] for item in request["items"]]
    got = [item["metadata"].get("annotations") for item in answer["items"]]
    assert got == [*sent, None]
    assert all("config.k8s.io/id" in annotations for annotations in sent)
    assert answer["items"][-1]["kind"] == "Secret"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param(
            {**kh.HOST_OPTIONS, "strict": True},
            "Job shop/demo-setup spec.template.spec.containers[0].image: invalid image "
            "reference '{{ .Values.setup.image }}' (invalid reference format)",
            id="strict-templated-image",
        ),
        pytest.param(
            {**kh.HOST_OPTIONS, "on-probe-error": "sometimes"},
            "invalid --on-probe-error 'sometimes': proxy, keep or fail",
            id="bad-option-value",
        ),
        pytest.param(
            {**kh.HOST_OPTIONS, "colour": "red"},
            "unknown options in config: colour",
            id="unknown-option",
        ),
        pytest.param(
            {**kh.HOST_OPTIONS, "cache": "probes.sqlite"},
            "functionConfig: cache may not be set by the repository, only by the Application "
            "or the sidecar (hosts that receive credentials, files, the cache, the log, TLS "
            "and probe reach)",
            id="cache-chosen-by-the-repository",
        ),
    ],
)
def test_a_failing_exec_function_fails_the_build(
    kustomize: Path, tmp_path: Path, options: kh.Options, error: str
) -> None:
    base = kh.app_base(tmp_path, templated=True)
    env = kh.host_env(tmp_path, kustomize)
    overlay = kh.exec_overlay(tmp_path / "function", base, options)
    function = kh.build_with_function(kustomize, overlay, env)
    assert (function.returncode, function.stdout) == (1, b"")
    stderr = function.stderr.decode()
    assert f"\nerror: {error}\n" in f"\n{stderr}"  # rewriter's own line, whole
    assert "couldn't execute function" in stderr  # kustomize's wording, loosely
    assert not (overlay / "probes.sqlite").exists()


def test_without_enable_exec_the_function_is_silently_skipped(
    kustomize: Path, tmp_path: Path
) -> None:
    """The trap docs/kustomize.md warns about: the build succeeds, nothing rewritten."""
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    overlay = kh.exec_overlay(tmp_path / "function", base, kh.HOST_OPTIONS)
    skipped = kh.build(kustomize, overlay, env, "--enable-alpha-plugins")
    assert skipped.returncode == 0, skipped.stderr.decode()
    assert skipped.stdout == kh.build(kustomize, base, env).stdout
    assert b"proxy.replicated.com" not in skipped.stdout
    # Without --enable-alpha-plugins the transformer is refused outright.
    refused = kh.build(kustomize, overlay, env)
    assert refused.returncode != 0
    assert "external plugins disabled" in refused.stderr.decode()


def test_exec_function_without_a_script(kustomize: Path, tmp_path: Path) -> None:
    """`exec:` takes `args` and `envs` too (kyaml's ExecSpec), and a bare `path` is looked
    up on PATH: no wrapper script needed. A relative file option is read from the
    kustomization's directory, where the function runs."""
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    del env["REWRITER_LICENSE_ID"]
    function = (
        "exec:\n"
        "  path: rewriter\n"
        "  args: [krm, --license-id-file, license-id, --secret-name, from-args]\n"
        "  envs: [REWRITER_ADDITIONAL_NAMESPACE=extra]\n"
    )
    overlay = kh.exec_overlay(tmp_path / "function", base, kh.HOST_OPTIONS, function, script=None)
    (overlay / "license-id").write_text("from-file\n")
    done = kh.build_with_function(kustomize, overlay, env)
    assert done.returncode == 0, done.stderr.decode()
    built = by_id(done.stdout)
    secrets = {key: doc for key, doc in built.items() if key[1] == "Secret"}
    assert sorted(secrets) == [
        ("v1", "Secret", "extra", "from-args"),
        ("v1", "Secret", "shop", "from-args"),
    ]
    config = base64.b64decode(
        secrets[("v1", "Secret", "shop", "from-args")]["data"][".dockerconfigjson"]
    )
    auth = json.loads(config)["auths"]["proxy.replicated.com"]["auth"]
    assert base64.b64decode(auth) == b"LICENSE_ID:from-file"
    web = built[("apps/v1", "Deployment", "shop", "demo-web")]["spec"]["template"]["spec"]
    assert web["imagePullSecrets"][0] == {"name": "from-args"}


@pytest.mark.parametrize(("name", "rewrites", "warns"), kh.CORPUS_CASES)
def test_exec_function_on_corpus_files_equals_pipe_and_render(
    kustomize: Path, tmp_path: Path, name: str, rewrites: bool, warns: bool
) -> None:
    env = kh.host_env(tmp_path, kustomize)
    function = assert_forms_agree(
        kustomize, kh.corpus_base(tmp_path, name), kh.CORPUS_OPTIONS, env, tmp_path
    )
    assert (b"proxy.replicated.com/proxy/acme/" in function.stdout) == rewrites
    assert bool(kh.warnings(function.stderr)) == warns


def test_a_corpus_file_that_cannot_be_rewritten_fails_function_and_pipe(
    kustomize: Path, tmp_path: Path
) -> None:
    """KubeVirt's examples pull from `registry:5000`: with `--private '*'` those images
    cannot be proxied, and neither form may hand on a stream."""
    base = kh.corpus_base(tmp_path, "kubevirt-examples")
    env = kh.host_env(tmp_path, kustomize)
    first = (
        "error: 7 image(s) cannot be rewritten:\n"
        "  registry:5000/kubevirt/network-passt-binding-cni:devel: rule --private '*'; a "
        "private image on a registry with a port cannot be proxied"
    )
    overlay = kh.exec_overlay(tmp_path / "function", base, kh.CORPUS_OPTIONS)
    function = kh.build_with_function(kustomize, overlay, env)
    assert (function.returncode, function.stdout) == (1, b"")
    assert (
        f"{first} [DaemonSet kubevirt/passt-binding-cni spec.template.spec.containers[0].image]\n"
        in function.stderr.decode()
    )
    assert "couldn't execute function" in function.stderr.decode()
    piped = kh.pipe(base, kh.CORPUS_OPTIONS, env)
    assert (piped.returncode, piped.stdout) == (1, b"")
    assert first in piped.stderr.decode()


DOCS = ROOT / "docs" / "kustomize.md"


def documented_block(language: str, first_line: str) -> str:
    """The first fenced block of docs/kustomize.md in `language` that starts with
    `first_line`, as a reader would copy it."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", DOCS.read_text(), re.M | re.S)
    return next(block for block in blocks if block.startswith(first_line))


def test_the_documented_exec_function_runs_as_written(kustomize: Path, tmp_path: Path) -> None:
    """kustomization.yaml, rewriter.yaml and rewriter-krm.sh copied from the docs, over a
    base whose images the documented rules decide (no probe)."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources:\n- web.yaml\n")
    (base / "web.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "      - name: api\n        image: quay.io/my-org/api:v1.0.1\n"
        "      - name: proxy\n        image: nginx:1.25\n"
    )
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    for name, language, first_line in (
        ("kustomization.yaml", "yaml", "# kustomization.yaml\n"),
        ("rewriter.yaml", "yaml", "# rewriter.yaml\n"),
        ("rewriter-krm.sh", "sh", "#!/bin/sh\n"),
    ):
        (overlay / name).write_text(documented_block(language, first_line))
    (overlay / "rewriter-krm.sh").chmod(0o755)
    env = kh.host_env(tmp_path, kustomize)
    # Insurance only: a probe would be a bug of the test's base, so make it fail loudly.
    env.update(REWRITER_OFFLINE="true", REWRITER_ON_PROBE_ERROR="fail")
    done = kh.build_with_function(kustomize, overlay, env)
    assert (done.returncode, done.stderr) == (0, b""), done.stderr.decode()
    options: kh.Options = {
        "app-slug": "my-kots-app",
        "private": ["quay.io/my-org/*"],
        "public": ["docker.io/library/*"],
    }
    reference = kh.reference(kustomize, base, options, env, tmp_path / "reference")
    assert done.stdout == reference.rewritten
    assert (
        b"image: proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1\n" in done.stdout
    )


def test_exec_function_in_two_overlays_replaces_its_own_secret(
    kustomize: Path, tmp_path: Path
) -> None:
    """An overlay of an overlay that both run rewriter: the second run gets the first's
    Secret as an item (with kustomize's id), drops it and adds its own; kustomize must end
    with one Secret and the same build as a single run."""
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    once = kh.exec_overlay(tmp_path / "once", base, kh.HOST_OPTIONS)
    twice = kh.exec_overlay(tmp_path / "twice", once, kh.HOST_OPTIONS)
    built_once = kh.build_with_function(kustomize, once, env)
    built_twice = kh.build_with_function(kustomize, twice, env)
    assert built_twice.returncode == 0, built_twice.stderr.decode()
    assert built_twice.stdout == built_once.stdout
    assert built_twice.stdout.count(b"kind: Secret\n") == 1


def test_exec_function_with_a_configmap_function_config(kustomize: Path, tmp_path: Path) -> None:
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    overlay = kh.exec_overlay(tmp_path / "function", base, kh.HOST_OPTIONS)
    (overlay / "rewriter.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rewriter\n  annotations:\n"
        "    config.kubernetes.io/function: |\n      exec:\n        path: ./rewriter-krm.sh\n"
        "data:\n  app-slug: acme\n  private: quay.io/my-org/* docker.io/my-org/*\n"
        "  public: docker.io/library/*\n  cache: none\n"
    )
    done = kh.build_with_function(kustomize, overlay, env)
    assert (done.returncode, done.stderr) == (0, b""), done.stderr.decode()
    reference = kh.reference(kustomize, base, kh.HOST_OPTIONS, env, tmp_path / "reference")
    assert done.stdout == reference.rewritten
    # The ConfigMap declared the function: kustomize keeps it out of the build.
    assert b"name: rewriter\n" not in done.stdout


def test_a_function_config_may_not_choose_where_credentials_go(
    kustomize: Path, tmp_path: Path
) -> None:
    """The functionConfig is committed with the repository: it may set rules and shapes,
    not the host the pull Secret's license credentials are for."""
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    overlay = kh.exec_overlay(
        tmp_path / "function", base, {**kh.HOST_OPTIONS, "proxy-host": "evil.example"}
    )
    done = kh.build_with_function(kustomize, overlay, env)
    assert (done.returncode, done.stdout) == (1, b"")
    assert "proxy-host" in done.stderr.decode()  # "a forbidden option is an error naming it"


# --- issue 17 ---------------------------------------------------------------------------

POD = """\
- apiVersion: v1
  kind: Pod
  metadata:
    generateName: job-
    namespace: shop
  spec:
    containers:
    - name: c
      image: "{{ x }}"
"""


def test_a_base_secret_renamed_from_the_pull_secrets_name_is_refused_by_the_function(
    kustomize: Path, tmp_path: Path
) -> None:
    """Item 1: after the function, kustomize's name references would point the new
    `imagePullSecrets: acme-registry` at the base's Secret renamed from that name."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("namePrefix: pre-\nresources:\n- all.yaml\n")
    (base / "all.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: acme-registry\n  namespace: shop\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n"
        "  containers:\n  - name: c\n    image: quay.io/my-org/api:1\n"
    )
    env = kh.host_env(tmp_path, kustomize)
    overlay = kh.exec_overlay(tmp_path / "function", base, kh.HOST_OPTIONS)
    done = kh.build_with_function(kustomize, overlay, env)
    assert (done.returncode, done.stdout) == (1, b"")
    assert (
        "\nerror: items[0]: Secret shop/pre-acme-registry was named 'acme-registry': it is a "
        "Secret the base renamed; kustomize would point the imagePullSecrets rewriter adds at "
        "it (choose another --secret-name)\n"
    ) in "\n" + done.stderr.decode()


def test_two_overlays_with_a_name_prefix_between_them_are_refused(
    kustomize: Path, tmp_path: Path
) -> None:
    """Item 13: the first run's Secret, renamed by the overlay between, is not the
    second run's to replace; the layering rule (docs/kustomize.md) is one run, last."""
    base = kh.app_base(tmp_path)
    env = kh.host_env(tmp_path, kustomize)
    kh.exec_overlay(tmp_path / "once", base, kh.HOST_OPTIONS)
    middle = tmp_path / "middle"
    middle.mkdir()
    (middle / "kustomization.yaml").write_text("namePrefix: prod-\nresources:\n- ../once\n")
    twice = kh.exec_overlay(tmp_path / "twice", middle, kh.HOST_OPTIONS)
    done = kh.build_with_function(kustomize, twice, env)
    assert (done.returncode, done.stdout) == (1, b"")
    assert re.search(
        r"\nerror: items\[\d+\]: Secret shop/prod-acme-registry was named 'acme-registry': it "
        r"is rewriter's pull Secret from an earlier run of the function, renamed by kustomize "
        r"since \(run the function once, in the last overlay\)\n",
        "\n" + done.stderr.decode(),
    )


def test_a_list_item_is_refused(krm: Callable[..., Done], kubectl: str, tmp_path: Path) -> None:
    """Item 3: kpt and others may send a `kind: List` item; render reads one level of
    Lists (the ResourceList's), so its images would be skipped in silence."""
    nested = "- apiVersion: v1\n  kind: List\n  metadata: {}\n  items:\n" + textwrap.indent(
        WEB, "  "
    )
    done = krm(HEAD + nested + FUNCTION_CONFIG)
    assert done.returncode == 1
    message = (
        "items[0]: List ? is a List inside the ResourceList; its resources would not be "
        "rewritten: send them as items of their own"
    )
    assert done.stderr.decode() == f"error: {message}\n"
    assert yaml.safe_load(done.stdout)["results"] == [
        {
            "message": message,
            "severity": "error",
            "resourceRef": {"apiVersion": "v1", "kind": "List", "name": ""},
        }
    ]
    # kustomize itself splits a List into its items: its functions never get one.
    (tmp_path / "list.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n" + WEB.replace("\n    annotations:", "\n    x:")
    )
    (tmp_path / "kustomization.yaml").write_text("resources:\n- list.yaml\n")
    built = kustomize(kubectl, tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(b"apiVersion: apps/v1\nkind: Deployment\n")


def test_v1beta1_resource_lists(krm: Callable[..., Done]) -> None:
    """Item 10: the older ResourceList version is answered in kind."""
    done = krm(INPUT.replace("config.kubernetes.io/v1\n", "config.kubernetes.io/v1beta1\n", 1))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == EXPECTED.replace(
        "config.kubernetes.io/v1\n", "config.kubernetes.io/v1beta1\n", 1
    )


def test_results_follow_the_spec(krm: Callable[..., Done]) -> None:
    """Item 12: a resourceRef names an item with only generateName; no items is items: []."""
    done = krm(HEAD + POD + FUNCTION_CONFIG)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["results"][0]["resourceRef"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "job-",
        "namespace": "shop",
    }
    assert b"None" not in done.stderr
    assert done.stderr.decode().startswith("warning: Pod shop/job- spec.containers[0].image: ")
    for listing in (
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: null\n",
    ):
        done = krm(listing + FUNCTION_CONFIG)
        assert done.returncode == 0, done.stderr
        assert yaml.safe_load(done.stdout)["items"] == []


def test_annotate_records_the_same_paths_as_the_pipe(krm: Callable[..., Done]) -> None:
    # The annotation sits on the item: its paths must not carry `items[N].`, or adding an
    # unrelated resource before it would change it (issue 17 item 11).
    clean = HEAD + SETTINGS + WEB.replace(
        '        - name: bad\n          image: "{{ .Values.image }}"\n', ""
    ) + FUNCTION_CONFIG
    done = krm(clean, "--annotate")
    assert done.returncode == 0, done.stderr
    web = next(i for i in yaml.safe_load(done.stdout)["items"] if i["kind"] == "Deployment")
    assert json.loads(web["metadata"]["annotations"]["rewriter/original-images"]) == {
        "spec.template.spec.containers[0].image": "quay.io/my-org/api:v1.0.1"
    }


def test_a_warning_about_one_image_points_at_its_first_site(
    krm: Callable[..., Done], registries
) -> None:
    """An image its registry does not know is warned of without a location of its own;
    its result names the resource and field where the image first is. Several on one
    registry are one warning (the count and names), located nowhere in particular."""
    host = registries.anonymous.domain
    gone = [registries.anonymous.image(f"team/gone{i}", "1") for i in range(3)]

    def pods(*images: str) -> str:
        return "".join(
            f"- {{apiVersion: v1, kind: Pod, metadata: {{name: p{i}, namespace: shop}}, "
            f"spec: {{containers: [{{name: c, image: '{image}'}}]}}}}\n"
            for i, image in enumerate(images)
        )

    args = ("--insecure-registry", host, "--timeout", "3")
    done = krm(HEAD + pods("nginx:1.25", gone[0]) + FUNCTION_CONFIG, *args)
    assert done.returncode == 0, done.stderr
    message = f"{gone[0]}: not found on its registry (HTTP 404); treated as private"
    assert done.stderr.decode().splitlines()[0] == f"warning: {message}"
    assert yaml.safe_load(done.stdout)["results"] == [
        {
            "message": message,
            "severity": "warning",
            "resourceRef": {"apiVersion": "v1", "kind": "Pod", "name": "p1", "namespace": "shop"},
            "field": {"path": "spec.containers[0].image"},
        }
    ]

    done = krm(HEAD + pods(*gone, gone[1]) + FUNCTION_CONFIG, *args)
    assert done.returncode == 0, done.stderr
    grouped = (
        f"3 images on {host}: not found on its registry (HTTP 404); treated as private "
        f"({gone[0]}, {gone[1]}, {gone[2]})"
    )
    assert yaml.safe_load(done.stdout)["results"] == [{"message": grouped, "severity": "warning"}]
