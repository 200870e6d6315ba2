"""A small delaying reverse proxy: HTTPS in front of a registry (or its token realm) on
loopback, holding every request `delay` seconds before forwarding it, and recording what
it was asked. The probe figures count requests here.

One thread per client connection (the probe keeps its connections alive); each of those
keeps one connection to the upstream. TLS is accepted in the connection's own thread, so
handshakes of parallel probes do not queue behind one another.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # parallel probes open many connections at once
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
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


class DelayProxy:
    """Listens on (host, port); forwards to (upstream_host, upstream_port)."""

    def __init__(
        self,
        name: str,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        *,
        delay: float,
        server_tls: ssl.SSLContext | None = None,
        upstream_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.host, self.port = listen
        self.delay = delay
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as registries and runtimes do
            upstream_connection: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                url = urlsplit(self.path)
                with proxy._lock:
                    proxy.seen.append(Seen(self.command, url.path, parse_qs(url.query)))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(proxy.delay)
                headers = {
                    key: value
                    for key, value in self.headers.items()
                    if key.lower() not in _HOP_BY_HOP
                }
                try:
                    response, data = self._upstream(body, headers)
                except (OSError, http.client.HTTPException) as exc:
                    self._reply(502, [], f"upstream: {exc}".encode())
                    return
                self._reply(response.status, response.getheaders(), data)

            def _upstream(
                self, body: bytes | None, headers: dict[str, str]
            ) -> tuple[http.client.HTTPResponse, bytes]:
                for attempt in (1, 2):  # the kept-alive upstream connection may be stale
                    if self.upstream_connection is None:
                        self.upstream_connection = _connect(upstream, upstream_tls)
                    try:
                        self.upstream_connection.request(
                            self.command, self.path, body=body, headers=headers
                        )
                        response = self.upstream_connection.getresponse()
                        return response, response.read()
                    except (OSError, http.client.HTTPException):
                        self.upstream_connection.close()
                        self.upstream_connection = None
                        if attempt == 2:
                            raise
                raise AssertionError("unreachable")

            def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response_only(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                if self.command == "HEAD":
                    # No body; pass on the length the upstream announced.
                    length = dict((k.lower(), v) for k, v in headers).get("content-length")
                    self.send_header("Content-Length", length or "0")
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def finish(self) -> None:
                with contextlib.suppress(OSError):
                    super().finish()
                if self.upstream_connection is not None:
                    self.upstream_connection.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._httpd = _Server(listen, Handler)
        self._httpd.tls = server_tls
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"proxy-{name}",
            daemon=True,
        )

    def start(self) -> DelayProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def by_request(self) -> Counter[tuple[str, str, str]]:
        """(method, path, scope) -> how many times; scope is the token request's."""
        return Counter(
            (seen.method, seen.path, " ".join(seen.query.get("scope", [])))
            for seen in self.requests()
        )


def _connect(upstream: tuple[str, int], tls: ssl.SSLContext | None) -> http.client.HTTPConnection:
    host, port = upstream
    if tls is None:
        return http.client.HTTPConnection(host, port, timeout=10)
    return http.client.HTTPSConnection(host, port, timeout=10, context=tls)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)
