"""The read-ahead wrapper keeps order, stops early cleanly and raises errors in sequence."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sync.prefetch import read_ahead


def test_order_and_end() -> None:
    assert list(read_ahead(iter(range(50)), depth=2)) == list(range(50))
    assert list(read_ahead(iter([]))) == []


def test_error_arrives_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 failed")

    seen = []
    with pytest.raises(ValueError, match="page 3 failed"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_consumer_stopping_early_stops_the_producer() -> None:
    produced: list[int] = []
    finished = threading.Event()

    def items() -> Iterator[int]:
        try:
            for n in range(1000):
                produced.append(n)
                yield n
        finally:
            finished.set()

    reader = read_ahead(items(), depth=1)
    assert next(reader) == 0
    reader.close()
    assert finished.wait(timeout=5)
    assert len(produced) <= 3  # the page handed over, one in the queue, one waiting


def test_runs_the_source_in_another_thread() -> None:
    threads = []

    def items() -> Iterator[str]:
        threads.append(threading.current_thread().name)
        yield "page"

    assert list(read_ahead(items(), name="fetch harvest")) == ["page"]
    assert threads == ["fetch harvest"]
