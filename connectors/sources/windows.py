"""Re-reading date windows as snapshots: the incremental strategy of trackers that have no
modified-since filter (Toggl Reports, Clockify).

Such a tracker cannot say what changed, so each run re-reads a short recent window (from the
day before the last read date to today) and, when the engine asks, a longer look-back window.
Both are read whole and yielded as snapshots, so the engine diffs them and finds deletions. The
cursor is the last date read; it rides on the final page of the recent window, so it moves only
once that window is committed (I6).

A tracker's work date is the user's local date while we only see UTC, so every window is
requested one day wider on each side than the snapshot it declares: every entry whose date lies
in the declared window is then surely in the answer, and a diff never mistakes an entry that
fell outside the request for a deletion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from connectors.sources.records import Batch
from sync.ports import DateWindow, FetchRequest, Page

PAD = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PlannedWindow:
    """A snapshot to read; `cursor` is stored once it is committed (None: leave the cursor)."""

    window: DateWindow
    cursor: str | None = None

    @property
    def request_start(self) -> dt.date:
        """First date to ask the tracker for (one day of padding for time zones)."""
        return self.window.start - PAD

    @property
    def request_end(self) -> dt.date:
        """Last date to ask the tracker for, inclusive (one day of padding)."""
        return self.window.end + PAD


def parse_date_cursor(cursor: str | None) -> dt.date | None:
    """The date stored as cursor, or None when absent or unreadable (a scope change)."""
    if not cursor:
        return None
    try:
        return dt.date.fromisoformat(cursor)
    except ValueError:
        return None


def plan_windows(
    request: FetchRequest, *, lookback_days: int, max_days: int
) -> list[PlannedWindow]:
    """The windows one run reads, in order: the recent one (carrying the new cursor), then the
    look-back window asked for, merged into one when they overlap or touch; each split into
    spans of at most `max_days` (the tracker's longest accepted range minus the padding).
    """
    today = request.now.astimezone(dt.UTC).date()
    last = parse_date_cursor(request.cursor)
    start = last - PAD if last is not None else today - dt.timedelta(days=lookback_days)
    recent = DateWindow(min(start, today), today)
    asked = request.window
    if asked is not None and asked.start <= recent.end + PAD and asked.end >= recent.start - PAD:
        recent = DateWindow(min(asked.start, recent.start), max(asked.end, recent.end))
        asked = None
    planned = [*_split(recent, max_days, cursor=today.isoformat())]
    if asked is not None:
        planned.extend(_split(asked, max_days, cursor=None))
    return planned


def _split(window: DateWindow, max_days: int, *, cursor: str | None) -> Iterator[PlannedWindow]:
    """Consecutive spans covering `window`; only the last carries the cursor."""
    start = window.start
    while True:
        end = min(window.end, start + dt.timedelta(days=max_days - 1))
        yield PlannedWindow(DateWindow(start, end), cursor if end == window.end else None)
        if end == window.end:
            return
        start = end + dt.timedelta(days=1)


def snapshot_pages(
    planned: list[PlannedWindow],
    read: Callable[[PlannedWindow], Iterator[Batch]],
    requests_made: Callable[[], int],
) -> Iterator[Page]:
    """Turn each window's batches into pages flagged as its snapshot.

    One batch is held back so the last page of a window can be marked `snapshot_complete` (an
    empty window still yields one complete page: everything in it was deleted). Each page
    carries the requests spent producing it.
    """
    counted = requests_made()
    for plan in planned:
        held: tuple[Batch, int] | None = None
        for batch in read(plan):
            now = requests_made()
            if held is not None:
                yield _page(held, plan, complete=False)
            held, counted = (batch, now - counted), now
        # Requests made after the last batch (an empty last page) belong to this window too.
        now = requests_made()
        batch, spent = held if held is not None else (Batch(), 0)
        held, counted = (batch, spent + now - counted), now
        yield _page(held, plan, complete=True)


def _page(held: tuple[Batch, int], plan: PlannedWindow, *, complete: bool) -> Page:
    batch, spent = held
    return Page(
        entries=tuple(batch.entries),
        invalid=tuple(batch.invalid),
        cursor=plan.cursor if complete else None,
        snapshot=plan.window,
        snapshot_complete=complete,
        requests=spent,
    )
