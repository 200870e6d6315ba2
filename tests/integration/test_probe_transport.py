"""The probe's transport (rewriter/probe/transport.py): what it sends, through which
proxy, and what it refuses. Against a stub registry on loopback (tests/support/registries.py); the stub also
stands in for an HTTP proxy, which receives absolute-form requests."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import urllib3
from support.registries import Route, StubRegistry, stub_registry

from rewriter.probe.tls import tls_context
from rewriter.probe.transport import Transport, UnsupportedProxy


@pytest.fixture
def stub() -> Iterator[StubRegistry]:
    with stub_registry({"/v2/": Route(200, body=b"{}")}, default=Route(404)) as registry:
        yield registry


def transport(environ: dict[str, str]) -> Transport:
    return Transport(tls_context(None), environ=environ)


def get(through: Transport, url: str) -> int:
    response = through.send("GET", url, {"Accept": "*/*"}, 2.0)
    response.read()
    response.release_conn()
    return response.status


def test_sends_exactly_the_headers_given(stub: StubRegistry) -> None:
    status = get(transport({}), f"http://{stub.domain}/v2/")

    assert status == 200
    (seen,) = stub.seen
    assert (seen.method, seen.path) == ("GET", "/v2/")
    sent = {name.lower() for name in seen.headers}
    assert sent <= {"host", "accept", "accept-encoding", "user-agent"}
    assert "authorization" not in sent and "cookie" not in sent


def test_keeps_the_connection_alive(stub: StubRegistry) -> None:
    through = transport({})
    for _ in range(3):
        get(through, f"http://{stub.domain}/v2/")
    assert len({seen.connection for seen in stub.seen}) == 1


def test_goes_through_the_proxy_with_its_credentials(stub: StubRegistry) -> None:
    proxy = f"http://user:p%40ss@{stub.domain}"
    through = transport({"http_proxy": proxy, "HTTP_PROXY": "http://ignored.invalid"})

    get(through, "http://registry.example/v2/")

    (seen,) = stub.seen
    assert seen.path == "http://registry.example/v2/"  # absolute form: a proxy request
    expected = "Basic " + base64.b64encode(b"user:p@ss").decode()
    headers = {name.lower(): value for name, value in seen.headers.items()}
    assert headers["proxy-authorization"] == expected


def test_no_proxy_goes_direct(stub: StubRegistry) -> None:
    host = stub.domain.split(":")[0]
    through = transport({"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": f"{host}/32"})
    assert get(through, f"http://{stub.domain}/v2/") == 200


def test_a_socks_proxy_is_refused() -> None:
    through = transport({"HTTPS_PROXY": "socks5://127.0.0.1:1080"})
    with pytest.raises(UnsupportedProxy, match=r"SOCKS proxy 127\.0\.0\.1: not supported"):
        through.send("GET", "https://registry.example/v2/", {}, 2.0)


def test_no_retry_and_no_redirect_followed(stub: StubRegistry) -> None:
    stub.routes["/moved"] = Route(302, {"Location": "/v2/"})
    response = transport({}).send("GET", f"http://{stub.domain}/moved", {}, 2.0)
    assert response.status == 302
    assert response.get_redirect_location() == "/v2/"
    assert [seen.path for seen in stub.seen] == ["/moved"]
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        transport({}).send("GET", "http://127.0.0.1:9/v2/", {}, 2.0)
