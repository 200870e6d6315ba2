"""The files a user can point at: KOTS License and Application, and rewriter's own config.

Each loader returns plain values; precedence between them and the command line is
decided in `settings`, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from rewriter.errors import RewriterError
from rewriter.files import read_file
from rewriter.manifest.fields import ImageField, PodSpecField, PullSecrets, parse_path
from rewriter.manifest.fields import Path as FieldPath
from rewriter.options import BY_NAME, PROXY_HOST, REGISTRY_HOST, Option, Trust, Value


@dataclass(frozen=True, slots=True)
class License:
    app_slug: str | None
    license_id: str | None
    endpoint: str | None = None  # spec.endpoint: which Replicated environment issued it
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class Application:
    additional_namespaces: tuple[str, ...] = ()
    additional_images: tuple[str, ...] = ()  # images the app pulls that no manifest names
    proxy_host: str | None = None
    registry_host: str | None = None
    proxy_public_images: bool = False


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """`--config FILE`: extra image fields for custom resources and option defaults."""

    pod_specs: tuple[PodSpecField, ...] = ()
    images: tuple[ImageField, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


def load_yaml(path: Path, what: str, option: str) -> Any:
    data = read_file(path, option, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RewriterError(f"{what} {path} is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise RewriterError(f"{what} {path} is not valid YAML: {problem}") from None


def load_license(path: Path) -> License:
    """A KOTS `kind: License`: `spec.appSlug` and `spec.licenseID`."""
    spec = _spec(load_yaml(path, "license file", "--license"), "License", path)
    return License(
        _str(spec, "appSlug", path),
        _str(spec, "licenseID", path),
        _str(spec, "endpoint", path),
        path,
    )


# KOTS pkg/docker/registry getRegistryProxyInfoFromLicense: the hosts an endpoint means.
_PRODUCTION_HOSTS = (PROXY_HOST, REGISTRY_HOST)


def endpoint_hosts(endpoint: str | None) -> tuple[str, str]:
    """(proxy host, registry host) for a License's `spec.endpoint`, as KOTS decides them.

    `staging.replicated.app` means the staging hosts; a dev endpoint
    `replicated-app-<ns>.okteto.repldev.com` means that namespace's proxy and registry;
    anything else (none, production, a URL that does not parse) the production hosts.
    """
    try:
        host = urlsplit(endpoint or "https://replicated.app").hostname or ""
    except ValueError:
        return _PRODUCTION_HOSTS
    if host == "staging.replicated.app":
        return "proxy.staging.replicated.com", "registry.staging.replicated.com"
    if host.endswith(".okteto.repldev.com"):
        labels = host.split(".")
        parts = labels[0].split("-")
        if len(labels) == 4 and len(parts) == 3:
            namespace = parts[2]
            return (
                f"registry-proxy-{namespace}.okteto.repldev.com",
                f"vendor-registry-v2-{namespace}.okteto.repldev.com",
            )
    return _PRODUCTION_HOSTS


def load_application(path: Path) -> Application:
    """A KOTS `kind: Application`: namespaces, custom domains, proxyPublicImages."""
    spec = _spec(load_yaml(path, "application file", "--application"), "Application", path)
    namespaces = spec.get("additionalNamespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise RewriterError(f"{path}: spec.additionalNamespaces must be a list of names")
    images = spec.get("additionalImages") or []
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise RewriterError(f"{path}: spec.additionalImages must be a list of image names")
    return Application(
        additional_namespaces=tuple(namespaces),
        additional_images=tuple(images),
        proxy_host=_str(spec, "proxyRegistryDomain", path),
        registry_host=_str(spec, "replicatedRegistryDomain", path),
        proxy_public_images=spec.get("proxyPublicImages") is True,
    )


def at_repository_level(config: ConfigFile, source: str) -> ConfigFile:
    """`config` when every known option in it is one a repository may set (the option
    table's trust levels, SPEC 7); else an error naming the options and the level.
    (Unknown options are reported by `checked_options`.)

    Under Argo CD the app directory (`.rewriter.yaml`), and under kustomize a KRM
    functionConfig, are repository content, less trusted than the sidecar and the
    Application: a host that receives credentials, a file path, the cache, the log, TLS
    or probe reach set there could send the license to another host or read the
    sidecar's files.
    """
    forbidden = sorted(
        name
        for name, value in config.options.items()
        if name in BY_NAME and not BY_NAME[name].may_set(Trust.REPOSITORY, value)
    )
    if forbidden:
        raise RewriterError(
            f"{source}: {', '.join(forbidden)} may not be set by the repository, only by "
            "the Application or the sidecar (hosts that receive credentials, files, the "
            "cache, the log, TLS and probe reach)"
        )
    return config


def checked_options(options: Mapping[str, Any]) -> dict[str, Value]:
    """A config's options, each a known option with a value of its type.

    A list option also takes one string (`private: quay.io/x/*` is one glob, not a
    list of its characters). Numbers are checked and converted by the option's own check,
    in the command line's words (`invalid --timeout -1: ...`).
    """
    unknown = set(options) - set(BY_NAME)
    if unknown:
        raise RewriterError(f"unknown options in config: {', '.join(sorted(unknown))}")
    return {
        name: _typed(BY_NAME[name], value) for name, value in options.items() if value is not None
    }


def _typed(option: Option, value: Any) -> Value:
    if option.kind is list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise RewriterError(f"config option {option.name}: a list of strings")
        return items
    if option.kind is bool:
        if not isinstance(value, bool):
            raise RewriterError(f"config option {option.name}: true or false")
        return value
    if option.kind in (float, int):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise RewriterError(f"config option {option.name}: {_expected(option)}")
        if option.check is None:
            return value
        # The table's own check, in the command line's words (`invalid --timeout -1: ...`):
        # a bad value in a file is an input error (exit 1), not a usage error.
        try:
            return option.check.convert(str(value))
        except ValueError:
            raise RewriterError(
                f"invalid --{option.name} {value!r}: {option.check.expected}"
            ) from None
    if not isinstance(value, str):
        raise RewriterError(f"config option {option.name}: a string")
    return Path(value) if option.kind is Path and value else value


def _expected(option: Option) -> str:
    return option.check.expected if option.check is not None else "a number"


def load_config(path: Path) -> ConfigFile:
    data = load_yaml(path, "config file", "--config")
    return parse_config(data if data is not None else {}, str(path))


def parse_config(data: Any, source: str) -> ConfigFile:
    """The config syntax (also a KRM functionConfig's `spec`); see the README."""
    if not isinstance(data, dict):
        raise RewriterError(f"{source}: the config must be a mapping")
    unknown = set(data) - {"podSpecs", "images", "options", "apiVersion", "kind", "metadata"}
    if unknown:
        raise RewriterError(f"{source}: unknown config keys: {', '.join(sorted(unknown))}")
    pod_specs = tuple(
        PodSpecField(
            _kind(entry, source),
            parse_path(_entry_str(entry, "path", source)),
            _api_versions(entry, source),
        )
        for entry in _list(data, "podSpecs", source)
    )
    images = tuple(
        ImageField(
            _kind(entry, source),
            parse_path(_entry_str(entry, "path", source)),
            _pull_secrets(entry.get("pullSecrets"), source),
            _api_versions(entry, source),
        )
        for entry in _list(data, "images", source)
    )
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise RewriterError(f"{source}: options must be a mapping of option names to values")
    return ConfigFile(pod_specs, images, {str(k).replace("_", "-"): v for k, v in options.items()})


def _spec(doc: Any, kind: str, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise RewriterError(f"{path}: expected a KOTS document of kind {kind}")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise RewriterError(f"{path}: {kind} has no spec")
    return spec


def _str(spec: dict[str, Any], key: str, path: Path) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RewriterError(f"{path}: spec.{key} must be a string")
    return value


def _list(data: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    entries = data.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RewriterError(f"{source}: {key} must be a list of {{kind, path}} entries")
    return entries


def _entry_str(entry: dict[str, Any], key: str, source: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise RewriterError(f"{source}: every entry needs a {key!r} string: {entry}")
    return value


def _kind(entry: dict[str, Any], source: str) -> str:
    return _entry_str(entry, "kind", source)


def _api_versions(entry: dict[str, Any], source: str) -> str:
    return _entry_str(entry, "apiVersion", source) if "apiVersion" in entry else "*"


def _pull_secrets(value: Any, source: str) -> FieldPath | PullSecrets:
    """A dotted path to a list of {name}, `none` (pulled by a pod found on its own), or
    absent (the kind has no such field: warn)."""
    if value is None:
        return PullSecrets.WARN
    if value == "none":
        return PullSecrets.ELSEWHERE
    if not isinstance(value, str):
        raise RewriterError(f"{source}: pullSecrets must be a dotted path or 'none'")
    return parse_path(value)
