"""Three private registries on loopback, each behind a delaying proxy (figures 3 to 5).

Built from the test suite's helpers (`tests/registries.py`, `tests/tokenserver.py`):
Debian's `docker-registry` (distribution 2.8), one behind htpasswd (a Basic challenge) and
two behind token auth (a Bearer challenge, with the suite's JWT token server as realm).
Every image is private to an anonymous client whether or not it was ever pushed (htpasswd
answers 401 before looking at storage; the realm grants no action on a private
repository), so nothing needs pushing.

Each registry and realm listens on plain HTTP on its own address; a `DelayProxy` with the
test CA's certificate holds the image domain (`<front>:443`, and `<front>:5001` for the
realm), so image names carry no port and every request the probe sends is delayed and
counted. The probe speaks TLS to every proxy, as to a real registry; behind them nothing
does TLS again, and the registries run lean (errors-only logs, one Go processor, fewer
garbage collections): what the servers spend on the same two cores is taken from the
program being measured.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delayproxy import DelayProxy, server_context
from inputs import REPO

TESTS = REPO / "tests"
REALM_PORT = 5001
SERVICE, ISSUER = "bench-registry", "bench-issuer"
# A bcrypt hash (cost 4) of a random password nobody uses: the registry only needs a valid
# htpasswd file, and the benchmark never logs in.
HTPASSWD = "pusher:$2b$04$Wwzgn3TGHZosioiuePzUMuPDRORSie1vwAaMfFHyzwAfK9u8hCn6S\n"
KINDS = (("basic", "htpasswd"), ("token-a", "token"), ("token-b", "token"))


@dataclass
class Front:
    """One registry as the probe sees it: `host` is the image domain."""

    name: str
    kind: str  # "htpasswd" or "token"
    host: str
    registry: DelayProxy
    realm: DelayProxy | None


@dataclass
class PrivateRegistries:
    fronts: list[Front]
    ca_bundle: str
    stops: list[Callable[[], None]] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return [front.host for front in self.fronts]

    def proxies(self) -> list[DelayProxy]:
        return [p for front in self.fronts for p in (front.registry, front.realm) if p]

    def requests(self) -> int:
        """Every request any registry or realm was sent so far."""
        return sum(proxy.count() for proxy in self.proxies())

    def stop(self) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"bench: stopping a server failed: {exc}", file=sys.stderr)
        self.stops.clear()


def _helpers() -> tuple[Any, Any]:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return (
        importlib.import_module("support.registries"),
        importlib.import_module("support.tokenserver"),
    )


def unavailable() -> str | None:
    """Why the registries cannot run here, or None."""
    missing = [tool for tool in ("docker-registry", "openssl") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (scripts/test installs them)"
    try:
        helpers, _ = _helpers()
    except ImportError as exc:
        return f"test helpers need {exc.name} (pip install '.[test]' cryptography)"
    if not helpers.can_bind_privileged():
        return "needs to bind ports 80 and 443 on loopback (root, or a low port start)"
    return None


def start(workdir: Path, delay: float) -> PrivateRegistries:
    """Start the three registries and their proxies; the caller must `stop()` them."""
    helpers, tokens = _helpers()
    hosts = helpers.pick_hosts(2 * len(KINDS), ports=(80, 443, REALM_PORT))
    fronts, upstreams = hosts[: len(KINDS)], hosts[len(KINDS) :]
    pki = helpers.make_pki(workdir / "pki", hosts)
    ca_bundle = str(pki.ca_cert)
    server_tls = server_context(str(pki.server_cert), str(pki.server_key))
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(HTPASSWD)

    env = PrivateRegistries([], ca_bundle)
    try:
        for (name, kind), front, upstream in zip(KINDS, fronts, upstreams, strict=True):
            realm: DelayProxy | None = None
            if kind == "token":
                policy = tokens.TokenPolicy(
                    issuer=ISSUER, service=SERVICE, users={}, public=frozenset()
                )
                server = tokens.TokenServer(
                    upstream,
                    REALM_PORT,
                    policy,
                    pki.token_key.read_bytes(),
                    pki.token_cert.read_bytes(),
                    None,  # plain HTTP: the proxy in front speaks TLS to the probe
                    None,
                ).start()
                env.stops.append(server.stop)
                realm = DelayProxy(
                    f"{name}-realm",
                    (front, REALM_PORT),
                    (upstream, REALM_PORT),
                    delay=delay,
                    server_tls=server_tls,
                ).start()
                env.stops.append(realm.stop)
                auth: dict[str, object] = {
                    "token": {
                        "realm": f"https://{front}:{REALM_PORT}/token",
                        "service": SERVICE,
                        "issuer": ISSUER,
                        "rootcertbundle": str(pki.token_cert),
                    }
                }
            else:
                auth = {"htpasswd": {"realm": "bench", "path": str(htpasswd)}}
            registry = helpers.start_registry(name, upstream, workdir, None, auth, lean=True)
            env.stops.append(registry.stop)
            proxy = DelayProxy(
                name, (front, 443), (upstream, 80), delay=delay, server_tls=server_tls
            ).start()
            env.stops.append(proxy.stop)
            env.fronts.append(Front(name, kind, front, proxy, realm))
    except BaseException:
        env.stop()
        raise
    return env
