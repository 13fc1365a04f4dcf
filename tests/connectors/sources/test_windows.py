"""Planning re-read windows for trackers without a modified-since filter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from connectors.sources.records import Batch
from connectors.sources.windows import PlannedWindow, plan_windows, snapshot_pages
from sync.ports import DateWindow, FetchRequest

NOW = dt.datetime(2026, 11, 2, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 3 Nov UTC
D = dt.date


def plan(
    cursor: str | None, window: DateWindow | None = None, max_days: int = 400
) -> list[PlannedWindow]:
    request = FetchRequest(cursor=cursor, window=window, now=NOW)
    return plan_windows(request, lookback_days=30, max_days=max_days)


def test_recent_window_starts_the_day_before_the_cursor_and_ends_today_utc() -> None:
    [only] = plan("2026-10-30")
    assert only == PlannedWindow(DateWindow(D(2026, 10, 29), D(2026, 11, 3)), "2026-11-03")
    assert (only.request_start, only.request_end) == (D(2026, 10, 28), D(2026, 11, 4))


def test_no_or_unreadable_cursor_reads_the_lookback_period() -> None:
    expected = [PlannedWindow(DateWindow(D(2026, 10, 4), D(2026, 11, 3)), "2026-11-03")]
    assert plan(None) == plan("1793613600") == expected


def test_touching_windows_merge_and_distant_ones_do_not() -> None:
    touching = DateWindow(D(2026, 10, 1), D(2026, 11, 1))
    assert plan("2026-11-03", touching) == [
        PlannedWindow(DateWindow(D(2026, 10, 1), D(2026, 11, 3)), "2026-11-03")
    ]
    distant = DateWindow(D(2026, 9, 1), D(2026, 9, 30))
    assert plan("2026-11-03", distant) == [
        PlannedWindow(DateWindow(D(2026, 11, 2), D(2026, 11, 3)), "2026-11-03"),
        PlannedWindow(distant, None),
    ]


def test_long_windows_are_split_and_only_the_last_part_moves_the_cursor() -> None:
    assert plan("2026-10-30", max_days=3) == [
        PlannedWindow(DateWindow(D(2026, 10, 29), D(2026, 10, 31)), None),
        PlannedWindow(DateWindow(D(2026, 11, 1), D(2026, 11, 3)), "2026-11-03"),
    ]


def test_snapshot_pages_flag_the_last_page_and_count_requests() -> None:
    spent = [0]
    planned = [
        PlannedWindow(DateWindow(D(2026, 11, 1), D(2026, 11, 3)), "2026-11-03"),
        PlannedWindow(DateWindow(D(2026, 9, 1), D(2026, 9, 2)), None),
    ]

    def read(plan: PlannedWindow) -> Iterator[Batch]:
        batches = 2 if plan.cursor else 0
        for _ in range(batches):
            spent[0] += 2
            yield Batch()
        spent[0] += 1  # a request that found nothing more

    pages = list(snapshot_pages(planned, read, lambda: spent[0]))
    assert [(p.snapshot, p.snapshot_complete, p.cursor, p.requests) for p in pages] == [
        (planned[0].window, False, None, 2),
        (planned[0].window, True, "2026-11-03", 3),
        (planned[1].window, True, None, 1),
    ]
