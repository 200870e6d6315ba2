"""troubleshoot.sh Preflight and SupportBundle collectors end to end, through the installed
`rewriter` command: rewritten as KOTS rewrites them, listed by `rewriter images`."""


from __future__ import annotations

import base64
import json

import yaml
from support import FIXTURES
from support.helpers import run

# --- troubleshoot.sh: what a user sees -------------------------------------------------

SUPPORT_BUNDLE = FIXTURES / "troubleshoot" / "all-kubernetes-collectors.yaml"
PREFLIGHT = FIXTURES / "troubleshoot" / "preflight-e2e.yaml"
TS_ARGS = ["--app-slug", "acme", "--license-id", "L", "--offline", "--cache", "none"]


def test_troubleshoot_collector_images_are_rewritten_as_kots_does() -> None:
    """KOTS proxies a collector's private image (pkg/registry/troubleshoot.go) the way it
    proxies the app's: <proxy>/proxy/<slug>/<image>, tag kept."""
    result = run(["--private", "*", *TS_ARGS, str(SUPPORT_BUNDLE)])
    assert result.returncode == 0, result.stderr
    bundle, secret = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert secret["kind"] == "Secret"
    collectors = {next(iter(c)): next(iter(c.values())) for c in bundle["spec"]["collectors"]}
    proxied = "proxy.replicated.com/proxy/acme/busybox:latest"
    for name in ("run", "copyFromHost", "sysctl", "collectd"):
        assert collectors[name]["image"] == proxied, name
    assert (
        collectors["etcd"]["image"] == "proxy.replicated.com/proxy/acme/quay.io/coreos/etcd:latest"
    )
    for name in ("runPod", "runDaemonSet"):
        spec = collectors[name]["podSpec"]
        assert spec["containers"][0]["image"] == proxied
        assert spec["imagePullSecrets"] == [{"name": "acme-registry"}]
    # Images a check only looks up are not run: left as they are.
    assert collectors["registryImages"]["images"] == ["busybox:latest"]
    # An inline imagePullSecret is no list of names: the user hears which ones need one.
    warned = result.stderr.decode().splitlines()
    assert len(warned) == 5
    assert all("SupportBundle has no pull secret field" in line for line in warned)


def test_troubleshoot_images_are_listed_by_images() -> None:
    args = ["images", "--private", "docker.io/library/alpine", *TS_ARGS]
    args += ["--public", "docker.io/library/busybox", "--public", "quay.io/*"]
    result = run([*args, str(PREFLIGHT), str(SUPPORT_BUNDLE)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (
        "alpine:3 proxy.replicated.com/proxy/acme/alpine:3\n"
        "busybox:latest busybox:latest\n"
        "quay.io/coreos/etcd:latest quay.io/coreos/etcd:latest\n"
    )
    rows = json.loads(run([*args, "--format", "json", str(PREFLIGHT)]).stdout)
    assert [row["action"] for row in rows] == ["proxy"]


def test_troubleshoot_collectors_get_no_inline_pull_secret() -> None:
    """KOTS also writes the license into a collector's inline `imagePullSecret` (data
    `.dockerconfigjson`, which troubleshoot turns into a temporary Secret). rewriter does
    not: the license ID stays in the pull Secret alone (docs/security.md), so a
    SupportBundle shows no credential where Secrets are masked and CRs are not."""
    license_id = "2bXexampleLicenseID77"
    args = ["--private", "*", "--app-slug", "acme", "--license-id", license_id, "--offline"]
    result = run([*args, "--cache", "none", str(SUPPORT_BUNDLE)])
    assert result.returncode == 0, result.stderr
    bundle, secret = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert all("imagePullSecret" not in next(iter(c.values())) for c in bundle["spec"]["collectors"])
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert license_id in base64.b64decode(auths["proxy.replicated.com"]["auth"]).decode()
    dumped = yaml.safe_dump(bundle)
    assert license_id not in dumped and secret["data"][".dockerconfigjson"] not in dumped
    warned = result.stderr.decode()
    assert "copyFromHost.image: SupportBundle has no pull secret field; the cluster needs " in warned
