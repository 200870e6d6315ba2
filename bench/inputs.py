"""The benchmark's inputs, built from the shared corpus without parsing it.

- `corpus_stream()`: every `<repo>/../shared/corpus/*.yaml`, joined with `---` the way
  `rewriter render FILE...` joins files;
- `grown()`: N copies of a stream, every copy after the first with its resources renamed
  (`metadata.name` gets `-c2`, `-c3`...), so the copies are distinct resources;
- `kustomize_ready()`: the same stream made acceptable to `kustomize build`, which refuses
  nameless resources (`generateName`) and duplicate ids; `List` documents are dropped;
- `probe_stream()`: Deployments and Jobs over many distinct private images, for the
  probe figures; `small_deployment()` for the start-up figure.

Names are found with a line-level scan of each document's top-level `metadata:` block:
good enough for renaming, and it keeps input building to a second or two.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rewriter.manifest.stream import split

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
QUICK_SAMPLE = 8  # --quick: every 8th document of the corpus stream (same mix, 1/8 the size)

_TOP_FIELD = re.compile(rb"^(apiVersion|kind):[ \t]*([^\r\n#]*?)[ \t]*(?:#[^\r\n]*)?\r?$", re.M)
# `metadata:` at column 0 and the indented (or blank) lines under it.
_METADATA = re.compile(rb"^metadata:[ \t]*(?:#[^\n]*)?\n((?:[ \t]+[^\n]*\n|[ \t]*\r?\n)*)", re.M)
_INDENT = re.compile(rb"^([ \t]+)[^ \t\r\n#]", re.M)


@dataclass(frozen=True)
class Meta:
    """What the line scan found in one document."""

    api_version: str
    kind: str
    namespace: str
    name: str
    name_span: tuple[int, int] | None  # where the name's value sits (inside its quotes)
    generate_name: str
    metadata_end: int | None  # offset just past the `metadata:` line, for inserting
    indent: bytes  # indentation of metadata's fields


def _unquote(value: bytes) -> tuple[bytes, int]:
    """The scalar without its quotes, and how many quote bytes lead it."""
    if len(value) >= 2 and value[:1] in (b'"', b"'") and value[-1:] == value[:1]:
        return value[1:-1], 1
    return value, 0


def scan(data: bytes) -> Meta:
    """apiVersion, kind and the metadata of one document, found line by line."""
    top: dict[bytes, bytes] = {}
    for match in _TOP_FIELD.finditer(data):
        top.setdefault(match.group(1), _unquote(match.group(2))[0])
    fields: dict[bytes, tuple[bytes, tuple[int, int]]] = {}
    metadata_end: int | None = None
    indent = b"  "
    block = _METADATA.search(data)
    if block is not None:
        metadata_end = block.start(1)
        first = _INDENT.search(block.group(1))
        if first is not None:
            indent = first.group(1)
        field = re.compile(
            rb"^" + re.escape(indent) + rb"(name|namespace|generateName):[ \t]*"
            rb"([^\r\n#]*?)[ \t]*(?:#[^\r\n]*)?\r?$",
            re.M,
        )
        for match in field.finditer(data, block.start(1), block.end(1)):
            value, quote = _unquote(match.group(2))
            start = match.start(2) + quote
            fields.setdefault(match.group(1), (value, (start, start + len(value))))
    name = fields.get(b"name")
    return Meta(
        api_version=top.get(b"apiVersion", b"").decode(errors="replace"),
        kind=top.get(b"kind", b"").decode(errors="replace"),
        namespace=fields.get(b"namespace", (b"", (0, 0)))[0].decode(errors="replace"),
        name=name[0].decode(errors="replace") if name else "",
        name_span=name[1] if name and name[0] else None,
        generate_name=fields.get(b"generateName", (b"", (0, 0)))[0].decode(errors="replace"),
        metadata_end=metadata_end,
        indent=indent,
    )


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def join_streams(parts: list[bytes]) -> bytes:
    """Concatenate files as one stream, as `rewriter render FILE...` does."""
    out: list[bytes] = []
    for part in parts:
        if out and not out[-1].endswith(b"\n"):
            out.append(b"\n")
        if out and not part.startswith(b"---"):
            out.append(b"---\n")
        out.append(part)
    return b"".join(out)


def corpus_stream(quick: bool = False) -> bytes:
    """The whole corpus as one stream; with `quick`, every QUICK_SAMPLE-th document of it
    (CRDs, workloads and the rest in about the same mix)."""
    files = corpus_files()
    if not files:
        raise SystemExit(f"no corpus at {CORPUS} (expected <repo>/../shared/corpus/*.yaml)")
    data = join_streams([path.read_bytes() for path in files])
    if not quick:
        return data
    _, chunks = split(data)
    return b"".join(chunk.data for chunk in chunks[::QUICK_SAMPLE])


def grown(data: bytes, copies: int) -> bytes:
    """`copies` copies of the stream; copy k > 1 has every metadata.name suffixed `-ck`."""
    _, chunks = split(data)
    spans = [scan(chunk.data).name_span for chunk in chunks]
    out = [data]
    for copy in range(2, copies + 1):
        suffix = f"-c{copy}".encode()
        if not out[-1].endswith(b"\n"):
            out.append(b"\n")
        for index, (chunk, span) in enumerate(zip(chunks, spans, strict=True)):
            if index == 0 and not chunk.data.startswith(b"---"):
                out.append(b"---\n")
            if span is None:
                out.append(chunk.data)
            else:
                out += [chunk.data[: span[1]], suffix, chunk.data[span[1] :]]
    return b"".join(out)


@dataclass(frozen=True)
class KustomizeReady:
    data: bytes
    renamed: int  # duplicate ids given a new name
    named: int  # generateName-only or nameless documents given a name
    dropped: int  # List documents (kustomize would need their items as resources)


def kustomize_ready(data: bytes) -> KustomizeReady:
    """The stream as `kustomize build` accepts it: unique ids, every resource named."""
    _, chunks = split(data)
    seen: Counter[tuple[str, str, str, str]] = Counter()
    out: list[bytes] = []
    renamed = named = dropped = 0
    for chunk in chunks:
        meta = scan(chunk.data)
        text = chunk.data
        if meta.kind.endswith("List"):
            dropped += 1
            continue
        if not meta.kind:  # an empty or comment-only document
            out.append(text)
            continue
        name = meta.name
        if not name and meta.metadata_end is not None:
            name = f"{meta.generate_name or 'bench-unnamed-'}{chunk.index}"
            line = meta.indent + b"name: " + name.encode() + b"\n"
            text = text[: meta.metadata_end] + line + text[meta.metadata_end :]
            named += 1
        elif not name:
            dropped += 1
            continue
        namespace = "" if meta.namespace == "default" else meta.namespace
        key = (meta.api_version, meta.kind, namespace, name)
        seen[key] += 1
        if seen[key] > 1 and meta.name_span is not None:
            suffix = f"-dup{seen[key]}".encode()
            text = text[: meta.name_span[1]] + suffix + text[meta.name_span[1] :]
            renamed += 1
        out.append(text)
    return KustomizeReady(b"".join(out), renamed, named, dropped)


# -- generated streams ---------------------------------------------------------------------


_DEPLOYMENT = """\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: bench
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
{containers}"""

_JOB = """\
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}-migrate
  namespace: bench
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
{containers}"""

_CONTAINER = """\
        - name: c{number}
          image: {image}
          ports:
            - containerPort: 8080
"""


def probe_stream(hosts: list[str], images: int) -> tuple[bytes, list[str]]:
    """Deployments over `images` distinct images (two tags per repository, repositories
    spread round-robin over `hosts`), each image used again by a Job.

    Returns the stream and the images, in order.
    """
    refs: list[str] = []
    out: list[str] = []
    for repo in range((images + 1) // 2):
        host = hosts[repo % len(hosts)]
        tags = ["1.0", "1.1"][: min(2, images - 2 * repo)]
        pair = [f"{host}/team-{repo}/app:{tag}" for tag in tags]
        refs += pair
        containers = "".join(
            _CONTAINER.format(number=number, image=image) for number, image in enumerate(pair)
        )
        out.append(_DEPLOYMENT.format(name=f"svc-{repo}", containers=containers))
        out.append(_JOB.format(name=f"svc-{repo}", containers=containers))
    return "".join(out).encode(), refs


def small_deployment(image: str) -> bytes:
    """One Deployment with one container: the smallest render worth timing."""
    containers = _CONTAINER.format(number=0, image=image)
    return _DEPLOYMENT.format(name="web", containers=containers).encode()


# -- workload-dense streams (issue 13) -------------------------------------------------------
#
# What a big chart renders: every byte a workload, where the corpus is mostly CRDs passed
# through unparsed. Sizes are those of the issue; `--quick` divides them by DENSE_QUICK.

DENSE_QUICK = 8
DENSE_PODS, DENSE_NAMESPACES = 100_000, 20
DENSE_CONTAINERS = 200_000
DENSE_CONFIGMAP = 8 << 20  # bytes

_POD = """\
---
apiVersion: v1
kind: Pod
metadata:
  name: pod{number}
  namespace: ns{namespace}
spec:
  containers:
    - name: a
      image: quay.io/acme/s{service}:1.{tag}
"""

_WIDE_CONTAINER = """\
    - name: c{number}
      image: quay.io/acme/app{service}:1
"""


def many_pods(quick: bool = False) -> bytes:
    """100,000 one-container Pods (50 images) spread over 20 namespaces: ~13 MiB."""
    count = DENSE_PODS // (DENSE_QUICK if quick else 1)
    return "".join(
        _POD.format(
            number=number,
            namespace=number % DENSE_NAMESPACES,
            service=number % 25,
            tag=number % 2,
        )
        for number in range(count)
    ).encode()


def wide_pod(quick: bool = False) -> bytes:
    """One Pod with 200,000 containers (100 images): ~9.8 MiB in one document."""
    count = DENSE_CONTAINERS // (DENSE_QUICK if quick else 1)
    head = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: wide\n  namespace: bench\nspec:\n"
    containers = "".join(
        _WIDE_CONTAINER.format(number=number, service=number % 100) for number in range(count)
    )
    return (head + "  containers:\n" + containers).encode()


def image_configmap(quick: bool = False) -> bytes:
    """An 8 MiB ConfigMap whose values mention "image" (a trigger word) on every line."""
    size = DENSE_CONFIGMAP // (DENSE_QUICK if quick else 1)
    lines = ["apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: images\n  namespace: bench\n"]
    lines.append("data:\n")
    total, number = sum(map(len, lines)), 0
    while total < size:
        line = f'  key-{number:07d}: "image: quay.io/acme/app-{number % 100}:1.0 pulled"\n'
        lines.append(line)
        total += len(line)
        number += 1
    return "".join(lines).encode()
