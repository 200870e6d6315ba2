"""What the probe may do and what its answers mean: pure functions, no I/O.

Which hosts it may contact (`host_allowed`, `redirect_refusal`: never a cloud metadata
endpoint or a link-local address, `--probe-deny` and `--probe-allow`), where a
registry's API lives, the order to probe images in (`schedule`), and what a registry's
answer says (`classify`, `describe_status`, `stored_answer`). Kept apart from the transport
(rewriter/probe/registry.py) so that deciding from stored answers needs no HTTP stack at all.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from rewriter.options import CONCURRENCY, DEADLINE, TIMEOUT
from rewriter.probe.challenge import parse_challenges
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict

# All four, in preference order: registry 2.8 answers 404 or 400 for an image that exists
# when its media type is missing from Accept (SPEC section 10).
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"  # docker.io itself serves the website, not /v2/

# Marks a stored answer that came from the token realm rather than the registry (the
# realm's own response is never stored: it is a token response).
TOKEN_REALM_HEADER = "X-Rewriter-Answered-By"
TOKEN_REALM_VALUE = "token-realm"

# Never contacted, whatever --probe-allow says: the instance metadata services hand out
# cloud credentials to anyone who asks from the machine (and GCP's answers carry an
# `access_token`, which the probe would forward to the registry as a bearer token).
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",  # GCP's short name, through the resolver's search domain
        "instance-data",  # AWS's
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address in IPv6 clothing
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local-use NAT64
UNSPECIFIED_V4 = ipaddress.ip_network("0.0.0.0/8")  # connecting to 0.0.0.0 reaches this host


@dataclass(frozen=True)
class ProbeSettings:
    concurrency: int = CONCURRENCY
    timeout: float = TIMEOUT  # per request, seconds
    deadline: float = DEADLINE  # whole render; afterwards every unanswered image is UNKNOWN
    insecure_registries: frozenset[str] = frozenset()  # HOST or HOST:PORT: plain HTTP allowed
    ca_bundle: str | None = None  # PEM file trusted in addition to the default roots
    allow: tuple[str, ...] = ()  # --probe-allow host globs; empty: every host not denied
    deny: tuple[str, ...] = ()  # --probe-deny host globs; win over allow
    # time.monotonic() the deadline counts from (the CLI: when the render began, so that
    # start-up counts too); None: when probe_all is called.
    started_at: float | None = None


def classify(status: int) -> Verdict:
    """SPEC section 4: 2xx public, 401/403 private, 404 missing, anything else unknown."""
    if 200 <= status < 300:
        return Verdict.PUBLIC
    if status in (401, 403):
        return Verdict.PRIVATE
    if status == 404:
        return Verdict.MISSING
    # 429 and 5xx are never "private"; neither is a 400 (wrong Accept) or a stray 3xx.
    return Verdict.UNKNOWN


@functools.lru_cache(maxsize=1024)  # pure; a render's answers share a few challenges
def describe_status(
    status: int, www_authenticate: str | None = None, *, realm: bool = False
) -> str:
    """Short text for a status: "HTTP 200", "401 Basic challenge", "403 from token realm"."""
    if realm:
        return f"{status} from token realm"
    if status == 401:
        challenges = parse_challenges(www_authenticate)
        if challenges:
            first = challenges[0]
            text = f"401 {first.scheme.capitalize()} challenge"
            error = first.get("error")
            return f"{text} ({error})" if error else text
    return f"HTTP {status}"


def challenge_summary(www_authenticate: str | None) -> str | None:
    """What an answer keeps of a challenge: the first challenge's scheme and `error`
    (`Bearer error="insufficient_scope"`), all that `describe_status` says of it. The realm,
    service and scope are not kept: the stored answer stays small, and quick to read."""
    challenges = parse_challenges(www_authenticate)
    if not challenges:
        return None
    first = challenges[0]
    scheme, error = first.scheme.capitalize(), first.get("error")
    if error is None:
        return scheme
    quoted = error.replace("\\", "\\\\").replace('"', '\\"')
    return f'{scheme} error="{quoted}"'


def stored_answer(status: int, headers: Mapping[str, str]) -> ProbeResult | None:
    """The answer a stored manifest response gives, or None for one the probe never
    stores (an unknown answer: do not trust it). `headers` with lower-case names."""
    verdict = classify(status)
    if verdict is Verdict.UNKNOWN:
        return None
    realm = headers.get(TOKEN_REALM_HEADER.lower()) == TOKEN_REALM_VALUE
    detail = describe_status(status, headers.get("www-authenticate"), realm=realm)
    return ProbeResult(verdict, detail, cached=True)


def host_allowed(host: str, settings: ProbeSettings) -> str | None:
    """Why the probe may not contact `host` (a name or address, with or without a port,
    IPv6 with or without brackets), or None when it may.

    In order: link-local and cloud metadata addresses are never contacted; then a
    `--probe-deny` entry that matches refuses; then, when `--probe-allow` entries are
    given, one of them must match. An entry is a shell-style glob (case-insensitive,
    tried against the host alone and against host:port; Docker Hub's API host also
    answers to `docker.io`), an address or a CIDR block (`10.0.0.0/8`). An address is
    matched in its canonical spelling whatever way it is written (`2130706433`,
    `0x7f000001`, `127.1`, `[::ffff:7f00:1]` are all 127.0.0.1, as the resolver reads
    them; `0` and `::` reach loopback). Loopback and private networks are allowed unless
    denied.
    """
    name, port = _split_host(host)
    forbidden = forbidden_address(name)
    if forbidden:
        return f"probe denied: {forbidden}"
    names = [name] + ([DOCKER_HUB] if name == DOCKER_HUB_API else [])
    addresses = addresses_of(name)
    if addresses:
        names = []  # an address is matched by what it is, not by how it is written
    for entry in settings.deny:
        if _entry_matches(entry, names, addresses, port):
            return f"probe denied by --probe-deny {entry!r}"
    if settings.allow and not any(
        _entry_matches(entry, names, addresses, port) for entry in settings.allow
    ):
        return "probe denied: not in --probe-allow"
    return None


def peer_refusal(host: str, port: int | None, peer: str, settings: ProbeSettings) -> str | None:
    """Why the probe may not talk to `peer`, the address a connection to `host` reached
    (a name resolves where its owner likes), or None. Never a forbidden address; never
    an address `--probe-deny` matches (`127.*`, `10.0.0.0/8`); and with `--probe-allow`,
    either `host` is a name an entry allows by name, or `peer` is an allowed address."""
    forbidden = forbidden_address(peer)
    if forbidden:
        return f"probe denied: {host} is a {forbidden} ({peer})"
    addresses = addresses_of(peer)
    text = str(port) if port else ""
    for entry in settings.deny:
        if _entry_matches(entry, [], addresses, text):
            return f"probe denied: {host} is {peer}, denied by --probe-deny {entry!r}"
    if not settings.allow:
        return None
    name = host.strip("[]").rstrip(".").lower()
    names = [] if addresses_of(name) else [name] + ([DOCKER_HUB] if name == DOCKER_HUB_API else [])
    if any(_entry_matches(entry, names, addresses, text) for entry in settings.allow):
        return None
    return f"probe denied: {host} is {peer}, not in --probe-allow"


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def addresses_of(host: str) -> list[Address]:
    """Every address `host` stands for when it is an address in any spelling the resolver
    accepts, canonical first, then what it reaches: the IPv4 address inside an
    IPv4-mapped or NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`) IPv6 address, and loopback
    for `0.0.0.0/8` and `::`. Empty for a name."""
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    address = _as_address(name)
    if address is None:
        return []
    found: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address in NAT64 or address in NAT64_LOCAL:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in NAT64_LOCAL:  # RFC 6052 with a /48 prefix: bits 48-63 and 72-87
            value = int(address)
            high, low = (value >> 64) & 0xFFFF, (value >> 40) & 0xFFFF
            found.append(ipaddress.IPv4Address(high << 16 | low))
        if address == ipaddress.IPv6Address("::"):
            found.append(ipaddress.IPv6Address("::1"))
    if any(isinstance(a, ipaddress.IPv4Address) and a in UNSPECIFIED_V4 for a in found):
        found.append(ipaddress.IPv4Address("127.0.0.1"))
    return list(dict.fromkeys(found))


def _entry_matches(entry: str, names: list[str], addresses: list[Address], port: str) -> bool:
    """Whether a --probe-deny/--probe-allow `entry` matches a host: as a CIDR block or an
    address (any spelling) against `addresses`, else as a glob against `names` and the
    addresses' canonical text, each alone and with `:port`."""
    network = _entry_network(entry)
    if network is not None:
        return any(a.version == network.version and a in network for a in addresses)
    texts = names + [str(a) for a in addresses]
    candidates = texts + ([f"{text}:{port}" for text in texts] if port else [])
    glob = entry.lower()
    return any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates)


@functools.lru_cache(maxsize=256)
def _entry_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The block a --probe-deny/--probe-allow entry names (`10.0.0.0/8`, `[::1]`,
    `2130706433`), or None for a glob."""
    text = entry.strip().lower()
    if "/" in text:
        address, _, bits = text.partition("/")
        parsed = addresses_of(address)
        if not parsed or not bits.isdigit():
            return None
        try:
            return ipaddress.ip_network(f"{parsed[0]}/{bits}", strict=False)
        except ValueError:
            return None
    parsed = addresses_of(text)
    return ipaddress.ip_network(parsed[0]) if parsed else None


def registry_refusal(registry: str, settings: ProbeSettings) -> str | None:
    """Why the probe may not ask `registry` at all (the flags, or a forbidden address),
    checked on its name and on where its API lives (docker.io: registry-1.docker.io)."""
    refused = host_allowed(registry, settings)
    if refused is None and api_host(registry) != registry:
        refused = host_allowed(api_host(registry), settings)
    return refused


def no_proxy_matches(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether `NO_PROXY` says to reach `host` (on `port`) directly, as curl and requests
    read it: `*`; a name or address, with or without a port; a domain, with or without
    its leading dot, for itself and every name below it; a CIDR block for the addresses
    in it."""
    name = host.strip("[]").rstrip(".").lower()
    address = _as_address(name) if name else None
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        if "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address is not None and address.version == network.version and address in network:
                return True
            continue
        entry_host, entry_port = _split_host(entry)
        entry_host = entry_host.lstrip(".").rstrip(".")
        if entry_port and entry_port != str(port or ""):
            continue
        if name == entry_host or (address is None and name.endswith("." + entry_host)):
            return True
    return False


def deadline_at(settings: ProbeSettings, now: float) -> float:
    """The time.monotonic() by which the probes must be over: `settings.deadline` from
    `settings.started_at`, or from `now` when it is None."""
    started = now if settings.started_at is None else settings.started_at
    return started + max(settings.deadline, 0.0)


def forbidden_address(host: str) -> str | None:
    """Why the probe must never contact `host`, whatever the flags ("cloud metadata
    endpoint", "link-local address"), or None. Pure: names are not resolved here (the
    transport checks the address it connects to). Numeric spellings that the C resolver
    also accepts (`2852039166`, `0xa9fea9fe`, `169.254.43518`) count as addresses."""
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in METADATA_HOSTS:
        return "cloud metadata endpoint"
    candidates = addresses_of(name)
    if any(candidate in METADATA_ADDRESSES for candidate in candidates):
        return "cloud metadata endpoint"
    if any(candidate in network for candidate in candidates for network in LINK_LOCAL):
        return "link-local address"
    return None


def _as_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    # inet_aton's legacy forms; only for names made of digits, dots and hex, so that an
    # ordinary host name is never mistaken for one.
    if name and all(c in "0123456789abcdefx." for c in name) and name[0].isdigit():
        import socket  # here: a render answered from the cache imports no network module

        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def _split_host(host: str) -> tuple[str, str]:
    """("name", "port") from "name", "name:port", "[v6]:port", "[v6]" or a bare "v6"."""
    text = host.strip().lower()
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        return inside, rest.removeprefix(":")
    if text.count(":") == 1:
        name, _, port = text.partition(":")
        return name, port
    return text, ""


def redirect_refusal(
    url: str, settings: ProbeSettings, from_scheme: str | None, what: str
) -> str | None:
    """Why the probe may not go on to `url`, a token realm or redirect target (`what`
    names it for the message), coming from a `from_scheme` conversation. A URL it cannot
    read is left to the transport, which then says "invalid URL". A URL that parsers
    may read as different hosts (a backslash, userinfo, a space or control character)
    is refused: the host checked here must be the host the transport connects to."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    ambiguity = url_ambiguity(url)
    if ambiguity:
        shown = parts.netloc.rpartition("@")[2] if ambiguity == "userinfo" else parts.netloc
        return f"{what} {shown!r}: probe denied: ambiguous URL ({ambiguity})"
    if not host:
        return None
    name = f"[{host}]" if ":" in host else host
    target = f"{name}:{port}" if port else name
    if from_scheme == "https" and parts.scheme.lower() == "http":
        return f"{what} {target}: probe denied: HTTPS downgraded to plain HTTP"
    refused = host_allowed(target, settings)
    return f"{what} {target}: {refused}" if refused else None


def url_ambiguity(url: str) -> str | None:
    """What makes `url` read differently by different URL parsers (urllib.parse, which
    the policy reads, and urllib3, which connects), or None: `http://127.0.0.1:5056\\@a/`
    is `a` to one and 127.0.0.1 to the other. A realm or a redirect has no business with
    any of these."""
    if "\\" in url:
        return "backslash"
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "space or control character"
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        return "userinfo"
    return None


def api_host(registry: str) -> str:
    """Where a registry's /v2/ API lives: Docker Hub's is not docker.io."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def token_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def schedule(keys: Iterable[ProbeKey]) -> list[ProbeKey]:
    """The order to probe `keys` in: registries in turn, and within a registry each
    repository's first reference before any repository's second. The first requests
    then ping every registry at once, and no worker waits for a token another worker is
    still fetching (the references of one repository share their token)."""
    turns: dict[str, int] = {}  # registry -> its turn among the registries
    ranks: dict[tuple[str, str], int] = {}  # repository -> its rank within its registry
    repositories: Counter[str] = Counter()  # registry -> repositories ranked so far
    references: Counter[tuple[str, str]] = Counter()  # repository -> references so far
    ranked: list[tuple[tuple[int, int, int], ProbeKey]] = []
    for key in dict.fromkeys(keys):
        registry, repository, _ = key
        turn = turns.setdefault(registry, len(turns))
        if (registry, repository) not in ranks:
            ranks[registry, repository] = repositories[registry]
            repositories[registry] += 1
        nth = references[registry, repository]
        references[registry, repository] += 1
        ranked.append(((nth, ranks[registry, repository], turn), key))
    return [key for _, key in sorted(ranked, key=lambda item: item[0])]
