"""End to end: the installed `rewriter`, `python -m rewriter` and `python plugin.py`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import yaml
from support import ROOT
from support.helpers import PYTHON, render, run

from rewriter import visit
from rewriter.cli import main
from rewriter.render import Rendered

EXAMPLE = (ROOT / "examples" / "app.yaml").read_bytes()
LICENSE = ["--license", str(ROOT / "examples" / "license.yaml")]
RULES = ["--private", "quay.io/my-org/*", "--public", "docker.io/*", "--offline"]
PROXIED = b"proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1"


@pytest.mark.parametrize(
    "command",
    [("rewriter",), (PYTHON, "-m", "rewriter"), (PYTHON, str(ROOT / "plugin.py"))],
    ids=["rewriter", "python -m rewriter", "plugin.py"],
)
def test_entry_points_render_the_example(command, tmp_path):
    result = run([*LICENSE, *RULES], stdin=EXAMPLE, command=command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert PROXIED in result.stdout
    assert b"image: postgres:16" in result.stdout
    assert result.stdout.count(b"- name: my-kots-app-registry") == 2


def test_render_subcommand_and_files(tmp_path):
    (tmp_path / "a.yaml").write_bytes(EXAMPLE)
    via_file = run(["render", *LICENSE, *RULES, str(tmp_path / "a.yaml")])
    via_stdin = run([*LICENSE, *RULES], stdin=EXAMPLE)
    assert via_file.stdout == via_stdin.stdout
    assert via_file.returncode == 0


def test_error_writes_nothing_to_stdout_and_exits_1():
    result = run([*LICENSE, *RULES], stdin=EXAMPLE + b"---\nkind: [oops\n")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().startswith("error: document 4 (line 51): invalid YAML: ")
    assert result.stderr.count(b"\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scna"], "no such command 'scna'; did you mean 'scan'? (see rewriter --help)"),
        (["rendr", "x.yaml"], "no such command 'rendr'; did you mean 'render'? (see rewriter --help)"),
        (["frobnicate"], "no such command or file 'frobnicate' (see rewriter --help)"),
        (["cache", "clean"], "no such command 'clean'; did you mean 'clear'? (see rewriter cache --help)"),
        (["--no-such-flag"], "no such option '--no-such-flag' (see rewriter render --help)"),
        (["--ofline"], "no such option '--ofline'; did you mean '--offline'? (see rewriter render --help)"),
        (["scan", "--app-slug"], "option '--app-slug' requires an argument (see rewriter scan --help)"),
        (["kustomization", "--output-dir", "x"], "missing option '--resources' (see rewriter kustomization --help)"),
        (["--on-probe-error", "ignore"], "invalid --on-probe-error 'ignore': proxy, keep or fail (see rewriter render --help)"),
        (["--timeout", "-1"], "invalid --timeout '-1': a number of seconds greater than 0 (see rewriter render --help)"),
        (["--deadline", "soon"], "invalid --deadline 'soon': a number of seconds greater than 0 (see rewriter render --help)"),
        (["--concurrency", "0"], "invalid --concurrency '0': a whole number greater than 0 (see rewriter render --help)"),
        (["images", "--cache", "probes.sqlite"], "invalid --cache 'probes.sqlite': an absolute path, redis://HOST:PORT/DB or none (see rewriter images --help)"),
        (["scan", "-o", "xml"], "invalid --output 'xml': table, json or yaml (see rewriter scan --help)"),
        (["images", "--format", "table"], "invalid --output 'table': list or json (see rewriter images --help)"),
        (["-q", "-v"], "--quiet and --verbose exclude each other (see rewriter render --help)"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_and_exit_2(args, message):
    result = run([*LICENSE, "--offline", *args] if args[0].startswith("-") else args, stdin=EXAMPLE)
    assert (result.returncode, result.stderr.decode(), result.stdout) == (2, f"error: {message}\n", b"")


def test_bad_value_from_the_environment_names_the_variable():
    result = run([*LICENSE, "--offline"], stdin=EXAMPLE, env={"REWRITER_CONCURRENCY": "0"})
    assert (result.returncode, result.stderr.decode()) == (
        2,
        "error: invalid --concurrency '0' (from $REWRITER_CONCURRENCY): a whole number greater "
        "than 0 (see rewriter render --help)\n",
    )


def test_bad_value_in_a_config_file_is_said_in_the_same_words(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("options:\n  timeout: -1\n")
    result = run([*LICENSE, *RULES, "--config", str(config)], stdin=EXAMPLE)
    assert (result.returncode, result.stderr.decode()) == (
        1,  # a bad input file, not a usage error
        "error: invalid --timeout -1: a number of seconds greater than 0\n",
    )


def test_a_missing_file_is_an_input_error():
    result = run([*LICENSE, *RULES, "missing.yaml"])
    assert (result.returncode, result.stderr.decode()) == (
        1,
        "error: cannot read missing.yaml: No such file or directory\n",
    )


@pytest.mark.parametrize(
    "args",
    [["version"], ["--version"], ["render", "--version"], ["scan", "--version"],
     ["images", "--version"], ["krm", "--version"], ["kustomization", "--version"],
     ["cache", "info", "--version"]],
)  # fmt: skip
def test_version_everywhere(args):
    from rewriter import __version__

    result = run(args)
    assert (result.returncode, result.stdout.decode(), result.stderr) == (
        0,
        f"rewriter {__version__}\n",
        b"",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [],
            "error: no app slug: use --app-slug, REWRITER_APP_SLUG or --license FILE (a KOTS License)\n",
        ),
        (
            ["--app-slug", "Bad_Slug"],
            "error: invalid app slug 'Bad_Slug': lowercase letters, digits and '-'\n",
        ),
        (
            ["--app-slug", "a", "--license", "/nonexistent.yaml"],
            "error: cannot read license file /nonexistent.yaml: No such file or directory\n",
        ),
        (
            ["--app-slug", "a", "--private", "*"],
            "error: a pull secret is needed but no license ID was given: use --license FILE, --license-id-file FILE, or set REWRITER_LICENSE_ID\n",
        ),
    ],
)
def test_configuration_errors(args, message):
    result = run([*args, "--offline"], stdin=EXAMPLE)
    assert (result.returncode, result.stderr.decode(), result.stdout) == (1, message, b"")


def test_every_option_from_the_environment_and_argocd_env():
    env = {
        "REWRITER_APP_SLUG": "my-kots-app",
        "ARGOCD_ENV_REWRITER_LICENSE_ID": "secret-id",
        "REWRITER_PRIVATE": "quay.io/my-org/* ghcr.io/x/*",
        "REWRITER_PUBLIC": "docker.io/*",
        "REWRITER_OFFLINE": "true",
    }
    result = run([], stdin=EXAMPLE, env=env)
    assert result.returncode == 0, result.stderr
    assert PROXIED in result.stdout


def test_flag_beats_env_beats_config_beats_license(tmp_path):
    config = tmp_path / "c.yaml"
    # (An app slug other than the License's is an error, not a precedence: see
    # tests/integration/test_kots.py.)
    config.write_text("options:\n  license-id: from-config\n  secret-name: from-config\n")
    env = {"REWRITER_SECRET_NAME": "from-env"}
    result = run([*LICENSE, *RULES, "--config", str(config)], stdin=EXAMPLE, env=env)
    import base64

    secret = list(yaml.safe_load_all(result.stdout))[-1]
    config_json = base64.b64decode(secret["data"][".dockerconfigjson"])
    assert base64.b64encode(b"LICENSE_ID:from-config") in config_json  # config beats License
    assert b"name: from-env" in result.stdout  # env beats config
    result = run(
        [*LICENSE, *RULES, "--config", str(config), "--secret-name", "flag"], stdin=EXAMPLE, env=env
    )
    assert b"name: flag\n" in result.stdout


def test_license_id_from_a_file_never_appears_in_diagnostics(tmp_path):
    (tmp_path / "id").write_text("from-file-id\n")
    result = run(
        [
            "--app-slug",
            "a",
            "--license-id-file",
            str(tmp_path / "id"),
            "--private",
            "*",
            "--offline",
        ],
        stdin=EXAMPLE,
    )
    secret = list(yaml.safe_load_all(result.stdout))[-1]
    import base64

    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert (
        base64.b64decode(config["auths"]["proxy.replicated.com"]["auth"])
        == b"LICENSE_ID:from-file-id"
    )
    assert b"from-file-id" not in result.stderr


def test_application_file(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text(
        "apiVersion: kots.io/v1beta1\nkind: Application\nspec:\n"
        "  additionalNamespaces: [extra]\n  proxyRegistryDomain: proxy.vendor.com\n"
        "  replicatedRegistryDomain: images.vendor.com\n  proxyPublicImages: true\n"
    )
    result = run([*LICENSE, "--application", str(app), "--offline"], stdin=EXAMPLE)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "image: proxy.vendor.com/proxy/my-kots-app/postgres:16" in out
    assert "image: images.vendor.com/my-kots-app/worker:1.0.1" in out
    namespaces = [
        d["metadata"]["namespace"] for d in yaml.safe_load_all(out) if d["kind"] == "Secret"
    ]
    assert namespaces == ["extra", "shop"]


def test_log_file_gets_warnings_and_errors(tmp_path):
    log = tmp_path / "rewriter.log"
    bad = EXAMPLE.replace(b"postgres:16", b"'{{ .Values.db }}'")
    run([*LICENSE, *RULES, "--log-file", str(log)], stdin=bad)
    run([*LICENSE, *RULES], stdin=b"kind: [", env={"REWRITER_LOG_FILE": str(log)})
    lines = log.read_text().splitlines()
    assert lines[0].startswith(
        "warning: document 2 (Deployment shop/api, line 32): spec.template.spec.containers[1].image: invalid image reference"
    )
    assert lines[1].startswith("error: document 1 (line 2): invalid YAML")


def test_scan_table_and_json():
    table = run(["scan", *LICENSE, *RULES], stdin=EXAMPLE)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == [
        "DOC",
        "RESOURCE",
        "FIELD",
        "IMAGE",
        "ACTION",
        "REASON",
        "NEW",
        "IMAGE",
    ]
    assert len(lines) == 4
    report = json.loads(run(["scan", "--format", "json", *LICENSE, *RULES], stdin=EXAMPLE).stdout)
    assert report["version"] == 1
    assert report["images"][0] == {
        "document": 1,
        "line": 27,
        "kind": "Deployment",
        "namespace": "shop",
        "name": "api",
        "field": "spec.template.spec.containers[0].image",
        "image": "quay.io/my-org/api:v1.0.1",
        "normalized": "quay.io/my-org/api:v1.0.1",
        "action": "proxy",
        "reason": "rule --private 'quay.io/my-org/*'",
        "probe": None,
        "cached": None,
        "new_image": PROXIED.decode(),
        "pull_secret": True,
    }
    assert [i["action"] for i in report["images"]] == ["proxy", "keep", "licensed"]


def test_one_output_flag_with_format_as_its_alias():
    as_json = run(["scan", "-o", "json", *LICENSE, *RULES], stdin=EXAMPLE)
    assert run(["scan", "--output", "json", *LICENSE, *RULES], stdin=EXAMPLE).stdout == as_json.stdout
    assert run(["scan", "--format", "json", *LICENSE, *RULES], stdin=EXAMPLE).stdout == as_json.stdout
    as_yaml = run(["scan", "-o", "yaml", *LICENSE, *RULES], stdin=EXAMPLE)
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)
    listed = run(["images", "-o", "json", *LICENSE, *RULES], stdin=EXAMPLE)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == json.loads(
        run(["images", "--format", "json", *LICENSE, *RULES], stdin=EXAMPLE).stdout
    )


def test_help_explains_options_and_env():
    result = run(["render", "--help"])
    text = result.stdout.decode()
    assert result.returncode == 0
    for fragment in [
        "--app-slug SLUG",
        "--private GLOB",
        "--on-probe-error proxy|keep|fail",
        "--log-file FILE",
        "--proxy-host HOST",
        "--timeout SECONDS",
        "--cache PATH|URL|none",
        "REWRITER_LICENSE_ID",
        "--license-id-file FILE",
        "-q, --quiet",
        "-v, --verbose",
    ]:
        assert fragment in text
    # The environment rule once, at the end; not two variable names under every option.
    assert "ARGOCD_ENV_" in text.split("-h, --help")[1]
    assert text.count("ARGOCD_ENV_") == 1
    assert len(text.splitlines()) <= 110  # two screens
    assert run(["--help"]).returncode == 0
    assert b"--install-completion" in run(["--help"]).stdout


def test_quiet_says_errors_only_and_verbose_each_decision(tmp_path):
    bad = EXAMPLE.replace(b"postgres:16", b"'{{ .Values.db }}'")
    log = tmp_path / "log"
    quiet = run([*LICENSE, *RULES, "-q", "--log-file", str(log)], stdin=bad)
    assert (quiet.returncode, quiet.stderr) == (0, b"")
    assert log.read_text().startswith("warning: document 2 (Deployment shop/api, line 32)")
    failed = run([*LICENSE, *RULES, "-q"], stdin=bad + b"---\nkind: [oops\n")
    assert failed.returncode == 1
    assert failed.stderr.decode().startswith("error: document 4 (line 51): invalid YAML")
    verbose = run([*LICENSE, *RULES, "--verbose"], stdin=EXAMPLE)
    assert verbose.returncode == 0
    assert verbose.stderr.decode().splitlines() == [
        f"quay.io/my-org/api:v1.0.1: proxy (rule --private 'quay.io/my-org/*') -> {PROXIED.decode()}",
        "postgres:16: keep (rule --public 'docker.io/*')",
        "registry.replicated.com/my-kots-app/worker:1.0.1: licensed (on the vendor registry)",
    ]


def test_config_list_options_accept_a_single_string(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("options:\n  private: quay.io/my-org/*\n  public: docker.io/*\n")
    result = run([*LICENSE, "--config", str(config), "--offline"], stdin=EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert PROXIED in result.stdout
    assert b"image: postgres:16" in result.stdout


# -- krm: even a usage error answers with a ResourceList ----------------------------------

RESOURCE_LIST = (
    "apiVersion: config.kubernetes.io/v1\n"
    "kind: ResourceList\n"
    "items:\n"
    "- apiVersion: v1\n"
    "  kind: Pod\n"
    "  metadata: {name: web, namespace: shop}\n"
    "  spec: {containers: [{name: web, image: quay.io/my-org/web:1}]}\n"
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-flag"], "no such option '--no-such-flag' (see rewriter krm --help)"),
        (["--timeout", "-1"], "invalid --timeout '-1': a number of seconds greater than 0 (see rewriter krm --help)"),
    ],
)  # fmt: skip
def test_krm_usage_error_still_answers_a_resource_list(args, message):
    result = run(["krm", *args], stdin=RESOURCE_LIST)
    assert (result.returncode, result.stderr.decode()) == (2, f"error: {message}\n")
    answer = yaml.safe_load(result.stdout)
    assert answer["items"] == yaml.safe_load(RESOURCE_LIST)["items"]  # unchanged
    assert answer["results"] == [{"message": message, "severity": "error"}]
    assert result.stdout.decode().startswith(RESOURCE_LIST)  # the input's bytes, then results


# -- probing: progress, summary, one warning per registry ---------------------------------


def _probe_args(registries, *extra):
    return [
        *LICENSE,
        "--cache", "none",
        "--insecure-registry", registries.anonymous.domain,
        "--insecure-registry", registries.unused_host,
        "--ca-bundle", registries.ca_bundle,
        "--timeout", "3", "--deadline", "20",
        *extra,
    ]  # fmt: skip


def _pod(*images):
    containers = "".join(f"  - {{name: c{i}, image: '{image}'}}\n" for i, image in enumerate(images))
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: a}}\nspec:\n  containers:\n{containers}"


SECONDS_RE = r"\d+\.\d"


def test_one_summary_line_when_stderr_is_a_log(registries):
    import re

    images = [
        *registries.public_images(),
        registries.basic.image("team/secret", "1.0"),
        registries.token.image("private/app", "1.0"),
        f"{registries.unused_host}/some/app:1.0",
    ]
    result = run(_probe_args(registries), stdin=_pod(*images))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines[0] == (
        f"warning: {registries.unused_host}/some/app:1.0: probe failed: connection refused; "
        "--on-probe-error=proxy"
    )
    assert re.fullmatch(
        f"probed 6 images on 4 registries in {SECONDS_RE} s: 3 public, 2 private, 1 failed",
        lines[1],
    ), lines
    assert len(lines) == 2
    # Nothing probed (rules decide, or offline): no summary.
    assert run([*LICENSE, *RULES], stdin=EXAMPLE).stderr == b""


def test_many_failing_images_are_one_warning_per_registry(registries):
    import re

    host = registries.unused_host
    images = [f"{host}/team/app{i}:1" for i in range(200)]
    result = run(_probe_args(registries), stdin=_pod(*images))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines[0] == (
        f"warning: 200 images on {host}: probe failed: connection refused; "
        f"--on-probe-error=proxy ({host}/team/app0:1, {host}/team/app1:1, {host}/team/app2:1 "
        "and 197 more)"
    )
    assert re.fullmatch(
        f"probed 200 images on 1 registry in {SECONDS_RE} s: 0 public, 0 private, 200 failed",
        lines[1],
    )
    assert len(lines) == 2

    # Under `fail`: the same words in the warning and in the error, whose list is cut.
    failed = run(_probe_args(registries, "--on-probe-error", "fail"), stdin=_pod(*images))
    assert (failed.returncode, failed.stdout) == (1, b"")
    lines = failed.stderr.decode().splitlines()
    assert lines[0].startswith(
        f"warning: 200 images on {host}: probe failed: connection refused; --on-probe-error=fail ("
    )
    assert lines[2] == "error: 200 image(s) cannot be rewritten:"
    assert lines[3] == (
        f"  {host}/team/app0:1: probe failed: connection refused; --on-probe-error=fail "
        "[document 1 (Pod a/p, line 6) spec.containers[0].image]"
    )
    assert lines[13:] == ["  ... and 190 more (-v lists them all)"]
    everything = run(_probe_args(registries, "--on-probe-error", "fail", "-v"), stdin=_pod(*images))
    assert everything.stderr.decode().count("--on-probe-error=fail [document 1") == 200


def test_images_not_found_are_one_warning_per_registry(registries):
    """A registry's 404s read like its failed probes: one warning with the count and the
    first names; -v still names each image with its decision."""
    registry = registries.anonymous
    gone = [registry.image(f"team/gone{i}", "1") for i in range(5)]
    result = run(_probe_args(registries), stdin=_pod(*gone, registries.public_images()[0]))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines[0] == (
        f"warning: 5 images on {registry.domain}: not found on its registry (HTTP 404); "
        f"treated as private ({gone[0]}, {gone[1]}, {gone[2]} and 2 more)"
    )
    assert len(lines) == 2 and lines[1].startswith("probed 6 images on 1 registry in ")
    assert result.stdout.decode().count("image: 'proxy.replicated.com/proxy/") == 5

    single = run(_probe_args(registries), stdin=_pod(gone[0]))
    assert single.stderr.decode().splitlines()[0] == (
        f"warning: {gone[0]}: not found on its registry (HTTP 404); treated as private"
    )

    verbose = run(_probe_args(registries, "-v"), stdin=_pod(*gone))
    told = verbose.stderr.decode().splitlines()
    for image in gone:
        decided = f"{image}: proxy (probe: not found (HTTP 404)) -> proxy.replicated.com/proxy/"
        assert any(line.startswith(decided) for line in told), told


def test_progress_on_a_terminal(tmp_path):
    """Probes lasting over a second show `probing N/M images ...` on a terminal (a pty
    here), erased at the end and followed by the summary."""
    import os
    import pty
    import re
    import subprocess
    import threading

    from support.registries import Route, stub_registry

    with stub_registry({"/v2/": Route(200)}, default=Route(200, delay=0.4)) as stub:
        images = [f"{stub.domain}/team/app{i}:1" for i in range(8)]
        args = [*LICENSE, "--cache", "none", "--insecure-registry", stub.domain]
        args += ["--concurrency", "2", "--deadline", "20"]
        leader, follower = pty.openpty()
        env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
        process = subprocess.Popen(
            ["rewriter", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=follower, env=env, cwd=tmp_path,
        )  # fmt: skip
        os.close(follower)
        seen = bytearray()

        def read() -> None:
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                seen.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        out, _ = process.communicate(_pod(*images).encode(), timeout=60)
        reader.join(5)
        os.close(leader)

    assert process.returncode == 0
    assert out.count(b"image: ") == 8
    text = seen.decode()
    shown = re.findall(rf"probing (\d)/8 images on 1 registry, {SECONDS_RE} s", text)
    assert shown, text
    final = text.split("\r\x1b[K")[-1].replace("\r\n", "\n")
    assert re.fullmatch(
        f"probed 8 images on 1 registry in {SECONDS_RE} s: 8 public, 0 private, 0 failed\n", final
    ), repr(text)


# -- input checks and exits (issue 15 section 5) -----------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret-name", "x\n"], "invalid secret name 'x\\n': must be a DNS subdomain name"),
        (["--app-slug", "my-kots-app\n"], "invalid app slug 'my-kots-app\\n': lowercase letters, digits and '-'"),
        (["--proxy-host", "proxy.example.com\n"], "invalid proxy host 'proxy.example.com\\n': a host name, optionally with :port"),
        (["--registry-host", "registry.example.com\n"], "invalid registry host 'registry.example.com\\n': a host name, optionally with :port"),
        (["--local-registry", "registry.example.com\n"], "invalid --local-registry 'registry.example.com\\n': HOST[:PORT][/NAMESPACE]"),
        (["--local-registry", "registry.example.com/app\n"], "invalid --local-registry 'registry.example.com/app\\n': HOST[:PORT][/NAMESPACE]"),
    ],
)  # fmt: skip
def test_names_with_a_trailing_newline_are_refused(args, message):
    """Checked to the end of the string (`\\Z`): `$` also matches before a final newline."""
    result = run(["--app-slug", "my-kots-app", "--license-id", "L", *RULES, *args], stdin=EXAMPLE)
    assert (result.returncode, result.stderr.decode(), result.stdout) == (
        1,
        f"error: {message}\n",
        b"",
    )


def test_a_trailing_newline_from_a_config_file_is_refused_too(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text('options:\n  secret-name: "x\\n"\n')
    result = run([*LICENSE, *RULES, "--config", str(config)], stdin=EXAMPLE)
    assert (result.returncode, result.stderr.decode(), result.stdout) == (
        1,
        "error: invalid secret name 'x\\n': must be a DNS subdomain name\n",
        b"",
    )


KRM_INPUT = b"""apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p}
  spec:
    containers: [{name: c, image: quay.io/my-org/api:1}]
"""

OUTPUT_COMMANDS = {
    "render": ([*LICENSE, *RULES], EXAMPLE),
    "scan": (["scan", *LICENSE, *RULES], EXAMPLE),
    "images": (["images", *LICENSE, *RULES], EXAMPLE),
    "krm": (["krm", *LICENSE, *RULES], KRM_INPUT),
    "version": (["version"], b""),
    "help": (["render", "--help"], b""),  # written by typer's rich console, not by us
}


def _run_with_stdout(args, stdin, stdout, **popen):
    full_env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
    return subprocess.run(
        ["rewriter", *args],
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=full_env,
        timeout=30,
        check=False,
        **popen,
    )


@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_a_broken_pipe_is_one_error_line(command):
    """`rewriter ... | head -c 10`: the reader has gone; non-zero, one line, no traceback
    and no `Exception ignored` from the interpreter's exit."""
    args, stdin = OUTPUT_COMMANDS[command]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        result = _run_with_stdout(args, stdin, write_end)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr.decode()) == (
        1,
        "error: cannot write the output: stdout was closed by its reader (broken pipe)\n",
    )


@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_a_closed_stdout_is_one_error_line(command):
    """`rewriter >&-`: said before any work is done."""
    args, stdin = OUTPUT_COMMANDS[command]
    result = _run_with_stdout(args, stdin, subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    assert (result.returncode, result.stderr.decode()) == (
        1,
        "error: cannot write the output: stdout is closed\n",
    )


def test_a_stdout_write_error_is_named_as_such():
    """A full disk under stdout is the output's error, not an "internal error"."""
    with open("/dev/full", "wb") as full:
        result = _run_with_stdout([*LICENSE, *RULES], EXAMPLE, full.fileno())
    assert (result.returncode, result.stderr.decode()) == (
        1,
        "error: cannot write the output to stdout: No space left on device\n",
    )


def test_a_big_stream_into_head_exits_non_zero_with_one_line(tmp_path):
    """The shell's `rewriter < big.yaml | head -c 10`."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"---\n".join([EXAMPLE] * 400))  # about 600 KB, over any pipe buffer
    script = f"rewriter {' '.join(LICENSE + RULES)} < {big} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}} >&2"
    full_env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, env=full_env, timeout=60, check=False
    )
    lines = done.stderr.decode().splitlines()
    assert lines == [
        "error: cannot write the output: stdout was closed by its reader (broken pipe)",
        "1",
    ]


def _in_process(monkeypatch, args, stdin):
    """main(ARGS) with stdin and stdout as bytes: (exit code, stdout, stderr)."""
    out, err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, write_through=True))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, write_through=True))
    for name in list(os.environ):
        if "REWRITER_" in name:
            monkeypatch.delenv(name)
    code = main(args)
    return code, out.getvalue(), err.getvalue().decode()


def test_a_render_of_documents_never_succeeds_with_empty_output(monkeypatch):
    """The second guard behind the regular-file rule: should anything ever make a render
    of a non-empty stream produce nothing (as `--license-id-file /dev/stdin` once did),
    it fails instead: Helm or `kubectl apply --prune` would delete everything."""
    from rewriter import cli

    monkeypatch.setattr(cli, "rewrite", lambda *args: Rendered([b""], []))
    assert _in_process(monkeypatch, [*LICENSE, *RULES], EXAMPLE) == (
        1,
        b"",
        "error: the input held documents but the output is empty; nothing was written\n"
        "  (was stdin read by something else, e.g. an option naming /dev/stdin?)\n",
    )


def test_a_krm_answer_is_never_empty(monkeypatch):
    from rewriter.hosts import krm

    monkeypatch.setattr(krm, "run", lambda *args: None)
    code, out, err = _in_process(monkeypatch, ["krm", *LICENSE, *RULES], KRM_INPUT)
    assert (code, out) == (1, b"")
    assert err.startswith("error: the input held documents but the output is empty")


@pytest.mark.parametrize("stream", [b"", b"# Source: chart/empty.yaml\n---\n\n...\n", b"--- # x\n"])
def test_an_empty_stream_still_renders_to_itself(stream):
    result = run([*LICENSE, *RULES], stdin=stream)
    assert (result.returncode, result.stdout, result.stderr) == (0, stream, b"")


def test_every_error_is_one_error_line_then_indented_details():
    from rewriter.diagnostics import Reporter

    err = io.StringIO()
    Reporter(stream=err).error("3 problems:\n  one\ntwo\n\tthree")
    assert err.getvalue() == "error: 3 problems:\n  one\n  two\n\tthree\n"


def test_several_files_name_the_file_and_count_within_it(tmp_path):
    (tmp_path / "a.yaml").write_bytes(EXAMPLE)
    bad = b"kind: ConfigMap\nmetadata: {name: x}\n---\n" + EXAMPLE.split(b"---\n", 2)[1].replace(
        b"        image: postgres:16\n", b"        image: postgres:16\n        image: postgres:17\n"
    )
    (tmp_path / "b.yaml").write_bytes(bad)
    failed = run(["render", *LICENSE, *RULES, str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert failed.returncode == 1
    assert failed.stdout == b""
    line = bad.split(b"image: postgres:17")[0].count(b"\n") + 1
    assert failed.stderr.decode() == (
        f"error: {tmp_path / 'b.yaml'}: document 2 (Deployment shop/api, line {line}): "
        "duplicate key 'image'\n"
    )
    # The same file alone, or on stdin: no file name, the same numbers
    alone = run(["render", *LICENSE, *RULES], stdin=bad)
    assert alone.stderr.decode() == (
        f"error: document 2 (Deployment shop/api, line {line}): duplicate key 'image'\n"
    )
    # stdin among files is named so
    mixed = run(["render", *LICENSE, *RULES, str(tmp_path / "a.yaml"), "-"], stdin=bad)
    assert mixed.stderr.decode().startswith("error: stdin: document 2 (Deployment shop/api, ")


def test_several_files_warnings_and_one_stream(tmp_path):
    invalid = EXAMPLE.replace(b"image: postgres:16", b"image: '{{ .Values.db }}'")
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_bytes(invalid)
    result = run(["render", *LICENSE, *RULES, str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert result.returncode == 0, result.stderr
    line = invalid.split(b"'{{")[0].count(b"\n") + 1
    warnings = result.stderr.decode().splitlines()
    assert [w.split(": spec.")[0] for w in warnings] == [
        f"warning: {tmp_path / name}: document 2 (Deployment shop/api, line {line})"
        for name in ("a.yaml", "b.yaml")
    ]
    # Still one stream: the pull Secret once, at the end
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs][-1] == "Secret"
    assert [d["kind"] for d in docs].count("Secret") == 1
    # scan's table: the DOC column names the file too; the JSON keeps its stream count
    table = run(["scan", *LICENSE, *RULES, str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert [row.split()[0] for row in table.stdout.decode().splitlines()[1:]] == [
        f"{tmp_path / name}:{n}" for name in ("a.yaml", "b.yaml") for n in (2, 3)
    ]
    report = json.loads(
        run(["scan", "-o", "json", *LICENSE, *RULES, str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]).stdout
    )
    assert [row["document"] for row in report["images"]] == [1, 2, 4, 5]
    # ... and says where each image is within its file too (keys added with several files).
    # (b.yaml is a.yaml again: its images sit on the same lines of their file)
    a_rows = report["images"][:2]
    assert [(row["file"], row["file_document"], row["file_line"]) for row in report["images"]] == [
        (str(tmp_path / name), n, row["line"]) for name in ("a.yaml", "b.yaml") for n, row in zip((2, 3), a_rows, strict=True)
    ]
    one = json.loads(run(["scan", "-o", "json", *LICENSE, *RULES, str(tmp_path / "a.yaml")]).stdout)
    assert "file" not in one["images"][0]  # one input: the stream is the file


def test_a_repository_config_sets_rules_only(tmp_path):
    repo = tmp_path / "repo.yaml"
    repo.write_text("options:\n  private: ['quay.io/*']\n  proxy-host: evil.example\n")
    result = run(["--repository-config", str(repo), *LICENSE], stdin=EXAMPLE)
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == (
        f"error: {repo}: proxy-host may not be set by the repository, only by the "
        "Application or the sidecar (hosts that receive credentials, files, the cache, "
        "the log, TLS and probe reach)\n"
    )
    # Rules it may set; the sidecar's own --config wins where both speak.
    repo.write_text("options:\n  private: ['quay.io/*']\n  on-probe-error: fail\n")
    sidecar = tmp_path / "sidecar.yaml"
    sidecar.write_text("options:\n  public: ['docker.io/*']\n  on-probe-error: keep\n")
    result = run(
        ["--repository-config", str(repo), "--config", str(sidecar), "--offline", *LICENSE],
        stdin=EXAMPLE,
    )
    assert result.returncode == 0, result.stderr
    assert b"proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1" in result.stdout


def test_a_big_document_renders_from_events_as_a_composed_one() -> None:
    """`rewriter render` reads a document from LEAN_SIZE on from libyaml's events
    (rewriter/manifest/eventfind.py): a 300 KiB Pod renders as the composing path does."""
    containers = "".join(
        f"    - name: c{i}\n      image: quay.io/acme/app{i % 7}:1\n" for i in range(7000)
    )
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: wide\n  namespace: shop\nspec:\n"
        "  containers:\n" + containers
    )
    assert len(text) > visit.LEAN_SIZE
    result = run(["--app-slug", "acme", "--license-id", "L", "--private", "*", "--offline"], text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == render(text)
    assert result.stdout.count(b"image: proxy.replicated.com/proxy/acme/quay.io/acme/app") == 7000
