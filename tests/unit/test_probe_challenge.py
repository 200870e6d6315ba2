from __future__ import annotations

import pytest

from rewriter.probe.challenge import Challenge, parse_challenges


def c(scheme: str, token68: str | None = None, **params: str) -> Challenge:
    return Challenge(scheme, params, token68)


CASES = [
    # Docker Hub
    (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
        [c("bearer", realm="https://auth.docker.io/token", service="registry.docker.io")],
    ),
    # distribution after a tokened request without access
    (
        'Bearer realm="https://r/token",service="svc",scope="repository:a/b:pull",'
        'error="insufficient_scope"',
        [
            c(
                "bearer",
                realm="https://r/token",
                service="svc",
                scope="repository:a/b:pull",
                error="insufficient_scope",
            )
        ],
    ),
    # ECR / htpasswd
    ('Basic realm="basic-realm"', [c("basic", realm="basic-realm")]),
    ("Basic", [c("basic")]),
    # case-insensitive scheme and parameter names; value case kept
    ('BEARER Realm="HTTPS://X/Token"', [c("bearer", realm="HTTPS://X/Token")]),
    # several challenges in one header, with and without spaces after commas
    (
        'Basic realm="b", Bearer realm="https://t",service="s"',
        [c("basic", realm="b"), c("bearer", realm="https://t", service="s")],
    ),
    (
        'Bearer realm="https://t",service="s",Basic realm="b"',
        [c("bearer", realm="https://t", service="s"), c("basic", realm="b")],
    ),
    # two header lines, joined by requests with ", "
    ('Basic realm="b", Bearer realm="t"', [c("basic", realm="b"), c("bearer", realm="t")]),
    # a comma inside a quoted value does not split
    ('Bearer realm="https://t/a,b",service="s"', [c("bearer", realm="https://t/a,b", service="s")]),
    # escaped quote and backslash inside a quoted value
    (r'Bearer realm="a\"b\\c"', [c("bearer", realm='a"b\\c')]),
    # unquoted values, including a URL (':' and '/' are not token characters)
    (
        "Bearer realm=https://t/token,service=svc",
        [c("bearer", realm="https://t/token", service="svc")],
    ),
    # whitespace around '=' (BWS) and around commas
    ('Bearer realm = "t" ,  service= "s"', [c("bearer", realm="t", service="s")]),
    # empty list elements
    (', , Basic realm="b" ,, ', [c("basic", realm="b")]),
    # token68
    ("Negotiate abc123==", [c("negotiate", token68="abc123==")]),
    ("Negotiate abc, Basic realm=x", [c("negotiate", token68="abc"), c("basic", realm="x")]),
    # a repeated parameter: the first wins
    ('Bearer realm="one",realm="two"', [c("bearer", realm="one")]),
    # a missing comma between parameters is tolerated
    ('Bearer realm="t" service="s"', [c("bearer", realm="t", service="s")]),
    # an empty quoted value
    ('Bearer realm="",service="s"', [c("bearer", realm="", service="s")]),
    # an unterminated quote: what could be read
    ('Bearer realm="abc', [c("bearer", realm="abc")]),
    # nothing usable
    ("", []),
    (None, []),
    (",,,", []),
    ('"just a quote"', []),
    ("=", []),
]


@pytest.mark.parametrize(("header", "expected"), CASES)
def test_parse_challenges(header: str | None, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_get_is_case_insensitive() -> None:
    (challenge,) = parse_challenges('Bearer Realm="r"')
    assert challenge.get("REALM") == "r"
    assert challenge.get("service") is None


@pytest.mark.parametrize(
    "garbage",
    ['Bearer realm="', "Bearer ,,,=,=", '\\"', "Basic realm=\x00", "a" * 10000, '"' * 101, "= = ="],
)
def test_garbage_never_raises(garbage: str) -> None:
    parse_challenges(garbage)
