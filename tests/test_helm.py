"""rewriter as a Helm post-renderer, run the way Helm runs it (no helm binary here).

Helm 3 (pkg/postrender/exec.go): `--post-renderer PATH|NAME` is resolved on PATH and run
with the `--post-renderer-args` values as its arguments, the user's environment, the
release's manifests (`# Source:` comments, never the hooks) on stdin; stdout replaces the
manifests, a non-zero exit fails the install and shows stderr.

Helm 4 (internal/plugin/runtime_subprocess.go, subprocess_commands.go, pkg/action):
`--post-renderer NAME` names a `postrenderer/v1` plugin; the plugin's
`runtimeConfig.platformCommand[].command` is split on spaces, `${VAR}` expanded, the
`--post-renderer-args` appended; the environment gains HELM_PLUGIN_NAME and
HELM_PLUGIN_DIR; stderr goes to a buffer nobody reads; empty output is an error. The
input holds every template, hooks included, each document annotated with
`postrenderer.helm.sh/postrender-filename`; afterwards Helm regroups the output by that
annotation (documents without it become `generated-by-postrender-<i>.yaml`), removes it,
and only then splits hooks from manifests.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import rewriter

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "helm-plugin"
RENDERED = Path(__file__).resolve().parent / "fixtures" / "charts" / "shop-rendered"
FILENAME = "postrenderer.helm.sh/postrender-filename"
LICENSE_ID = "2bXexampleLicenseID"
ARGS = ["--app-slug=my-kots-app", "--private=quay.io/my-org/*", "--public=docker.io/*"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.stdout) if d]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user running helm: rewriter on PATH, its own HOME."""
    home = tmp_path / "home"
    home.mkdir()
    license_file = tmp_path / "license-id"
    license_file.write_text(LICENSE_ID + "\n")
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "REWRITER_LICENSE_ID_FILE": str(license_file),
    }


def helm3_post_render(args: list[str], stdin: str, env: dict[str, str]) -> Run:
    """postrender.NewExec("rewriter", args...).Run(manifests), as Helm 3 does it."""
    binary = shutil.which("rewriter", path=env["PATH"])
    assert binary is not None
    done = subprocess.run(
        [binary, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )
    return Run(done.returncode, done.stdout, done.stderr)


def helm4_post_render(args: list[str], stdin: str, env: dict[str, str]) -> Run:
    """The postrenderer/v1 plugin invoked as Helm 4 does, from helm-plugin/plugin.yaml."""
    plugin = yaml.safe_load((PLUGIN_DIR / "plugin.yaml").read_text())
    env = {**env, "HELM_PLUGIN_NAME": plugin["name"], "HELM_PLUGIN_DIR": str(PLUGIN_DIR)}
    (platform,) = plugin["runtimeConfig"]["platformCommand"]
    parts = platform["command"].split(" ")

    def expand(text: str) -> str:  # os.Expand over the plugin's environment
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], ""), text)

    argv = [expand(p) for p in parts] + [expand(a) for a in platform.get("args", [])] + args
    done = subprocess.run(
        argv, input=stdin, env=env, capture_output=True, text=True, timeout=60
    )
    return Run(done.returncode, done.stdout, done.stderr)


def split_and_deannotate(output: str) -> dict[str, list[dict[str, Any]]]:
    """pkg/action's splitAndDeannotate: documents regrouped by their filename annotation."""
    files: dict[str, list[dict[str, Any]]] = {}
    for i, doc in enumerate(d for d in yaml.safe_load_all(output) if d):
        annotations = doc.setdefault("metadata", {}).get("annotations") or {}
        name = annotations.pop(FILENAME, "") or f"generated-by-postrender-{i}.yaml"
        if not annotations:
            doc["metadata"].pop("annotations", None)
        files.setdefault(name, []).append(doc)
    return files


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def auths(secret: dict[str, Any]) -> dict[str, str]:
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    return {h: base64.b64decode(e["auth"]).decode() for h, e in config["auths"].items()}


# --- Helm 3 --------------------------------------------------------------------------


def test_helm3_post_renderer_rewrites_the_release_manifests(user_env: dict[str, str]) -> None:
    stdin = (RENDERED / "helm3-post-render.yaml").read_text()
    run = helm3_post_render(ARGS, stdin, user_env)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    deployment, secret = run.documents()
    assert [c["image"] for c in containers(deployment)] == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1",
        "redis:7",
    ]
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "my-kots-app-registry"}
    ]
    # Comments and quoting as Helm wrote them; only the image value changed.
    assert run.stdout.startswith("---\n# Source: shop/templates/deployment.yaml\n")
    assert '          image: "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1"\n' in (
        run.stdout
    )
    # Helm 3 does not set HELM_NAMESPACE for a post-renderer: the Secret has no namespace
    # and Helm creates it in the release namespace, next to the Deployment.
    assert "namespace" not in secret["metadata"]
    assert secret["metadata"]["name"] == "my-kots-app-registry"
    assert auths(secret)["proxy.replicated.com"] == f"LICENSE_ID:{LICENSE_ID}"


def test_helm3_namespace_from_helm_namespace(user_env: dict[str, str]) -> None:
    stdin = (RENDERED / "helm3-post-render.yaml").read_text()
    run = helm3_post_render(ARGS, stdin, {**user_env, "HELM_NAMESPACE": "shop"})
    assert run.returncode == 0, run.stderr
    assert run.documents()[-1]["metadata"]["namespace"] == "shop"


def test_helm3_failure_is_a_nonzero_exit_with_the_reason(user_env: dict[str, str]) -> None:
    del user_env["REWRITER_LICENSE_ID_FILE"]
    stdin = (RENDERED / "helm3-post-render.yaml").read_text()
    run = helm3_post_render(ARGS, stdin, user_env)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.startswith("error: a pull secret is needed but no license ID was given")


def test_helm3_hooks_are_not_post_rendered_workarounds(user_env: dict[str, str]) -> None:
    # Helm 3 leaves the migration hook out of the post-renderer's input ...
    helm3_input = (RENDERED / "helm3-post-render.yaml").read_text()
    assert "shop-migrate" not in helm3_input
    # ... so the README's workarounds: `helm template | rewriter scan` names the proxied
    # image to set through the chart's values,
    template = str(RENDERED / "helm-template.yaml")
    scan = subprocess.run(
        ["rewriter", "scan", *ARGS, template],
        env=user_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    (line,) = [row for row in scan.stdout.splitlines() if "Job/shop-migrate" in row]
    assert line.split()[-1] == "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/migrate:v1.0.1"
    # ... or render with `helm template` (hooks included) and apply the rewritten stream.
    run = helm3_post_render(ARGS, Path(template).read_text(), user_env)
    assert run.returncode == 0, run.stderr
    job = next(d for d in run.documents() if d["kind"] == "Job")
    assert containers(job)[0]["image"].startswith("proxy.replicated.com/proxy/my-kots-app/")


# --- Helm 4 --------------------------------------------------------------------------


def test_helm4_plugin_yaml_loads_as_a_postrenderer_v1_plugin() -> None:
    plugin = yaml.safe_load((PLUGIN_DIR / "plugin.yaml").read_text())
    # MetadataV1 is decoded with KnownFields(true): nothing else is accepted.
    allowed = {"apiVersion", "name", "type", "runtime", "version", "sourceURL", "config",
               "runtimeConfig"}  # fmt: skip
    assert set(plugin) <= allowed
    assert plugin["apiVersion"] == "v1"
    assert plugin["type"] == "postrenderer/v1"
    assert plugin["runtime"] == "subprocess"
    assert plugin["name"] == "rewriter"
    assert re.fullmatch(r"\d+\.\d+\.\d+", plugin["version"])
    assert plugin["version"] == rewriter.__version__
    assert set(plugin["runtimeConfig"]) == {"platformCommand"}
    assert plugin["runtimeConfig"]["platformCommand"] == [
        {"command": "${HELM_PLUGIN_DIR}/run.sh"}
    ]
    assert os.access(PLUGIN_DIR / "run.sh", os.X_OK)


def test_helm4_keeps_filenames_and_makes_the_secret_a_hook(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    stdin = (RENDERED / "helm4-post-render.yaml").read_text()
    run = helm4_post_render(ARGS, stdin, {**user_env, "HELM_NAMESPACE": "shop"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() != ""  # Helm 4 rejects empty output
    # Every document Helm annotated comes back with the annotation byte for byte.
    for line in re.findall(rf"^    {re.escape(FILENAME)}: .*$", stdin, re.MULTILINE):
        assert line in run.stdout.splitlines()
    files = split_and_deannotate(run.stdout)
    (deployment,) = files["shop/templates/deployment.yaml"]
    (job,) = files["shop/templates/migrate-job.yaml"]
    assert containers(job)[0]["image"] == (
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/migrate:v1.0.1"
    )
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "my-kots-app-registry"}
    ]
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "my-kots-app-registry"}
    ]
    # The added Secret needs no filename annotation: Helm files it as a generated file.
    (secret,) = files["generated-by-postrender-2.yaml"]
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["namespace"] == "shop"
    # The migration Job is a pre-install hook (weight -5): the Secret must exist first,
    # so it is a pre-install,pre-upgrade hook weighted below it (SPEC section 5).
    annotations = secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < -5
    assert FILENAME not in annotations


def test_helm4_without_hooks_the_secret_is_a_plain_manifest(user_env: dict[str, str]) -> None:
    stdin = (RENDERED / "helm4-post-render.yaml").read_text().split("\n---\n")[0] + "\n"
    run = helm4_post_render(ARGS, stdin, user_env)
    assert run.returncode == 0, run.stderr
    secret = run.documents()[-1]
    assert secret["kind"] == "Secret"
    assert "annotations" not in secret["metadata"]


def test_helm4_environment_and_appended_args_reach_rewriter(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    stdin = (RENDERED / "helm4-post-render.yaml").read_text()
    env = {**user_env, "REWRITER_APP_SLUG": "my-kots-app", "REWRITER_PRIVATE": "*"}
    run = helm4_post_render(["--secret-name=vendor-pull", "--proxy-host=proxy.vendor.example"],
                            stdin, env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    documents = run.documents()
    assert containers(documents[0])[1]["image"] == (
        "proxy.vendor.example/proxy/my-kots-app/redis:7"
    )
    assert documents[-1]["metadata"]["name"] == "vendor-pull"


def state_log(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / ".local" / "state" / "rewriter" / "helm-post-renderer.log"


def test_helm4_warnings_and_errors_go_to_the_log_file(user_env: dict[str, str]) -> None:
    stdin = (RENDERED / "helm4-post-render.yaml").read_text().replace(
        "image: redis:7", "image: $(CACHE_IMAGE)"
    )
    run = helm4_post_render(ARGS, stdin, user_env)
    assert run.returncode == 0, run.stderr
    log = state_log(user_env)
    warning = (
        "warning: document 0 (Deployment shop-api, line 26): "
        "spec.template.spec.containers[1].image: invalid image reference '$(CACHE_IMAGE)'"
    )
    assert log.read_text().startswith(warning)
    # Helm 4 throws stderr away: the log is where a failure can be read.
    failing = helm4_post_render([*ARGS, "--on-probe-error=bogus"], stdin, user_env)
    assert failing.returncode != 0
    assert failing.stdout == ""
    assert "error: invalid --on-probe-error 'bogus'" in log.read_text()


def test_helm4_log_file_location_can_be_chosen(tmp_path: Path, user_env: dict[str, str]) -> None:
    stdin = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: ''\n"
    by_env = tmp_path / "by-env.log"
    run = helm4_post_render(ARGS, stdin, {**user_env, "REWRITER_LOG_FILE": str(by_env)})
    assert run.returncode == 0, run.stderr
    assert "invalid image reference ''" in by_env.read_text()
    by_arg = tmp_path / "by-arg.log"
    run = helm4_post_render([*ARGS, f"--log-file={by_arg}"], stdin, user_env)
    assert run.returncode == 0, run.stderr
    assert "invalid image reference ''" in by_arg.read_text()
    assert not state_log(user_env).exists()
    # XDG_STATE_HOME is honoured for the default.
    state = tmp_path / "state"
    helm4_post_render(ARGS, stdin, {**user_env, "XDG_STATE_HOME": str(state)})
    assert "invalid image reference ''" in (state / "rewriter" / "helm-post-renderer.log").read_text()


def test_helm4_without_rewriter_installed_says_so_in_the_log(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    env = {**user_env, "PATH": "/usr/bin:/bin"}
    run = helm4_post_render(ARGS, "kind: List\n", env)
    assert (run.returncode, run.stdout) == (1, "")
    assert "rewriter is not on PATH" in state_log(env).read_text()


def test_helm4_unwritable_home_still_renders(tmp_path: Path, user_env: dict[str, str]) -> None:
    home = Path(user_env["HOME"])
    home.chmod(0o555)
    try:
        stdin = (RENDERED / "helm4-post-render.yaml").read_text()
        run = helm4_post_render(ARGS, stdin, user_env)
    finally:
        home.chmod(0o755)
    if os.geteuid() == 0:  # root writes anywhere; the fallback is for everyone else
        assert run.returncode == 0
    else:
        assert run.returncode == 0 and not state_log(user_env).exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_run_sh_is_shellcheck_clean() -> None:
    done = subprocess.run(
        ["shellcheck", str(PLUGIN_DIR / "run.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout
