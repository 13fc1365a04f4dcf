"""`prepaid serve`'s clock: one job per source on its cron line, and a refill-and-poll job.

A job never lets an exception out: whatever goes wrong is logged in one line and the next tick
tries again, so one broken tracker cannot stop the others or the service. Jobs coalesce (a
backlog of missed ticks runs once), never overlap themselves, and run late by at most
`misfire_grace_time`.

Several replicas may run this against one PostgreSQL. Two things keep them from doing the same
work: the engine and the refill service already take a lease per source and per budget, so
work never runs twice at once; and before each tick a replica claims the tick (a lease named
after the job and the tick's label, held for two periods), so the replicas that wake later skip
it instead of re-reading the tracker. Old claims expire and are swept.

Stopping is cooperative: `stop()` raises a flag that the source wrapper checks between pages
(the engine commits each page, so nothing is lost and the next run resumes from the cursor),
then waits for jobs in flight.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.app import App
from sync.ledger import utcnow
from sync.ports import (
    ConnectorError,
    FetchRequest,
    InvoiceRequest,
    InvoiceSink,
    InvoiceState,
    Page,
    TimeSource,
    WebhookEvent,
    WebhookRejected,
)
from sync.refill import RefillReport, RefillService
from sync.service.metrics import ServiceMetrics

log = logging.getLogger("prepaid.scheduler")

ENV_SCHEDULE_SECONDS = "PREPAID_SCHEDULE_SECONDS"
ENV_REFILL_SECONDS = "PREPAID_REFILL_SECONDS"
DEFAULT_REFILL_SECONDS = 300
MISFIRE_GRACE_SECONDS = 60
START_UP = "start-up"


class ScheduleError(ValueError):
    """A scheduling knob from the environment that cannot be used (exit 2)."""


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    """How often jobs run. `source_seconds` replaces every source's cron line with a fixed
    interval (a test and operations knob); `refill_seconds` paces the refill-and-poll job."""

    source_seconds: int | None = None
    refill_seconds: int = DEFAULT_REFILL_SECONDS
    run_at_start: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ScheduleOptions:
        """Read PREPAID_SCHEDULE_SECONDS and PREPAID_REFILL_SECONDS (whole seconds, >= 1)."""
        return cls(
            source_seconds=_seconds(environ, ENV_SCHEDULE_SECONDS),
            refill_seconds=_seconds(environ, ENV_REFILL_SECONDS) or DEFAULT_REFILL_SECONDS,
        )


def _seconds(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ScheduleError(f"{name}={text!r}: use a whole number of seconds, at least 1")
    return int(text)


class ServiceSource:
    """A source seen through the service: counts API errors by kind, and stops asking for
    pages once shutdown is requested (the page already handed out is still committed)."""

    def __init__(
        self, inner: TimeSource, should_stop: Callable[[], bool], metrics: ServiceMetrics
    ) -> None:
        self._inner = inner
        self._should_stop = should_stop
        self._metrics = metrics
        self.stopped = False

    @property
    def name(self) -> str:
        """The wrapped source's name."""
        return self._inner.name

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        """The inner pages, until the stop flag is raised."""
        pages = self._inner.fetch(request)
        try:
            while True:
                if self._should_stop():
                    self.stopped = True
                    return
                try:
                    page = next(pages)
                except StopIteration:
                    return
                except ConnectorError as exc:
                    self._metrics.api_error(self.name, exc.kind)
                    raise
                yield page
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def check_connection(self) -> str:
        """Delegated."""
        return self._inner.check_connection()


class ServiceSink:
    """A sink seen through the service: counts API errors by kind; otherwise delegates."""

    def __init__(self, inner: InvoiceSink, metrics: ServiceMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    @property
    def name(self) -> str:
        """The wrapped sink's name."""
        return self._inner.name

    @property
    def reports_payment(self) -> bool:
        """Delegated."""
        return self._inner.reports_payment

    def issue(
        self,
        request: InvoiceRequest,
        state: InvoiceState | None,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        """Delegated, counting errors."""
        return self._observe(lambda: self._inner.issue(request, state, record))

    def refresh(self, state: InvoiceState) -> InvoiceState:
        """Delegated, counting errors."""
        return self._observe(lambda: self._inner.refresh(state))

    def check_connection(self) -> str:
        """Delegated."""
        return self._inner.check_connection()

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        """Delegated; a rejection is the sender's problem, not an API error of ours."""
        return self._inner.parse_webhook(headers, body, now)

    def _observe(self, call: Callable[[], InvoiceState]) -> InvoiceState:
        try:
            return call()
        except WebhookRejected:
            raise
        except ConnectorError as exc:
            self._metrics.api_error(self.name, exc.kind)
            raise


class ServiceScheduler:
    """Owns the APScheduler instance and the job bodies; `run_source` and `run_refills` are
    public so tests (and a future `serve --once`) can run one tick synchronously."""

    def __init__(
        self,
        app: App,
        metrics: ServiceMetrics,
        options: ScheduleOptions | None = None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.options = options or ScheduleOptions()
        self.clock = clock
        self._stopping = threading.Event()
        self._first: set[str] = set()
        self._first_lock = threading.Lock()
        self.triggers: dict[str, CronTrigger | IntervalTrigger] = {}
        tz = app.settings.timezone
        for source in app.settings.sources:
            if self.options.source_seconds:
                self.triggers[f"source:{source.name}"] = _aligned(self.options.source_seconds, tz)
            else:
                self.triggers[f"source:{source.name}"] = CronTrigger.from_crontab(
                    source.schedule, timezone=tz
                )
        self.triggers["refills"] = _aligned(self.options.refill_seconds, tz)
        self._scheduler: Any = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Add the jobs and start the background threads."""
        grace = MISFIRE_GRACE_SECONDS
        if self.options.source_seconds:
            grace = max(1, min(grace, self.options.source_seconds))
        workers = max(2, min(8, len(self.triggers)))
        scheduler = BackgroundScheduler(
            timezone=self.app.settings.timezone,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        now = self.clock()
        for source in self.app.settings.sources:
            job = f"source:{source.name}"
            extra: dict[str, Any] = {"next_run_time": now} if self.options.run_at_start else {}
            scheduler.add_job(
                self.run_source,
                trigger=self.triggers[job],
                args=[source.name],
                id=job,
                name=job,
                **extra,
            )
        scheduler.add_job(
            self.run_refills, trigger=self.triggers["refills"], id="refills", name="refills"
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "scheduler started: %s",
            ", ".join(f"{s.name} ({self._describe(s.name)})" for s in self.app.settings.sources)
            or "no sources",
        )

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop taking ticks, let the page in flight commit, wait for running jobs.

        Returns False when jobs were still running after `timeout` seconds (they are then
        abandoned mid-way, which the ledger tolerates: the next run finishes the work).
        """
        self._stopping.set()
        if self._scheduler is None:
            return True
        self._scheduler.pause()
        done = threading.Event()

        def shutdown() -> None:
            self._scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=shutdown, name="scheduler-shutdown", daemon=True).start()
        finished = done.wait(timeout)
        if not finished:
            log.warning("jobs still running after %ss; stopping anyway", timeout)
        return finished

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called."""
        return self._stopping.is_set()

    # --- jobs -------------------------------------------------------------------------------

    def run_source(self, name: str) -> str:
        """One tick of one source: claim it, sync, then run refills. Returns what happened
        ("ok", "partial", "failed", "busy", "skipped", "stopped"); never raises."""
        job = f"source:{name}"
        tick = self._tick_label(job)
        if self.stopping:
            return "stopped"
        try:
            holder = self._claim(job, tick)
            if holder is not None:
                self.metrics.add("prepaid_ticks_total", job=job, result="skipped")
                log.info("tick %s %s: skipped, claimed by %s", tick, job, holder)
                return "skipped"
            settings = self.app.settings.source(name)
            assert settings is not None
            source = ServiceSource(self.app.source(name), lambda: self.stopping, self.metrics)
            started = time.monotonic()
            summary = self.app.engine().sync(source, settings)
            took = time.monotonic() - started
        except Exception as exc:
            self.metrics.add("prepaid_ticks_total", job=job, result="failed")
            log.error("tick %s %s: failed: %s (retried next tick)", tick, job, _why(exc))
            log.debug("tick %s %s failed", tick, job, exc_info=True)
            return "failed"
        if summary.outcome == "busy":
            self.metrics.add("prepaid_ticks_total", job=job, result="busy")
            log.info("tick %s %s: busy (%s)", tick, job, summary.error)
            return "busy"
        self.metrics.record_run(summary)
        self.metrics.add("prepaid_ticks_total", job=job, result="ran")
        note = ", stopped between pages for shutdown" if source.stopped else ""
        log_at = logging.INFO if summary.outcome == "ok" else logging.WARNING
        log.log(
            log_at,
            "tick %s %s: synced (%s) in %.1fs: fetched %d, new %d, changed %d, deleted %d,"
            " postings %d%s%s",
            tick,
            job,
            summary.outcome,
            took,
            summary.fetched,
            summary.new,
            summary.changed,
            summary.deleted,
            summary.postings,
            note,
            f"; {summary.error}" if summary.error else "",
        )
        if not self.stopping:
            self._refill(f"after {job}")
        return summary.outcome

    def run_refills(self) -> str:
        """The periodic refill-and-poll tick (a missed webhook only delays a credit)."""
        job = "refills"
        tick = self._tick_label(job)
        if self.stopping:
            return "stopped"
        try:
            holder = self._claim(job, tick)
        except Exception as exc:
            log.error("tick %s %s: failed: %s (retried next tick)", tick, job, _why(exc))
            return "failed"
        if holder is not None:
            self.metrics.add("prepaid_ticks_total", job=job, result="skipped")
            log.info("tick %s %s: skipped, claimed by %s", tick, job, holder)
            return "skipped"
        self.metrics.add("prepaid_ticks_total", job=job, result="ran")
        return self._refill(f"tick {tick}")

    @cached_property
    def refill_service(self) -> RefillService:
        """One refill service over the observed sinks, shared with the webhook endpoint."""
        sinks = {name: ServiceSink(sink, self.metrics) for name, sink in self.app.sinks.items()}
        return RefillService(self.app.ledger, self.app.settings, sinks, holder=self.app.holder)

    def _refill(self, why: str) -> str:
        try:
            report = self.refill_service.run()
        except Exception as exc:
            log.error("refills %s: failed: %s (retried next tick)", why, _why(exc))
            log.debug("refills failed", exc_info=True)
            return "failed"
        _log_report(report, why)
        return "partial" if report.partial else "ok"

    # --- ticks ------------------------------------------------------------------------------

    def _claim(self, job: str, tick: str) -> str | None:
        """Claim this tick of `job` for this replica; None when claimed, else who has it.

        The claim is named after the tick's label and outlives two periods, so a replica that
        wakes late, even past the middle of the period, still finds the tick taken. It stands
        even when its holder is killed, which may be after it synced the tick: what a dead
        replica left undone, the next tick syncs. A replica's own start-up run is its own to
        make (the engine's lease keeps it from overlapping).
        """
        now = self.clock()
        following = self.triggers[job].get_next_fire_time(None, now + dt.timedelta(seconds=1))
        period = dt.timedelta(seconds=30)
        if following is not None:
            period = max(dt.timedelta(seconds=1), following - now)
        name = f"tick:{job}:{tick}"
        if tick == START_UP:
            name = f"{name}:{self.app.holder}"
        ledger = self.app.ledger
        ttl = 2 * period + dt.timedelta(seconds=5)
        holder = ledger.acquire_lease(name, self.app.holder, ttl, take_from_dead=False)
        ledger.drop_expired_leases("tick:")
        return holder

    def _tick_label(self, job: str) -> str:
        """Which tick this run belongs to, the same on every replica: the interval boundary or
        the cron minute, or "start-up" for the catch-up run when the service starts."""
        with self._first_lock:
            if job.startswith("source:") and job not in self._first and self.options.run_at_start:
                self._first.add(job)
                return START_UP
            self._first.add(job)
        now = self.clock()
        trigger = self.triggers[job]
        if isinstance(trigger, IntervalTrigger):
            period = int(trigger.interval.total_seconds())
            epoch = int(now.timestamp()) // period * period
            return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")

    def _describe(self, name: str) -> str:
        if self.options.source_seconds:
            return f"every {self.options.source_seconds}s ({ENV_SCHEDULE_SECONDS})"
        settings = self.app.settings.source(name)
        return f'cron "{settings.schedule}"' if settings else "?"


def _aligned(seconds: int, timezone: str) -> IntervalTrigger:
    """An interval whose ticks fall on multiples of `seconds` since 1970, so every replica
    fires on the same boundaries and can tell that a tick is already taken."""
    now = int(time.time())
    start = dt.datetime.fromtimestamp((now // seconds + 1) * seconds, dt.UTC)
    return IntervalTrigger(seconds=seconds, start_date=start, timezone=timezone)


def _log_report(report: RefillReport, why: str) -> None:
    for refill in report.raised:
        log.info("refill raised (%s): %s", why, refill)
    for refill in report.issued:
        log.info("refill issued (%s): %s", why, refill)
    for refill in report.credited:
        log.info("refill credited (%s): %s", why, refill)
    for refill in report.voided:
        log.info("refill voided (%s): %s", why, refill)
    for text in report.failed:
        log.warning("refill failed (%s): %s; fix it, then: prepaid refill retry ID", why, text)
    for text in report.errors:
        log.warning("refill error (%s): %s; retried next tick", why, text)
    for text in report.guarded:
        log.warning("refill guard (%s): %s", why, text)
    for text in report.below_threshold:
        log.info("refill below threshold (%s): %s", why, text)


def _why(exc: BaseException) -> str:
    """One line about an exception: its message (safe by the ports' contract) and type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ConnectorError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
