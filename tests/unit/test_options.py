"""The option table (rewriter/options.py) as the one source of every option: the flags of
each command, the environment variables, the config keys, the trust levels; and the
precedence of the places a value can come from, in-process (milliseconds, no
subprocess): flag > environment > --config > repository config > KOTS License and
Application > the table's default."""

from __future__ import annotations

import importlib.util
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from support import ROOT

from rewriter import cli
from rewriter.config import checked_options
from rewriter.errors import RewriterError
from rewriter.options import CONCURRENCY, OPTIONS, Flags, Trust
from rewriter.settings import Settings, resolve

# Each command's parameters that are not options of the table.
OWN = {
    "render": {"files"},
    "scan": {"files", "output_format", "unclaimed"},
    "images": {"files", "output_format"},
    "krm": set(),
    "kustomization": {"resources", "output_dir"},
}
ALWAYS = {"quiet", "verbose", "version"}


def commands() -> dict[str, Any]:
    group = typer.main.get_command(cli.app)
    cli._add_version_options(group)
    return group.commands  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("name", sorted(OWN))
def test_every_option_is_a_flag_and_two_variables_of_every_command(name: str) -> None:
    params = {p.name: p for p in commands()[name].params}
    assert set(params) == {o.field for o in OPTIONS} | OWN[name] | ALWAYS
    for option in OPTIONS:
        param = params[option.field]
        assert param.opts == [option.flag]
        assert param.envvar == [option.env, "ARGOCD_ENV_" + option.env]
        assert param.help == option.help_text
        if option.metavar is not None:
            assert param.metavar == option.metavar


def test_flags_has_a_field_of_each_options_type() -> None:
    hints = typing.get_type_hints(Flags)
    assert list(hints) == [o.field for o in OPTIONS]
    for option in OPTIONS:
        kind = list[str] if option.kind is list else option.kind
        assert hints[option.field] == kind | None, option.name


def test_every_option_is_a_config_key_and_nothing_else() -> None:
    values = {
        str: "x",
        Path: "x",
        bool: True,
        float: 1.5,
        int: 2,
        list: ["x"],
    }
    given = {o.name: values[o.kind] for o in OPTIONS}
    assert set(checked_options(given)) == {o.name for o in OPTIONS}
    with pytest.raises(RewriterError, match=r"^unknown options in config: colour, verbose$"):
        checked_options({**given, "colour": "red", "verbose": True})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("strict", "yes", "config option strict: true or false"),
        ("private", {"a": 1}, "config option private: a list of strings"),
        ("timeout", [5], "config option timeout: a number of seconds greater than 0"),
        ("namespace", 7, "config option namespace: a string"),
    ],
)
def test_config_values_have_their_options_type(name: str, value: object, message: str) -> None:
    with pytest.raises(RewriterError, match=f"^{re.escape(message)}$"):
        checked_options({name: value})


def test_a_single_string_is_a_one_element_list() -> None:
    assert checked_options({"private": "quay.io/x/*"}) == {"private": ["quay.io/x/*"]}


def test_help_says_the_tables_defaults() -> None:
    (concurrency,) = [o for o in OPTIONS if o.name == "concurrency"]
    assert concurrency.help_text == f"Probes in parallel [default: {CONCURRENCY}]."
    (timeout,) = [o for o in OPTIONS if o.name == "timeout"]
    assert timeout.help_text == "Seconds per registry request [default: 5]."


# -- trust levels ---------------------------------------------------------------------------


def cmp_args() -> Any:
    spec = importlib.util.spec_from_file_location("cmp_args", ROOT / "argocd" / "cmp_args.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_argocd_plugin_refuses_what_the_table_keeps_from_the_application() -> None:
    """cmp_args.py runs before rewriter is imported, so it writes the lists out."""
    plugin = cmp_args()
    sidecar = {o.field.upper() for o in OPTIONS if o.lowest > Trust.APPLICATION}
    # The license ID: a repository may set its own, an Application never shows one.
    assert set(plugin.SIDECAR_ONLY) == sidecar | {"LICENSE_ID"}
    files = {o.field.upper() for o in OPTIONS if o.kind is Path and o.lowest <= Trust.APPLICATION}
    assert set(plugin.REPO_FILES) == files
    assert plugin.option_names() == {o.field.upper() for o in OPTIONS}


def test_the_security_page_lists_what_a_repository_may_set() -> None:
    page = (ROOT / "docs" / "security.md").read_text()
    (row,) = [line for line in page.splitlines() if line.startswith("| repository |")]
    listed = set(re.findall(r"`([a-z-]+)(?::[^`]*)?`", row.split("|")[3]))
    repository = {o.name for o in OPTIONS if o.lowest == Trust.REPOSITORY}
    assert listed - {"podSpecs", "images"} == repository | {"cache"}


# -- precedence -----------------------------------------------------------------------------


def parsed(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Flags:
    """The Flags `rewriter render ARGS` hands to settings with `env` as the environment:
    the real parser, in-process, stopped where settings would be resolved."""
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)
        monkeypatch.delenv("ARGOCD_ENV_" + option.env, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[Flags] = []

    def stop(flags: Flags, _reporter: object) -> None:
        seen.append(flags)
        raise RewriterError("parsed")

    monkeypatch.setattr(cli, "_settings", stop)
    assert cli.main(["render", *args]) == 1
    (flags,) = seen
    return flags


def kots(tmp_path: Path, kind: str, spec: dict[str, object]) -> str:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "kots.io/v1beta1", "kind": kind, "spec": spec}))
    return str(path)


def config(tmp_path: Path, name: str, options: dict[str, object]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"options": options}))
    return str(path)


# Each place a value can come from, most trusted first, as arguments and environment.
LAYERS = ("flag", "env", "argocd-env", "config", "repository", "kots", "default")


def layered(
    tmp_path: Path, present: set[str], values: dict[str, Any]
) -> tuple[list[str], dict[str, str]]:
    args = ["--app-slug", "acme", "--offline"]
    env: dict[str, str] = {}
    name = values["option"]
    if "flag" in present:
        args += [f"--{name}", values["flag"]]
    if "env" in present:
        env["REWRITER_" + name.upper().replace("-", "_")] = values["env"]
    if "argocd-env" in present:
        env["ARGOCD_ENV_REWRITER_" + name.upper().replace("-", "_")] = values["argocd-env"]
    if "config" in present:
        args += ["--config", config(tmp_path, "config.yaml", {name: values["config"]})]
    if "repository" in present and "repository" in values:
        args += [
            "--repository-config",
            config(tmp_path, "repository.yaml", {name: values["repository"]}),
        ]
    if "kots" in present and "kots" in values:
        kind, key = values["kots-field"]
        spec = {key: values["kots"]}
        if kind == "License":
            spec["appSlug"] = "acme"
        args += [f"--{kind.lower()}", kots(tmp_path, kind, spec)]
    return args, env


PRECEDENCE: list[dict[str, Any]] = [
    {
        "option": "proxy-host",
        "read": lambda s: s.options.rules.proxy_host,
        "flag": "flag.example", "env": "env.example", "argocd-env": "argo.example",
        "config": "config.example",
        "kots-field": ("Application", "proxyRegistryDomain"), "kots": "app.example",
        "default": "proxy.replicated.com",
    },
    {
        "option": "secret-name",
        "read": lambda s: s.options.secret_name,
        "flag": "flag", "env": "env", "argocd-env": "argo", "config": "config",
        "repository": "repository", "default": "acme-registry",
    },
    {
        "option": "additional-namespace",
        "read": lambda s: s.options.additional_namespaces,
        "flag": "flag", "env": "env one", "argocd-env": "argo", "config": "config",
        "repository": "repository",
        "kots-field": ("Application", "additionalNamespaces"), "kots": ["app"],
        "default": (), "as": lambda v: tuple(v.split()) if isinstance(v, str) else tuple(v),
    },
    {
        "option": "license-id",
        "read": lambda s: s.options.credentials[0][1].removeprefix("LICENSE_ID:"),
        "flag": "flag", "env": "env", "argocd-env": "argo", "config": "config",
        "repository": "repository",
        "kots-field": ("License", "licenseID"), "kots": "license",
        "default": None,
    },
    {
        "option": "concurrency",
        "read": lambda s: s.concurrency,
        "flag": "3", "env": "4", "argocd-env": "5", "config": 6,
        "default": CONCURRENCY, "as": int,
    },
    {
        "option": "on-probe-error",
        "read": lambda s: s.options.rules.on_probe_error.value,
        "flag": "keep", "env": "fail", "argocd-env": "keep", "config": "fail",
        "repository": "keep", "default": "proxy",
    },
]  # fmt: skip


@pytest.mark.parametrize("row", PRECEDENCE, ids=[row["option"] for row in PRECEDENCE])
def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]) -> None:
    """With every layer present the first wins; take the winner away and the next does."""
    present = {layer for layer in LAYERS if layer in row}
    convert = row.get("as", lambda v: v)
    while present:
        winner = next(layer for layer in LAYERS if layer in present)
        args, env = layered(tmp_path, present, row)
        settings = resolve(parsed(args, env, monkeypatch), env)
        if winner == "default" and row["default"] is None:
            assert settings.options.credentials == ()  # no license ID from anywhere
        else:
            assert row["read"](settings) == convert(row[winner]), (winner, args, env)
        present.discard(winner)


def test_namespace_defaults_from_the_environment_given(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = parsed(["--app-slug", "acme"], {}, monkeypatch)
    monkeypatch.setenv("ARGOCD_APP_NAMESPACE", "ignored")  # never read: env is passed in

    def namespace(environ: dict[str, str], given: Flags = flags) -> str | None:
        settings: Settings = resolve(given, environ)
        return settings.options.namespace

    assert namespace({}) is None
    assert namespace({"HELM_NAMESPACE": "helm"}) == "helm"
    assert namespace({"HELM_NAMESPACE": "helm", "ARGOCD_APP_NAMESPACE": "argo"}) == "argo"
    flagged = parsed(["--app-slug", "acme", "--namespace", "flag"], {}, monkeypatch)
    assert namespace({"ARGOCD_APP_NAMESPACE": "argo"}, flagged) == "flag"
