"""The scheduler's job bodies, run synchronously: never raising, stopping between pages,
claiming ticks so replicas do not repeat each other's work, and reading its knobs."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from sync.app import App
from sync.ledger import schema, utcnow
from sync.ledger.leases import make_holder
from sync.ports import FetchRequest, Page
from sync.service.metrics import ServiceMetrics
from sync.service.scheduler import (
    ScheduleError,
    ScheduleOptions,
    ServiceScheduler,
    ServiceSource,
)
from sync.views.reports import balance_rows
from tests.support import ScriptedSource, entry, money_customer, settings_for


def make_app(url: str, holder: str, source: ScriptedSource) -> App:
    settings = settings_for(url, money_customer(below=None))
    app = App(settings, holder=holder)
    app.prepare()
    app._sources["tracker"] = source  # the scripted source instead of the CSV adapter
    return app


@pytest.fixture
def source() -> ScriptedSource:
    scripted = ScriptedSource(page_size=1)
    for n in (1, 2, 3):
        scripted.put(entry(f"e{n}", hours="1", day=n))
    return scripted


def balance(app: App) -> str:
    with app.ledger.read() as conn:
        return str(balance_rows(conn, app.settings)[0].balance)


def test_a_tick_syncs_and_counts(db_url: str, source: ScriptedSource) -> None:
    app = make_app(db_url, "replica-a", source)
    metrics = ServiceMetrics()
    scheduler = ServiceScheduler(app, metrics, ScheduleOptions(run_at_start=False))
    assert scheduler.run_source("tracker") == "ok"
    assert balance(app) == "700.00"
    assert metrics.value("prepaid_entries_fetched_total", source="tracker") == 3
    assert metrics.value("prepaid_postings_written_total", source="tracker") == 3
    assert metrics.value("prepaid_ticks_total", job="source:tracker", result="ran") == 1


def test_stop_flag_is_checked_between_pages(sqlite_url: str, source: ScriptedSource) -> None:
    app = make_app(sqlite_url, "replica-a", source)
    metrics = ServiceMetrics()
    scheduler = ServiceScheduler(app, metrics, ScheduleOptions(run_at_start=False))
    pages_handed_out = 0
    original = source.fetch

    def fetch_then_stop(request: FetchRequest) -> Iterator[Page]:
        nonlocal pages_handed_out
        for page in original(request):
            pages_handed_out += 1
            scheduler._stopping.set()  # SIGTERM arrives while page 1 is on its way
            yield page

    source.fetch = fetch_then_stop  # type: ignore[method-assign]
    assert scheduler.run_source("tracker") == "ok"
    assert pages_handed_out == 1
    assert balance(app) == "900.00"  # page 1 committed, nothing else asked for
    with app.ledger.read() as conn:
        cursor = conn.execute(select(schema.source_state.c.cursor)).scalar_one()
    assert cursor == "page-1"
    assert scheduler.run_source("tracker") == "stopped"


def test_a_failing_source_never_raises(sqlite_url: str, source: ScriptedSource) -> None:
    source.fail_after_pages = 1
    app = make_app(sqlite_url, "replica-a", source)
    metrics = ServiceMetrics()
    scheduler = ServiceScheduler(app, metrics, ScheduleOptions(run_at_start=False))
    assert scheduler.run_source("tracker") == "failed"
    assert metrics.value("prepaid_api_errors_total", connector="tracker", kind="server") == 1
    assert balance(app) == "900.00"

    def explode(request: FetchRequest) -> Iterator[Page]:
        raise RuntimeError("disk on fire")

    source.fetch = explode  # type: ignore[method-assign]
    assert scheduler.run_source("tracker") == "failed"
    assert metrics.value("prepaid_ticks_total", job="source:tracker", result="failed") == 1


def test_replicas_take_a_tick_once(db_url: str, source: ScriptedSource) -> None:
    a = make_app(db_url, "replica-a", source)
    b = make_app(db_url, "replica-b", source)
    metrics_a, metrics_b = ServiceMetrics(), ServiceMetrics()
    options, now = ScheduleOptions(run_at_start=False), utcnow()  # the same tick for both
    first = ServiceScheduler(a, metrics_a, options, clock=lambda: now)
    second = ServiceScheduler(b, metrics_b, options, clock=lambda: now)
    assert first.run_source("tracker") == "ok"
    assert second.run_source("tracker") == "skipped"
    assert second.run_refills() == "ok"
    assert first.run_refills() == "skipped"
    assert metrics_b.value("prepaid_ticks_total", job="source:tracker", result="skipped") == 1
    with a.ledger.read() as conn:
        runs = conn.execute(select(schema.sync_runs.c.id)).all()
    assert len(runs) == 1


def test_a_tick_claimed_by_a_killed_replica_stands(db_url: str, source: ScriptedSource) -> None:
    """A killed replica may have synced its tick already; running the tick again would repeat
    it. Its engine lease, though, is taken over at once (that work was cut short).
    """
    dead = make_holder(os.getpid() + 10_000_000, "killed")  # beyond any pid: not alive
    killed = make_app(db_url, dead, source)
    options, now = ScheduleOptions(run_at_start=False), utcnow()  # one tick for both
    first = ServiceScheduler(killed, ServiceMetrics(), options, clock=lambda: now)
    assert first.run_source("tracker") == "ok"
    survivor = make_app(db_url, "replica-b", source)
    second = ServiceScheduler(survivor, ServiceMetrics(), options, clock=lambda: now)
    assert second.run_source("tracker") == "skipped"
    ledger, ttl = survivor.ledger, dt.timedelta(minutes=5)
    assert ledger.acquire_lease("source:tracker", dead, ttl) is None
    assert ledger.acquire_lease("source:tracker", "replica-b", ttl) is None  # taken over
    assert ledger.acquire_lease("x", dead, ttl) is None
    assert ledger.acquire_lease("x", "replica-b", ttl, take_from_dead=False) == dead


def test_a_replica_that_loses_the_source_lease_skips(
    sqlite_url: str, source: ScriptedSource
) -> None:
    app = make_app(sqlite_url, "replica-a", source)
    app.ledger.acquire_lease("source:tracker", "replica-z", dt.timedelta(minutes=5))
    metrics = ServiceMetrics()
    scheduler = ServiceScheduler(app, metrics, ScheduleOptions(run_at_start=False))
    assert scheduler.run_source("tracker") == "busy"
    assert balance(app) == "1000.00"
    assert metrics.value("prepaid_ticks_total", job="source:tracker", result="busy") == 1


def test_triggers_follow_the_config_or_the_knob(sqlite_url: str, source: ScriptedSource) -> None:
    app = make_app(sqlite_url, "replica-a", source)
    cron = ServiceScheduler(app, ServiceMetrics()).triggers["source:tracker"]
    assert isinstance(cron, CronTrigger)
    assert str(cron) == "cron[month='*', day='*', day_of_week='*', hour='*', minute='*/15']"
    fast = ServiceScheduler(app, ServiceMetrics(), ScheduleOptions(source_seconds=3))
    trigger = fast.triggers["source:tracker"]
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == dt.timedelta(seconds=3)
    assert trigger.start_date.timestamp() % 3 == 0  # every replica ticks on the same boundary
    refills = fast.triggers["refills"]
    assert isinstance(refills, IntervalTrigger)
    assert refills.interval == dt.timedelta(minutes=5)


def test_knobs_from_the_environment() -> None:
    assert ScheduleOptions.from_env({}) == ScheduleOptions(None, 300)
    assert ScheduleOptions.from_env(
        {"PREPAID_SCHEDULE_SECONDS": "2", "PREPAID_REFILL_SECONDS": "30"}
    ) == ScheduleOptions(2, 30)
    with pytest.raises(ScheduleError, match="PREPAID_REFILL_SECONDS='0': use a whole number"):
        ScheduleOptions.from_env({"PREPAID_REFILL_SECONDS": "0"})


def test_service_source_closes_the_inner_pages() -> None:
    closed: list[bool] = []

    class Inner:
        name = "inner"

        def fetch(self, request: FetchRequest) -> Iterator[Page]:
            try:
                yield Page()
                yield Page()
            finally:
                closed.append(True)

        def check_connection(self) -> str:
            return "ok"

    stop = False
    wrapped = ServiceSource(Inner(), lambda: stop, ServiceMetrics())
    pages = wrapped.fetch(FetchRequest(cursor=None, window=None, now=dt.datetime.now(dt.UTC)))
    next(pages)
    stop = True
    assert list(pages) == []
    assert (wrapped.stopped, closed) == (True, [True])
