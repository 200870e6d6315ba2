"""The decision for one image: keep it, route it through the proxy, or fail.

Pure: the rules and (when no rule applies) the probe's answer go in, a Decision comes
out. No I/O, so every branch of SPEC section 4 is a one-line test.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from rewriter.probe.verdict import ProbeResult, Verdict
from rewriter.reference import ImageRef, InvalidReference

DEFAULT_PROXY_HOST = "proxy.replicated.com"
DEFAULT_REGISTRY_HOST = "registry.replicated.com"
OFFLINE = "offline, not in cache"  # the answer for an image --offline cannot look up


class OnProbeError(enum.Enum):
    PROXY = "proxy"  # KOTS behaviour: what cannot be checked is treated as private
    KEEP = "keep"
    FAIL = "fail"


class Action(enum.Enum):
    KEEP = "keep"  # public: unchanged, no secret
    PROXY = "proxy"  # private: rewritten to the proxy, needs the secret
    LICENSED = "licensed"  # already on the proxy or vendor registry: needs the secret
    LOCAL = "local"  # air-gap: on (or moved to) the customer's own registry
    FAIL = "fail"  # cannot be handled: the render fails, naming the image


@dataclass(frozen=True, slots=True)
class Rules:
    app_slug: str
    proxy_host: str = DEFAULT_PROXY_HOST
    registry_host: str = DEFAULT_REGISTRY_HOST
    public: tuple[str, ...] = ()
    private: tuple[str, ...] = ()
    on_probe_error: OnProbeError = OnProbeError.PROXY
    local_registry: str | None = None  # air-gap: HOST[/NAMESPACE] that receives every image
    keep_path: bool = False  # air-gap: keep registry and path instead of the last component


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str  # for `scan` and messages: "rule --private '*'", "probe: 401 Basic challenge"
    new_text: str | None = None  # the rewritten value, when it changes

    @property
    def needs_secret(self) -> bool:
        return self.action in _NEEDS_SECRET


# (Named once: an enum member read from its class costs a lookup each time.)
_NEEDS_SECRET = (Action.PROXY, Action.LICENSED, Action.LOCAL)


def decide_by_rule(ref: ImageRef, rules: Rules) -> Decision | None:
    """Steps 1-3 of SPEC section 4; None when only a probe can tell."""
    if rules.local_registry is not None:
        return local(ref, rules.local_registry, rules.keep_path)
    if ref.registry in (rules.proxy_host, DEFAULT_PROXY_HOST):
        return Decision(Action.LICENSED, "on the proxy", _move(ref, rules.proxy_host))
    if ref.registry in (rules.registry_host, DEFAULT_REGISTRY_HOST):
        return Decision(Action.LICENSED, "on the vendor registry", _move(ref, rules.registry_host))
    for glob in rules.public:
        if fnmatch.fnmatchcase(ref.name, glob):
            return Decision(Action.KEEP, f"rule --public {glob!r}")
    for glob in rules.private:
        if fnmatch.fnmatchcase(ref.name, glob):
            return proxy(ref, rules, f"rule --private {glob!r}")
    return None


def decide(ref: ImageRef, rules: Rules, probe: ProbeResult | None) -> Decision:
    """The whole of SPEC section 4: rules first, then the probe (None: not asked/offline)."""
    by_rule = decide_by_rule(ref, rules)
    if by_rule is not None:
        return by_rule
    if probe is None:
        return _unknown(ref, rules, OFFLINE)
    source = "cache" if probe.cached else "probe"
    if probe.verdict is Verdict.PUBLIC:
        return Decision(Action.KEEP, f"{source}: public ({probe.detail})")
    if probe.verdict is Verdict.PRIVATE:
        return proxy(ref, rules, f"{source}: private ({probe.detail})")
    if probe.verdict is Verdict.MISSING:
        return proxy(ref, rules, f"{source}: not found ({probe.detail})")
    # No warnings here, for an image not found or not probed: the command line says them
    # once per registry (rewriter/diagnostics.py `probe_warnings`), however many images each
    # hit, in the words of `missing_reason` and `unknown_reason`.
    return _unknown(ref, rules, _failed(probe.detail))


def proxy(ref: ImageRef, rules: Rules, reason: str) -> Decision:
    """Route through the proxy, keeping the user's spelling and tag/digest byte for byte."""
    if ref.has_port:
        # A port cannot appear in a proxy path component: the result would not parse.
        return Decision(
            Action.FAIL, f"{reason}; a private image on a registry with a port cannot be proxied"
        )
    new_text = ref.with_locator(f"{rules.proxy_host}/proxy/{rules.app_slug}/{ref.locator}")
    try:
        # An uppercase or IPv6 host, or a name near the length limit, cannot become a
        # path: never emit a reference the kubelet would reject.
        ImageRef.parse(new_text)
    except InvalidReference as exc:
        return Decision(Action.FAIL, f"{reason}; the proxied name would be invalid ({exc})")
    return Decision(Action.PROXY, reason, new_text)


def local(ref: ImageRef, registry: str, keep_path: bool) -> Decision:
    """Air-gap: every image, public or private, comes from the customer's registry."""
    host = registry.split("/", 1)[0].lower()
    if ref.registry == host:
        return Decision(Action.LOCAL, "on the local registry")
    # KOTS keeps only the last path component, so different images can collide; the
    # full normalized name cannot.
    tail = ref.name if keep_path else ref.repository.rsplit("/", 1)[-1]
    new_text = ref.with_locator(f"{registry}/{tail}")
    reason = "local registry" + (" (--keep-path)" if keep_path else "")
    try:
        ImageRef.parse(new_text)
    except InvalidReference as exc:
        return Decision(Action.FAIL, f"{reason}; the new name would be invalid ({exc})")
    return Decision(Action.LOCAL, reason, new_text)


def collisions(decided: Mapping[ImageRef, Decision]) -> dict[ImageRef, Decision]:
    """Decisions that send different repositories to one name, turned into failures.

    Pure and separate from `local()` because it needs every image of the render at once.
    """
    sources: dict[str, set[str]] = {}
    for ref, decision in decided.items():
        if decision.new_text is not None:
            target = ImageRef.parse(decision.new_text).name
            sources.setdefault(target, set()).add(ref.name)
    failed: dict[ImageRef, Decision] = {}
    for ref, decision in decided.items():
        if decision.new_text is None:
            continue
        target = ImageRef.parse(decision.new_text).name
        others = sorted(sources[target] - {ref.name})
        if others:
            reason = (
                f"{decision.reason}; {ref.name} and {', '.join(others)} would all become "
                f"{target}: use --keep-path"
            )
            failed[ref] = Decision(Action.FAIL, reason)
    return failed


def unknown_reason(detail: str, policy: str) -> str:
    """Why an image without a probe answer got its decision: `probe failed: timeout
    after 5.0s; --on-probe-error=proxy`, the same words in warnings and errors."""
    return f"{_failed(detail)}; --on-probe-error={policy}"


def missing_reason(detail: str) -> str:
    """What happens to an image its registry says does not exist (KOTS proxies it: the
    proxy may know it under the vendor's credentials)."""
    return f"not found on its registry ({detail}); treated as private"


def _failed(detail: str) -> str:
    return detail if detail == OFFLINE else f"probe failed: {detail}"


def _unknown(ref: ImageRef, rules: Rules, why: str) -> Decision:
    policy = rules.on_probe_error
    reason = f"{why}; --on-probe-error={policy.value}"
    if policy is OnProbeError.KEEP:
        return Decision(Action.KEEP, reason)
    if policy is OnProbeError.FAIL:
        return Decision(Action.FAIL, reason)
    return proxy(ref, rules, reason)


def _move(ref: ImageRef, host: str) -> str | None:
    """A custom domain replaces the default host; the rest stays as written."""
    if ref.registry == host:
        return None
    return ref.with_locator(host + ref.locator[len(ref.domain) :])
