"""The one TLS context of a render's probes.

Python's client defaults (certificate chain and host name verified, TLS 1.2 or later),
certifi's roots as requests would use, plus `--ca-bundle` if given. requests would
*replace* the roots with the bundle, and a render that probes an internal registry also
probes Docker Hub. Built once per render, because loading ~150 roots is the expensive
part of a TLS connection (~40 ms of CPU); built without the HTTP stack, so that
`rewriter.probe.answers` can load it in a thread while the probe's modules are imported.
"""

from __future__ import annotations

import ssl

import certifi

from rewriter.errors import RewriterError


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.hostname_checks_common_name = False  # a name must be a subjectAltName (RFC 6125)
    context.load_verify_locations(cafile=certifi.where())
    if ca_bundle is not None:
        try:
            with open(ca_bundle, encoding="ascii", errors="replace") as handle:
                context.load_verify_locations(cadata=handle.read())
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise RewriterError(
                f"--ca-bundle {ca_bundle}: not a readable PEM bundle ({exc})"
            ) from None
    return context
