"""A small delaying reverse proxy: HTTPS in front of a registry (or its token realm) on
loopback, holding every request `delay` seconds before forwarding it, and recording what
it was asked. The probe figures count requests here.

It must simulate latency, not add load: the cold-probe figure sends hundreds of requests
over dozens of parallel connections, and every millisecond of CPU the proxies spend is taken
from the program being measured. So it runs on asyncio, one event loop in a daemon thread
per proxy: no thread per connection (nor GIL hand-offs between them), no stdlib HTTP
parsing. Each connection is an `asyncio.Protocol` that splits the few header lines by hand,
and the delay is a timer (`loop.call_later`); what a request costs is mostly the socket
calls and TLS records it needs. Each answer leaves in one write, head and body together, so
it never waits for the client's delayed ACK (Nagle) as a body written after its head can.

Clients keep their connections alive (as the probe does); each client connection has its
own kept-alive connection to the upstream, re-opened once if it went stale. TLS handshakes
run on the loop without blocking it, so parallel probes do not queue behind one another.

Only what the benchmark needs is spoken: one request at a time per connection (pipelined
ones wait their turn); request bodies by Content-Length; upstream bodies by Content-Length,
chunked (relayed with a Content-Length) or until the upstream closes.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
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
_NOT_RELAYED = _HOP_BY_HOP | {"content-length"}  # the proxy sets its own on answers
_END_OF_HEAD = b"\r\n\r\n"
_MAX_HEAD = 1 << 16  # bytes; a client sending more without a blank line is not HTTP
_UPSTREAM_TIMEOUT = 10.0  # seconds to connect to the upstream, and for each exchange

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]


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
        self._lock = threading.Lock()  # guards `seen`: the loop appends, callers read
        self._upstream = upstream
        self._upstream_tls = upstream_tls
        self._server_tls = server_tls
        self._clients: set[_Client] = set()  # open connections, closed by `stop()`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{name}", daemon=True)

    def start(self) -> DelayProxy:
        """Return once the proxy is listening (or raise why it cannot)."""
        self._thread.start()
        self._listening.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; end the loop and its thread."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join()

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

    def _record(self, method: str, target: str) -> None:
        url = urlsplit(target)
        seen = Seen(method, url.path, parse_qs(url.query))
        with self._lock:
            self.seen.append(seen)

    # The loop's thread.

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(
                loop.create_server(
                    lambda: _Client(self),
                    self.host,
                    self.port,
                    ssl=self._server_tls,
                    backlog=128,  # parallel probes open many connections at once
                )
            )
        except BaseException as exc:
            self._failure = exc
            loop.close()
            self._listening.set()
            return
        self._loop = loop
        self._listening.set()
        try:
            loop.run_forever()  # until `stop()`
        finally:
            loop.run_until_complete(self._close(server))
            loop.close()

    async def _close(self, server: asyncio.AbstractServer) -> None:
        server.close()  # the listening socket, at once
        for client in list(self._clients):
            client.abort()
        connecting = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in connecting:
            task.cancel()
        await asyncio.gather(*connecting, return_exceptions=True)
        for _ in range(3):  # let the aborted transports finish closing
            await asyncio.sleep(0)


@dataclass
class _Request:
    method: str
    data: bytes  # as sent upstream: head and body
    keep_alive: bool  # the client's connection stays open after the answer
    attempt: int = 1


@dataclass(frozen=True)
class _Answer:
    status: str  # "200 OK"
    headers: Headers
    body: bytes


class _Client(asyncio.Protocol):
    """One client connection: each request, once complete, is recorded, held `delay`
    seconds, sent through this connection's upstream connection, and answered."""

    def __init__(self, proxy: DelayProxy) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.request: _Request | None = None  # the one being held or forwarded
        self.timer: asyncio.TimerHandle | None = None
        self.upstream: _Upstream | None = None
        self.connecting: asyncio.Task[None] | None = None  # opening `upstream`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.proxy._clients.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.request is None:
            self._take()

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy._clients.discard(self)
        self.request = None
        if self.timer is not None:
            self.timer.cancel()
        if self.upstream is not None:
            self.upstream.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.upstream is not None:
            self.upstream.close()

    def _take(self) -> None:
        """Start on the next request if it is all in the buffer."""
        assert self.transport is not None
        end = self.buffer.find(_END_OF_HEAD)
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self.transport.close()
            return
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = _headers(lines)
        fields = {key.lower(): value for key, value in headers}
        try:
            method, target, version = lines[0].split(" ")
            size = end + len(_END_OF_HEAD) + int(fields.get("content-length") or 0)
        except ValueError:
            self.transport.close()  # not HTTP
            return
        if len(self.buffer) < size:
            return  # the body is still coming
        body = bytes(self.buffer[end + len(_END_OF_HEAD) : size])
        del self.buffer[:size]

        self.proxy._record(method, target)
        sent = [(key, value) for key, value in headers if key.lower() not in _HOP_BY_HOP]
        if "host" not in fields:
            host, port = self.proxy._upstream
            sent.append(("Host", f"{host}:{port}"))
        data = _head(f"{method} {target} HTTP/1.1", sent) + body
        keep_alive = _keeps_alive(version, fields.get("connection", ""))
        self.request = _Request(method, data, keep_alive)
        self.timer = self.loop.call_later(self.proxy.delay, self._forward)

    def _forward(self) -> None:
        """The request has been held long enough: send it upstream."""
        self.timer = None
        if self.request is None:
            return
        if self.upstream is None or self.upstream.closed:
            self.upstream = None
            self.connecting = self.loop.create_task(self._connect())
            return
        self.upstream.exchange(self.request.data, self.request.method == "HEAD", self._answered)

    async def _connect(self) -> None:
        """Open the upstream connection, then forward the request."""
        host, port = self.proxy._upstream
        try:
            _, upstream = await asyncio.wait_for(
                self.loop.create_connection(_Upstream, host, port, ssl=self.proxy._upstream_tls),
                _UPSTREAM_TIMEOUT,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            self._answered(exc)
            return
        self.upstream = upstream
        if self.request is None:  # the client went away meanwhile
            upstream.close()
            return
        upstream.exchange(self.request.data, self.request.method == "HEAD", self._answered)

    def _answered(self, answer: _Answer | Exception) -> None:
        """Relay the upstream's answer, or retry once, or answer 502."""
        request, transport = self.request, self.transport
        if request is None or transport is None:
            return  # the client went away
        if isinstance(answer, Exception):
            if self.upstream is not None:
                self.upstream.close()
                self.upstream = None
            if request.attempt == 1:  # the kept-alive upstream connection may have gone stale
                request.attempt = 2
                self._forward()
                return
            body = f"upstream: {type(answer).__name__}: {answer}".encode()
            answer = _Answer("502 Bad Gateway", [], body)
        self.request = None
        transport.write(_reply(request.method, answer, request.keep_alive))
        if request.keep_alive:
            self._take()  # a request the client sent early
        else:
            transport.close()


class _Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream, one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buffer = bytearray()
        self.head_only = False  # the pending request is a HEAD: its answer has no body
        self.done: Callable[[_Answer | Exception], None] | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def exchange(
        self, request: bytes, head_only: bool, done: Callable[[_Answer | Exception], None]
    ) -> None:
        """Send `request`; `done` gets the answer, or the exception that prevented it."""
        assert self.transport is not None
        self.buffer.clear()
        self.head_only = head_only
        self.done = done
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(_UPSTREAM_TIMEOUT, self._time_out)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.done is not None:
            self._read(eof=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None:
            self._read(eof=True)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _time_out(self) -> None:
        self._finish(TimeoutError(f"no answer in {_UPSTREAM_TIMEOUT:g} s"))

    def _read(self, eof: bool) -> None:
        try:
            answer = _parse_answer(self.buffer, self.head_only, eof)
        except ValueError as exc:
            self._finish(exc)
            return
        if answer is not None:
            self._finish(*answer)
        elif eof:
            self._finish(EOFError("the upstream closed the connection"))

    def _finish(self, answer: _Answer | Exception, keep_alive: bool = False) -> None:
        """Hand over the answer (or failure); close the connection unless it stays alive."""
        done, self.done = self.done, None
        if self.deadline is not None:
            self.deadline.cancel()
        if not keep_alive:
            self.close()
        if done is not None:
            done(answer)


def _parse_answer(buffer: bytearray, head_only: bool, eof: bool) -> tuple[_Answer, bool] | None:
    """The answer in `buffer` and whether the upstream keeps the connection open; None while
    it is incomplete. `eof`: the upstream closed the connection."""
    start = 0
    while True:
        end = buffer.find(_END_OF_HEAD, start)
        if end < 0:
            return None
        lines = buffer[start:end].decode("latin-1").split("\r\n")
        version, _, status = lines[0].partition(" ")
        start = end + len(_END_OF_HEAD)
        if not status.startswith("1"):
            break  # after interim answers (100 Continue)
    headers = _headers(lines)
    fields = {key.lower(): value for key, value in headers}
    keep_alive = _keeps_alive(version, fields.get("connection", ""))
    if head_only or status[:3] in ("204", "304"):
        body: bytes | None = b""
    elif "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(buffer, start)
    elif "content-length" in fields:
        length = int(fields["content-length"])
        body = bytes(buffer[start : start + length]) if len(buffer) >= start + length else None
    elif eof:
        body, keep_alive = bytes(buffer[start:]), False  # it ends where the connection does
    else:
        body = None
    return None if body is None else (_Answer(status, headers, body), keep_alive)


def _dechunk(buffer: bytearray, start: int) -> bytes | None:
    """The data of the chunked body at `start`, or None while incomplete; trailers dropped."""
    chunks = []
    while True:
        end = buffer.find(b"\r\n", start)
        if end < 0:
            return None
        size = int(bytes(buffer[start:end]).split(b";")[0], 16)
        start = end + 2
        if size == 0:
            break
        if len(buffer) < start + size + 2:
            return None
        chunks.append(bytes(buffer[start : start + size]))
        start += size + 2  # the data, and the CRLF after it
    while True:  # trailer fields, up to a blank line
        end = buffer.find(b"\r\n", start)
        if end < 0:
            return None
        if end == start:
            return b"".join(chunks)
        start = end + 2


def _reply(method: str, answer: _Answer, keep_alive: bool) -> bytes:
    headers = [(key, value) for key, value in answer.headers if key.lower() not in _NOT_RELAYED]
    if method == "HEAD":  # no body; pass on the length the upstream announced
        announced = [value for key, value in answer.headers if key.lower() == "content-length"]
        headers.append(("Content-Length", announced[0] if announced else "0"))
        body = b""
    else:
        headers.append(("Content-Length", str(len(answer.body))))
        body = answer.body
    if not keep_alive:
        headers.append(("Connection", "close"))
    return _head(f"HTTP/1.1 {answer.status}", headers) + body


def _headers(lines: list[str]) -> Headers:
    """The (name, value) pairs of a head split into lines (the first line is skipped)."""
    headers = []
    for line in lines[1:]:
        key, colon, value = line.partition(":")
        if colon:
            headers.append((key.strip(), value.strip()))
    return headers


def _head(first: str, headers: Headers) -> bytes:
    lines = [first, *(f"{key}: {value}" for key, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _keeps_alive(version: str, connection: str) -> bool:
    tokens = {token.strip().lower() for token in connection.split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)
