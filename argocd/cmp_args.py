"""Arguments for one Argo CD plugin request, from the Application's parameters and env.

Called by `rewriter-cmp generate` (argocd/rewriter-cmp.sh) in the app's source directory.
Reads the environment the cmp-server gives plugin commands and prints NUL-terminated
tokens on stdout, each prefixed with where it goes:

    r:<arg>   an argument for `rewriter`
    h:<arg>   an argument for `helm template`
    n:<name>  the Helm release name

Checks, each an error naming what to change:
- parameters (`spec.source.plugin.parameters`, JSON in ARGOCD_APP_PARAMETERS) must be
  ones `plugin.yaml` announces, of the right shape;
- the license ID never comes from the Application: `license-id` parameters and
  ARGOCD_ENV_REWRITER_LICENSE_ID[_FILE] are refused (it lives in a Secret mounted into
  the sidecar, REWRITER_LICENSE_ID_FILE);
- Application env (`plugin.env`, seen as ARGOCD_ENV_REWRITER_*) may not choose files
  of the sidecar: the cache and the log file are the sidecar's, and other file options
  must name a file inside the repository;
- values files must be inside the repository.

Only the standard library: it runs before anything else and must not fail to import.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

# name -> (collection, destination, flag). Keep in step with `parameters.static` in
# argocd/plugin.yaml (tests/test_argocd.py checks both lists are the same).
PARAMETERS: dict[str, tuple[str, str, str]] = {
    "app-slug": ("string", "rewriter", "--app-slug"),
    "private": ("array", "rewriter", "--private"),
    "public": ("array", "rewriter", "--public"),
    "additional-namespaces": ("array", "rewriter", "--additional-namespace"),
    "on-probe-error": ("string", "rewriter", "--on-probe-error"),
    "secret-name": ("string", "rewriter", "--secret-name"),
    "release-name": ("string", "helm", ""),
    "values-files": ("array", "helm", "--values"),
    "helm-parameters": ("map", "helm", "--set"),
}

# What an Application may not set (rewriter/options.py: the options whose lowest trust
# level is the sidecar's), each with what to do instead; and the license ID, which the
# table lets a repository set (its own, in its own config) but which must never sit in
# an Application, shown to everyone who can read it. Written out here because this
# script runs before rewriter is imported; tests/test_argocd.py holds it to the table.
SIDECAR_ONLY = {
    "LICENSE_ID": "the license ID is read from the Secret mounted into the sidecar "
    "(REWRITER_LICENSE_ID_FILE); keep it out of the Application",
    "LICENSE_ID_FILE": "the license ID file is the sidecar's (REWRITER_LICENSE_ID_FILE)",
    "CACHE": "the probe cache is the sidecar's (REWRITER_CACHE)",
    "LOG_FILE": "the plugin's stderr is shown by Argo CD; no log file is needed",
}
# Application env naming a file (every file option the Application may set): allowed
# only inside the repository, never a file of the sidecar's.
REPO_FILES = (
    "LICENSE",
    "APPLICATION",
    "LOCAL_REGISTRY_PASSWORD_FILE",
    "CA_BUNDLE",
    "CONFIG",
    "REPOSITORY_CONFIG",
)

_RELEASE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


class Refused(Exception):
    """A request the plugin will not run; the message says what to change."""


def main() -> int:
    try:
        tokens = list(arguments(os.environ, Path.cwd()))
    except Refused as exc:
        sys.stderr.write(f"rewriter-cmp: error: {exc}\n")
        return 1
    out = sys.stdout.buffer
    for token in tokens:
        out.write(token.encode() + b"\0")
    out.flush()
    return 0


def arguments(env: os._Environ[str] | dict[str, str], cwd: Path) -> Iterator[str]:
    root = repository_root(cwd, env.get("ARGOCD_APP_SOURCE_PATH", ""))
    check_env(env, cwd, root)
    release = env.get("ARGOCD_APP_NAME", "")
    for name, value in parameters(env.get("ARGOCD_APP_PARAMETERS", "")):
        collection, destination, flag = PARAMETERS[name]
        values = shaped(name, collection, value)
        if name == "release-name":
            release = values[0] if values else release
            continue
        if name == "values-files":
            values = [inside(v, cwd, root, "values file") for v in values]
        prefix = "r:" if destination == "rewriter" else "h:"
        for item in values:
            yield prefix + flag
            yield prefix + item
    yield "n:" + release_name(release)


def parameters(raw: str) -> Iterator[tuple[str, object]]:
    """(name, value) of each parameter set in the Application, in order."""
    if raw.strip() in ("", "null"):
        return
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Refused(f"ARGOCD_APP_PARAMETERS is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise Refused("ARGOCD_APP_PARAMETERS is not a JSON list")
    for entry in entries:
        if not isinstance(entry, dict):
            raise Refused(f"plugin parameter {entry!r} is not an object")
        name = str(entry.get("name", ""))
        if name == "license-id":
            raise Refused(SIDECAR_ONLY["LICENSE_ID"])
        if name not in PARAMETERS:
            raise Refused(
                f"unknown plugin parameter {name!r}; known: {', '.join(PARAMETERS)}"
            )
        for key in ("string", "array", "map"):
            if key in entry and entry[key] is not None:
                yield name, entry[key]
                break


def shaped(name: str, collection: str, value: object) -> list[str]:
    """The parameter's values as flag arguments; empty strings count as not set."""
    if collection == "map":
        if not isinstance(value, dict):
            raise Refused(f"plugin parameter {name!r} takes a map (`map:` in the Application)")
        return [f"{key}={escape_set(str(val))}" for key, val in value.items()]
    if isinstance(value, dict):
        raise Refused(f"plugin parameter {name!r} takes a {collection}, not a map")
    raw = value if isinstance(value, list) else [value]
    items = [str(item) for item in raw if str(item) != ""]
    if collection == "string" and len(items) > 1:
        raise Refused(f"plugin parameter {name!r} takes one string, not a list")
    return items


def escape_set(value: str) -> str:
    """`helm --set` splits on unescaped commas; a parameter's value is one value."""
    return re.sub(r"(?<!\\),", r"\\,", value)


def check_env(env: os._Environ[str] | dict[str, str], cwd: Path, root: Path) -> None:
    known: set[str] | None = None
    for var, value in sorted(env.items()):
        if not var.startswith("ARGOCD_ENV_REWRITER_") or value == "":
            continue
        if known is None:
            known = option_names()  # imports rewriter: only when there is env to check
        name = var.removeprefix("ARGOCD_ENV_REWRITER_")
        if name in SIDECAR_ONLY:
            raise Refused(f"{var} is not accepted from the Application: {SIDECAR_ONLY[name]}")
        if known and name not in known:
            raise Refused(
                f"{var}: no such rewriter option; known: "
                + ", ".join(sorted(n for n in known if n not in SIDECAR_ONLY))
            )
        if name in REPO_FILES:
            inside(value, cwd, root, var)


def option_names() -> set[str]:
    """REWRITER_<NAME> names of the installed rewriter, or none when it is not importable."""
    try:
        from rewriter.options import OPTIONS
    except Exception:
        return set()
    return {option.field.upper() for option in OPTIONS}


def repository_root(cwd: Path, source_path: str) -> Path:
    """The checkout's root: the app directory minus the Application's source path."""
    cwd = cwd.resolve()
    parts = [p for p in Path(source_path).parts if p not in (".", "/")]
    if parts and tuple(cwd.parts[-len(parts) :]) == tuple(parts):
        return Path(*cwd.parts[: -len(parts)])
    return cwd


def inside(value: str, cwd: Path, root: Path, what: str) -> str:
    """A relative path that stays inside the repository checkout, else refused."""
    if "://" in value or Path(value).is_absolute():
        raise Refused(f"{what} {value!r} must be a path relative to the app directory")
    resolved = (cwd / value).resolve()
    if resolved != root and root not in resolved.parents:
        raise Refused(f"{what} {value!r} is outside the repository")
    return value


def release_name(name: str) -> str:
    """ARGOCD_APP_NAME as a Helm release name (`<namespace>_<app>` keeps `<app>`)."""
    if not _RELEASE.match(name) and "_" in name:
        name = name.rsplit("_", 1)[1]
    return name


if __name__ == "__main__":
    sys.exit(main())
