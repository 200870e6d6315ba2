"""Every option of rewriter, once: its name, type, default, help, and who may set it.

The command line (`render`, `scan`, `images`, `krm`, `kustomization`), the environment
variables (`REWRITER_<NAME>`, under Argo CD also `ARGOCD_ENV_REWRITER_<NAME>`), the
config-file keys and the repository-level check are all derived from `OPTIONS`, so a
new option is one entry here and a field of `Flags` (a test holds the two together).

No imports from the rest of the package: the probe reads its defaults from here too,
and `argocd/cmp_args.py` reads the names and levels before anything else is loaded.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The defaults that code outside the table needs as well (the probe's own settings,
# the transport's connection pools): written here once.
CONCURRENCY = 32
TIMEOUT = 5.0
DEADLINE = 30.0
CACHE_TTL = 24 * 3600.0
PROXY_HOST = "proxy.replicated.com"
REGISTRY_HOST = "registry.replicated.com"
# The audit annotation `--annotate` writes: {field: image as it was}.
ORIGINAL_IMAGES = "rewriter/original-images"


class Trust(enum.IntEnum):
    """Who gives an option its value (SPEC 7), least trusted first.

    Under Argo CD the app directory is repository content, less trusted than the
    Application (`plugin.env`, `plugin.parameters`), which is less trusted than the
    sidecar (its environment and mounted files); a KRM `functionConfig` is committed
    with the kustomization: the repository's level.
    """

    REPOSITORY = 1
    APPLICATION = 2
    SIDECAR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# What a flag's value becomes: the Python types typer parses to (list: of str).
Kind = type[str] | type[Path] | type[bool] | type[float] | type[int] | type[list[str]]
Value = str | Path | bool | float | int | list[str]


@dataclass(frozen=True, slots=True)
class Check:
    """A value checked as it is parsed (flag or environment: a usage error) and, in the
    same words, when it comes from a config file (an input error)."""

    convert: Callable[[str], Value]
    expected: str  # what a valid value is: "a number of seconds greater than 0"


def _positive(text: str) -> float:
    number = float(text)
    if not number > 0:
        raise ValueError(text)
    return number


def _workers(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError(text)
    return number


def _cache_location(text: str) -> str:
    if text != "none" and "://" not in text and not os.path.isabs(os.path.expanduser(text)):
        raise ValueError(text)
    return text


SECONDS = Check(_positive, "a number of seconds greater than 0")
WORKERS = Check(_workers, "a whole number greater than 0")
CACHE = Check(_cache_location, "an absolute path, redis://HOST:PORT/DB or none")


def one_of(*allowed: str) -> Check:
    def check(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text

    return Check(check, ", ".join(allowed[:-1]) + " or " + allowed[-1])


LICENSE, RULES, PROBE, OUTPUT = "License", "Decisions", "Probe and cache", "Input and output"
AIRGAP = "Air-gap (local registry)"


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # the flag without `--`, and the config-file key: `app-slug`
    kind: Kind
    help: str  # `{default}` in it is the default as the user writes it
    panel: str  # the --help section
    # The least trusted level that may set it (SPEC 7): a repository chooses rules and
    # shapes, never a host that receives credentials, a file, the cache, the log, TLS
    # or probe reach.
    lowest: Trust
    metavar: str | None = None
    default: Value | None = None  # None: none, or one computed from other options
    check: Check | None = None
    # Values a less trusted level than `lowest` may still give: turning the cache off
    # points it nowhere.
    anyone_may_set: frozenset[str] = frozenset()

    @property
    def field(self) -> str:
        """The `Flags` field and the suffix of the environment variable: `app_slug`."""
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return "REWRITER_" + self.field.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name

    @property
    def help_text(self) -> str:
        return self.help.format(default=shown(self.default))

    def may_set(self, level: Trust, value: object) -> bool:
        """Whether `level` may give this option `value`."""
        return level >= self.lowest or (isinstance(value, str) and value in self.anyone_may_set)


def shown(value: Value | None) -> str:
    """A default as the user would write it: 30, not 30.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


_R, _A, _S = Trust.REPOSITORY, Trust.APPLICATION, Trust.SIDECAR

# In the order --help lists them.
OPTIONS: tuple[Option, ...] = (
    Option("license", Path, "KOTS License YAML: app slug and license ID.", LICENSE, _A, "FILE"),
    Option("app-slug", str, "Application slug: images go to <proxy>/proxy/<slug>/...", LICENSE, _R, "SLUG"),
    Option("license-id", str, "License ID for the pull secret. Prefer REWRITER_LICENSE_ID or --license-id-file: arguments are visible to every user of the machine.", LICENSE, _R, "ID"),
    Option("license-id-file", Path, "Read the license ID from this file (e.g. a mounted Kubernetes Secret): a regular file of at most 1 MiB, like every file an option names.", LICENSE, _S, "FILE"),
    Option("application", Path, "KOTS Application YAML: additionalNamespaces, custom domains, proxyPublicImages.", LICENSE, _A, "FILE"),
    Option("proxy-host", str, "Proxy registry host [default: {default}].", RULES, _A, "HOST", PROXY_HOST),
    Option("registry-host", str, "Vendor registry host [default: {default}]; a custom domain also moves images off registry.replicated.com.", RULES, _A, "HOST", REGISTRY_HOST),
    Option("public", list, "Glob over the normalized name (docker.io/library/nginx) of images to keep. Repeatable; `*` also matches `/`.", RULES, _R, "GLOB"),
    Option("private", list, "Glob of images to route through the proxy, e.g. 'quay.io/my-org/*', or '*' for all. Repeatable; --public wins.", RULES, _R, "GLOB"),
    Option("on-probe-error", str, "When a probe gets no answer: proxy (treat as private), keep, or fail [default: {default}].", RULES, _R, "proxy|keep|fail", "proxy", one_of("proxy", "keep", "fail")),
    Option("strict", bool, "Unparseable image values are errors, not warnings.", RULES, _R, default=False),
    Option("related-images", bool, "Also rewrite images in containers' RELATED_IMAGE_* env values (the operator convention).", RULES, _R, default=False),
    Option("local-registry", str, "Air-gap: rewrite every image, public or private, to this registry (the KOTS flattening: HOST/NAMESPACE/<last path component>).", AIRGAP, _A, "HOST[/NAMESPACE]"),
    Option("local-registry-username", str, "User for the local registry's pull secret.", AIRGAP, _A, "USER"),
    Option("local-registry-password", str, "Password for the local registry. Prefer REWRITER_LOCAL_REGISTRY_PASSWORD or --local-registry-password-file.", AIRGAP, _A, "PASSWORD"),
    Option("local-registry-password-file", Path, "Read the local registry password from this file.", AIRGAP, _A, "FILE"),
    Option("keep-path", bool, "Air-gap: keep the source registry and path under the local registry, so different images never collide.", AIRGAP, _R, default=False),
    Option("annotate", bool, f"Record the original images on each changed resource ({ORIGINAL_IMAGES} annotation) for reviewers.", OUTPUT, _R, default=False),
    Option("offline", bool, "No network: decide by rules and cached answers only.", PROBE, _R, default=False),
    Option("cache", str, "Probe cache: an absolute SQLite path, redis://host:port/db, or none [default: the user cache dir, rewriter/probes.sqlite].", PROBE, _S, "PATH|URL|none", check=CACHE, anyone_may_set=frozenset({"none"})),
    Option("cache-ttl", float, "Seconds a public/private answer is trusted [default: {default}].", PROBE, _A, "SECONDS", CACHE_TTL, SECONDS),
    Option("timeout", float, "Seconds per registry request [default: {default}].", PROBE, _A, "SECONDS", TIMEOUT, SECONDS),
    Option("deadline", float, "Seconds for all probes of a render; later answers count as failed [default: {default}].", PROBE, _A, "SECONDS", DEADLINE, SECONDS),
    Option("concurrency", int, "Probes in parallel [default: {default}].", PROBE, _A, "N", CONCURRENCY, WORKERS),
    Option("insecure-registry", list, "Allow plain HTTP to this registry. Repeatable.", PROBE, _A, "HOST[:PORT]"),
    Option("ca-bundle", Path, "CA certificates for probing registries.", PROBE, _A, "FILE"),
    Option("probe-allow", list, "Probe only these hosts (registries, realms, redirects): name globs, addresses, CIDR blocks. Repeatable.", PROBE, _A, "GLOB|CIDR"),
    Option("probe-deny", list, "Never probe or connect to these (as --probe-allow); their images count as failed probes. Repeatable; wins over --probe-allow. Metadata and link-local addresses are always refused.", PROBE, _A, "GLOB|CIDR"),
    Option("namespace", str, "Namespace of resources without one [default: $ARGOCD_APP_NAMESPACE or $HELM_NAMESPACE].", OUTPUT, _R, "NS"),
    Option("additional-namespace", list, "Also create the pull secret here. Repeatable; '*' = every namespace in the stream.", OUTPUT, _R, "NS"),
    Option("secret-name", str, "Name of the pull secret [default: <app-slug>-registry].", OUTPUT, _R, "NAME"),
    Option("config", Path, "YAML config: image fields of custom resources and defaults for any option (see README).", OUTPUT, _A, "FILE"),
    Option("repository-config", Path, "Config the repository sets: rules only.", OUTPUT, _A, "FILE"),
    Option("log-file", Path, "Also append warnings and errors here (Helm 4 discards stderr): a regular or new file (0600), never a FIFO or device.", OUTPUT, _S, "FILE"),
)  # fmt: skip

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


@dataclass(slots=True)
class Flags:
    """Every option as given on the command line or in the environment (None: not given).

    Field names are `Option.field`; the CLI defines one flag per field. Typed by hand
    for the code that reads them; tests/unit/test_options.py holds it to `OPTIONS`.
    """

    license: Path | None = None
    app_slug: str | None = None
    license_id: str | None = None
    license_id_file: Path | None = None
    application: Path | None = None
    proxy_host: str | None = None
    registry_host: str | None = None
    public: list[str] | None = None
    private: list[str] | None = None
    on_probe_error: str | None = None
    strict: bool | None = None
    related_images: bool | None = None
    local_registry: str | None = None
    local_registry_username: str | None = None
    local_registry_password: str | None = None
    local_registry_password_file: Path | None = None
    keep_path: bool | None = None
    annotate: bool | None = None
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
    namespace: str | None = None
    additional_namespace: list[str] | None = None
    secret_name: str | None = None
    config: Path | None = None
    repository_config: Path | None = None  # a config the repository controls
    log_file: Path | None = None
