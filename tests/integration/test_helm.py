"""rewriter as a Helm post-renderer, under the real Helm 3 and Helm 4 binaries.

Real: `helm` itself (tests/hosts/build builds Helm v3.21.4 and v4.3.2 from their Go
modules; the `helm3` / `helm4` fixtures skip without them), rewriter, helm-plugin/ as
Helm 4's `helm plugin install` loads it (strictly: an unknown field fails the install),
and the chart tests/fixtures/charts/hooked (a pre-install hook Job, a subchart, a CRD in
crds/). Every helm gets its own HOME, XDG_* and HELM_* directories under tmp_path, and no
network: the --private/--public rules decide every image, and --offline forbids probes.
Helm 3's `install --dry-run=client` still reads the cluster's version and discovery and
looks each resource up before it stops (pkg/action/install.go), so it talks to
tests/support/kubeapi.py, a loopback stand-in that answers those reads ("not found" for every
object) and accepts no write. Helm 4's `--dry-run=client` needs no cluster.

What the real runs show (and the sources say: pkg/action/action.go renderResources in
both, Helm 4's internal/plugin/runtime_subprocess.go):
- Helm 3.21.4 runs the post-renderer on the manifests only, never on hooks (so SPEC
  section 5's "3.21+" does not hold for 3.21.4), and with `helm template --include-crds`
  on crds/ too; it shows the post-renderer's stderr when it fails.
- Helm 4.3.2 (its default "combined" post-render strategy) sends manifests and hooks as
  one stream, each document annotated with `postrenderer.helm.sh/postrender-filename`,
  files the answer back by that annotation, removes it, and only then splits out the
  hooks; it never sends crds/; it discards the plugin's stderr.
- Neither sets HELM_NAMESPACE for the post-renderer; one the user exported gets through.
- Both read plugins from the same default directory, and Helm 3 cannot read Helm 4's
  postrenderer/v1 plugin.yaml: with it there, Helm 3 loads none of its plugins.

Emulated (last section, no helm binary): run.sh's own branches (where the log goes,
rewriter missing, unwritable HOME, env and appended args), run the way Helm 4 runs a
postrenderer/v1 plugin's command, on shop-rendered/helm4-post-render.yaml.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT as REPO
from support import TESTS, kubeapi

import rewriter

PLUGIN_DIR = REPO / "helm-plugin"
CHART = TESTS / "fixtures" / "charts" / "hooked"
RENDERED = TESTS / "fixtures" / "charts" / "shop-rendered"
FILENAME = "postrenderer.helm.sh/postrender-filename"
LICENSE_ID = "2bXexampleLicenseID"
SECRET = "my-kots-app-registry"
PROXY = "proxy.replicated.com/proxy/my-kots-app/"
# Every image in the charts is covered by a rule, and --offline forbids any probe anyway.
ARGS = ["--app-slug=my-kots-app", "--private=quay.io/my-org/*", "--public=docker.io/*", "--offline"]
NO_LICENSE = (
    "error: a pull secret is needed but no license ID was given: "
    "use --license FILE, --license-id-file FILE, or set REWRITER_LICENSE_ID"
)


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def images(doc: dict[str, Any]) -> list[str]:
    return [c["image"] for c in containers(doc)]


def pull_secrets(doc: dict[str, Any]) -> list[dict[str, str]] | None:
    return doc["spec"]["template"]["spec"].get("imagePullSecrets")


def auths(secret: dict[str, Any]) -> dict[str, str]:
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    return {h: base64.b64decode(e["auth"]).decode() for h, e in config["auths"].items()}


# --- the real Helm 3 and Helm 4 --------------------------------------------------------


@dataclass
class Helm:
    """One helm binary with a user's environment of its own under tmp_path."""

    binary: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    @property
    def state_log(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "rewriter" / "helm-post-renderer.log"


def user_environment(tmp_path: Path) -> dict[str, str]:
    """The environment of a user running helm: rewriter on PATH, its own HOME, the
    license ID in a file (REWRITER_LICENSE_ID_FILE), nothing of the caller's."""
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


def helm_environment(tmp_path: Path) -> dict[str, str]:
    """A user's environment (nothing of the caller's HELM_*, KUBECONFIG or REWRITER_*)
    with every directory helm or rewriter may write under tmp_path."""
    env = user_environment(tmp_path)
    home = Path(env["HOME"])
    return {
        **env,
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "HELM_CONFIG_HOME": str(home / "helm" / "config"),
        "HELM_DATA_HOME": str(home / "helm" / "data"),
        "HELM_CACHE_HOME": str(home / "helm" / "cache"),
        # Helm 4.3.2 installs a local plugin into $HELM_DATA_HOME/plugins whatever
        # HELM_PLUGINS says (installer.LocalInstaller.Path), so the two must agree.
        "HELM_PLUGINS": str(home / "helm" / "data" / "plugins"),
        # No cluster unless a test starts the stand-in (kubeapi.py).
        "KUBECONFIG": str(home / ".kube" / "config"),
    }


@pytest.fixture
def real_helm3(helm3: Path, tmp_path: Path) -> Helm:
    return Helm(helm3, helm_environment(tmp_path))


@pytest.fixture
def real_helm4(helm4: Path, tmp_path: Path) -> Helm:
    """Helm 4 with helm-plugin/ installed the way the README says."""
    helm = Helm(helm4, helm_environment(tmp_path))
    helm.ok("plugin", "install", str(PLUGIN_DIR))
    return helm


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[kubeapi.KubeAPI]:
    api = kubeapi.start(tmp_path)
    try:
        yield api
    finally:
        api.stop()


def post_renderer(*args: str) -> list[str]:
    """`--post-renderer rewriter` and one --post-renderer-args=VALUE per argument."""
    return ["--post-renderer", "rewriter", *(f"--post-renderer-args={a}" for a in args)]


def by_source(stream: str) -> dict[str, list[dict[str, Any]]]:
    """`helm template` output grouped by each document's `# Source:` comment ("" for none)."""
    files: dict[str, list[dict[str, Any]]] = {}
    for chunk in re.split(r"^---\s*$", stream, flags=re.MULTILINE):
        doc = yaml.safe_load(chunk)
        if doc:
            source = re.search(r"^# Source: (.+)$", chunk, re.MULTILINE)
            files.setdefault(source[1] if source else "", []).append(doc)
    return files


def hooks_by_name(release: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in release["hooks"]}


# Helm 3 ------------------------------------------------------------------------------


def test_real_helm3_template_rewrites_manifests_but_not_hooks(real_helm3: Helm) -> None:
    out = real_helm3.ok(
        "template", "shop", str(CHART), "--namespace", "shop", "--include-crds",
        *post_renderer(*ARGS),
    )  # fmt: skip
    files = by_source(out)
    (api,) = files["hooked/templates/deployment.yaml"]
    assert images(api) == [PROXY + "quay.io/my-org/api:v1.0.1", "redis:7"]
    assert pull_secrets(api) == [{"name": SECRET}]
    (worker,) = files["hooked/charts/worker/templates/deployment.yaml"]  # the subchart
    assert images(worker) == [PROXY + "quay.io/my-org/worker:2.0.0"]
    assert pull_secrets(worker) == [{"name": SECRET}]
    # The added Secret: no `# Source:`, no namespace (Helm 3 does not tell a post-renderer
    # the release namespace; Helm creates it there), no hook annotations.
    (secret,) = files[""]
    assert secret["kind"] == "Secret" and secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"] == {
        "name": SECRET, "labels": {"app.kubernetes.io/managed-by": "rewriter"},
    }  # fmt: skip
    assert auths(secret) == {
        "proxy.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
        "registry.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
    }
    # Helm 3.21 never runs the post-renderer on hooks: `helm template` prints the migration
    # hook as the chart rendered it, private image and no pull secret (docs/helm.md).
    (job,) = files["hooked/templates/migrate-job.yaml"]
    assert images(job) == ["quay.io/my-org/migrate:v1.0.1"]
    assert pull_secrets(job) is None
    # `--include-crds` puts crds/ in the post-renderer's input; a CRD comes back byte for
    # byte even with an image-like default in its schema.
    crd = (CHART / "crds" / "widgets.yaml").read_text()
    assert f"---\n# Source: hooked/crds/widgets.yaml\n{crd}" in out
    # Only the image lines changed in the rewritten templates: Helm's comments and quoting
    # stay as written.
    assert f'\n          image: "{PROXY}quay.io/my-org/api:v1.0.1"\n' in out


def test_real_helm3_passes_an_exported_helm_namespace(real_helm3: Helm) -> None:
    # Helm 3 gives the post-renderer its own environment: a HELM_NAMESPACE the user
    # exported reaches rewriter, and the Secret names the namespace.
    real_helm3.env["HELM_NAMESPACE"] = "shop"
    out = real_helm3.ok("template", "shop", str(CHART), *post_renderer(*ARGS))
    (secret,) = by_source(out)[""]
    assert secret["metadata"]["namespace"] == "shop"


def test_real_helm3_install_dry_run(real_helm3: Helm, kube_api: kubeapi.KubeAPI) -> None:
    real_helm3.env["KUBECONFIG"] = str(kube_api.kubeconfig)
    out = real_helm3.ok(
        "install", "shop", str(CHART), "--namespace", "shop", "--dry-run=client",
        # The stand-in serves no OpenAPI schema to validate against.
        "--disable-openapi-validation", "--output", "json", *post_renderer(*ARGS),
    )  # fmt: skip
    release = json.loads(out)
    assert release["info"]["status"] == "pending-install"  # a dry run: nothing installed
    assert kube_api.writes == []
    manifest = by_source(release["manifest"])
    (api,) = manifest["hooked/templates/deployment.yaml"]
    (worker,) = manifest["hooked/charts/worker/templates/deployment.yaml"]
    (secret,) = manifest[""]
    assert images(api) == [PROXY + "quay.io/my-org/api:v1.0.1", "redis:7"]
    assert images(worker) == [PROXY + "quay.io/my-org/worker:2.0.0"]
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET
    assert "namespace" not in secret["metadata"]
    # Helm looked the Secret up in the release namespace, where it will create it.
    assert ("GET", f"/api/v1/namespaces/shop/secrets/{SECRET}") in kube_api.requests
    # The install takes crds/ apart from the post-rendered manifest.
    assert "CustomResourceDefinition" not in release["manifest"]
    # The hook is stored as the chart rendered it: Helm 3 did not post-render it.
    job = hooks_by_name(release)["shop-migrate"]
    assert job["events"] == ["pre-install", "pre-upgrade"]
    assert images(yaml.safe_load(job["manifest"])) == ["quay.io/my-org/migrate:v1.0.1"]
    assert list(hooks_by_name(release)) == ["shop-migrate"]


def test_real_helm3_failure_fails_helm_and_shows_rewriters_message(real_helm3: Helm) -> None:
    del real_helm3.env["REWRITER_LICENSE_ID_FILE"]
    done = real_helm3("template", "shop", str(CHART), *post_renderer(*ARGS))
    assert done.returncode != 0
    assert "kind:" not in done.stdout  # nothing rendered
    assert "error while running post render" in done.stderr  # Helm's own words, loosely
    assert NO_LICENSE in done.stderr.splitlines()


def test_real_helm3_hook_workarounds(real_helm3: Helm, tmp_path: Path) -> None:
    """docs/helm.md's ways around Helm 3 not post-rendering hooks, on its real output."""
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(real_helm3.ok("template", "shop", str(CHART), "--namespace", "shop"))
    # `helm template | rewriter scan` names the hook image to set through the values ...
    scan = subprocess.run(
        ["rewriter", "scan", *ARGS, str(rendered)],
        env=real_helm3.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    (row,) = [line for line in scan.stdout.splitlines() if "Job/shop-migrate" in line]
    assert row.split()[-1] == PROXY + "quay.io/my-org/migrate:v1.0.1"
    # ... or `helm template | rewriter | kubectl apply` rewrites the hook with the rest.
    piped = subprocess.run(
        ["rewriter", *ARGS, "--namespace=shop", str(rendered)],
        env=real_helm3.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    (job,) = by_source(piped.stdout)["hooked/templates/migrate-job.yaml"]
    assert images(job) == [PROXY + "quay.io/my-org/migrate:v1.0.1"]
    assert pull_secrets(job) == [{"name": SECRET}]


# Helm 4 ------------------------------------------------------------------------------
def test_real_helm4_installs_the_plugin(helm4: Path, tmp_path: Path) -> None:
    helm = Helm(helm4, helm_environment(tmp_path))
    # The real loader decodes plugin.yaml strictly (unknown fields, type, runtime).
    installed = helm.ok("plugin", "install", str(PLUGIN_DIR))
    assert "Installed plugin: rewriter" in installed
    rows = [line.split() for line in helm.ok("plugin", "list").splitlines()]
    assert ["rewriter", rewriter.__version__, "postrenderer/v1", "v1"] in [r[:4] for r in rows]


def capture_wrapper(helm: Helm, tmp_path: Path) -> Path:
    """REWRITER_BIN for run.sh: the real rewriter, with copies of what Helm sent it and
    what it answered, to see the stream between the two."""
    wrapper = tmp_path / "rewriter-capture"
    wrapper.write_text(
        "#!/usr/bin/env bash\nset -o pipefail\n"
        f'tee {tmp_path}/stdin.yaml | {shutil.which("rewriter", path=helm.env["PATH"])} "$@"'
        f" | tee {tmp_path}/stdout.yaml\n"
    )
    wrapper.chmod(0o755)
    helm.env["REWRITER_BIN"] = str(wrapper)
    return tmp_path


def test_real_helm4_template_post_renders_hooks_too(real_helm4: Helm, tmp_path: Path) -> None:
    captured = capture_wrapper(real_helm4, tmp_path)
    out = real_helm4.ok(
        "template", "shop", str(CHART), "--namespace", "shop", "--include-crds",
        *post_renderer(*ARGS),
    )  # fmt: skip
    # What Helm sent: every template's documents, the hook included, each annotated with
    # its file; never crds/ (Helm 4 adds them after post-rendering).
    sent = [d for d in yaml.safe_load_all((captured / "stdin.yaml").read_text()) if d]
    assert {(d["kind"], d["metadata"]["annotations"][FILENAME]) for d in sent} == {
        ("Deployment", "hooked/charts/worker/templates/deployment.yaml"),
        ("Deployment", "hooked/templates/deployment.yaml"),
        ("Job", "hooked/templates/migrate-job.yaml"),
    }
    # What rewriter answered: each annotation line exactly as it came.
    stdin, stdout = ((captured / f).read_text() for f in ("stdin.yaml", "stdout.yaml"))
    annotation_lines = re.findall(rf"^ +{re.escape(FILENAME)}: .*$", stdin, re.MULTILINE)
    assert len(annotation_lines) == 3
    assert all(line in stdout.splitlines() for line in annotation_lines)
    # What Helm made of it: every document filed back under its template, the annotation
    # removed, the hook rewritten, the Secret a hook that sorts before the migration Job.
    assert FILENAME not in out
    files = by_source(out)
    (api,) = files["hooked/templates/deployment.yaml"]
    (worker,) = files["hooked/charts/worker/templates/deployment.yaml"]
    (job,) = files["hooked/templates/migrate-job.yaml"]
    assert images(api) == [PROXY + "quay.io/my-org/api:v1.0.1", "redis:7"]
    assert images(worker) == [PROXY + "quay.io/my-org/worker:2.0.0"]
    assert images(job) == [PROXY + "quay.io/my-org/migrate:v1.0.1"]
    assert pull_secrets(api) == pull_secrets(worker) == pull_secrets(job) == [{"name": SECRET}]
    (secret,) = [d for name, docs in files.items() for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["annotations"] == {
        "helm.sh/hook": "pre-install,pre-upgrade",
        "helm.sh/hook-weight": "-6",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }
    # Helm 4 does not set HELM_NAMESPACE for the plugin either: no namespace written.
    assert "namespace" not in secret["metadata"]
    assert auths(secret)["proxy.replicated.com"] == f"LICENSE_ID:{LICENSE_ID}"
    crd = (CHART / "crds" / "widgets.yaml").read_text()
    assert f"---\n# Source: hooked/crds/widgets.yaml\n{crd}" in out


def test_real_helm4_install_dry_run(real_helm4: Helm) -> None:
    # Helm 4's --dry-run=client contacts no cluster (KUBECONFIG names no file).
    out = real_helm4.ok(
        "install", "shop", str(CHART), "--namespace", "shop", "--dry-run=client",
        "--output", "json", *post_renderer(*ARGS),
    )  # fmt: skip
    release = json.loads(out)
    assert release["info"]["status"] == "pending-install"
    manifest = by_source(release["manifest"])
    assert set(manifest) == {
        "hooked/templates/deployment.yaml", "hooked/charts/worker/templates/deployment.yaml",
    }  # fmt: skip
    (api,) = manifest["hooked/templates/deployment.yaml"]
    assert images(api) == [PROXY + "quay.io/my-org/api:v1.0.1", "redis:7"]
    assert pull_secrets(api) == [{"name": SECRET}]
    # The pull Secret is a hook of the release, run before the migration Job it serves.
    hooks = hooks_by_name(release)
    assert set(hooks) == {SECRET, "shop-migrate"}
    secret, job = hooks[SECRET], hooks["shop-migrate"]
    assert secret["kind"] == "Secret"
    assert secret["events"] == job["events"] == ["pre-install", "pre-upgrade"]
    assert secret["weight"] < job["weight"] == -5
    assert secret["delete_policies"] == ["before-hook-creation"]
    assert re.fullmatch(r"generated-by-postrender-\d+\.yaml", secret["path"])
    assert auths(yaml.safe_load(secret["manifest"])) == {
        "proxy.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
        "registry.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
    }
    assert job["path"] == "hooked/templates/migrate-job.yaml"
    assert FILENAME not in job["manifest"]
    assert images(yaml.safe_load(job["manifest"])) == [PROXY + "quay.io/my-org/migrate:v1.0.1"]



def test_real_helm4_passes_an_exported_helm_namespace(real_helm4: Helm) -> None:
    real_helm4.env["HELM_NAMESPACE"] = "shop"
    out = real_helm4.ok("template", "shop", str(CHART), *post_renderer(*ARGS))
    (secret,) = [d for docs in by_source(out).values() for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["namespace"] == "shop"

def test_real_helm4_messages_reach_the_log_file(real_helm4: Helm) -> None:
    # A warning: the render succeeds, Helm says nothing, the log has rewriter's message.
    done = real_helm4(
        "template", "shop", str(CHART), "--set", "sidecar.image=$(CACHE_IMAGE)",
        *post_renderer(*ARGS),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "CACHE_IMAGE" not in done.stderr
    assert real_helm4.state_log.read_text().splitlines() == [
        # Document and line in the stream Helm sent (worker's Deployment comes first).
        "warning: document 2 (Deployment shop-api, line 44): "
        "spec.template.spec.containers[2].image: invalid image reference '$(CACHE_IMAGE)' "
        "(invalid reference format); left unchanged"
    ]
    # A failure fails helm; Helm 4 shows only that the plugin failed, the log says why.
    del real_helm4.env["REWRITER_LICENSE_ID_FILE"]
    failed = real_helm4("template", "shop", str(CHART), *post_renderer(*ARGS))
    assert failed.returncode != 0
    assert "kind:" not in failed.stdout
    assert "exited with error" in failed.stderr  # Helm's words, loosely
    assert NO_LICENSE not in failed.stderr
    assert real_helm4.state_log.read_text().splitlines()[-1] == NO_LICENSE


def test_real_helm4_log_file_arg_and_failing_install(real_helm4: Helm, tmp_path: Path) -> None:
    # `helm install` fails the same way, with the log file the user chose.
    del real_helm4.env["REWRITER_LICENSE_ID_FILE"]
    log = tmp_path / "chosen.log"
    failed = real_helm4(
        "install", "shop", str(CHART), "--dry-run=client",
        *post_renderer(*ARGS, f"--log-file={log}"),
    )  # fmt: skip
    assert failed.returncode != 0
    assert "INSTALLATION FAILED" in failed.stderr and "exited with error" in failed.stderr
    assert log.read_text().splitlines() == [NO_LICENSE]
    assert not real_helm4.state_log.exists()


def test_real_helm4_plugin_breaks_helm3_plugins_in_a_shared_directory(
    real_helm4: Helm, helm3: Path, tmp_path: Path
) -> None:
    """Helm 3 and Helm 4 share ~/.local/share/helm/plugins by default; Helm 3 cannot read
    a postrenderer/v1 plugin.yaml and then loads no plugin at all (docs/helm.md)."""
    shared = Helm(helm3, real_helm4.env)
    listing = shared("plugin", "list")
    assert listing.returncode != 0
    assert 'unknown field "apiVersion"' in listing.stderr  # Helm 3's words, loosely
    # Helm 3's post-renderer is an executable, not a plugin: it still works, with the noise.
    done = shared("template", "shop", str(CHART), *post_renderer(*ARGS))
    assert done.returncode == 0, done.stderr
    assert "failed to load plugins" in done.stderr
    (api,) = by_source(done.stdout)["hooked/templates/deployment.yaml"]
    assert images(api)[0] == PROXY + "quay.io/my-org/api:v1.0.1"
    # The way out: Helm 4 with a data directory of its own. HELM_DATA_HOME, because
    # Helm 4.3.2's `plugin install DIR` ignores HELM_PLUGINS.
    (tmp_path / "apart").mkdir()
    env = helm_environment(tmp_path / "apart")
    helm4_data = Path(env["HOME"]) / "helm4-data"
    helm4_apart = Helm(real_helm4.binary, {**env, "HELM_DATA_HOME": str(helm4_data),
                                           "HELM_PLUGINS": str(helm4_data / "plugins")})  # fmt: skip
    helm4_apart.ok("plugin", "install", str(PLUGIN_DIR))
    assert "kind: Secret" in helm4_apart.ok("template", "shop", str(CHART), *post_renderer(*ARGS))
    helm3_apart = Helm(helm3, env)
    assert helm3_apart("plugin", "list").returncode == 0
    done = helm3_apart("template", "shop", str(CHART), *post_renderer(*ARGS))
    assert (done.returncode, done.stderr) == (0, "")


# --- emulated: run.sh as Helm 4 runs a postrenderer/v1 plugin (no helm binary) ---------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.stdout) if d]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment, XDG_STATE_HOME unset (the log's default place is tested)."""
    return user_environment(tmp_path)


def helm4_post_render(args: list[str], stdin: str, env: dict[str, str]) -> Run:
    """The postrenderer/v1 plugin invoked as Helm 4 does (internal/plugin/
    runtime_subprocess.go, subprocess_commands.go): the command split on spaces, `${VAR}`
    expanded, the --post-renderer-args appended, HELM_PLUGIN_NAME and HELM_PLUGIN_DIR set."""
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


def test_helm_plugin_version_is_rewriters() -> None:
    # The real loader checks the rest of plugin.yaml (test_real_helm4_installs_the_plugin).
    plugin = yaml.safe_load((PLUGIN_DIR / "plugin.yaml").read_text())
    assert plugin["version"] == rewriter.__version__
    assert os.access(PLUGIN_DIR / "run.sh", os.X_OK)


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
