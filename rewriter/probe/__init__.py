"""A render's probe answers: from the cache first, from the registries for the rest, and
those stored back in the cache.

The order keeps every cost off the common path:

1. The cache is read for every image in one query, without the HTTP stack
   (`store.lookup`). A render whose images are all answered there ends here.
2. Offline, the images left are answered "offline, not in cache" (or refused by the
   flags), still without importing the network stack.
3. Otherwise the probe asks the registries (`probe.probe_all`) while a thread of its own
   opens the cache to write (requests-cache's import and SQLite's checks, ~0.15 s, then
   overlap the first network waits instead of delaying the first request). Once every
   image is answered, the answers the probe chose to keep are stored in one go, within
   the render's deadline: a slow or broken cache can delay a render, never change it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from rewriter import store
from rewriter.decide import OFFLINE
from rewriter.policy import ProbeSettings, deadline_at, registry_refusal
from rewriter.verdict import ProbeKey, ProbeResult, Verdict

if TYPE_CHECKING:
    import ssl

    from rewriter.reference import ImageRef


A = TypeVar("A")
T = TypeVar("T")


def resolve(
    refs: Sequence[ImageRef],
    settings: ProbeSettings,
    cache: store.CacheSpec,
    ttl_seconds: float,
    warn: Callable[[str], None],
    offline: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[ProbeKey, ProbeResult]:
    """The answer for every distinct image of `refs`; never raises for network or cache
    trouble (`warn` hears of it, from this thread only). `progress(done, total)` hears,
    from this thread, how far the registries' probes are (see `probe.probe_all`)."""
    now = time.monotonic()
    answers, cache = store.lookup(
        cache, (ref.probe_key for ref in refs), settings, warn, ttl_seconds
    )
    rest = [ref for ref in refs if ref.probe_key not in answers]
    if not rest:
        return answers
    if offline:
        for ref in rest:
            refused = registry_refusal(ref.registry, settings)
            answers[ref.probe_key] = ProbeResult(Verdict.UNKNOWN, refused or OFFLINE)
        return answers
    # Loading the trust roots mostly waits on OpenSSL, without the GIL: in a thread, it
    # overlaps importing the probe.
    tls = _InThread("probe-tls", _tls_context, settings.ca_bundle)
    from rewriter import probe  # the network stack: only now that a registry is asked
    from rewriter.transport import Transport

    # Started once the probe is imported: both import requests, and the probe's first
    # requests must not wait for the writer's imports.
    writer = _Writer(cache, ttl_seconds, warn) if cache.kind != "none" and ttl_seconds > 0 else None
    kept: list[store.Entry] = []
    try:
        transport = Transport(tls.result(), settings=settings)
        answers.update(probe.probe_all(rest, settings, transport, kept.append, progress))
    except BaseException:
        if writer is not None:
            writer.cancel()
        raise
    if writer is not None:
        # A snapshot: a request stuck past the deadline may still add to `kept`.
        writer.store(list(kept), deadline_at(settings, now))
    return answers


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    from rewriter.tls import tls_context  # here: ssl and certifi, for probes only

    return tls_context(ca_bundle)


class _InThread(Generic[T]):
    """`make(argument)` computed in a daemon thread; `result()` waits for it, raising
    what it raised."""

    def __init__(self, name: str, make: Callable[[A], T], argument: A) -> None:
        self._outcome: tuple[T | None, BaseException | None] = (None, None)

        def run() -> None:
            try:
                self._outcome = (make(argument), None)
            except BaseException as exc:
                self._outcome = (None, exc)

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        value, error = self._outcome
        if error is not None:
            raise error
        return value  # type: ignore[return-value]  # set when there is no error


class _Writer:
    """Opens the cache in a thread of its own as soon as it is made, then stores what it
    is given; waited for until the deadline at most (requests-cache retries a locked
    SQLite write forever, and a Redis may hang until its timeout). A write cut off by
    the process's exit is rolled back, never half-stored."""

    def __init__(
        self, cache: store.CacheSpec, ttl_seconds: float, warn: Callable[[str], None]
    ) -> None:
        self._cache = cache
        self._ttl = ttl_seconds
        self._warn = warn
        self._warnings: list[str] = []  # the thread's, said by `store` in the caller's
        self._entries: list[store.Entry] | None = None
        self._given = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-cache", daemon=True)
        self._thread.start()

    def store(self, entries: list[store.Entry], deadline: float) -> None:
        self._entries = entries
        self._given.set()
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            self._warnings.append("probe cache: answers not stored by the deadline")
        for message in list(self._warnings):
            self._warn(message)

    def cancel(self) -> None:
        """Store nothing: the thread ends once the cache is open."""
        self._entries = None
        self._given.set()

    def _run(self) -> None:
        from rewriter import cache

        where = store.redact_url(self._cache.location)
        try:
            backend = cache.open_backend(self._cache, self._warnings.append)
        except store.Unusable as exc:
            self._warnings.append(f"probe cache {where} is unusable ({exc}); answers not stored")
            return
        except Exception as exc:  # never a traceback from this thread
            problem = f"{type(exc).__name__}: {exc}"
            self._warnings.append(
                f"probe cache {where} cannot be opened ({problem}); answers not stored"
            )
            return
        self._given.wait()
        if backend is not None and self._entries:
            self._warnings += cache.store_answers(backend, self._entries, self._ttl)
