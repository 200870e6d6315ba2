"""The probe's pure policy: what an answer means, where a registry's API lives, and the
order images are probed in. (Where the probe may go, host_allowed and friends, is in
tests/integration/test_security.py.)"""

from __future__ import annotations

import pytest

from rewriter.probe.policy import (
    TOKEN_REALM_HEADER,
    TOKEN_REALM_VALUE,
    api_host,
    challenge_summary,
    classify,
    describe_status,
    no_proxy_matches,
    schedule,
    stored_answer,
)
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict

PUBLIC, PRIVATE, MISSING, UNKNOWN = (
    Verdict.PUBLIC,
    Verdict.PRIVATE,
    Verdict.MISSING,
    Verdict.UNKNOWN,
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, PUBLIC),
        (204, PUBLIC),
        (401, PRIVATE),
        (403, PRIVATE),
        (404, MISSING),
        (429, UNKNOWN),
        (500, UNKNOWN),
        (502, UNKNOWN),
        (503, UNKNOWN),
        (504, UNKNOWN),
        (400, UNKNOWN),
        (301, UNKNOWN),
        (418, UNKNOWN),
    ],
)
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        ((200,), {}, "HTTP 200"),
        ((404,), {}, "HTTP 404"),
        ((401, 'Basic realm="x"'), {}, "401 Basic challenge"),
        (
            (401, 'Bearer realm="x",error="insufficient_scope"'),
            {},
            "401 Bearer challenge (insufficient_scope)",
        ),
        ((401, None), {}, "HTTP 401"),
        ((403,), {"realm": True}, "403 from token realm"),
    ],
)
def test_describe(args: tuple[object, ...], kwargs: dict[str, bool], text: str) -> None:
    assert describe_status(*args, **kwargs) == text  # type: ignore[arg-type]


def test_docker_hub_api_host() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("quay.io") == "quay.io"
    assert api_host("localhost:5000") == "localhost:5000"


def test_schedule_takes_registries_and_repositories_in_turn() -> None:
    """Every registry's first repository first (their pings go out together), and a
    repository's second tag after every first tag (its token is fetched by then)."""
    keys: list[ProbeKey] = [
        ("a.io", "one", "1"),
        ("a.io", "one", "2"),
        ("a.io", "two", "1"),
        ("b.io", "three", "1"),
        ("b.io", "three", "2"),
        ("a.io", "one", "1"),  # again: probed once
    ]
    assert schedule(keys) == [
        ("a.io", "one", "1"),
        ("b.io", "three", "1"),
        ("a.io", "two", "1"),
        ("a.io", "one", "2"),
        ("b.io", "three", "2"),
    ]


@pytest.mark.parametrize(
    ("status", "headers", "answer"),
    [
        (200, {}, ProbeResult(PUBLIC, "HTTP 200", cached=True)),
        (404, {}, ProbeResult(MISSING, "HTTP 404", cached=True)),
        (
            401,
            {"www-authenticate": 'Bearer realm="r",error="insufficient_scope"'},
            ProbeResult(PRIVATE, "401 Bearer challenge (insufficient_scope)", cached=True),
        ),
        (
            403,
            {TOKEN_REALM_HEADER.lower(): TOKEN_REALM_VALUE},
            ProbeResult(PRIVATE, "403 from token realm", cached=True),
        ),
        (503, {}, None),  # never stored by the probe: not trusted either
        (429, {}, None),
    ],
)
def test_stored_answer(status: int, headers: dict[str, str], answer: ProbeResult | None) -> None:
    assert stored_answer(status, headers) == answer


@pytest.mark.parametrize(
    ("header", "summary"),
    [
        (
            'Bearer realm="https://auth.example/token",service="registry",'
            'scope="repository:team/app:pull",error="insufficient_scope"',
            'Bearer error="insufficient_scope"',
        ),
        ('Basic realm="Registry Realm"', "Basic"),
        (
            'Bearer realm="r",error="odd \\"quoted\\" value"',
            'Bearer error="odd \\"quoted\\" value"',
        ),
        ('Basic realm="a", Bearer realm="b",error="x"', "Basic"),
        ("garbage,,", "Garbage"),
        ("", None),
        (None, None),
    ],
)
def test_a_stored_challenge_says_what_the_challenge_said(
    header: str | None, summary: str | None
) -> None:
    """The answer keeps the challenge's gist only: its description is the same."""
    assert challenge_summary(header) == summary
    assert describe_status(401, summary) == describe_status(401, header)


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("registry.example.com", 443, "*", True),
        ("registry.example.com", 443, "example.com", True),  # a domain and what is below it
        ("registry.example.com", 443, ".example.com", True),
        ("example.com", 443, ".example.com", True),
        ("badexample.com", 443, "example.com", False),  # a suffix is not a domain
        ("registry.example.com", 5000, "registry.example.com:5000", True),
        ("registry.example.com", 443, "registry.example.com:5000", False),
        ("10.1.2.3", 5000, "localhost, 10.0.0.0/8", True),  # CIDR, as in clusters
        ("11.1.2.3", 5000, "10.0.0.0/8", False),
        ("[fd00::1]", 443, "fd00::/8", True),
        ("10.1.2.3", 443, "10.1.2.3", True),
        ("10.1.2.30", 443, "10.1.2.3", False),  # an address is not a suffix either
        ("Registry.Example.COM.", 443, "EXAMPLE.com", True),
        ("registry.example.com", 443, "", False),
        ("registry.example.com", 443, " , not-a-cidr/99 ,", False),
    ],
)
def test_no_proxy_matches(host: str, port: int, no_proxy: str, direct: bool) -> None:
    assert no_proxy_matches(host, port, no_proxy) is direct
