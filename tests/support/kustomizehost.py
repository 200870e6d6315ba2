"""The real `kustomize` (tests/hosts/build) and the installed `rewriter`, run as a user runs
them, for the three kustomize forms (docs/kustomize.md):

- the exec KRM function: `kustomize build --enable-alpha-plugins --enable-exec DIR`, with
  `rewriter krm` declared as a transformer (`config.kubernetes.io/function: exec: ...`);
- the pipe: `set -o pipefail; kustomize build BASE | rewriter ...`;
- the midstream: `rewriter kustomization --resources BASE --output-dir DIR`, then
  `kustomize build DIR`.

Every form is judged against `rewriter render` of `kustomize build BASE`. kustomize
re-serializes what it outputs (keys sorted, resources in its own order), so a form that
ends in `kustomize build` is compared byte for byte with `kustomize build` of a
kustomization holding only the render: same resources, same serializer, same bytes.

Subprocesses get a home and a cache dir under the test's tmp_path, and the license ID
`L` in `REWRITER_LICENSE_ID`; rewriter never probes (the options are rules only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from support import CORPUS, FIXTURES

# The venv's rewriter, next to the interpreter running the suite (the project is
# installed in it), whatever PATH the suite was started with.
REWRITER = Path(sys.executable).with_name("rewriter")

Options = dict[str, str | bool | list[str]]

KUSTOMIZE = FIXTURES / "kustomize"  # the kustomizations the KRM and midstream tests share
# The rules of those tests, as flags.
RULES = [
    "--app-slug", "acme", "--license-id", "L", "--cache", "none",
    "--private", "quay.io/my-org/*", "--private", "docker.io/my-org/*",
    "--public", "docker.io/library/*",
]  # fmt: skip

# rewriter-krm.sh as docs/kustomize.md gives it: `rewriter` from PATH.
WRAPPER = '#!/bin/sh\nexec rewriter krm "$@"\n'

# The function as docs/kustomize.md declares it.
EXEC_SCRIPT = "exec:\n  path: ./rewriter-krm.sh\n"


def host_env(tmp_path: Path, kustomize: Path) -> dict[str, str]:
    """The environment of every subprocess: no REWRITER_* of the caller's, a home and a
    cache of the test's own, `kustomize` and `rewriter` first on PATH (rewriter
    kustomization builds its base with the `kustomize` it finds there)."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "kustomize").symlink_to(kustomize)
    env = {
        name: value
        for name, value in os.environ.items()
        if "REWRITER_" not in name and name not in ("ARGOCD_APP_NAMESPACE", "HELM_NAMESPACE")
    }
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PATH=os.pathsep.join([str(bin_dir), str(REWRITER.parent), env.get("PATH", "")]),
        REWRITER_LICENSE_ID="L",
    )
    return env


def flags(options: Options) -> list[str]:
    """The same options as command-line flags (`--name value`, lists repeated)."""
    args: list[str] = []
    for name, value in options.items():
        if isinstance(value, bool):
            args += [f"--{name}"] if value else []
        elif isinstance(value, list):
            args += [arg for item in value for arg in (f"--{name}", item)]
        else:
            args += [f"--{name}", value]
    return args


def function_config(options: Options, function: str = EXEC_SCRIPT) -> str:
    """rewriter.yaml as docs/kustomize.md writes it: a RewriterConfig declaring the
    function in its annotation (a block scalar), `options` under `spec`."""
    dumped = yaml.safe_dump(options, sort_keys=False, default_flow_style=None, width=1 << 20)
    return (
        "apiVersion: rewriter.dev/v1alpha1\n"
        "kind: RewriterConfig\n"
        "metadata:\n"
        "  name: rewriter\n"
        "  annotations:\n"
        "    config.kubernetes.io/function: |\n" + textwrap.indent(function, " " * 6) + "spec:\n"
        "  options:\n" + textwrap.indent(str(dumped), " " * 4)
    )


def exec_overlay(
    directory: Path,
    base: Path,
    options: Options,
    function: str = EXEC_SCRIPT,
    script: str | None = WRAPPER,
) -> Path:
    """A kustomization on top of `base` whose transformer is rewriter, as documented:
    kustomization.yaml, rewriter.yaml and the executable rewriter-krm.sh."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n- {os.path.relpath(base, directory)}\ntransformers:\n- rewriter.yaml\n"
    )
    (directory / "rewriter.yaml").write_text(function_config(options, function))
    if script is not None:
        (directory / "rewriter-krm.sh").write_text(script)
        (directory / "rewriter-krm.sh").chmod(0o755)
    return directory


def run(
    command: list[str], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, input=stdin, capture_output=True, env=env, check=False)


def build(
    kustomize: Path, directory: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[bytes]:
    """`kustomize build [ARGS] DIR`."""
    return run([str(kustomize), "build", *args, str(directory)], env)


def build_with_function(
    kustomize: Path, directory: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """`kustomize build --enable-alpha-plugins --enable-exec DIR`: exec functions on."""
    return build(kustomize, directory, env, "--enable-alpha-plugins", "--enable-exec")


def pipe(base: Path, options: Options, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """`set -o pipefail; kustomize build BASE | rewriter FLAGS`, in bash, as documented."""
    script = 'set -o pipefail; kustomize build "$1" | rewriter "${@:2}"'
    return run(["bash", "-c", script, "pipe", str(base), *flags(options)], env)


def render(
    stream: bytes, options: Options, env: dict[str, str], scratch: Path
) -> subprocess.CompletedProcess[bytes]:
    """`rewriter render FLAGS FILE`, the stream saved to a file in `scratch`."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "input.yaml").write_bytes(stream)
    return run([str(REWRITER), "render", *flags(options), str(scratch / "input.yaml")], env)


def as_kustomize_writes_it(
    kustomize: Path, stream: bytes, env: dict[str, str], scratch: Path
) -> bytes:
    """`stream` through `kustomize build` of a kustomization holding only it: kustomize's
    order and serialization, nothing else changed."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "stream.yaml").write_bytes(stream)
    (scratch / "kustomization.yaml").write_text("resources:\n- stream.yaml\n")
    done = build(kustomize, scratch, env)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@dataclass(frozen=True)
class Reference:
    """`rewriter render` of `kustomize build BASE`, as is and as kustomize writes it."""

    built: bytes  # kustomize build BASE
    rendered: subprocess.CompletedProcess[bytes]  # rewriter render of it
    rewritten: bytes  # the render, through kustomize build (b"" when the render failed)


def reference(
    kustomize: Path, base: Path, options: Options, env: dict[str, str], scratch: Path
) -> Reference:
    built = build(kustomize, base, env)
    assert built.returncode == 0, built.stderr.decode()
    rendered = render(built.stdout, options, env, scratch / "render")
    rewritten = b""
    if rendered.returncode == 0:
        rewritten = as_kustomize_writes_it(kustomize, rendered.stdout, env, scratch / "rebuilt")
    return Reference(built.stdout, rendered, rewritten)


def warnings(stderr: bytes) -> list[str]:
    """rewriter's warning lines in a stderr."""
    return [line for line in stderr.decode().splitlines() if line.startswith("warning: ")]


# --- bases shared by the exec-form and midstream tests ---------------------------------

HOST_OPTIONS: Options = {
    "app-slug": "acme",
    "private": ["quay.io/my-org/*", "docker.io/my-org/*"],
    "public": ["docker.io/library/*"],
    "cache": "none",
}
CORPUS_OPTIONS: Options = {
    "app-slug": "acme", "public": ["docker.io/library/*"], "private": ["*"], "cache": "none",
}  # fmt: skip

# A Job whose image is a template nobody filled in: a warning, or an error with --strict.
TEMPLATED_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: setup
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: setup
        image: "{{ .Values.setup.image }}"
"""
TEMPLATED_WARNING = (
    "invalid image reference '{{ .Values.setup.image }}' (invalid reference format); left unchanged"
)


def app_base(tmp_path: Path, templated: bool = False) -> Path:
    """The kustomize fixture app (namespace, name prefix, retag), optionally with the
    templated Job."""
    base = tmp_path / "app"
    shutil.copytree(KUSTOMIZE / "app", base)
    if templated:
        (base / "templated.yaml").write_text(TEMPLATED_JOB)
        kustomization = base / "kustomization.yaml"
        kustomization.write_text(
            kustomization.read_text().replace("- jobs.yaml\n", "- jobs.yaml\n- templated.yaml\n")
        )
    return base


# Small corpus files with what the fixture lacks: a plain many-service application, a
# custom kind with a pod template (Argo Rollouts), catalogue fields in custom resources
# whose images are all public or templated (Tekton Tasks: warnings, nothing to rewrite),
# and a custom field of a kind without a pull-secret field (KServe: a warning).
CORPUS_CASES = [
    pytest.param("microservices-demo", True, False, id="microservices-demo"),
    pytest.param("argo-rollouts-examples", True, False, id="argo-rollouts-examples"),
    pytest.param("tekton-catalog-tasks", False, True, id="tekton-catalog-tasks"),
    pytest.param("kserve-cluster-resources", True, True, id="kserve-cluster-resources"),
]


def corpus_base(tmp_path: Path, name: str) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(CORPUS / f"{name}.yaml", base)
    (base / "kustomization.yaml").write_text(f"resources:\n- {name}.yaml\n")
    return base


def midstream(
    base: Path, out: Path, options: Options, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[bytes]:
    """`rewriter kustomization --resources BASE --output-dir OUT FLAGS`: it builds the base
    with the `kustomize` first on PATH, the real one (host_env)."""
    command = [str(REWRITER), "kustomization", "--resources", str(base), "--output-dir", str(out)]
    return run([*command, *flags(options), *extra], env)
