"""What the KOTS License and Application files decide, as a user sees it through the
installed `rewriter` command: hosts, slug checks, additionalImages; and `rewriter images`
as a copy script reads it. (The endpoint rule itself: tests/unit/test_config.py.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.helpers import run

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop}
spec:
  containers:
  - {name: api, image: quay.io/acme/api:1}
"""
RULES = ["--private", "quay.io/acme/*", "--public", "docker.io/*", "--offline", "--cache", "none"]


def license_file(tmp_path: Path, **spec: str) -> Path:
    path = tmp_path / "license.yaml"
    document = {"apiVersion": "kots.io/v1beta1", "kind": "License", "spec": spec}
    path.write_text(yaml.safe_dump(document))
    return path


def documents(out: bytes) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(out) if d]


def secret_hosts(out: bytes) -> list[str]:
    (secret,) = [d for d in documents(out) if d["kind"] == "Secret"]
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    return sorted(config["auths"])


@pytest.mark.parametrize(
    ("endpoint", "proxy", "registry"),
    [
        ("https://staging.replicated.app", "proxy.staging.replicated.com", "registry.staging.replicated.com"),
        (
            "https://replicated-app-user1.okteto.repldev.com",
            "registry-proxy-user1.okteto.repldev.com",
            "vendor-registry-v2-user1.okteto.repldev.com",
        ),
    ],
    ids=["staging", "dev"],
)
def test_the_license_endpoint_picks_the_hosts(
    tmp_path: Path, endpoint: str, proxy: str, registry: str
) -> None:
    lic = license_file(tmp_path, appSlug="acme", licenseID="L", endpoint=endpoint)
    result = run(["--license", str(lic), *RULES], stdin=POD)
    assert result.returncode == 0, result.stderr
    assert f"image: {proxy}/proxy/acme/quay.io/acme/api:1".encode() in result.stdout
    assert secret_hosts(result.stdout) == [proxy, registry]


def test_given_hosts_win_over_the_endpoint(tmp_path: Path) -> None:
    lic = license_file(
        tmp_path, appSlug="acme", licenseID="L", endpoint="https://staging.replicated.app"
    )
    args = ["--license", str(lic), "--proxy-host", "proxy.example.com", *RULES]
    result = run(args, stdin=POD)
    assert result.returncode == 0, result.stderr
    assert b"image: proxy.example.com/proxy/acme/quay.io/acme/api:1" in result.stdout
    assert secret_hosts(result.stdout) == [
        "proxy.example.com",
        "registry.staging.replicated.com",
    ]
    by_env = run(
        ["--license", str(lic), *RULES],
        stdin=POD,
        env={"REWRITER_REGISTRY_HOST": "registry.example.com"},
    )
    assert secret_hosts(by_env.stdout) == [
        "proxy.staging.replicated.com",
        "registry.example.com",
    ]


# --- --app-slug against the License ----------------------------------------------------


def test_app_slug_of_another_app_is_an_error(tmp_path: Path) -> None:
    lic = license_file(tmp_path, appSlug="acme", licenseID="L")
    for given in (["--app-slug", "other"], []):
        env = {} if given else {"REWRITER_APP_SLUG": "other"}
        result = run(["--license", str(lic), *given, *RULES], stdin=POD, env=env)
        # A conflict of inputs, not a bad option value: exit 1, like every input error.
        assert result.returncode == 1
        assert result.stdout == b""
        assert result.stderr.decode() == (
            f"error: --app-slug 'other' does not match the License's appSlug 'acme' ({lic}): "
            "the license is for another application; drop --app-slug (the License names "
            "the app) or use that app's license\n"
        )


def test_app_slug_equal_to_the_license_is_fine(tmp_path: Path) -> None:
    lic = license_file(tmp_path, appSlug="acme", licenseID="L")
    result = run(["--license", str(lic), "--app-slug", "acme", *RULES], stdin=POD)
    assert result.returncode == 0, result.stderr


# --- rewriter images --------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32


def application_file(tmp_path: Path, **spec: Any) -> Path:
    path = tmp_path / "application.yaml"
    path.write_text(
        yaml.safe_dump({"apiVersion": "kots.io/v1beta1", "kind": "Application", "spec": spec})
    )
    return path


def test_images_lists_the_applications_additional_images(tmp_path: Path) -> None:
    app = application_file(
        tmp_path, additionalImages=["quay.io/acme/operand:2", "postgres:16", "quay.io/acme/api:1"]
    )
    args = ["images", "--app-slug", "acme", "--application", str(app), *RULES]
    result = run(args, stdin=POD)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (
        "quay.io/acme/api:1 proxy.replicated.com/proxy/acme/quay.io/acme/api:1\n"
        "quay.io/acme/operand:2 proxy.replicated.com/proxy/acme/quay.io/acme/operand:2\n"
        "postgres:16 postgres:16\n"
    )
    # The render has nothing to rewrite for them: no manifest names them.
    rendered = run(
        ["--app-slug", "acme", "--license-id", "L", "--application", str(app), *RULES], stdin=POD
    )
    assert rendered.returncode == 0, rendered.stderr
    assert b"operand" not in rendered.stdout


def _air_gap_images(app: Path, registry: str) -> list[str]:
    """`rewriter images` for air gap, with a KOTS Application."""
    return ["images", "--app-slug", "acme", "--application", str(app), "--local-registry", registry]


def test_images_air_gap_with_additional_images(tmp_path: Path) -> None:
    app = application_file(tmp_path, additionalImages=["quay.io/acme/operand:2"])
    result = run(_air_gap_images(app, "reg.local/ns"), stdin=POD)
    assert result.stdout.decode().splitlines() == [
        "quay.io/acme/api:1 reg.local/ns/api:1",
        "quay.io/acme/operand:2 reg.local/ns/operand:2",
    ]


def test_invalid_additional_image_is_an_error(tmp_path: Path) -> None:
    app = application_file(tmp_path, additionalImages=["Quay.io/UPPER:1"])
    result = run(["images", "--app-slug", "acme", "--application", str(app), *RULES], stdin=POD)
    assert result.returncode == 1
    assert result.stderr.decode().startswith(
        "error: the Application's additionalImages: invalid image reference 'Quay.io/UPPER:1'"
    )


def test_images_with_tag_and_digest_are_named_by_digest(tmp_path: Path) -> None:
    stream = POD.replace("quay.io/acme/api:1", f"quay.io/acme/api:1@{DIGEST}")
    result = run(["images", "--app-slug", "acme", *RULES], stdin=stream)
    assert result.returncode == 0, result.stderr
    # skopeo refuses a reference with both; the kubelet pulls the digest anyway.
    assert result.stdout.decode() == (
        f"quay.io/acme/api@{DIGEST} proxy.replicated.com/proxy/acme/quay.io/acme/api@{DIGEST}\n"
    )
    (row,) = json.loads(
        run(["images", "--format", "json", "--app-slug", "acme", *RULES], stdin=stream).stdout
    )
    assert row["image"] == f"quay.io/acme/api:1@{DIGEST}"
    assert row["source"] == f"quay.io/acme/api@{DIGEST}"


def test_images_that_cannot_be_rewritten_fail_the_command(tmp_path: Path) -> None:
    stream = POD.replace(
        "  - {name: api, image: quay.io/acme/api:1}\n",
        "  - {name: api, image: quay.io/acme/api:1}\n  - {name: other, image: ghcr.io/else/api:1}\n",
    )
    result = run(["images", "--app-slug", "acme", "--local-registry", "reg.local"], stdin=stream)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "error: 2 image(s) cannot be rewritten:\n"
        "  quay.io/acme/api:1: local registry; quay.io/acme/api and ghcr.io/else/api would "
        "all become reg.local/api: use --keep-path\n"
        "  ghcr.io/else/api:1: local registry; ghcr.io/else/api and quay.io/acme/api would "
        "all become reg.local/api: use --keep-path\n"
    )
    kept = run(
        ["images", "--app-slug", "acme", "--local-registry", "reg.local", "--keep-path"],
        stdin=stream,
    )
    assert kept.returncode == 0, kept.stderr


def test_additional_image_colliding_with_a_manifest_image_fails(tmp_path: Path) -> None:
    app = application_file(tmp_path, additionalImages=["ghcr.io/else/api:2"])
    result = run(_air_gap_images(app, "reg.local"), stdin=POD)
    assert result.returncode == 1
    assert (
        "ghcr.io/else/api:2: local registry; ghcr.io/else/api and quay.io/acme/api"
        in result.stderr.decode()
    )
