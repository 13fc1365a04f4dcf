"""One sync of one source: fetch pages, store entries, post deltas, reconcile deletions.

Each page is one transaction: its entries, their postings, its invalid records and the
source's cursor commit together or not at all (I6), so a crash between pages loses nothing and
the next run resumes after the last committed page. A complete re-read of a date window (the
look-back) is diffed against the ledger to find entries that vanished, behind a guard that
refuses to reverse a mass of entries when a source answers suspiciously little.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from sync import ledger as store
from sync.crash import crash_point
from sync.delta import Assessed, decision_for, post_assessments
from sync.ledger import Ledger, leases, utcnow
from sync.model import EntryStatus, RunOutcome, TimeEntry
from sync.ports import ConnectorError, DateWindow, FetchRequest, Page, TimeSource
from sync.prefetch import read_ahead
from sync.rules import Assessment, Pricer
from sync.settings import SourceSettings

log = logging.getLogger(__name__)

LEASE_TTL = dt.timedelta(minutes=10)
# Renewing the lease is a commit of its own; once a minute keeps it far from expiring.
LEASE_RENEW_SECONDS = 60.0
# The deletion guard: refuse when a re-read would reverse more than this many entries AND
# more than this share of what the ledger knows in the window.
GUARD_MIN_ENTRIES = 10
GUARD_SHARE = 0.5


def process_holder() -> str:
    """Who holds a lease: this process, unique across replicas even where containers share a
    host name and each is PID 1 (see `sync.ledger.leases.process_holder`).
    """
    return leases.process_holder()


@dataclass
class RunSummary:
    """What one sync of a source did; printed by the CLI and kept in `sync_runs`."""

    source: str
    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    deducted: int = 0
    pending: int = 0
    # Routed work that is not charged: excluded by its budget's rules or the operator, or
    # unpriced (no usable rate; needs the operator, so it makes the run partial).
    excluded: int = 0
    unpriced: int = 0
    unrouted: int = 0
    running: int = 0
    invalid: int = 0
    postings: int = 0
    requests: int = 0
    outcome: RunOutcome = RunOutcome.OK
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The numeric fields, for JSON and metrics."""
        names = ("fetched", "new", "changed", "unchanged", "deleted", "deducted", "pending")
        more = ("excluded", "unpriced", "unrouted", "running", "invalid", "postings", "requests")
        return {name: int(getattr(self, name)) for name in names + more}


@dataclass
class _RunState:
    run_id: int
    summary: RunSummary
    protected_dates: set[dt.date] = field(default_factory=set)
    # Ids of records that were invalid this run: their last good version is not a deletion,
    # whatever date the invalid one has (a CSV id on two lines, an edit to a bad value).
    protected_ids: set[str] = field(default_factory=set)
    undated_invalid: bool = False
    # `sync --full --accept-deletions`: the operator confirmed that a mass of entries really
    # vanished, so the guard lets this run reverse them (and says so in their postings).
    accept_deletions: bool = False
    # Whether the source has unresolved invalid records a valid version could resolve; most
    # runs have none, and then a page needs no look-up for them.
    open_invalid: bool = True


class SyncEngine:
    """Runs syncs of sources against one ledger and one set of pricing rules."""

    def __init__(
        self,
        ledger: Ledger,
        pricer: Pricer,
        *,
        timezone: str = "UTC",
        clock: Callable[[], dt.datetime] = utcnow,
        holder: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.pricer = pricer
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.holder = holder or process_holder()

    def sync(
        self,
        source: TimeSource,
        settings: SourceSettings,
        *,
        since: dt.date | None = None,
        full: bool = False,
        progress: Callable[[int], None] | None = None,
        accept_deletions: bool = False,
    ) -> RunSummary:
        """Sync one source. Connector failures end the run with outcome `failed` and a
        message; the cursor stays after the last committed page. `accept_deletions` lets the
        deletion guard pass a mass reversal the operator confirmed (`--accept-deletions`).
        """
        summary = RunSummary(source=settings.name)
        lease = f"source:{settings.name}"
        holder = self.ledger.acquire_lease(lease, self.holder, LEASE_TTL)
        if holder is not None:
            summary.outcome = RunOutcome.BUSY
            summary.error = f"{settings.name} is being synced by {holder}; skipped"
            return summary
        try:
            self._sync_locked(source, settings, summary, since, full, progress, accept_deletions)
        finally:
            self.ledger.release_lease(lease, self.holder)
        return summary

    def _sync_locked(
        self,
        source: TimeSource,
        settings: SourceSettings,
        summary: RunSummary,
        since: dt.date | None,
        full: bool,
        progress: Callable[[int], None] | None,
        accept_deletions: bool = False,
    ) -> None:
        now = self.clock()
        with self.ledger.begin() as conn:
            run_id = store.start_run(conn, settings.name, now)
            cursor, last_reconciled = store.load_state(conn, settings.name)
        state = _RunState(run_id=run_id, summary=summary, accept_deletions=accept_deletions)
        with self.ledger.read() as conn:
            state.open_invalid = store.has_open(conn, settings.name)
        first = cursor is None and last_reconciled is None
        window = self._window(settings, now, last_reconciled, since=since, full=full, first=first)
        request = FetchRequest(cursor=cursor, window=window, now=now)
        reconciled = False
        lease, renewed = f"source:{settings.name}", time.monotonic()
        try:
            pages = source.fetch(request)
            if not settings.reads_local_files:
                # A tracker's next page downloads while this one is stored. A local file
                # gains nothing: parsing it competes with storing for the same interpreter.
                pages = read_ahead(pages, name=f"fetch {settings.name}")
            for page in pages:
                with self.ledger.begin() as conn:
                    self._apply_page(conn, settings.name, page, state)
                    if page.snapshot is not None and page.snapshot_complete:
                        # A source may answer a window with its own (a CSV file covers its
                        # dates): any complete re-read counts as this run's reconciliation.
                        self._reconcile(
                            conn, settings.name, page.snapshot, state, page.snapshot_clients
                        )
                        reconciled = True
                    crash_point("before_page_commit")
                crash_point("after_page_commit")
                if time.monotonic() - renewed > LEASE_RENEW_SECONDS:
                    self.ledger.acquire_lease(lease, self.holder, LEASE_TTL)
                    renewed = time.monotonic()
                if progress is not None:
                    progress(len(page.entries) + len(page.invalid))
        except ConnectorError as exc:
            summary.outcome = RunOutcome.FAILED
            summary.error = str(exc)
        except BaseException as exc:
            # Anything else (a bug, an interrupt) still closes the run's record; the
            # committed pages stand and the cursor is where the last one left it.
            summary.outcome = RunOutcome.FAILED
            summary.error = f"interrupted: {type(exc).__name__}"
            with self.ledger.begin() as conn:
                self._finish_run(conn, state)
            raise
        # Unpriced work counts here only on the run that finds it new or changed (an unchanged
        # entry is skipped), so a cron job is not paged again for a record nobody has fixed.
        if summary.outcome == "ok" and (summary.invalid or summary.unpriced or summary.warnings):
            summary.outcome = RunOutcome.PARTIAL
        with self.ledger.begin() as conn:
            if reconciled and window is not None and since is None:
                store.save_reconciled(conn, settings.name, now)
            self._finish_run(conn, state)

    # --- run bookkeeping ------------------------------------------------------------------

    def _window(
        self,
        settings: SourceSettings,
        now: dt.datetime,
        last_reconciled: dt.datetime | None,
        *,
        since: dt.date | None,
        full: bool,
        first: bool = False,
    ) -> DateWindow | None:
        # One day past today: a tracker in another time zone may already be on tomorrow.
        end = now.astimezone(self.tz).date() + dt.timedelta(days=1)
        if since is not None:
            return DateWindow(since, end)
        if first and not full:
            # A first sync reads the look-back period from scratch anyway, and the ledger knows
            # nothing of the source to reverse: a look-back pass would read every entry twice
            # (and report it fetched twice). The next run, still never reconciled, does it.
            return None
        due = last_reconciled is None or now - last_reconciled >= settings.reconcile_every
        if full or due:
            return DateWindow(end - dt.timedelta(days=settings.lookback_days + 1), end)
        return None

    def _finish_run(self, conn: Connection, state: _RunState) -> None:
        s = state.summary
        store.finish_run(
            conn,
            state.run_id,
            finished_at=self.clock(),
            outcome=s.outcome,
            counts=s.counts(),
            error=s.error or ("; ".join(s.warnings) if s.warnings else None),
        )

    # --- one page -------------------------------------------------------------------------

    def _apply_page(self, conn: Connection, source: str, page: Page, state: _RunState) -> None:
        summary = state.summary
        now = self.clock()
        summary.requests += page.requests
        summary.fetched += len(page.entries)
        latest: dict[str, TimeEntry] = {}
        for entry in page.entries:
            latest[entry.external_id] = entry
        existing = store.stored_versions(conn, source, list(latest))
        self._carry_over(conn, source, latest, existing)
        # Entries of a snapshot page are marked seen by this run (the deletion diff reads it).
        seen_run = state.run_id if page.snapshot is not None else None
        seen_unchanged: list[int] = []
        inserts: list[tuple[TimeEntry, Assessment]] = []
        updates: list[tuple[int, TimeEntry, Assessment]] = []
        for external_id, entry in latest.items():
            stored = existing.get(external_id)
            if (
                stored is not None
                and stored.version == entry.version
                and stored.deleted == entry.deleted
            ):
                summary.unchanged += 1
                seen_unchanged.append(stored.id)
                continue
            assessment = self.pricer.assess(entry, decision_for(stored, entry.version))
            self._count(summary, assessment.status)
            if stored is None:
                summary.new += 1
                inserts.append((entry, assessment))
                continue
            if entry.deleted:
                summary.deleted += 1
            else:
                summary.changed += 1
            updates.append((stored.id, entry, assessment))
        ids = store.insert_entries(conn, inserts, now=now, seen_run=seen_run)
        store.update_entries(conn, updates, now=now, seen_run=seen_run)
        assessed = [
            Assessed(entry_id, entry, a, new=True)
            for (entry, a), entry_id in zip(inserts, ids, strict=True)
        ]
        assessed.extend(Assessed(entry_id, entry, a) for entry_id, entry, a in updates)
        summary.postings += post_assessments(
            conn, assessed, run_id=state.run_id, now=now, update_entries=False
        )
        if seen_run is not None:
            store.mark_seen(conn, seen_unchanged, seen_run)
        for record in page.invalid:
            state.summary.invalid += 1
            if record.external_id is not None:
                state.protected_ids.add(record.external_id)
            if record.spent_date is None:
                state.undated_invalid = True
            else:
                state.protected_dates.add(record.spent_date)
            store.record_invalid(conn, record, run_id=state.run_id, now=now)
        if page.invalid:
            state.open_invalid = True
        if latest and state.open_invalid:
            store.resolve_by_external_ids(conn, source, list(latest), now)
        if page.cursor is not None:
            store.save_cursor(conn, source, page.cursor)

    @staticmethod
    def _carry_over(
        conn: Connection,
        source: str,
        latest: dict[str, TimeEntry],
        existing: dict[str, store.StoredVersion],
    ) -> None:
        """Entries stored under the id an earlier release derived (`TimeEntry.former_id`) take
        their new id, so an upgrade neither reverses nor charges anything, and postings and
        review decisions stay with the work. Looked up only for entries not found by id.
        """
        former = {
            entry.former_id: external_id
            for external_id, entry in latest.items()
            if entry.former_id is not None and external_id not in existing
        }
        if not former:
            return
        found = store.stored_versions(conn, source, list(former))
        store.rename_entries(conn, [(stored.id, former[old]) for old, stored in found.items()])
        for old, stored in found.items():
            existing[former[old]] = stored._replace(external_id=former[old])

    @staticmethod
    def _count(summary: RunSummary, status: str) -> None:
        if status == EntryStatus.DEDUCTED:
            summary.deducted += 1
        elif status == EntryStatus.PENDING:
            summary.pending += 1
        elif status == EntryStatus.EXCLUDED:
            summary.excluded += 1
        elif status == EntryStatus.UNPRICED:
            summary.unpriced += 1
        elif status == EntryStatus.UNROUTED:
            summary.unrouted += 1
        elif status == EntryStatus.RUNNING:
            summary.running += 1

    # --- deletions ------------------------------------------------------------------------

    def _reconcile(
        self,
        conn: Connection,
        source: str,
        window: DateWindow,
        state: _RunState,
        clients: frozenset[str] | None = None,
    ) -> None:
        """Entries the ledger knows in `window` that a complete re-read no longer returned
        were deleted in the tracker: reverse them, unless the guard says the answer is suspect.
        `clients`, when set, narrows the snapshot to those client names (see `Page`).
        """
        summary = state.summary
        now = self.clock()
        if state.undated_invalid:
            summary.warnings.append(
                f"{source}: deletions in {window.start}..{window.end} not reconciled because a"
                " record without a readable date was invalid; fix it and sync again"
            )
            return
        # One pass over the window counts both; the rows are read only when some were missed.
        known, missed = store.count_window(
            conn, source, window.start, window.end, state.run_id, clients
        )
        rows = (
            store.missed_in_window(conn, source, window.start, window.end, state.run_id, clients)
            if missed
            else []
        )
        vanished = [
            row
            for row in rows
            if row.entry.spent_date not in state.protected_dates
            and row.entry.external_id not in state.protected_ids
        ]
        accepted: str | None = None
        if len(vanished) > GUARD_MIN_ENTRIES and len(vanished) > known * GUARD_SHARE:
            if not state.accept_deletions:
                summary.warnings.append(
                    f"{source}: a complete re-read of {window.start}..{window.end} returned"
                    f" {known - len(rows)} of the {known} entries the ledger knows; refusing"
                    f" to reverse {len(vanished)} entries as deleted (the tracker may have"
                    " answered incompletely). Check the tracker and sync again; if they"
                    " really were deleted there, confirm with `prepaid sync --full"
                    f" --source {source} --accept-deletions`."
                )
                return
            # The operator's confirmation is the reason these reversals exist: say so in
            # each posting, so the ledger explains a mass reversal without anyone's memory.
            accepted = (
                "deleted at the source, mass deletion accepted by the operator on"
                f" {now.astimezone(self.tz).date().isoformat()}"
            )
        assessed = []
        for stored in vanished:
            gone = dataclasses.replace(stored.entry, deleted=True)
            assessment = self.pricer.assess(gone, None)
            if accepted is not None:
                assessment = assessment._replace(reason=accepted)
            assessed.append(Assessed(stored.id, gone, assessment))
        store.mark_deleted(conn, [a.entry_id for a in assessed], now)
        summary.deleted += len(assessed)
        summary.postings += post_assessments(conn, assessed, run_id=state.run_id, now=now)
        store.resolve_in_window(conn, source, window.start, window.end, state.run_id, now)
