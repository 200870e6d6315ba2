"""Where the suite finds the real host binaries (Helm 3, Helm 4, kustomize, ...).

tests/hosts/build builds them from their Go modules at the versions in tests/hosts/versions
into one directory; this module reads the same table and the same directory, so the two can
never disagree about which binary is which version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VERSIONS = Path(__file__).resolve().parents[1] / "hosts" / "versions"


@dataclass(frozen=True)
class Host:
    name: str
    package: str
    version: str

    @property
    def path(self) -> Path:
        return hosts_dir() / f"{self.name}-{self.version}"


def hosts_dir() -> Path:
    configured = os.environ.get("REWRITER_HOSTS_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rewriter-test-hosts"


def hosts() -> dict[str, Host]:
    table: dict[str, Host] = {}
    for line in VERSIONS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, package, version = line.split()
            table[name] = Host(name, package, version)
    return table


def find(name: str) -> Path | None:
    """The built binary of host `name`, or None when tests/hosts/build has not made it."""
    path = hosts()[name].path
    return path if os.access(path, os.X_OK) else None
