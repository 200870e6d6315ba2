"""The probe's threads (rewriter/probe/pool.py), without a network: every item done once,
progress told from the calling thread, the deadline kept whatever a worker does."""

from __future__ import annotations

import threading
import time

import pytest

from rewriter.probe.pool import Deadline, InThread, Once, run_until


def test_every_item_is_done_once_and_progress_counts_up_to_all() -> None:
    calls: list[int] = []
    told: list[int] = []
    caller = threading.current_thread()

    def square(number: int) -> int:
        calls.append(number)
        return number * number

    def progress(done: int) -> None:
        assert threading.current_thread() is caller
        told.append(done)

    deadline = Deadline(time.monotonic() + 10)
    results = run_until(range(20), square, 4, deadline, progress)
    assert results == {number: number * number for number in range(20)}
    assert sorted(calls) == list(range(20))
    assert told == sorted(told) and told[-1] == 20
    assert deadline.cancelled  # what a worker still running would see


def test_the_deadline_is_kept_and_no_item_starts_after_it() -> None:
    release = threading.Event()
    started: list[str] = []

    def work(item: str) -> str:
        started.append(item)
        if item == "stuck":
            release.wait(10)
        return item.upper()

    begun = time.monotonic()
    results = run_until(["stuck", "late"], work, 1, Deadline(begun + 0.5))
    took = time.monotonic() - begun
    assert 0.4 < took < 2.0 and results == {}
    release.set()  # the stuck worker goes back for the next item: there is none for it
    time.sleep(0.2)
    assert started == ["stuck"]


def test_no_items_no_threads() -> None:
    assert run_until([], lambda item: item, 8, Deadline(time.monotonic() + 1)) == {}


def test_once_computes_a_value_once_however_many_threads_ask() -> None:
    once: Once[str, int] = Once()
    calls: list[str] = []

    def compute() -> int:
        calls.append("x")
        time.sleep(0.05)
        return 42

    got: list[int] = []
    threads = [
        threading.Thread(target=lambda: got.append(once.get("k", compute))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == [42] * 8 and calls == ["x"]


def test_in_thread_gives_the_value_or_raises_what_it_raised() -> None:
    assert InThread("t", lambda text: text.upper(), "ok").result() == "OK"

    def fail(_: None) -> None:
        raise ValueError("no roots")

    with pytest.raises(ValueError, match="no roots"):
        InThread("t", fail, None).result()
