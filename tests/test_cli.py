"""End to end: the installed `rewriter`, `python -m rewriter` and `python plugin.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import PYTHON, run

ROOT = Path(__file__).resolve().parents[1]
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
    assert result.stderr.decode().startswith("error: document 3 (line 51): invalid YAML: ")
    assert result.stderr.count(b"\n") == 1


def test_usage_errors_exit_2():
    result = run(["--no-such-flag"], stdin=EXAMPLE)
    assert result.returncode == 2
    # The wording is click's; what rewriter promises is exit 2 naming the option.
    assert b"--no-such-flag" in result.stderr
    assert result.stdout == b""


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
            ["--app-slug", "a", "--on-probe-error", "maybe"],
            "error: invalid --on-probe-error 'maybe': proxy, keep or fail\n",
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
    # tests/test_settings.py.)
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
        "warning: document 1 (Deployment shop/api, line 32): spec.template.spec.containers[1].image: invalid image reference"
    )
    assert lines[1].startswith("error: document 0 (line 2): invalid YAML")


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


def test_help_explains_options_and_env():
    result = run(["render", "--help"])
    text = result.stdout.decode()
    assert result.returncode == 0
    for fragment in [
        "--app-slug",
        "--private",
        "--on-probe-error",
        "--log-file",
        "REWRITER_LICENSE_ID",
        "--license-id-file",
    ]:
        assert fragment in text
    assert run(["--help"]).returncode == 0
    assert run(["--version"]).stdout.startswith(b"rewriter ")


def test_config_list_options_accept_a_single_string(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("options:\n  private: quay.io/my-org/*\n  public: docker.io/*\n")
    result = run([*LICENSE, "--config", str(config), "--offline"], stdin=EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert PROXIED in result.stdout
    assert b"image: postgres:16" in result.stdout
