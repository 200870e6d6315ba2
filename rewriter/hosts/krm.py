"""`rewriter krm`: the transform as a kustomize KRM function (ResourceList in and out).

kustomize runs a function with a ResourceList on stdin: `items` are the resources,
`functionConfig` is the resource that declared the function. It expects the same list
back: items are matched to its own copies through their `config.k8s.io/id` annotation,
an item missing from the output is deleted, and an item without an id is a new
resource. So the list is edited as text like any other stream: `render.find_and_decide()` reads a
`*List` document's `items` as resources and edits them in place, which keeps every other
byte, the internal annotations included. Only our Secrets (appended to `items`) and
`results` are new text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.config import ConfigFile, at_repository_level, parse_config
from rewriter.diagnostics import Reporter, tell_decisions
from rewriter.errors import CannotRewrite, RewriterError
from rewriter.location import Location, Notice
from rewriter.manifest import edit
from rewriter.manifest.document import get, scalar
from rewriter.manifest.stream import BOM
from rewriter.options import BY_NAME, Flags
from rewriter.plan import Found, Plan, located
from rewriter.render import Prober, find_and_decide, rewrite
from rewriter.secrets import MANAGED_BY, MANAGED_BY_LABEL
from rewriter.settings import Settings, resolve

CONFIG_API_VERSION = "rewriter.dev/v1alpha1"
CONFIG_KIND = "RewriterConfig"
RESOURCE_LIST_VERSIONS = (
    "config.kubernetes.io/v1",
    "config.kubernetes.io/v1beta1",
    "config.kubernetes.io/v1alpha1",
)
# kustomize's record of the names a resource had before its transformers renamed it.
PREVIOUS_NAMES = "internal.config.kubernetes.io/previousNames"
PATH_ANNOTATIONS = ("internal.config.kubernetes.io/path", "config.kubernetes.io/path")
INDEX_ANNOTATIONS = ("internal.config.kubernetes.io/index", "config.kubernetes.io/index")

# Builds the probe once settings are known (the CLI's, so both commands probe alike).
MakeProber = Callable[[Settings, Reporter], Prober]

_WIDE = 1 << 20  # never fold a line of ours


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Who an item is, for a result's `resourceRef`."""

    api_version: str | None
    kind: str | None
    name: str | None  # metadata.name, else generateName: the spec requires one
    namespace: str | None
    file: dict[str, Any] | None = None  # from the path annotations, when present

    def as_result(self) -> dict[str, str]:
        """A resourceRef: apiVersion, kind and name always (the spec requires them)."""
        ref = {
            "apiVersion": self.api_version or "",
            "kind": self.kind or "",
            "name": self.name or "",
        }
        if self.namespace:
            ref["namespace"] = self.namespace
        return ref

    def located(self, entry: dict[str, Any], field: str | None) -> dict[str, Any]:
        """`entry` with this item's resourceRef, field and file."""
        entry["resourceRef"] = self.as_result()
        if field:
            entry["field"] = {"path": field}
        if self.file:
            entry["file"] = self.file
        return entry

    def label(self) -> str:
        """`Kind ns/name`, as the engine's messages say it."""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '?'} {name or '?'}"


def run(
    data: bytes,
    flags: Flags,
    environ: Mapping[str, str],
    reporter: Reporter,
    make_prober: MakeProber,
    out: IO[bytes],
) -> None:
    """Transform one ResourceList and write the answer to `out`.

    On failure the answer still goes out (the input's items unchanged, the error in
    `results`, as the KRM protocol wants), then the error is raised so the command
    exits non-zero with the message on stderr.
    """
    results = _Results(reporter)
    plan: Plan | None = None
    try:
        root = _read_resource_list(data)
        results.items = _item_refs(root)
        config = function_config(_construct(get(root, "functionConfig")), results)
        settings = resolve(flags, environ, base=config)
        _check_items(root, results.items, settings.options.secret_name)
        settings = replace(settings, cache=absolute_cache(settings.cache))
        if settings.log_file is not None and reporter.log is None:
            reporter.open_log(settings.log_file)
        plan = find_and_decide(data, settings.options, make_prober(settings, results), results)
        if reporter.verbose:
            tell_decisions(reporter, plan.decided)
        rendered = rewrite(plan, settings.options, results)
        output = _with_secrets(_decode(rendered.documents), rendered.secrets, settings)
        output = _with_results(output, results.entries(plan))
    except RewriterError as exc:
        message = exc.told(results.place)
        entries = results.entries(plan)
        entries.extend(results.errors(exc))
        out.write(_failed(data, entries).encode("utf-8"))
        out.flush()
        raise RewriterError(message) from None
    output = _with_items(output)
    bom = BOM if data.startswith(BOM) else b""
    out.write(bom + output.encode("utf-8"))
    out.flush()


# --- functionConfig -------------------------------------------------------------------


def function_config(value: Any, reporter: Reporter) -> ConfigFile:
    """The function's configuration: a RewriterConfig, a ConfigMap, or nothing.

    `kind: RewriterConfig` (apiVersion rewriter.dev/v1alpha1) has the `--config` syntax
    under `spec` (`options`, `podSpecs`, `images`); a ConfigMap's `data` holds option
    names with string values (lists separated by blanks, booleans `true`/`false`).
    """
    if value is None or value == {}:
        return ConfigFile()
    if not isinstance(value, dict):
        raise RewriterError("functionConfig must be a resource (a mapping)")
    kind, api_version = value.get("kind"), value.get("apiVersion")
    if kind == "ConfigMap":
        data = value.get("data") or {}
        if not isinstance(data, dict):
            raise RewriterError("functionConfig ConfigMap: data must be a mapping")
        config = ConfigFile(options={str(k).replace("_", "-"): v for k, v in data.items()})
    elif kind == CONFIG_KIND:
        if api_version != CONFIG_API_VERSION:
            raise RewriterError(
                f"functionConfig {CONFIG_KIND}: unsupported apiVersion {api_version!r} "
                f"(expected {CONFIG_API_VERSION})"
            )
        spec = value.get("spec")
        config = parse_config(
            spec if spec is not None else {}, f"functionConfig {CONFIG_KIND} spec"
        )
    else:
        raise RewriterError(
            f"functionConfig must be a {CONFIG_KIND} ({CONFIG_API_VERSION}) or a ConfigMap, "
            f"not {kind or 'a resource without kind'}"
        )
    if config.options.get("license-id"):
        # The function's config is committed with the kustomization.
        reporter.warn(
            "functionConfig sets license-id: it ends up in version control; prefer "
            "REWRITER_LICENSE_ID or license-id-file"
        )
    # Committed with the kustomization: the repository's level of trust (SPEC 7).
    at_repository_level(config, "functionConfig")
    return ConfigFile(config.pod_specs, config.images, _typed_options(config.options))


def _typed_options(options: dict[str, Any]) -> dict[str, Any]:
    """Give option values the types the command line would: lists, booleans.

    A ConfigMap holds only strings, and `private: quay.io/x/*` is a natural way to write
    a one-element list; either way a string is split at blanks, like the env variables.
    """
    typed: dict[str, Any] = {}
    for name, value in options.items():
        option = BY_NAME.get(name)
        kind = option.kind if option is not None else None  # unknown: said by settings
        if value is None:
            continue
        if kind is list and isinstance(value, str):
            value = value.split()
        elif kind is list and isinstance(value, list):
            value = [str(v) for v in value]
        elif kind is bool and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("true", "false"):
                raise RewriterError(f"functionConfig option {name}: expected true or false")
            value = lowered == "true"
        elif kind in (str, Path, float, int) and isinstance(value, bool):
            raise RewriterError(f"functionConfig option {name}: expected a value, not {value}")
        typed[name] = value
    return typed


def absolute_cache(cache: str) -> str:
    """The function runs in the user's kustomization directory: a relative cache path
    would scatter probe caches across users' repositories, so it is refused."""
    if cache in ("", "none") or "://" in cache:
        return cache  # default (the user cache dir), no cache, or redis://
    expanded = os.path.expanduser(cache)
    if not os.path.isabs(expanded):
        raise RewriterError(
            f"cache path {cache!r} is relative: a KRM function runs in the kustomization "
            "directory, so give an absolute path (or leave it unset for the user cache "
            "dir, or 'none')"
        )
    return expanded


# --- the ResourceList text --------------------------------------------------------------


def _decode(data: bytes) -> str:
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RewriterError("the ResourceList is not valid UTF-8") from None


def _compose(text: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise RewriterError(f"stdin is not a ResourceList: invalid YAML: {problem}") from None


def _read_resource_list(data: bytes) -> MappingNode:
    text = _decode(data)
    root = _compose(text)
    if not isinstance(root, MappingNode) or scalar(get(root, "kind")) != "ResourceList":
        raise RewriterError(
            "stdin is not a ResourceList (kind: ResourceList, apiVersion: "
            "config.kubernetes.io/v1): run `rewriter krm` as a kustomize function, or use "
            "`rewriter render` for a plain stream"
        )
    api_version = scalar(get(root, "apiVersion"))
    if api_version not in RESOURCE_LIST_VERSIONS:
        raise RewriterError(f"unsupported ResourceList apiVersion {api_version!r}")
    items = get(root, "items")
    if items is not None and scalar(items) is not None and not isinstance(items, SequenceNode):
        raise RewriterError("ResourceList items must be a list")
    return root


def _construct(node: Node | None) -> Any:
    """Python values for one subtree (the functionConfig), without loading the rest."""
    if node is None:
        return None
    return yaml.SafeLoader("").construct_document(node)


def _items(root: Node | None) -> list[Node]:
    items = get(root, "items")
    return list(items.value) if isinstance(items, SequenceNode) else []


def _item_refs(root: MappingNode) -> list[ItemRef]:
    refs = []
    for item in _items(root):
        meta = get(item, "metadata")
        annotations = get(meta, "annotations")
        path = next(
            (scalar(get(annotations, a)) for a in PATH_ANNOTATIONS if get(annotations, a)), None
        )
        index = next(
            (scalar(get(annotations, a)) for a in INDEX_ANNOTATIONS if get(annotations, a)), None
        )
        file: dict[str, Any] | None = None
        if path:
            file = {"path": path}
            if index is not None and index.isdigit():
                file["index"] = int(index)
        refs.append(
            ItemRef(
                scalar(get(item, "apiVersion")),
                scalar(get(item, "kind")),
                scalar(get(meta, "name")) or scalar(get(meta, "generateName")),
                scalar(get(meta, "namespace")),
                file,
            )
        )
    return refs


def _check_items(root: MappingNode, refs: list[ItemRef], secret_name: str) -> None:
    """What the edit in place cannot handle, refused rather than passed over in silence."""
    for index, item in enumerate(_items(root)):
        ref = refs[index]
        nested = get(item, "items")
        if (ref.kind or "").endswith("List") and isinstance(nested, SequenceNode) and nested.value:
            # render reads one level of Lists: the items of the ResourceList.
            raise _ItemError(
                index,
                f"{ref.label()} is a List inside the ResourceList; its "
                "resources would not be rewritten: send them as items of their own",
            )
        meta = get(item, "metadata")
        previous = (scalar(get(get(meta, "annotations"), PREVIOUS_NAMES)) or "").split(",")
        if ref.kind == "Secret" and ref.name != secret_name and secret_name in previous:
            # kustomize's name references follow renames: after this function, a pod's
            # `imagePullSecrets: {secret_name}` would be pointed at this Secret.
            ours = scalar(get(get(meta, "labels"), MANAGED_BY_LABEL)) == MANAGED_BY
            why = (
                "rewriter's pull Secret from an earlier run of the function, renamed by "
                "kustomize since (run the function once, in the last overlay)"
                if ours
                else "a Secret the base renamed; kustomize would point the imagePullSecrets "
                "rewriter adds at it (choose another --secret-name)"
            )
            raise _ItemError(index, f"{ref.label()} was named {secret_name!r}: it is {why}")


def _with_secrets(text: str, secrets: list[str], settings: Settings) -> str:
    """Append our Secrets to `items`; drop the ones a previous run added.

    `render` recognises its own Secrets only as whole documents, so items are checked
    here: ours (by label) are replaced, a user's Secret of the same name is a conflict.
    """
    options = settings.options
    root = _compose(text)
    assert isinstance(root, MappingNode)
    new_items = [yaml.load(secret, Loader=yaml.CSafeLoader) for secret in secrets]
    wanted = {(item["metadata"].get("namespace")) for item in new_items}
    splices: list[edit.Splice] = []
    sequence = get(root, "items")
    kept = 0
    for index, item in enumerate(_items(root)):
        meta = get(item, "metadata")
        if (
            scalar(get(item, "kind")) != "Secret"
            or scalar(get(meta, "name")) != options.secret_name
        ):
            kept += 1
            continue
        namespace = scalar(get(meta, "namespace")) or options.namespace
        if scalar(get(get(meta, "labels"), MANAGED_BY_LABEL)) == MANAGED_BY:
            assert isinstance(sequence, SequenceNode)
            splices.append(_remove_item(text, sequence, index))
        elif namespace in wanted:
            raise _ItemError(
                index,
                f"a Secret named {options.secret_name!r} already exists in "
                f"namespace {namespace or '(default)'} and is not managed by rewriter; "
                "rename it or choose another name with --secret-name",
            )
        else:
            kept += 1
    if new_items:
        splices.append(_append(text, root, "items", new_items))
    elif splices and kept == 0:
        # Every item was one of our old Secrets: an empty block list would read as null.
        assert isinstance(sequence, SequenceNode)
        splices = [edit.Splice(sequence.start_mark.index, sequence.end_mark.index, "  []\n")]
    if not splices:
        return text
    result = edit.apply(text, splices)
    _verify(result, kept, new_items)
    return result


def _with_items(text: str) -> str:
    """`items: []` where the input had none or `items: null`: the answer is a list."""
    root = _compose(text)
    assert isinstance(root, MappingNode)
    node = get(root, "items")
    if isinstance(node, SequenceNode):
        return text
    if node is not None:  # null (checked by _read_resource_list)
        start, end = node.start_mark.index, node.end_mark.index
        lead = "" if start > 0 and text[start - 1] in " \t" else " "
        return edit.apply(text, [edit.Splice(start, end, lead + "[]")])
    if root.flow_style:
        close = root.end_mark.index - 1
        separator = ", " if root.value else ""
        return edit.apply(text, [edit.Splice(close, close, f'{separator}"items": []')])
    at = root.end_mark.index
    brk = _line_break(text)
    lead = "" if at == 0 or text[at - 1] == "\n" else brk
    column = root.value[0][0].start_mark.column if root.value else 0
    return edit.apply(text, [edit.Splice(at, at, f"{lead}{' ' * column}items: []{brk}")])


def _with_results(text: str, results: list[dict[str, Any]]) -> str:
    if not results:
        return text  # nothing to say: an unchanged list stays byte for byte
    root = _compose(text)
    assert isinstance(root, MappingNode)
    return edit.apply(text, [_append(text, root, "results", results)])


def failed_answer(data: bytes, message: str) -> bytes:
    """The answer to a run that never started (a usage error of the command line): the
    input's items unchanged and the error as the only result."""
    return _failed(data, [{"message": message, "severity": "error"}]).encode("utf-8")


def _failed(data: bytes, results: list[dict[str, Any]]) -> str:
    """The answer to a failed run: the input as it came, with the results appended."""
    try:
        text = _decode(data)
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
        if isinstance(root, MappingNode) and scalar(get(root, "kind")) == "ResourceList":
            return edit.apply(text, [_append(text, root, "results", results)])
    except (RewriterError, yaml.YAMLError):
        pass
    answer = {
        "apiVersion": RESOURCE_LIST_VERSIONS[0],
        "kind": "ResourceList",
        "items": [],
        "results": results,
    }
    return str(yaml.dump(answer, Dumper=yaml.CSafeDumper, sort_keys=False, width=_WIDE))


def _line_break(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _append(text: str, root: MappingNode, key: str, values: list[Any]) -> edit.Splice:
    """A splice adding `values` at the end of the list under `key`, creating it if needed."""
    brk = _line_break(text)
    node = get(root, key)
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        at = node.end_mark.index
        lead = "" if at == 0 or text[at - 1] == "\n" else brk
        return edit.Splice(at, at, lead + _block(values, node.start_mark.column, brk))
    if isinstance(node, SequenceNode):  # `[...]`: before the closing bracket
        close = node.end_mark.index - 1
        separator = ", " if node.value else ""
        return edit.Splice(close, close, separator + ", ".join(_flow(v) for v in values))
    if node is not None:
        if not isinstance(node, ScalarNode) or scalar(node) not in (None, ""):
            raise RewriterError(f"ResourceList {key} must be a list")
        start, end = node.start_mark.index, node.end_mark.index
        lead = "" if start > 0 and text[start - 1] in " \t" else " "
        return edit.Splice(start, end, lead + "[" + ", ".join(_flow(v) for v in values) + "]")
    if root.flow_style:  # a JSON ResourceList: before the closing brace
        close = root.end_mark.index - 1
        separator = ", " if root.value else ""
        listed = ", ".join(_flow(v) for v in values)
        return edit.Splice(close, close, f'{separator}"{key}": [{listed}]')
    at = root.end_mark.index
    lead = "" if at == 0 or text[at - 1] == "\n" else brk
    column = root.value[0][0].start_mark.column if root.value else 0
    return edit.Splice(at, at, lead + " " * column + key + ":" + brk + _block(values, column, brk))


def _block(values: list[Any], column: int, brk: str) -> str:
    """`values` as block list entries whose `-` sits at `column`."""
    dumped = yaml.dump(
        values, Dumper=yaml.CSafeDumper, sort_keys=False, width=_WIDE, default_flow_style=False
    )
    indent = " " * column
    return "".join(indent + line + brk for line in str(dumped).splitlines())


def _flow(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _remove_item(text: str, sequence: SequenceNode, index: int) -> edit.Splice:
    """The splice removing one block-list item: from its `-` line to the next item's."""
    item = sequence.value[index]
    start = text.rfind("\n", 0, item.start_mark.index) + 1
    if index + 1 < len(sequence.value):
        following = sequence.value[index + 1]
        end = text.rfind("\n", 0, following.start_mark.index) + 1
    else:
        end = sequence.end_mark.index
    if sequence.flow_style or text[start : item.start_mark.index].strip() not in ("-", ""):
        raise _ItemError(
            index,
            "cannot replace rewriter's old pull Secret in this list layout; "
            "remove it from the input",
        )
    return edit.Splice(start, end, "")


def _verify(text: str, kept: int, added: list[Any]) -> None:
    """Re-read the edited list: a bug in the text surgery becomes an error, never a
    ResourceList that makes kustomize delete or duplicate resources."""
    root = _compose(text)
    items = _items(root)
    tail = [_construct(node) for node in items[kept:]]
    if len(items) != kept + len(added) or tail != added:
        raise RewriterError("internal error: adding the pull Secrets broke the ResourceList")


# --- results --------------------------------------------------------------------------


class _ItemError(RewriterError):
    """An error about one item of the ResourceList, said in the list's own terms
    (`items[3]: ...`) and located at that item in `results`."""

    def __init__(self, item: int, message: str) -> None:
        self.item = item
        super().__init__(f"items[{item}]: {message}")


class _Results(Reporter):
    """A reporter that keeps each warning as a KRM result and tells it in KRM terms.

    The engine locates a problem in the stream (document 1, line 40, `items[3].spec...`):
    lines and indexes of the ResourceList that the user never sees. Here the same
    locations name the resource and field instead, on stderr and in `results`.
    """

    def __init__(self, outer: Reporter) -> None:
        super().__init__(outer.stream, outer.log)
        self.quiet, self.verbose = outer.quiet, outer.verbose
        self.outer = outer
        self.items: list[ItemRef] = []
        self.kept: list[Notice] = []

    def warn(self, warning: str | Notice) -> None:
        notice = warning if isinstance(warning, Notice) else Notice(warning)
        self.kept.append(notice)
        message = notice.told(self.place)
        self.warnings.append(message)
        self.outer.warn(message)

    def place(self, where: Location) -> str:
        """`Deployment shop/web spec...image` for an item of the list, else as the
        command line says it."""
        item = self._item(where)
        if item is None:
            return where.text()
        return f"{item.label()} {where.field}" if where.field else item.label()

    def entries(self, plan: Plan | None) -> list[dict[str, Any]]:
        # A warning about one image (e.g. a 404) has no location of its own: it points
        # at the image's first site.
        first: dict[str, Found] = {}
        for found in plan.found if plan is not None else []:
            first.setdefault(found.ref.text, found)
        entries: list[dict[str, Any]] = []
        for notice in self.kept:
            where = notice.where
            if where is None and notice.image in first:
                where = located(first[notice.image])
            entries.append(self._entry(notice.message, notice.told(self.place), where, "warning"))
        return entries

    def errors(self, exc: RewriterError) -> list[dict[str, Any]]:
        """The error as results: one per image that cannot be rewritten, each located;
        another error located when it has a place."""
        if isinstance(exc, CannotRewrite):
            return [
                self._entry(f"{image}: {reason}", f"{image}: {reason}", where, "error")
                for image, reason, where in exc.failures
            ]
        message = exc.told(self.place)
        entry: dict[str, Any] = {"message": message, "severity": "error"}
        if isinstance(exc, _ItemError) and exc.item < len(self.items):
            return [self.items[exc.item].located(entry, None)]
        return [self._entry(message, message, exc.where, "error")]

    def _entry(
        self, message: str, told: str, where: Location | None, severity: str
    ) -> dict[str, Any]:
        """A result: `message` located at its item when it has one, else `told`."""
        item = self._item(where)
        if item is None:
            return {"message": told, "severity": severity}
        assert where is not None
        return item.located({"message": message, "severity": severity}, where.field)

    def _item(self, where: Location | None) -> ItemRef | None:
        if where is None or where.item is None or where.item >= len(self.items):
            return None
        return self.items[where.item]
