"""The probe's TLS context (rewriter/probe/tls.py): what it verifies and which roots it
trusts."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from rewriter.errors import RewriterError
from rewriter.probe.tls import tls_context


def test_verifies_the_chain_and_the_name_on_tls_1_2_or_later() -> None:
    context = tls_context(None)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert not context.hostname_checks_common_name  # subjectAltName only, as urllib3
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_trusts_certifis_roots_and_adds_the_bundle(tmp_path: Path) -> None:
    default = tls_context(None).get_ca_certs()
    assert len(default) > 100  # certifi's roots, as requests would use
    bundle = tmp_path / "ca.pem"
    bundle.write_text(_one_root_of(certifi.where()))
    assert len(tls_context(str(bundle)).get_ca_certs()) == len(default)  # already there
    own = tmp_path / "own-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(own), "-days", "1",
         "-subj", "/CN=rewriter test CA"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert len(tls_context(str(own)).get_ca_certs()) == len(default) + 1


@pytest.mark.parametrize("content", [None, "not a certificate"])
def test_an_unreadable_bundle_is_a_user_error(tmp_path: Path, content: str | None) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_text(content)
    with pytest.raises(RewriterError, match=f"--ca-bundle {bundle}: not a readable PEM bundle"):
        tls_context(str(bundle))


def test_imports_no_http_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, rewriter.probe.tls; print('requests' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "False\n"


def _one_root_of(path: str) -> str:
    text = Path(path).read_text()
    end = "-----END CERTIFICATE-----"
    return text[: text.index(end) + len(end)] + "\n"
