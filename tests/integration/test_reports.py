from __future__ import annotations

import json

from support.helpers import run

TEXT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: a}
spec:
  template:
    spec:
      containers:
      - {name: web, image: quay.io/acme/web:1}
      - {name: db, image: postgres:16}
      - {name: again, image: quay.io/acme/web:1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: a}
data:
  sidecarImage: quay.io/acme/sidecar:2
  greeting: hello
  url: https://example.com/path
"""
ARGS = ["--app-slug", "acme", "--license-id", "L", "--private", "quay.io/*", "--public", "docker.io/*", "--offline"]


def test_images_list_and_json_are_distinct_sources_with_targets():
    listing = run(["images", *ARGS], stdin=TEXT)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.decode() == (
        "quay.io/acme/web:1 proxy.replicated.com/proxy/acme/quay.io/acme/web:1\n"
        "postgres:16 postgres:16\n"
    )
    rows = json.loads(run(["images", "--format", "json", *ARGS], stdin=TEXT).stdout)
    assert rows[1] == {
        "source": "postgres:16",
        "target": "postgres:16",
        "action": "keep",
        "reason": "rule --public 'docker.io/*'",
        "image": "postgres:16",
    }


def test_images_for_an_air_gap_bundle():
    result = run(["images", "--app-slug", "a", "--local-registry", "reg.local/ns"], stdin=TEXT)
    assert result.stdout.decode().splitlines() == [
        "quay.io/acme/web:1 reg.local/ns/web:1",
        "postgres:16 reg.local/ns/postgres:16",
    ]


def test_scan_unclaimed_lists_image_like_strings_outside_known_fields():
    table = run(["scan", "--unclaimed", *ARGS], stdin=TEXT).stdout.decode()
    assert table.endswith(
        "Unclaimed (look like images, in no known field; add them with --config):\n"
        "  document 2 ConfigMap/a/settings data.sidecarImage: quay.io/acme/sidecar:2\n"
    )
    report = json.loads(run(["scan", "--unclaimed", "--format", "json", *ARGS], stdin=TEXT).stdout)
    assert report["unclaimed"] == [
        {
            "document": 1,
            "kind": "ConfigMap",
            "namespace": "a",
            "name": "settings",
            "field": "data.sidecarImage",
            "image": "quay.io/acme/sidecar:2",
        }
    ]
    assert "unclaimed" not in json.loads(
        run(["scan", "--format", "json", *ARGS], stdin=TEXT).stdout
    )


def test_bad_format_is_a_usage_error():
    result = run(["scan", "--format", "xml", *ARGS], stdin=TEXT)
    assert result.returncode == 2
    assert result.stderr == (
        b"error: invalid --output 'xml': table, json or yaml (see rewriter scan --help)\n"
    )
