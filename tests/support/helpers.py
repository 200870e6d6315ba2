"""Shared test helpers: run the installed command and render in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rewriter.decide import Rules
from rewriter.diagnostics import Reporter
from rewriter.probe.policy import ProbeSettings
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict
from rewriter.reference import ImageRef
from rewriter.render import find_and_decide, rewrite
from rewriter.render_options import Options
from rewriter.secrets import license_credentials
from support.registries import Route, StubRegistry, stub_registry

# A List holding one Deployment with two images, one in a flow mapping and quoted: the
# edits' checks (test_splicecheck, test_editcheck) tamper with what is made of it.
DEPLOYMENT_LIST = """\
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: shop}
    spec:
      template:
        spec:
          containers:
            - name: a
              image: quay.io/acme/api:1
            - {name: b, image: 'quay.io/acme/api:1'}
"""


def options(**kwargs: object) -> Options:
    rules = kwargs.pop("rules", None) or Rules(app_slug="acme", private=("*",))
    base: dict[str, object] = {"rules": rules, "secret_name": "acme-registry"}
    base["credentials"] = license_credentials(
        ("proxy.replicated.com", "registry.replicated.com"), "L"
    )
    base.update(kwargs)
    return Options(**base)  # type: ignore[arg-type]


def render(data: bytes | str, opts: Options | None = None, prober=None) -> bytes:  # type: ignore[no-untyped-def]
    """Render in-process with rules only; returns the output stream."""
    if isinstance(data, str):
        data = data.encode()
    opts = opts or options()
    report = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    plan = find_and_decide(data, opts, prober or (lambda refs: {}), report)
    return rewrite(plan, opts, report).stream()


def run(
    args: Sequence[str],
    stdin: bytes | str = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    command: Sequence[str] = ("rewriter",),
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI as a user would, with a clean REWRITER_* environment."""
    full_env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
    full_env.update(env or {})
    if isinstance(stdin, str):
        stdin = stdin.encode()
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, env=full_env, cwd=cwd, check=False
    )


PYTHON = sys.executable

# The pull Secret rewriter writes for app slug `acme`, license ID `L`, namespace `shop`.
SHOP_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: acme-registry
  namespace: shop
  labels:
    app.kubernetes.io/managed-by: rewriter
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: eyJhdXRocyI6eyJwcm94eS5yZXBsaWNhdGVkLmNvbSI6eyJhdXRoIjoiVEVsRFJVNVRSVjlKUkRwTSJ9LCJyZWdpc3RyeS5yZXBsaWNhdGVkLmNvbSI6eyJhdXRoIjoiVEVsRFJVNVRSVjlKUkRwTSJ9fX0=
"""


def shop_deployment(*images: str) -> bytes:
    """A Deployment `app` in namespace `shop`, one container per image."""
    containers = "".join(
        f"      - name: c{i}\n        image: {image}\n" for i, image in enumerate(images)
    )
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\n"
        "spec:\n  template:\n    spec:\n      containers:\n" + containers
    ).encode()


def by_id(stream: bytes | str) -> dict[tuple[str, str, str | None, str], Any]:
    """The documents of a stream by (apiVersion, kind, namespace, name), each id once."""
    docs = [doc for doc in yaml.safe_load_all(stream) if doc]
    found = {
        (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
    }
    assert len(found) == len(docs)
    return found


def probe_cached(
    refs: Iterable[ImageRef],
    settings: ProbeSettings,
    cache: str,
    ttl: float = 3600.0,
    warn: Callable[[str], None] = print,
    offline: bool = False,
) -> dict[ProbeKey, ProbeResult]:
    """What a render does for its images: the cache at `cache` (a --cache value) first,
    then the registries, their answers stored back."""
    from rewriter.probe import answers
    from rewriter.probe.cache.spec import parse_spec

    return answers(list(refs), settings, parse_spec(cache), ttl, warn, offline)


def warm_cache(cache: str, count: int = 3, warn: Callable[[str], None] = print) -> list[str]:
    """Probe `count` public images of a loopback stub into `cache` (a --cache value);
    their names."""
    with stub_registry({"/v2/": Route(200)}, default=Route(200)) as stub:
        images = [f"{stub.domain}/team/app{i}:1.0" for i in range(count)]
        settings = ProbeSettings(insecure_registries=frozenset({stub.domain}), timeout=2)
        results = probe_cached([ImageRef.parse(i) for i in images], settings, cache, 3600, warn)
    assert {r.verdict for r in results.values()} == {Verdict.PUBLIC}
    return images


def stub_settings(stub: StubRegistry, **changes: object) -> ProbeSettings:
    """Probe settings for a loopback stub registry (plain HTTP, short timeout)."""
    values: dict[str, object] = {"insecure_registries": frozenset({stub.domain}), "timeout": 2.0}
    return ProbeSettings(**{**values, **changes})  # type: ignore[arg-type]


def by_repository(answers: Mapping[ProbeKey, ProbeResult]) -> dict[str, ProbeResult]:
    """Probe answers by repository name, for tests whose stub serves one registry."""
    return {key[1]: answer for key, answer in answers.items()}
