"""The registry probe: a render's answer for every image no rule decides, from the cache
first, from the registries for the rest, and those stored back in the cache.

`answers` is the package's one entry. Around it:

- verdict.py: what an answer says (shared with the pure decision and the reports);
- policy.py, challenge.py: what the probe may contact and what answers mean, pure;
- registry.py: the protocol, ping, anonymous token, manifest HEAD, one image at a time;
- pool.py: the threads and the deadline the registry client runs under;
- transport.py, tls.py, failures.py: urllib3's pools, the TLS context, request errors;
- cache/: the answers kept between renders, in requests-cache's format.

Only this package imports urllib3, requests, requests-cache, sqlite3 or redis
(tests/integration/test_probe_boundary.py), and importing it imports none of them: a render whose
images the rules decide loads `verdict` and nothing else of it, so every import
`answers` needs is made inside it, when an image needs an answer.

The order keeps every cost off the common path:

1. The cache is read for every image in one query, without the HTTP stack
   (`cache.read.lookup`). A render whose images are all answered there ends here.
2. Offline, the images left are answered "offline, not in cache" (or refused by the
   flags), still without importing the network stack.
3. Otherwise the probe asks the registries (`registry.probe_all`) while a thread of its
   own opens the cache to write (requests-cache's import and SQLite's checks, ~0.15 s,
   then overlap the first network waits instead of delaying the first request). Once
   every image is answered, the answers the probe chose to keep are stored in one go,
   within the render's deadline: a slow or broken cache can delay a render, never
   change it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from rewriter.probe.cache.spec import CacheSpec
    from rewriter.probe.policy import ProbeSettings
    from rewriter.probe.verdict import ProbeKey, ProbeResult
    from rewriter.reference import ImageRef


def answers(
    refs: Sequence[ImageRef],
    settings: ProbeSettings,
    cache: CacheSpec,
    ttl_seconds: float,
    warn: Callable[[str], None],
    offline: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[ProbeKey, ProbeResult]:
    """The answer for every distinct image of `refs`; never raises for network or cache
    trouble (`warn` hears of it, from this thread only). `progress(done, total)` hears,
    from this thread, how far the registries' probes are (see `registry.probe_all`)."""
    from rewriter.decide import OFFLINE
    from rewriter.probe.cache.read import lookup
    from rewriter.probe.policy import deadline_at, registry_refusal
    from rewriter.probe.pool import InThread
    from rewriter.probe.verdict import ProbeResult, Verdict

    now = time.monotonic()
    found, cache = lookup(cache, (ref.probe_key for ref in refs), settings, warn, ttl_seconds)
    rest = [ref for ref in refs if ref.probe_key not in found]
    if not rest:
        return found
    if offline:
        for ref in rest:
            refused = registry_refusal(ref.registry, settings)
            found[ref.probe_key] = ProbeResult(Verdict.UNKNOWN, refused or OFFLINE)
        return found
    # Loading the trust roots mostly waits on OpenSSL, without the GIL: in a thread, it
    # overlaps importing the probe.
    tls = InThread("probe-tls", _tls_context, settings.ca_bundle)
    # The network stack: only now that a registry is asked.
    from rewriter.probe.cache.format import Entry
    from rewriter.probe.cache.write import Writer
    from rewriter.probe.registry import probe_all
    from rewriter.probe.transport import Transport

    # Started once the probe is imported: both import urllib3 (requests-cache through
    # requests), and the probe's first requests must not wait for the writer's imports.
    writer = Writer(cache, ttl_seconds, warn) if cache.kind != "none" and ttl_seconds > 0 else None
    kept: list[Entry] = []
    try:
        transport = Transport(tls.result(), settings=settings)
        found.update(probe_all(rest, settings, transport, kept.append, progress))
    except BaseException:
        if writer is not None:
            writer.cancel()
        raise
    if writer is not None:
        # A snapshot: a request stuck past the deadline may still add to `kept`.
        writer.store(list(kept), deadline_at(settings, now))
    return found


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    from rewriter.probe.tls import tls_context  # here: ssl and certifi, for probes only

    return tls_context(ca_bundle)
