"""The probe's threads, apart from the protocol: a pool of workers bounded by a deadline,
a value computed once however many workers ask, and a value computed in the background.

Daemon threads rather than a ThreadPoolExecutor: the executor's workers are joined at
interpreter exit, so one request stuck on a dripping server would hold the whole render
past its deadline. A worker stuck past the deadline is left behind; it neither blocks
`run_until`'s return nor the interpreter's exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

A = TypeVar("A")
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
V = TypeVar("V")

TICK = 0.25  # seconds between progress calls while no result comes


class Deadline:
    """A point on the monotonic clock, and whether the work it bounds was called off
    (once `run_until` returns: no worker then starts anything new)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.cancelled = False

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return time.monotonic() > self.at


def run_until(
    items: Sequence[K],
    work: Callable[[K], V],
    workers: int,
    deadline: Deadline,
    progress: Callable[[int], None] | None = None,
) -> dict[K, V]:
    """`work(item)` for each of `items` (distinct), in their order, `workers` at a time,
    until every item is done or the deadline passes; the results so far. `work` should
    not raise: an item whose work raised has no result. `progress(done)` is told, from
    the calling thread, how many items are done, as each finishes and every TICK seconds
    while none does."""
    todo: queue.SimpleQueue[K] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    finished: queue.SimpleQueue[K] = queue.SimpleQueue()
    results: dict[K, V] = {}

    def worker() -> None:
        while not deadline.cancelled:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[item] = work(item)
            finally:
                finished.put(item)

    threads = [
        threading.Thread(target=worker, name=f"probe-{number}", daemon=True)
        for number in range(min(max(workers, 1), len(items)))
    ]
    for thread in threads:
        thread.start()

    pending = set(items)
    while pending:
        left = deadline.left()
        if left <= 0:
            break
        wait = left if progress is None else min(left, TICK)
        try:
            pending.discard(finished.get(timeout=wait))
        except queue.Empty:
            if wait >= left:
                break
        if progress is not None:
            progress(len(items) - len(pending))
    deadline.cancelled = True
    return dict(results)  # a snapshot: a worker stuck past the deadline may still add


@dataclass
class _Slot(Generic[V]):
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: V | None = None
    done: bool = False


class Once(Generic[K, V]):
    """Compute a value once per key, however many threads ask at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[K, _Slot[V]] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if not slot.done:
                slot.value = compute()
                slot.done = True
            return slot.value  # type: ignore[return-value]  # set just above


class InThread(Generic[T]):
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
