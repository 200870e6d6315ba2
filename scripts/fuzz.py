#!/usr/bin/env python3
"""Mutation fuzzing of the render on real manifests.

Takes the corpus documents that hold images, applies random byte- and token-level
mutations, renders each result in-process, and checks that every input either renders
(output parses, a second pass is identical) or fails with a RewriterError (the CLI's
clean `error:` path), and that `rewriter render`'s lean plan (documents settled while
visited, big ones read from events) gives what a plan keeping every site gives, output
or error. Anything else is a crash, saved under --out for replay.

With `--oracle N`, the first N inputs that render are also judged by kubectl
(tests/support/kubeoracle.py): what kubectl reads after `rewriter render` (the CLI, same rules)
must be the expected transform of what it read before. Inputs kubectl itself refuses are
counted apart; a disagreement is saved under --out like a crash.

    python3 scripts/fuzz.py --inputs 100000 --seed 1
    python3 scripts/fuzz.py --inputs 2000 --oracle 300
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # the kubectl oracle, for --oracle

from rewriter.decide import Rules  # noqa: E402
from rewriter.diagnostics import Reporter  # noqa: E402
from rewriter.errors import RewriterError  # noqa: E402
from rewriter.manifest.stream import split  # noqa: E402
from rewriter.render import find_and_decide, rewrite  # noqa: E402
from rewriter.render_options import Options  # noqa: E402
from rewriter.secrets import license_credentials  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
TOKENS = [
    b": ",
    b"- ",
    b"---\n",
    b"...\n",
    b"&a ",
    b"*a",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\t",
    b'"',
    b"'",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\r\n",
    b"\n",
    b"image: ",
    b"@sha256:" + b"a" * 64,
    b":5000/",
    b"{{ .Values.x }}",
    b"null",
    b"~",
    b"!!str ",
    b"? ",
    b"|\n",
    b">-\n",
    b"#",
    b"%YAML 1.1\n",
    b"imagePullSecrets: ",
    b"containers: ",
    b"kind: List\n",
    b"items:\n",
    b"0755",
    b" " * 40,
]
OPTIONS = Options(
    rules=Rules(app_slug="acme", public=("docker.io/library/*",), private=("*",)),
    secret_name="acme-registry",
    credentials=license_credentials(("proxy.replicated.com",), "L"),
    additional_namespaces=("extra",),
)


def seeds() -> list[bytes]:
    """Corpus documents that hold an image, small enough to mutate quickly."""
    found = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for chunk in split(path.read_bytes())[1]:
            if b"image" in chunk.data and len(chunk.data) < 20_000:
                found.append(chunk.data)
    return found


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(5)
        if kind == 0:
            data = data[:at] + rng.choice(TOKENS) + data[at:]
        elif kind == 1 and data:
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        elif kind == 2:
            data = data[:at] + data[at + rng.randint(1, 40) :]
        elif kind == 3:
            lines = data.splitlines(keepends=True)
            if lines:
                i = rng.randrange(len(lines))
                lines.insert(rng.randrange(len(lines) + 1), lines[i])
                data = b"".join(lines)
        else:
            other = rng.choice(SEEDS)
            data = data + b"\n---\n" + other[: rng.randrange(len(other) + 1)]
    return data


def render(data: bytes, lean: bool = True) -> bytes:
    """As `rewriter render` does (`lean`: documents settled while visited, big ones read
    from events), or keeping every site as scan and the KRM function do."""
    report = Reporter(stream=io.StringIO())
    plan = find_and_decide(data, OPTIONS, lambda refs: {}, report, lean=lean)
    return rewrite(plan, OPTIONS, report).stream()


def outcome(data: bytes, lean: bool) -> bytes | str:
    try:
        return render(data, lean)
    except RewriterError as exc:
        return f"error: {exc}"


def check(data: bytes) -> str:
    """'rendered' or 'error'; raises AssertionError (or anything) on a broken property."""
    out = outcome(data, lean=True)
    assert outcome(data, lean=False) == out, "the lean render differs from the kept one"
    if isinstance(out, str):
        return "error"
    list(yaml.compose_all(out, Loader=yaml.CSafeLoader))
    assert render(out) == out, "second pass differs"
    return "rendered"


SEEDS: list[bytes] = []
# The CLI arguments that mean OPTIONS, less the additional namespace (the oracle models
# the Secrets of consumers' namespaces only).
ORACLE_ARGS = ("--app-slug", "acme", "--license-id", "L", "--public", "docker.io/library/*",
               "--private", "*", "--offline")  # fmt: skip


def oracle_check(kubectl: object, data: bytes) -> str:
    """'agrees' or 'kubectl refuses'; raises AssertionError when kubectl disagrees."""
    from support import kubeoracle

    assert isinstance(kubectl, kubeoracle.Kubectl)
    try:
        kubeoracle.check_render(kubectl, data, ORACLE_ARGS)
    except kubeoracle.Refused:
        return "kubectl refuses"
    return "agrees"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--oracle", type=int, default=0, metavar="N",
                        help="judge the first N inputs that render with kubectl")  # fmt: skip
    args = parser.parse_args()
    SEEDS.extend(seeds())
    rng = random.Random(args.seed)
    counts = {"rendered": 0, "error": 0, "crash": 0}
    judged = {"agrees": 0, "kubectl refuses": 0, "disagrees": 0}
    oracle_time = 0.0
    kubectl = None
    home = tempfile.TemporaryDirectory(prefix="fuzz-kubectl-")  # kubectl's HOME and caches
    if args.oracle:
        from support import kubeoracle

        kubectl = kubeoracle.Kubectl(Path(home.name))
    slowest = 0.0
    started = time.monotonic()
    try:
        for n in range(args.inputs):
            data = mutate(rng.choice(SEEDS), rng)
            begin = time.monotonic()
            try:
                outcome = check(data)
                counts[outcome] += 1
            except Exception:
                outcome = "crash"
                counts["crash"] += 1
                save(args.out, f"crash-{n}", data)
            slowest = max(slowest, time.monotonic() - begin)
            if kubectl is not None and outcome == "rendered" and sum(judged.values()) < args.oracle:
                begin = time.monotonic()
                try:
                    judged[oracle_check(kubectl, data)] += 1
                except Exception:
                    judged["disagrees"] += 1
                    save(args.out, f"oracle-{n}", data)
                oracle_time += time.monotonic() - begin
            if (n + 1) % 10_000 == 0:
                print(f"{n + 1} inputs: {counts}", flush=True)
    finally:
        if kubectl is not None:
            kubectl.stop()
        home.cleanup()
    elapsed = time.monotonic() - started
    print(
        f"{args.inputs} inputs from {len(SEEDS)} corpus documents (seed {args.seed}): "
        f"{counts['rendered']} rendered, {counts['error']} clean errors, "
        f"{counts['crash']} crashes; {elapsed:.0f} s, slowest input {slowest * 1000:.0f} ms"
    )
    if args.oracle:
        print(
            f"kubectl judged {sum(judged.values())} rendered inputs: {judged['agrees']} agree, "
            f"{judged['kubectl refuses']} refused by kubectl, {judged['disagrees']} disagree; "
            f"{oracle_time:.0f} s"
        )
    return 1 if counts["crash"] or judged["disagrees"] else 0


def save(out: Path, name: str, data: bytes) -> None:
    """The input and the traceback, for replay."""
    out.mkdir(exist_ok=True)
    (out / f"{name}.yaml").write_bytes(data)
    (out / f"{name}.txt").write_text(traceback.format_exc())


if __name__ == "__main__":
    sys.exit(main())
