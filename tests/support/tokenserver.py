"""A small Docker token server (the "Bearer" half of distribution's token auth), for tests.

It answers `GET /token?service=...&scope=repository:<name>:<actions>` the way Docker Hub's
auth service does:

- with valid Basic credentials: a token granting every requested action (used to push);
- anonymously: a token granting `pull` on the public repositories only, and no action
  elsewhere, so the registry answers 401 `insufficient_scope` for private ones;
- anonymously for a repository under a "denied" prefix: 403 from the realm itself, the
  way GHCR and Artifact Registry refuse anonymous tokens for private packages.

Tokens are JWTs signed RS256 with a self-signed certificate carried in the `x5c` header;
the registry trusts that certificate through `auth.token.rootcertbundle`.

It counts what it is asked, so tests can prove a cached render asks nothing.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenPolicy:
    issuer: str
    service: str
    users: dict[str, str]  # name -> password, granted everything
    public: frozenset[str]  # repositories anyone may pull
    denied_prefixes: tuple[str, ...] = ()  # anonymous scope here: 403 from the realm


@dataclass
class TokenLog:
    """What the server was asked; `lock` guards both lists."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    anonymous: list[str] = field(default_factory=list)  # query strings
    authenticated: list[str] = field(default_factory=list)

    def anonymous_count(self) -> int:
        with self.lock:
            return len(self.anonymous)


class _TlsServer(ThreadingHTTPServer):
    """TLS accepted in each connection's own thread, not in the accept loop: parallel
    clients (the benchmark's probes) do not queue behind one another's handshakes.
    Without a context, plain HTTP (the benchmark's realms, behind a TLS proxy)."""

    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops a burst of connections
    tls: ssl.SSLContext | None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The reply's head and body are two writes: without this, the body waits for the
        # client's delayed ACK of the head (~40 ms) on a kept-alive connection.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class TokenServer:
    """Serves `/token` over HTTPS on (host, port) in a daemon thread until `stop()`; over
    plain HTTP when given no certificate."""

    def __init__(
        self,
        host: str,
        port: int,
        policy: TokenPolicy,
        signing_key_pem: bytes,
        signing_cert_pem: bytes,
        tls_cert: str | None,
        tls_key: str | None,
    ) -> None:
        self.policy = policy
        self.log = TokenLog()
        self._key = serialization.load_pem_private_key(signing_key_pem, password=None)
        assert isinstance(self._key, rsa.RSAPrivateKey)
        cert = x509.load_pem_x509_certificate(signing_cert_pem)
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every reply has a Content-Length

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the counters are the log

            def do_GET(self) -> None:
                server._handle(self)

        context: ssl.SSLContext | None = None
        if tls_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
        self._httpd = _TlsServer((host, port), Handler)
        self._httpd.tls = context
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.realm = f"{'https' if context else 'http'}://{host}:{port}/token"

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- request handling ---------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        if url.path != "/token":
            self._reply(request, 404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        query = parse_qs(url.query)
        user = self._user(request.headers.get("Authorization"))
        with self.log.lock:
            (self.log.authenticated if user else self.log.anonymous).append(url.query)
        if user is False:
            self._reply(request, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        access = []
        for scope in query.get("scope", []):
            for item in scope.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind != "repository" or not name:
                    continue
                wanted = [action for action in actions.split(",") if action]
                if user:
                    granted = wanted
                elif name.startswith(self.policy.denied_prefixes):
                    self._reply(request, 403, {"errors": [{"code": "DENIED"}]})
                    return
                elif name in self.policy.public:
                    granted = [action for action in wanted if action == "pull"]
                else:
                    granted = []
                access.append({"type": "repository", "name": name, "actions": granted})
        token = self._sign(user or "", access)
        self._reply(request, 200, {"token": token, "access_token": token, "expires_in": 300})

    def _user(self, header: str | None) -> str | bool | None:
        """The user name for good Basic credentials, False for bad ones, None for none."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        if self.policy.users.get(name) == password:
            return name
        return False

    def _sign(self, subject: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.policy.issuer,
            "sub": subject,
            "aud": self.policy.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        assert isinstance(self._key, rsa.RSAPrivateKey)
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
