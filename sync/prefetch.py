"""Read a source one page ahead, so the next download overlaps storing the current page.

With a real tracker most of a sync is waiting on the network; the engine's work on a page
(valuing, inserting, committing) can happen meanwhile. Pages still reach the engine one by one
and in order, so cursors keep moving only after their page is committed (I6); at most `depth`
pages are held in memory. An error in the source is raised to the engine at the point in the
sequence where it happened.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1


class _Done:
    """Marks the end of the source's pages."""


def read_ahead(items: Iterator[T], depth: int = 1, name: str = "prefetch") -> Iterator[T]:
    """Yield `items` in order while a background thread fetches up to `depth` more.

    When the consumer stops early (an error, a shutdown), the producer stops at its next page;
    it is a daemon thread, so a page stuck in a network call never keeps the process alive.
    """
    handoff: queue.Queue[T | _Done | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _Done | BaseException) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_Done())
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    threading.Thread(target=produce, name=name, daemon=True).start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
