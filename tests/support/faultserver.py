"""A registry stand-in on raw sockets, for the faults an HTTP server library cannot be
made to produce: a listener that accepts and never answers, a status line dripped one
byte per second, a connection reset, an endless body, a plain-HTTP answer on the TLS
port, a certificate from the wrong CA.

`FaultServer(host, port, routes)` answers each request by the behaviour routed to its path
(query string ignored; an absolute-form target, as sent through a proxy, is reduced to
its path). Every request is recorded with all its header lines exactly as received, so
the security tests can say what a registry would have seen. Each connection gets a
daemon thread and is answered with `Connection: close`; `stop()` unblocks and closes
every connection, so a test never waits on a hanging behaviour.

Loopback only; nothing here touches the network beyond the addresses it is given.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # as sent: /v2/ or http://host/v2/ (through a proxy)
    path: str  # without scheme, host and query
    headers: tuple[tuple[str, str], ...]  # every header line, in order

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class Connection:
    """One accepted connection, as a behaviour sees it."""

    def __init__(self, sock: socket.socket, stopped: threading.Event) -> None:
        self.sock = sock
        self.stopped = stopped

    def send(self, data: bytes) -> bool:
        """False once the client has gone (the behaviour should then return)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def respond(
        self, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        self.send(_head(status, head) + body)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 302: "Found", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}  # fmt: skip

# A behaviour answers one request on its connection; the connection is closed afterwards.
Behaviour = Callable[[Connection, Request], None]


# -- behaviours ------------------------------------------------------------------------


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Behaviour:
    def answer(conn: Connection, request: Request) -> None:
        conn.respond(code, headers, b"" if request.method == "HEAD" else body)

    return answer


def hang() -> Behaviour:
    """Read the request, then never send a byte (until the server stops)."""

    def answer(conn: Connection, request: Request) -> None:
        conn.stopped.wait()

    return answer


def drip(
    code: int = 200, headers: dict[str, str] | None = None, interval: float = 1.0
) -> Behaviour:
    """A valid answer, one byte per `interval`: never idle long enough for a read timeout."""

    def answer(conn: Connection, request: Request) -> None:
        data = _head(code, {"Content-Length": "0", "Connection": "close", **(headers or {})})
        for byte in data:
            if not conn.send(bytes([byte])) or conn.stopped.wait(interval):
                return

    return answer


def reset() -> Behaviour:
    """Read the request, then abort the connection: the client sees a TCP RST."""

    def answer(conn: Connection, request: Request) -> None:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return answer


def close() -> Behaviour:
    """Read the request, then close cleanly without a byte of answer."""

    def answer(conn: Connection, request: Request) -> None:
        pass

    return answer


def raw(data: bytes) -> Behaviour:
    """Whatever bytes, as the answer (not HTTP, or broken HTTP)."""

    def answer(conn: Connection, request: Request) -> None:
        conn.send(data)

    return answer


def answer_on_connect(data: bytes) -> Behaviour:
    """For `on_connect`: wait for the client's first bytes, whatever they are (a TLS
    ClientHello), then answer with `data`, as a plain HTTP server on the TLS port does."""

    def answer(conn: Connection, request: Request) -> None:
        conn.sock.recv(4096)
        conn.send(data)

    return answer


def endless(code: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    """A head announcing a body of 1 TB, then body bytes as fast as the client reads them,
    even after a HEAD: a client that reads the body never finishes."""

    def answer(conn: Connection, request: Request) -> None:
        head = {"Content-Length": str(10**12), "Connection": "close", **(headers or {})}
        if not conn.send(_head(code, head)):
            return
        chunk = b'{"token": "' + b"x" * 65536
        while not conn.stopped.is_set() and conn.send(chunk):
            pass

    return answer


def delayed(behaviour: Behaviour, seconds: float) -> Behaviour:
    """`behaviour`, after `seconds` (cut short when the server stops)."""

    def answer(conn: Connection, request: Request) -> None:
        if not conn.stopped.wait(seconds):
            behaviour(conn, request)

    return answer


def redirect(location: str, code: int = 302) -> Behaviour:
    return status(code, {"Location": location})


def token(value: str = "anon-token") -> Behaviour:
    return status(200, {"Content-Type": "application/json"}, json.dumps({"token": value}).encode())


def with_token(authorized: Behaviour, anonymous: Behaviour) -> Behaviour:
    """`authorized` when the request carries `Authorization: Bearer anon-token`."""

    def answer(conn: Connection, request: Request) -> None:
        tokened = request.header("Authorization") == ["Bearer anon-token"]
        (authorized if tokened else anonymous)(conn, request)

    return answer


# -- the server ------------------------------------------------------------------------


@dataclass
class FaultServer:
    host: str
    port: int
    routes: dict[str, Behaviour]
    default: Behaviour = field(default_factory=lambda: status(404))
    tls: ssl.SSLContext | None = None
    on_connect: Behaviour | None = None  # instead of reading a request at all
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server((self.host, self.port), backlog=128)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def domain(self) -> str:
        return self.host if self.port in (80, 443) else f"{self.host}:{self.port}"

    @property
    def base(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.domain}"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def seen(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Connection(sock, self._stopped)
        try:
            sock.settimeout(30)  # a behaviour waits on the stop event, not on this
            if self.on_connect is not None:
                self.on_connect(conn, Request("", "", "", ()))
                return
            if self.tls is not None:
                conn.sock = sock = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._open.add(sock)
            request = self._read(sock)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            self.routes.get(request.path, self.default)(conn, request)
        except (OSError, ssl.SSLError):
            pass  # the client went away, or did not speak TLS: nothing to answer
        finally:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    @staticmethod
    def _read(sock: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk or len(data) > MAX_HEAD:
                return None
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        first, *lines = head.split("\r\n")
        method, target, _ = [*first.split(" "), "", ""][:3]
        headers = tuple(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines)
        )
        path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
        return Request(method, target, path, headers)


# -- certificates (cryptography; EC keys are made in milliseconds) ---------------------


@dataclass(frozen=True)
class Tls:
    ca_cert: Path  # the CA the client is told to trust (--ca-bundle)
    server: ssl.SSLContext  # a certificate from that CA, for every given address
    wrong_ca: ssl.SSLContext  # a self-signed certificate for the same addresses
    wrong_name: ssl.SSLContext  # a certificate from the CA, for another address only


def make_tls(directory: Path, ips: list[str]) -> Tls:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def alternative_names(addresses: list[str]) -> x509.SubjectAlternativeName:
        return x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in addresses]
        )

    names = alternative_names(ips)
    elsewhere = alternative_names(["127.255.255.254"])  # not one of `ips`: never picked

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
        issuer_key: ec.EllipticCurvePrivateKey, ca: bool,
        san: x509.SubjectAlternativeName | None = None,
    ) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(san or names, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def context(
        name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> ssl.SSLContext:
        (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(pem_key(key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(directory / f"{name}.crt", directory / f"{name}.key")
        return ctx

    ca_key, server_key, rogue_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    ca = certificate("fault test CA", ca_key, "fault test CA", ca_key, ca=True)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = certificate("fault registry", server_key, "fault test CA", ca_key, ca=False)
    rogue = certificate("rogue registry", rogue_key, "rogue registry", rogue_key, ca=False)
    return Tls(
        ca_cert=directory / "ca.crt",
        server=context("server", server, server_key),
        wrong_ca=context("rogue", rogue, rogue_key),
        wrong_name=context(
            "other",
            certificate("other registry", other_key, "fault test CA", ca_key, False, elsewhere),
            other_key,
        ),
    )
