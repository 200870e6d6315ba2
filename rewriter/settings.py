"""From the raw option values to the settings of one run.

Precedence (SPEC section 7): flag > environment (both applied by the CLI parser, which
leaves an option None when neither is given) > `--config` options > KOTS License and
Application files > built-in defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rewriter import catalogue
from rewriter.config import (
    Application,
    ConfigFile,
    License,
    at_repository_level,
    endpoint_hosts,
    load_application,
    load_config,
    load_license,
)
from rewriter.decide import OnProbeError, Rules
from rewriter.errors import RewriterError
from rewriter.files import UnfitFile, read_file
from rewriter.render import Options
from rewriter.secrets import license_credentials


@dataclass(slots=True)
class Flags:
    """Every option as given on the command line or in the environment (None: not given).

    Field names are the option names with `-` as `_`; the CLI defines one flag per field.
    """

    license: Path | None = None
    app_slug: str | None = None
    license_id: str | None = None
    license_id_file: Path | None = None
    application: Path | None = None
    proxy_host: str | None = None
    registry_host: str | None = None
    namespace: str | None = None
    additional_namespace: list[str] | None = None
    secret_name: str | None = None
    public: list[str] | None = None
    private: list[str] | None = None
    on_probe_error: str | None = None
    offline: bool | None = None
    cache: str | None = None
    cache_ttl: float | None = None
    timeout: float | None = None
    deadline: float | None = None
    concurrency: int | None = None
    insecure_registry: list[str] | None = None
    ca_bundle: Path | None = None
    probe_allow: list[str] | None = None
    probe_deny: list[str] | None = None
    strict: bool | None = None
    related_images: bool | None = None
    local_registry: str | None = None
    local_registry_username: str | None = None
    local_registry_password: str | None = None
    local_registry_password_file: Path | None = None
    keep_path: bool | None = None
    annotate: bool | None = None
    config: Path | None = None
    repository_config: Path | None = None  # a config the repository controls
    log_file: Path | None = None


DEFAULTS: dict[str, Any] = {
    "on_probe_error": "proxy",
    "offline": False,
    "cache_ttl": 24 * 3600.0,
    "timeout": 5.0,
    "deadline": 30.0,
    "concurrency": 32,
    "strict": False,
    "related_images": False,
    "keep_path": False,
    "annotate": False,
}


@dataclass(frozen=True, slots=True)
class Settings:
    options: Options
    offline: bool
    cache: str  # a path, redis://..., or none
    cache_ttl: float
    timeout: float
    deadline: float
    concurrency: int
    insecure_registries: frozenset[str]
    ca_bundle: str | None
    log_file: Path | None
    extra: dict[str, Any] = field(default_factory=dict)
    probe_allow: tuple[str, ...] = ()  # host globs, see rewriter.probe.policy.host_allowed
    probe_deny: tuple[str, ...] = ()
    # A KOTS Application's additionalImages: pulled by the app, named by no manifest.
    additional_images: tuple[str, ...] = ()


# Anchored with \Z, never $ (which also matches before a final newline: `x\n`).
_SLUG = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?\Z")
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")
_NAMESPACE_PATH = re.compile(r"[a-z0-9]+([._/-][a-z0-9]+)*\Z")
# A CA bundle is a list of certificates: certifi's is under 300 KB.
CA_BUNDLE_CAP = 16 << 20


def resolve(flags: Flags, base: ConfigFile | None = None) -> Settings:
    """Merge flags, config, KOTS files and defaults; validate; raise on anything unusable.

    `base` is a config given by the host instead of a file (a KRM functionConfig).
    """
    config = base or ConfigFile()
    if flags.config is not None:
        config = _merged(config, load_config(flags.config))
    if flags.repository_config is not None:
        # The least trusted layer: its options only where no other config gives one.
        repository = at_repository_level(
            load_config(flags.repository_config), str(flags.repository_config), _OPTION_NAMES
        )
        config = _merged(config, repository)
    value = _layers(flags, config)

    lic = License(None, None)
    if value("license") is not None:
        lic = load_license(Path(value("license")))
    app = Application()
    if value("application") is not None:
        app = load_application(Path(value("application")))

    app_slug = value("app_slug") or lic.app_slug
    if value("app_slug") and lic.app_slug and value("app_slug") != lic.app_slug:
        # Not a usage error (each value is valid alone) but a conflict of inputs, exit 1:
        # the Secret would carry this license for another app's images, and the proxy
        # would refuse every pull only once the pods start.
        raise RewriterError(
            f"--app-slug {value('app_slug')!r} does not match the License's appSlug "
            f"{lic.app_slug!r} ({lic.path}): the license is for another application; "
            "drop --app-slug (the License names the app) or use that app's license"
        )
    if not app_slug:
        raise RewriterError(
            "no app slug: use --app-slug, REWRITER_APP_SLUG or --license FILE (a KOTS License)"
        )
    if not _SLUG.match(app_slug):
        raise RewriterError(f"invalid app slug {app_slug!r}: lowercase letters, digits and '-'")
    license_id = value("license_id") or lic.license_id
    unreadable: str | None = None
    if not value("license_id") and value("license_id_file") is not None:
        # Read now, but complain only if a Secret is needed: an app whose images are all
        # public must render even where the license Secret was never mounted.
        # A FIFO, a device or an oversized file is an error at once (UnfitFile).
        try:
            license_id = (
                _read_secret_file(value("license_id_file"), "--license-id-file") or license_id
            )
        except UnfitFile:
            raise
        except RewriterError as exc:
            unreadable = str(exc)

    # As KOTS: the hosts of the License's environment (staging, dev), then the
    # Application's custom domains, then what the user gave.
    endpoint_proxy, endpoint_registry = endpoint_hosts(lic.endpoint)
    proxy_host = _host(value("proxy_host") or app.proxy_host or endpoint_proxy, "proxy host")
    registry_host = _host(
        value("registry_host") or app.registry_host or endpoint_registry, "registry host"
    )
    private = list(value("private") or [])
    if app.proxy_public_images and "*" not in private:
        private.append("*")
    try:
        on_probe_error = OnProbeError(value("on_probe_error"))
    except ValueError:
        raise RewriterError(
            f"invalid --on-probe-error {value('on_probe_error')!r}: proxy, keep or fail"
        ) from None
    local_registry = value("local_registry")
    if local_registry is not None:
        credentials, missing, pull_secrets = _local_credentials(value, str(local_registry))
    else:
        pull_secrets = True
        hosts = (proxy_host, registry_host)
        credentials = license_credentials(hosts, license_id) if license_id else ()
        missing = (
            f"a pull secret is needed but the license ID is unavailable: {unreadable}"
            if unreadable
            else "a pull secret is needed but no license ID was given: use --license FILE, "
            "--license-id-file FILE, or set REWRITER_LICENSE_ID"
        )
    rules = Rules(
        app_slug=app_slug,
        proxy_host=proxy_host,
        registry_host=registry_host,
        public=tuple(value("public") or ()),
        private=tuple(private),
        on_probe_error=on_probe_error,
        local_registry=_local_registry(local_registry),
        keep_path=bool(value("keep_path")),
    )
    namespace = (
        value("namespace")
        or os.environ.get("ARGOCD_APP_NAMESPACE")
        or os.environ.get("HELM_NAMESPACE")
        or None
    )
    secret_name = value("secret_name") or f"{app_slug}-registry"
    if not _SECRET_NAME.match(secret_name):
        raise RewriterError(f"invalid secret name {secret_name!r}: must be a DNS subdomain name")
    options = Options(
        rules=rules,
        secret_name=secret_name,
        credentials=credentials,
        missing_credentials=missing,
        pull_secrets=pull_secrets,
        annotate=bool(value("annotate")),
        namespace=namespace,
        additional_namespaces=tuple(value("additional_namespace") or app.additional_namespaces),
        strict=bool(value("strict")),
        fields=dataclasses.replace(
            catalogue.builtin().extended(config.pod_specs, config.images),
            related_images=bool(value("related_images")),
        ),
    )
    cache = str(value("cache") or "")
    return Settings(
        options=options,
        offline=bool(value("offline")),
        cache=cache,
        cache_ttl=_positive(value("cache_ttl"), "cache-ttl"),
        timeout=_positive(value("timeout"), "timeout"),
        deadline=_positive(value("deadline"), "deadline"),
        concurrency=int(_positive(value("concurrency"), "concurrency")),
        insecure_registries=frozenset(h.lower() for h in value("insecure_registry") or ()),
        ca_bundle=_ca_bundle(value("ca_bundle")),
        log_file=Path(value("log_file")) if value("log_file") else None,
        probe_allow=_globs(value("probe_allow"), "probe-allow"),
        probe_deny=_globs(value("probe_deny"), "probe-deny"),
        additional_images=app.additional_images,
    )


_OPTION_NAMES = frozenset(f.name.replace("_", "-") for f in fields(Flags))


def _merged(config: ConfigFile, below: ConfigFile) -> ConfigFile:
    """`config` with the fields and options of `below`, whose options yield to its own."""
    return ConfigFile(
        config.pod_specs + below.pod_specs,
        config.images + below.images,
        {**below.options, **config.options},
    )


def _layers(flags: Flags, config: ConfigFile) -> Any:
    unknown = set(config.options) - _OPTION_NAMES
    if unknown:
        raise RewriterError(f"unknown options in config: {', '.join(sorted(unknown))}")
    repeatable = {f.name for f in fields(Flags) if "list" in str(f.type)}

    def value(name: str) -> Any:
        given = getattr(flags, name)
        if given is not None and given != []:
            return given
        from_config = config.options.get(name.replace("_", "-"))
        if from_config is None:
            return DEFAULTS.get(name)
        if name in repeatable:
            # `private: quay.io/x/*` means one glob, not a list of its characters.
            items = [from_config] if isinstance(from_config, str) else from_config
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise RewriterError(f"config option {name.replace('_', '-')}: a list of strings")
            return items
        return from_config

    return value


def _local_registry(text: Any) -> str | None:
    if text is None:
        return None
    host, _, namespace = str(text).partition("/")
    if not _HOST.match(host) or (namespace and not _NAMESPACE_PATH.match(namespace)):
        raise RewriterError(f"invalid --local-registry {text!r}: HOST[:PORT][/NAMESPACE]")
    return f"{host.lower()}/{namespace}" if namespace else host.lower()


def _local_credentials(value: Any, registry: str) -> tuple[tuple[tuple[str, str], ...], str, bool]:
    """The customer's registry credentials only; none means an anonymous registry."""
    user = value("local_registry_username")
    password = value("local_registry_password") or _read_secret_file(
        value("local_registry_password_file"), "--local-registry-password-file"
    )
    host = registry.split("/", 1)[0].lower()
    if user and password:
        return ((host, f"{user}:{password}"),), "", True
    if user or password:
        raise RewriterError(
            "--local-registry-username and a password (REWRITER_LOCAL_REGISTRY_PASSWORD or "
            "--local-registry-password-file) go together"
        )
    return (), "", False


def _read_secret_file(path: Any, option: str) -> str | None:
    """A secret from a file (a mounted Kubernetes Secret), so it never sits in argv: a
    regular file of at most 1 MiB (config.read_file)."""
    if path is None:
        return None
    data = read_file(Path(path), option, "secret file")
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise RewriterError(f"{option} {path}: not UTF-8 text") from None


def _ca_bundle(path: Any) -> str | None:
    """`--ca-bundle`: checked here as every file an option names (a regular file, at most
    16 MiB), so a FIFO cannot stall the probe; the TLS context reads it again."""
    if not path:
        return None
    read_file(Path(path), "--ca-bundle", "CA bundle", CA_BUNDLE_CAP)
    return str(path)


def _globs(raw: Any, name: str) -> tuple[str, ...]:
    globs = tuple(str(glob).strip().lower() for glob in raw or ())
    if any(not glob for glob in globs):
        raise RewriterError(f"--{name}: an empty host glob")
    return globs


def _host(text: str, what: str) -> str:
    if not _HOST.match(text):
        raise RewriterError(f"invalid {what} {text!r}: a host name, optionally with :port")
    return text.lower()


def _positive(raw: Any, name: str) -> float:
    # The words of the command line's check of the same flag (rewriter/cli.py).
    whole = "a whole number" if name == "concurrency" else "a number of seconds"
    try:
        number = float(raw)
    except (TypeError, ValueError):
        number = 0.0
    if not number > 0:
        raise RewriterError(f"invalid --{name} {raw!r}: {whole} greater than 0")
    return number
