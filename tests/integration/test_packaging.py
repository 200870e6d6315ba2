"""What users install: `python -m build` makes an sdist, a wheel built from that sdist, and
the wheel installs and runs. Built without isolation (setuptools comes from the locked
test environment), installed without dependencies (they come from the same environment),
so nothing is fetched."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

from support import ROOT as REPO

import rewriter


def test_sdist_and_wheel_install_and_run(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True, capture_output=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    version = rewriter.__version__
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    assert sdist.name == f"rewriter-{version}.tar.gz"
    assert wheel.name == f"rewriter-{version}-py3-none-any.whl"
    with tarfile.open(sdist) as archive:
        names = {Path(name).relative_to(f"rewriter-{version}").as_posix() for name in archive.getnames()}
    assert {"README.md", "CHANGELOG.md", "pyproject.toml", "rewriter/manifest/catalogue.yaml"} <= names
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"rewriter/manifest/catalogue.yaml", "rewriter/py.typed", "rewriter/cli.py"} <= names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    # The dependencies from the test environment, after the installed wheel.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }
    installed = target / "bin" / "rewriter"
    version_line = subprocess.run(
        [str(venv / "bin" / "python"), str(installed), "--version"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout  # fmt: skip
    assert version_line == f"rewriter {version}\n"
    render = subprocess.run(
        [str(venv / "bin" / "python"), str(installed), "--license", "examples/license.yaml",
         "--config", "examples/rewriter.yaml", "--offline"],
        stdin=(REPO / "examples" / "app.yaml").open("rb"), capture_output=True, env=env,
        cwd=REPO, check=False,
    )  # fmt: skip
    assert render.returncode == 0, render.stderr
    assert b"proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1" in render.stdout
    # The wheel's code ran, not the checkout's.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rewriter; print(rewriter.__file__)"],
        capture_output=True, text=True, env={**env, "PYTHONPATH": f"{target}:{env['PYTHONPATH']}"},
        cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(target))
