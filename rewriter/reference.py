"""Container image references, parsed the way Docker, containerd and the kubelet parse them.

The grammar is a port of github.com/distribution/reference (regexp.go, reference.go,
normalize.go, v0.6) and of the digest validation in github.com/opencontainers/go-digest::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [ domain "/" ] path
    domain           := host [ ":" port ]
    host             := domain-name | IPv4 | "[" IPv6 "]"
    domain-name      := domain-component ( "." domain-component )*
    domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
    port             := /[0-9]+/
    path             := path-component ( "/" path-component )*
    path-component   := /[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" /[0-9a-fA-F]{32,}/
    algorithm        := /[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*/

Values are read as `ParseNormalizedNamed` reads them, since that is what the container
runtimes call on a pod's `image:`:

- the first path element is a domain only if it contains "." or ":", is `localhost`, or
  has an uppercase letter (`splitDockerDomain`); otherwise the image is on Docker Hub;
- `docker.io` and `index.docker.io` are Docker Hub, whose single-component repositories
  live under `library/`;
- a repository with an uppercase letter is rejected, as is a bare 64-hex image ID;
- the repository path (normalized, so with `library/` on Docker Hub) is at most 255
  characters (`RepositoryNameTotalLengthMax`; the domain does not count since v0.6);
- a digest must name an algorithm go-digest knows (sha256, sha384, sha512) and carry its
  exact length of lowercase hex.

Deliberate differences from the Go package, each for a value Go accepts or rejects with
a less useful answer:

- a first component with "." and "_" (`my_reg.local/app`) is not a valid host, so Go's
  `Domain()` is empty; containerd still dials it as a host, and so do we;
- "must be lowercase" is reported only when lower-casing would make the value valid
  (Go says it for `{{ .Values.Image }}` too), and an empty value is "invalid reference
  format" with no further detail;
- the Docker Hub host names are recognised case-insensitively (`Docker.IO/x`).

Nothing here ever rewrites `text`: output keeps the user's spelling (SPEC section 2).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from rewriter.errors import RewriterError
from rewriter.probe.verdict import ProbeKey

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "REPOSITORY_NAME_MAX",
    "TAG_MAX",
    "ImageRef",
    "InvalidReference",
]

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
REPOSITORY_NAME_MAX = 255
TAG_MAX = 128

ERR_FORMAT = "invalid reference format"
ERR_UPPERCASE = "repository name must be lowercase"
ERR_TOO_LONG = f"repository name must not be more than {REPOSITORY_NAME_MAX} characters"
ERR_IDENTIFIER = "invalid repository name, cannot specify 64-byte hexadecimal strings"
ERR_DIGEST_FORMAT = "invalid checksum digest format"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"


class InvalidReference(RewriterError):
    """A value that is not an image reference; str(e) is a short reason.

    The reasons are the Go package's error strings ('invalid reference format',
    'repository name must be lowercase', ...), so they read the same as kubelet events.
    """


# The pieces keep the Go names so the two files can be read side by side. Two of them
# are rewritten into equivalent, unambiguous forms: Python's backtracking engine (unlike
# RE2) would otherwise go quadratic on long hyphenated labels.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
# Same language as Go's `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`.
_DOMAIN_NAME_COMPONENT = r"[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[[a-fA-F0-9:]+\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})"
_OPTIONAL_PORT = r"(?::[0-9]+)?"
_DOMAIN_AND_PORT = rf"{_HOST}{_OPTIONAL_PORT}"
_TAG = rf"\w[\w.-]{{0,{TAG_MAX - 1}}}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Go's referencePat. Its name group splits into domain and path by splitDockerDomain's
# rule afterwards, not by the regexp's greedy domain. ASCII because Go's \w is
# [0-9A-Za-z_]; used with fullmatch because `$` would accept a trailing "\n".
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})"
    rf"(?::(?P<tag>{_TAG}))?"
    rf"(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)

# go-digest: the registered algorithms, with their encoded lengths (lowercase hex only),
# and the looser shape it uses to tell "unsupported" from "malformed".
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+", re.ASCII)
_GO_DIGEST_SHAPE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One parsed image reference; `text` is exactly what was written."""

    text: str
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse `text` or raise InvalidReference. Memoized: images repeat across a stream."""
        if not isinstance(text, str):
            raise InvalidReference(f"not a string ({type(text).__name__})")
        result = _parse(text)
        if isinstance(result, str):
            # A fresh exception each time: a cached instance would pile up tracebacks.
            raise InvalidReference(result)
        return result

    def __str__(self) -> str:
        return self.text

    @property
    def registry(self) -> str:
        """The host (with port) to match and probe; Docker Hub is always 'docker.io'."""
        host = self.domain.lower()
        if host in ("", DEFAULT_REGISTRY, LEGACY_DEFAULT_REGISTRY):
            return DEFAULT_REGISTRY
        return host

    @property
    def repository(self) -> str:
        """The path as the registry knows it: 'library/nginx' for Docker Hub's 'nginx'."""
        if "/" not in self.path and self.registry == DEFAULT_REGISTRY:
            return OFFICIAL_REPO_PREFIX + self.path
        return self.path

    @property
    def name(self) -> str:
        """Normalized name for rules and cache keys, e.g. 'docker.io/library/nginx'."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest, else the tag, else 'latest'."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def probe_key(self) -> ProbeKey:
        """What one probe answers for: (registry, repository, reference)."""
        return (self.registry, self.repository, self.reference)

    @property
    def locator(self) -> str:
        """The text before ':tag' / '@digest', as written."""
        return self.text[: len(self.text) - len(self.suffix)]

    @property
    def suffix(self) -> str:
        """':tag', '@digest', ':tag@digest' or '', byte for byte as written."""
        suffix = ""
        if self.tag is not None:
            suffix = ":" + self.tag
        if self.digest is not None:
            suffix += "@" + self.digest
        return suffix

    @property
    def has_port(self) -> bool:
        """Whether the written domain carries a port ('localhost:5000', '[::1]:5000')."""
        if self.domain.startswith("["):
            return "]:" in self.domain
        return ":" in self.domain

    def with_locator(self, locator: str) -> str:
        """`locator` followed by this reference's tag/digest exactly as written."""
        return locator + self.suffix

    @property
    def familiar(self) -> str:
        """The shortest Docker spelling of the name (Go's FamiliarName): 'nginx', 'org/app'."""
        if self.registry != DEFAULT_REGISTRY:
            return f"{self.domain}/{self.path}"
        repository = self.repository
        remainder = repository.removeprefix(OFFICIAL_REPO_PREFIX)
        if remainder != repository and "/" not in remainder:
            return remainder
        return repository


@functools.lru_cache(maxsize=16384)
def _parse(text: str) -> ImageRef | str:
    """The parse proper: an ImageRef, or the reason it is not one (failures are cached too)."""
    if _IDENTIFIER.fullmatch(text):
        # A bare image ID: the runtime would look it up locally, not on any registry.
        return ERR_IDENTIFIER
    match = _REFERENCE.fullmatch(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE.fullmatch(lowered):
            return ERR_UPPERCASE
        return ERR_FORMAT

    name = match["name"]
    first, slash, rest = name.partition("/")
    if slash and _is_domain(first):
        # Also when `first` failed the host grammar but the whole name still matched as a
        # path (`my_reg.local/app`): every runtime dials that first element as a host.
        domain, path = first, rest
    else:
        domain, path = "", name

    repository_length = len(path)
    if "/" not in path and domain.lower() in ("", DEFAULT_REGISTRY, LEGACY_DEFAULT_REGISTRY):
        repository_length += len(OFFICIAL_REPO_PREFIX)
    if repository_length > REPOSITORY_NAME_MAX:
        return ERR_TOO_LONG

    digest: str | None = match["digest"]
    if digest is not None:
        problem = _digest_problem(digest)
        if problem is not None:
            return problem
    return ImageRef(text=text, domain=domain, path=path, tag=match["tag"], digest=digest)


def _is_domain(first: str) -> bool:
    """splitDockerDomain: which first path elements name a registry host."""
    return first == LOCALHOST or "." in first or ":" in first or first.lower() != first


def _digest_problem(digest: str) -> str | None:
    """go-digest's Digest.Validate, for a value the reference grammar already accepted."""
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        return ERR_DIGEST_UNSUPPORTED if _GO_DIGEST_SHAPE.fullmatch(digest) else ERR_DIGEST_FORMAT
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        return ERR_DIGEST_FORMAT
    return None
