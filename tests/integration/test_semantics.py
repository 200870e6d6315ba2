"""kubectl is the judge: for every case under tests/fixtures/semantics/ (issue 13, README
there) and every hostile input that renders (test_hostile.RENDERS), what kubectl reads
after `rewriter render` is the expected transform of what it read before
(tests/support/kubeoracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FIXTURES, kubeoracle
from test_hostile import RENDERS

CASES = sorted((FIXTURES / "semantics").glob("*.yaml"))
# Cases rewriter gets wrong today, with the issue item whose fix makes them pass. Strict:
# once fixed, the case passes, the xfail fails the suite, and the fixer removes the line.
WRONG_TODAY: dict[str, str] = {}

# Hostile inputs kubectl itself refuses are out of scope: there is no "what the cluster
# reads" to compare with. Each is checked to still be refused, so the list stays true.
KUBECTL_REFUSES: dict[str, str] = {
    "scalar and list documents": "invalid Yaml document separator",
    "billion laughs": "excessive aliasing",
}


def _case(path: Path):  # type: ignore[no-untyped-def]
    marks = []
    if path.name in WRONG_TODAY:
        marks.append(pytest.mark.xfail(strict=True, reason=WRONG_TODAY[path.name]))
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_case(p) for p in CASES])
def test_semantic_case(path: Path, kube_oracle: kubeoracle.Kubectl) -> None:
    data = path.read_bytes()
    args, refusal = kubeoracle.fixture_args(data)
    kubeoracle.check_render(kube_oracle, data, args, refusal)


def test_the_cases_are_there() -> None:
    assert len(CASES) >= 3
    assert set(WRONG_TODAY) <= {p.name for p in CASES}, "a WRONG_TODAY entry has no file"


@pytest.mark.parametrize(
    ("name", "data"), [(r[0], r[1]) for r in RENDERS], ids=[r[0] for r in RENDERS]
)
def test_hostile_input_that_renders(
    name: str, data: bytes, kube_oracle: kubeoracle.Kubectl
) -> None:
    if name in KUBECTL_REFUSES:
        with pytest.raises(kubeoracle.Refused, match=KUBECTL_REFUSES[name]):
            kube_oracle.read(data)
        return
    kubeoracle.check_render(kube_oracle, data, kubeoracle.DEFAULT_ARGS)
