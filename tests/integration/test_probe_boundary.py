"""The probe package is the only way to the network stack and the cache's storage: no
module outside rewriter/probe/ imports urllib3, requests, requests-cache, redis or
sqlite3 (read from the source, so a function-level import counts too), and importing
the package itself, or its vocabulary, loads none of them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "rewriter"
PROBE = PACKAGE / "probe"
HEAVY = frozenset({"urllib3", "requests", "requests_cache", "redis", "sqlite3"})


def heavy_imports(path: Path) -> list[str]:
    """`module:line name` for each import of a HEAVY module (or of one of theirs)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        where = path.relative_to(PACKAGE.parent)
        found += [f"{where}:{node.lineno} {name}" for name in names if _top(name) in HEAVY]
    return found


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def test_only_the_probe_package_imports_the_network_stack_or_the_cache_storage() -> None:
    outside = [path for path in PACKAGE.rglob("*.py") if PROBE not in path.parents]
    assert len(outside) > 10  # the walk finds the package
    assert [hit for path in sorted(outside) for hit in heavy_imports(path)] == []


def test_the_check_sees_the_imports_the_probe_makes() -> None:
    inside = {
        hit.split(" ", 1)[1].split(".", 1)[0]
        for path in PROBE.rglob("*.py")
        for hit in heavy_imports(path)
    }
    # urllib3 at the top of the transport, sqlite3 in the cache, redis and requests-cache
    # inside functions and under TYPE_CHECKING: all seen, so the check above can fail.
    assert inside >= HEAVY


def test_importing_the_package_and_its_vocabulary_loads_none_of_them() -> None:
    code = (
        "import sys\n"
        "import rewriter.probe, rewriter.probe.verdict, rewriter.decide, rewriter.cli\n"
        "from rewriter.probe.cache import spec\n"
        f"print(sorted(name for name in {sorted(HEAVY)!r} if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "[]\n"
