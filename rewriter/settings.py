"""From the options as given to the settings of one run.

Precedence (SPEC section 7), one typed step each: flag > environment (both applied by
the CLI parser, which leaves an option None when neither is given) > `--config` options
(the repository's below the others) > KOTS License and Application files > the option
table's defaults. Then every value is checked and the settings built.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rewriter.config import (
    Application,
    ConfigFile,
    License,
    at_repository_level,
    checked_options,
    endpoint_hosts,
    load_application,
    load_config,
    load_license,
)
from rewriter.decide import OnProbeError, Rules
from rewriter.errors import RewriterError
from rewriter.files import UnfitFile, read_file
from rewriter.manifest import catalogue
from rewriter.options import BY_NAME, OPTIONS, Flags, Value
from rewriter.render_options import Options
from rewriter.secrets import license_credentials


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


def resolve(flags: Flags, environ: Mapping[str, str], base: ConfigFile | None = None) -> Settings:
    """Merge flags, config, KOTS files and defaults; validate; raise on anything unusable.

    `environ` is the process's environment (only the namespace defaults are read from
    it: the options' own variables are the parser's). `base` is a config given by the
    host instead of a file (a KRM functionConfig).
    """
    config = config_files(flags, base)
    given = with_config(flags, checked_options(config.options))
    lic = load_license(given.license) if given.license is not None else License(None, None)
    app = load_application(given.application) if given.application is not None else Application()
    value = with_defaults(with_kots_files(given, lic, app))
    app_slug = _app_slug(value)
    license_id, unreadable = _license_id(given, lic)
    rules = _rules(value, app_slug)
    return Settings(
        options=_render_options(
            value, rules, _credentials(value, rules, license_id, unreadable), config, environ
        ),
        offline=bool(value.offline),
        cache=value.cache or "",
        # Checked where given (the parser, config.checked_options); defaults are the table's.
        cache_ttl=_given(value.cache_ttl),
        timeout=_given(value.timeout),
        deadline=_given(value.deadline),
        concurrency=_given(value.concurrency),
        insecure_registries=frozenset(h.lower() for h in value.insecure_registry or ()),
        ca_bundle=_ca_bundle(value.ca_bundle),
        log_file=value.log_file or None,
        probe_allow=_globs(value.probe_allow, "probe-allow"),
        probe_deny=_globs(value.probe_deny, "probe-deny"),
        additional_images=app.additional_images,
    )


def config_files(flags: Flags, base: ConfigFile | None) -> ConfigFile:
    """The configs in force, most trusted first: the host's (`base`), `--config`, then
    the repository's, whose options count only where no other config gives one and must
    be ones a repository may set."""
    config = base or ConfigFile()
    if flags.config is not None:
        config = _merged(config, load_config(flags.config))
    if flags.repository_config is not None:
        repository = load_config(flags.repository_config)
        config = _merged(config, at_repository_level(repository, str(flags.repository_config)))
    return config


def with_config(flags: Flags, options: Mapping[str, Value]) -> Flags:
    """`flags` with each option neither flag nor environment gave taken from the config."""
    return _filled(flags, {BY_NAME[name].field: value for name, value in options.items()})


def with_kots_files(given: Flags, lic: License, app: Application) -> Flags:
    """`given` with what a KOTS License and Application decide where nothing above did:
    the app slug; the hosts (the License's environment, then the Application's custom
    domains, as KOTS); the Application's namespaces. `proxyPublicImages` adds `*` to the
    private globs, whatever they are. The app slug must agree with the License's."""
    if given.app_slug and lic.app_slug and given.app_slug != lic.app_slug:
        # Not a usage error (each value is valid alone) but a conflict of inputs, exit 1:
        # the Secret would carry this license for another app's images, and the proxy
        # would refuse every pull only once the pods start.
        raise RewriterError(
            f"--app-slug {given.app_slug!r} does not match the License's appSlug "
            f"{lic.app_slug!r} ({lic.path}): the license is for another application; "
            "drop --app-slug (the License names the app) or use that app's license"
        )
    endpoint_proxy, endpoint_registry = endpoint_hosts(lic.endpoint)
    private = list(given.private or [])
    if app.proxy_public_images and "*" not in private:
        private.append("*")
    return dataclasses.replace(
        given,
        app_slug=given.app_slug or lic.app_slug,
        proxy_host=given.proxy_host or app.proxy_host or endpoint_proxy,
        registry_host=given.registry_host or app.registry_host or endpoint_registry,
        private=private,
        additional_namespace=given.additional_namespace or list(app.additional_namespaces),
    )


def with_defaults(given: Flags) -> Flags:
    """`given` with the option table's default wherever nothing gave a value."""
    return _filled(given, {o.field: o.default for o in OPTIONS if o.default is not None})


def _filled(flags: Flags, values: Mapping[str, Value]) -> Flags:
    """`flags` with `values` where a field is not given (None, or an empty list).

    Each value has its option's type: the config's were checked against the table
    (config.checked_options), the defaults are the table's."""
    missing = {
        name: value
        for name, value in values.items()
        if getattr(flags, name) in (None, []) and value is not None
    }
    return dataclasses.replace(flags, **missing) if missing else flags  # type: ignore[arg-type]


def _merged(config: ConfigFile, below: ConfigFile) -> ConfigFile:
    """`config` with the fields and options of `below`, whose options yield to its own."""
    return ConfigFile(
        config.pod_specs + below.pod_specs,
        config.images + below.images,
        {**below.options, **config.options},
    )


def _app_slug(value: Flags) -> str:
    app_slug = value.app_slug
    if not app_slug:
        raise RewriterError(
            "no app slug: use --app-slug, REWRITER_APP_SLUG or --license FILE (a KOTS License)"
        )
    if not _SLUG.match(app_slug):
        raise RewriterError(f"invalid app slug {app_slug!r}: lowercase letters, digits and '-'")
    return app_slug


def _license_id(given: Flags, lic: License) -> tuple[str | None, str | None]:
    """The license ID (a flag, the environment or a config; else `--license-id-file`;
    else the License's), and why the file could not be read, if it could not.

    The file is read now, but a missing one is said only if a Secret is needed: an app
    whose images are all public must render even where the license Secret was never
    mounted. A FIFO, a device or an oversized file is an error at once (UnfitFile).
    """
    if given.license_id:
        return given.license_id, None
    if given.license_id_file is None:
        return lic.license_id, None
    try:
        from_file = _read_secret_file(given.license_id_file, "--license-id-file")
    except UnfitFile:
        raise
    except RewriterError as exc:
        return lic.license_id, str(exc)
    return from_file or lic.license_id, None


def _rules(value: Flags, app_slug: str) -> Rules:
    try:
        on_probe_error = OnProbeError(value.on_probe_error)
    except ValueError:
        raise RewriterError(
            f"invalid --on-probe-error {value.on_probe_error!r}: proxy, keep or fail"
        ) from None
    return Rules(
        app_slug=app_slug,
        proxy_host=_host(value.proxy_host, "proxy host"),
        registry_host=_host(value.registry_host, "registry host"),
        public=tuple(value.public or ()),
        private=tuple(value.private or ()),
        on_probe_error=on_probe_error,
        local_registry=_local_registry(value.local_registry),
        keep_path=bool(value.keep_path),
    )


@dataclass(frozen=True, slots=True)
class _Credentials:
    """What goes into the pull Secret, and what to say when one is needed but empty."""

    entries: tuple[tuple[str, str], ...]  # host -> "user:password"
    missing: str
    pull_secrets: bool  # False: an anonymous local registry, no Secret at all


def _credentials(
    value: Flags, rules: Rules, license_id: str | None, unreadable: str | None
) -> _Credentials:
    """The license ID for the proxy and the vendor registry; with --local-registry the
    customer's registry credentials only (none: an anonymous registry)."""
    if rules.local_registry is not None:
        return _local_credentials(value, rules.local_registry)
    hosts = (rules.proxy_host, rules.registry_host)
    return _Credentials(
        license_credentials(hosts, license_id) if license_id else (),
        f"a pull secret is needed but the license ID is unavailable: {unreadable}"
        if unreadable
        else "a pull secret is needed but no license ID was given: use --license FILE, "
        "--license-id-file FILE, or set REWRITER_LICENSE_ID",
        True,
    )


def _render_options(
    value: Flags,
    rules: Rules,
    credentials: _Credentials,
    config: ConfigFile,
    environ: Mapping[str, str],
) -> Options:
    secret_name = value.secret_name or f"{rules.app_slug}-registry"
    if not _SECRET_NAME.match(secret_name):
        raise RewriterError(f"invalid secret name {secret_name!r}: must be a DNS subdomain name")
    return Options(
        rules=rules,
        secret_name=secret_name,
        credentials=credentials.entries,
        missing_credentials=credentials.missing,
        pull_secrets=credentials.pull_secrets,
        annotate=bool(value.annotate),
        # Helm and Argo CD say where the release goes; an explicit option wins.
        namespace=(
            value.namespace
            or environ.get("ARGOCD_APP_NAMESPACE")
            or environ.get("HELM_NAMESPACE")
            or None
        ),
        additional_namespaces=tuple(value.additional_namespace or ()),
        strict=bool(value.strict),
        fields=dataclasses.replace(
            catalogue.builtin().extended(config.pod_specs, config.images),
            related_images=bool(value.related_images),
        ),
    )


def _local_registry(text: str | None) -> str | None:
    if text is None:
        return None
    host, _, namespace = text.partition("/")
    if not _HOST.match(host) or (namespace and not _NAMESPACE_PATH.match(namespace)):
        raise RewriterError(f"invalid --local-registry {text!r}: HOST[:PORT][/NAMESPACE]")
    return f"{host.lower()}/{namespace}" if namespace else host.lower()


def _local_credentials(value: Flags, registry: str) -> _Credentials:
    """The customer's registry credentials only; none means an anonymous registry."""
    user = value.local_registry_username
    password = value.local_registry_password or _read_secret_file(
        value.local_registry_password_file, "--local-registry-password-file"
    )
    host = registry.split("/", 1)[0].lower()
    if user and password:
        return _Credentials(((host, f"{user}:{password}"),), "", True)
    if user or password:
        raise RewriterError(
            "--local-registry-username and a password (REWRITER_LOCAL_REGISTRY_PASSWORD or "
            "--local-registry-password-file) go together"
        )
    return _Credentials((), "", False)


def _read_secret_file(path: Path | None, option: str) -> str | None:
    """A secret from a file (a mounted Kubernetes Secret), so it never sits in argv: a
    regular file of at most 1 MiB (config.read_file)."""
    if path is None:
        return None
    data = read_file(Path(path), option, "secret file")
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise RewriterError(f"{option} {path}: not UTF-8 text") from None


def _ca_bundle(path: Path | None) -> str | None:
    """`--ca-bundle`: checked here as every file an option names (a regular file, at most
    16 MiB), so a FIFO cannot stall the probe; the TLS context reads it again."""
    if not path:
        return None
    read_file(Path(path), "--ca-bundle", "CA bundle", CA_BUNDLE_CAP)
    return str(path)


def _globs(raw: list[str] | None, name: str) -> tuple[str, ...]:
    globs = tuple(str(glob).strip().lower() for glob in raw or ())
    if any(not glob for glob in globs):
        raise RewriterError(f"--{name}: an empty host glob")
    return globs


def _host(text: str | None, what: str) -> str:
    if text is None or not _HOST.match(text):
        raise RewriterError(f"invalid {what} {text!r}: a host name, optionally with :port")
    return text.lower()


T = TypeVar("T")


def _given(value: T | None) -> T:
    """An option with a default in the table: never None once with_defaults has run."""
    assert value is not None
    return value
