"""One sync of one source: fetch pages, store entries, post deltas, reconcile deletions.

Each page is one transaction: its entries, their postings, its invalid records and the
source's cursor commit together or not at all (I6), so a crash between pages loses nothing and
the next run resumes after the last committed page. A complete re-read of a date window (the
look-back) is diffed against the ledger to find entries that vanished, behind a guard that
refuses to reverse a mass of entries when a source answers suspiciously little.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select

from sync.crash import crash_point
from sync.delta import (
    ASSESSMENT_COLUMNS,
    ENTRY_COLUMNS,
    Assessed,
    assessment_columns,
    assessment_values,
    chunks,
    decision_for,
    entry_columns,
    entry_from_row,
    entry_values,
    post_assessments,
)
from sync.ledger import schema
from sync.ledger.database import Ledger, insert_values, utcnow
from sync.model import EntryStatus, InvalidRecord, RunOutcome, TimeEntry
from sync.ports import ConnectorError, DateWindow, FetchRequest, Page, TimeSource
from sync.prefetch import read_ahead
from sync.rules import Assessment, Pricer
from sync.settings import CsvSettings, SourceSettings

log = logging.getLogger(__name__)

E = schema.entries
IR = schema.invalid_records
LEASE_TTL = dt.timedelta(minutes=10)
# Renewing the lease is a commit of its own; once a minute keeps it far from expiring.
LEASE_RENEW_SECONDS = 60.0
# The deletion guard: refuse when a re-read would reverse more than this many entries AND
# more than this share of what the ledger knows in the window.
GUARD_MIN_ENTRIES = 10
GUARD_SHARE = 0.5
# What a new entry's row holds, in the order `_write_entries` builds it.
_INSERT_COLUMNS = (
    *ENTRY_COLUMNS,
    *ASSESSMENT_COLUMNS,
    "updated_at",
    "first_seen_at",
    "seen_run",
    "decision",
)


def process_holder() -> str:
    """Who holds a lease: host and pid, unique enough across replicas."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
        more = ("unrouted", "running", "invalid", "postings", "requests")
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
    ) -> RunSummary:
        """Sync one source. Connector failures end the run with outcome `failed` and a
        message; the cursor stays after the last committed page.
        """
        summary = RunSummary(source=settings.name)
        lease = f"source:{settings.name}"
        holder = self.ledger.acquire_lease(lease, self.holder, LEASE_TTL)
        if holder is not None:
            summary.outcome = RunOutcome.BUSY
            summary.error = f"{settings.name} is being synced by {holder}; skipped"
            return summary
        try:
            self._sync_locked(source, settings, summary, since, full, progress)
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
    ) -> None:
        now = self.clock()
        with self.ledger.begin() as conn:
            run_id = self._start_run(conn, settings.name, now)
            cursor, last_reconciled = self._load_state(conn, settings.name)
        state = _RunState(run_id=run_id, summary=summary)
        with self.ledger.read() as conn:
            state.open_invalid = (
                conn.execute(
                    select(IR.c.id)
                    .where((IR.c.source == settings.name) & IR.c.resolved_at.is_(None))
                    .limit(1)
                ).first()
                is not None
            )
        window = self._window(settings, now, last_reconciled, since=since, full=full)
        request = FetchRequest(cursor=cursor, window=window, now=now)
        reconciled = False
        lease, renewed = f"source:{settings.name}", time.monotonic()
        try:
            pages = source.fetch(request)
            if not isinstance(settings, CsvSettings):
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
        if summary.outcome == "ok" and (summary.invalid or summary.warnings):
            summary.outcome = RunOutcome.PARTIAL
        with self.ledger.begin() as conn:
            if reconciled and window is not None and since is None:
                self._save_state(conn, settings.name, last_reconciled_at=now)
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
    ) -> DateWindow | None:
        # One day past today: a tracker in another time zone may already be on tomorrow.
        end = now.astimezone(self.tz).date() + dt.timedelta(days=1)
        if since is not None:
            return DateWindow(since, end)
        due = last_reconciled is None or now - last_reconciled >= settings.reconcile_every
        if full or due:
            return DateWindow(end - dt.timedelta(days=settings.lookback_days + 1), end)
        return None

    def _start_run(self, conn: Connection, source: str, now: dt.datetime) -> int:
        result = conn.execute(
            schema.sync_runs.insert().values(
                source=source, started_at=now, outcome="running", counts="{}"
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def _finish_run(self, conn: Connection, state: _RunState) -> None:
        s = state.summary
        error = s.error or ("; ".join(s.warnings) if s.warnings else None)
        conn.execute(
            schema.sync_runs.update()
            .where(schema.sync_runs.c.id == state.run_id)
            .values(
                finished_at=self.clock(),
                outcome=s.outcome,
                counts=json.dumps(s.counts()),
                error=error,
            )
        )

    def _load_state(self, conn: Connection, source: str) -> tuple[str | None, dt.datetime | None]:
        row = conn.execute(
            select(schema.source_state.c.cursor, schema.source_state.c.last_reconciled_at).where(
                schema.source_state.c.source == source
            )
        ).first()
        return (None, None) if row is None else (row[0], row[1])

    def _save_state(self, conn: Connection, source: str, **values: Any) -> None:
        table = schema.source_state
        updated = conn.execute(table.update().where(table.c.source == source).values(**values))
        if updated.rowcount == 0:
            conn.execute(table.insert().values(source=source, **values))

    # --- one page -------------------------------------------------------------------------

    def _apply_page(self, conn: Connection, source: str, page: Page, state: _RunState) -> None:
        summary = state.summary
        now = self.clock()
        summary.requests += page.requests
        summary.fetched += len(page.entries)
        latest: dict[str, TimeEntry] = {}
        for entry in page.entries:
            latest[entry.external_id] = entry
        existing = self._existing(conn, source, list(latest))
        # Entries of a snapshot page are marked seen by this run (the deletion diff reads it).
        seen_run = state.run_id if page.snapshot is not None else None
        seen_unchanged: list[int] = []
        inserts: list[tuple[TimeEntry, Assessment]] = []
        updates: list[tuple[int, TimeEntry, Assessment, dict[str, Any]]] = []
        for external_id, entry in latest.items():
            row = existing.get(external_id)
            if row is not None and row.version == entry.version and row.deleted == entry.deleted:
                summary.unchanged += 1
                seen_unchanged.append(int(row.id))
                continue
            decision = decision_for(row, entry.version)
            assessment = self.pricer.assess(entry, decision)
            self._count(summary, assessment.status)
            if row is None:
                summary.new += 1
                inserts.append((entry, assessment))
                continue
            if entry.deleted:
                summary.deleted += 1
            else:
                summary.changed += 1
            values = {**entry_columns(entry), **assessment_columns(assessment), "updated_at": now}
            if seen_run is not None:
                values["seen_run"] = seen_run
            updates.append((int(row.id), entry, assessment, values))
        assessed = self._write_entries(conn, inserts, updates, seen_run)
        summary.postings += post_assessments(
            conn, assessed, run_id=state.run_id, now=now, update_entries=False
        )
        if seen_run is not None and seen_unchanged:
            conn.execute(
                E.update().where(E.c.id == bindparam("_id")).values(seen_run=seen_run),
                [{"_id": entry_id} for entry_id in seen_unchanged],
            )
        self._store_invalid(conn, source, page.invalid, state, now)
        if page.invalid:
            state.open_invalid = True
        if latest and state.open_invalid:
            self._resolve_invalid_ids(conn, source, list(latest), now)
        if page.cursor is not None:
            self._save_state(conn, source, cursor=page.cursor)

    def _existing(self, conn: Connection, source: str, external_ids: list[str]) -> dict[str, Any]:
        """The stored rows of these entries, by external id.

        Plain driver SQL: this runs for every page of every sync, and building a 500-item IN
        list through the expression layer costs more than the index look-ups themselves.
        """
        found: dict[str, Any] = {}
        mark = "?" if conn.dialect.name == "sqlite" else "%s"
        for part in chunks(external_ids):
            sql = (
                "SELECT id, external_id, version, deleted, decision, decision_version"
                f" FROM entries WHERE source = {mark} AND external_id IN"
                f" ({', '.join(mark for _ in part)})"
            )
            for row in conn.exec_driver_sql(sql, (source, *part)):
                found[row.external_id] = row
        return found

    def _write_entries(
        self,
        conn: Connection,
        inserts: list[tuple[TimeEntry, Assessment]],
        updates: list[tuple[int, TimeEntry, Assessment, dict[str, Any]]],
        seen_run: int | None,
    ) -> list[Assessed]:
        """Insert new entries and update changed ones in bulk; return them with their ids."""
        assessed: list[Assessed] = []
        if inserts:
            now = self.clock()
            # updated_at, first_seen_at, seen_run, decision: the same for every new entry
            tail = (now, now, seen_run, None)
            rows = [entry_values(entry) + assessment_values(a) + tail for entry, a in inserts]
            ids = self._insert_entries(conn, inserts, rows)
            for (entry, assessment), entry_id in zip(inserts, ids, strict=True):
                assessed.append(Assessed(entry_id, entry, assessment, new=True))
        if updates:
            names = sorted(updates[0][3])
            stmt = (
                E.update()
                .where(E.c.id == bindparam("_id"))
                .values({name: bindparam(f"v_{name}") for name in names})
            )
            params = [
                {"_id": entry_id, **{f"v_{k}": v for k, v in values.items()}}
                for entry_id, _, _, values in updates
            ]
            conn.execute(stmt, params)
            assessed.extend(Assessed(eid, entry, a) for eid, entry, a, _ in updates)
        return assessed

    def _insert_entries(
        self,
        conn: Connection,
        inserts: list[tuple[TimeEntry, Assessment]],
        rows: list[tuple[Any, ...]],
    ) -> list[int]:
        """Insert new entries and return their ids in order.

        On SQLite the write lock is ours (BEGIN IMMEDIATE) and a rowid table numbers new rows
        max + 1, max + 2, ...; that is checked, and any surprise falls back to a look-up.
        """
        before = None
        if conn.dialect.name == "sqlite":
            before = int(conn.execute(select(func.coalesce(func.max(E.c.id), 0))).scalar_one())
        insert_values(conn, E, _INSERT_COLUMNS, rows)
        if before is not None:
            after = int(conn.execute(select(func.max(E.c.id))).scalar_one())
            if after - before == len(rows):
                return list(range(before + 1, after + 1))
        source = inserts[0][0].source
        found = self._existing(conn, source, [entry.external_id for entry, _ in inserts])
        return [int(found[entry.external_id].id) for entry, _ in inserts]

    @staticmethod
    def _count(summary: RunSummary, status: str) -> None:
        if status == EntryStatus.DEDUCTED:
            summary.deducted += 1
        elif status == EntryStatus.PENDING:
            summary.pending += 1
        elif status == EntryStatus.UNROUTED:
            summary.unrouted += 1
        elif status == EntryStatus.RUNNING:
            summary.running += 1

    # --- invalid records ------------------------------------------------------------------

    def _store_invalid(
        self,
        conn: Connection,
        source: str,
        records: Any,
        state: _RunState,
        now: dt.datetime,
    ) -> None:
        for record in records:
            assert isinstance(record, InvalidRecord)
            state.summary.invalid += 1
            if record.external_id is not None:
                state.protected_ids.add(record.external_id)
            if record.spent_date is None:
                state.undated_invalid = True
            else:
                state.protected_dates.add(record.spent_date)
            raw = json.dumps(record.raw, default=str, sort_keys=True, separators=(",", ":"))
            fingerprint = hashlib.sha256(
                f"{record.external_id}\x1f{raw}".encode(), usedforsecurity=False
            ).hexdigest()
            values = {
                "locator": record.locator,
                "reason": record.reason,
                "external_id": record.external_id,
                "spent_date": record.spent_date,
                "raw": raw,
                "run_id": state.run_id,
                "last_seen_at": now,
                "resolved_at": None,
            }
            updated = conn.execute(
                IR.update()
                .where((IR.c.source == source) & (IR.c.fingerprint == fingerprint))
                .values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(
                    IR.insert().values(
                        source=source, fingerprint=fingerprint, first_seen_at=now, **values
                    )
                )

    def _resolve_invalid_ids(
        self, conn: Connection, source: str, external_ids: list[str], now: dt.datetime
    ) -> None:
        """A valid version of a record that was invalid before resolves it."""
        for part in chunks(external_ids):
            conn.execute(
                IR.update()
                .where(
                    (IR.c.source == source)
                    & IR.c.external_id.in_(part)
                    & IR.c.resolved_at.is_(None)
                )
                .values(resolved_at=now)
            )

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
        in_window = (
            (E.c.source == source)
            & (E.c.spent_date >= window.start)
            & (E.c.spent_date <= window.end)
            & E.c.deleted.is_(False)
        )
        if clients is not None:
            named = E.c.client_name.in_(sorted(name for name in clients if name))
            in_window = in_window & (
                or_(named, E.c.client_name.is_(None)) if "" in clients else named
            )
        if state.undated_invalid:
            summary.warnings.append(
                f"{source}: deletions in {window.start}..{window.end} not reconciled because a"
                " record without a readable date was invalid; fix it and sync again"
            )
            return
        not_seen = or_(E.c.seen_run.is_(None), E.c.seen_run != state.run_id)
        # One pass over the window counts both; the rows are read only when some were missed.
        known, missed = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((not_seen, 1), else_=0)), 0)).where(
                in_window
            )
        ).one()
        known = int(known)
        rows = conn.execute(select(E).where(and_(in_window, not_seen))).all() if missed else []
        vanished = [
            row
            for row in rows
            if row.spent_date not in state.protected_dates
            and row.external_id not in state.protected_ids
        ]
        if len(vanished) > GUARD_MIN_ENTRIES and len(vanished) > known * GUARD_SHARE:
            summary.warnings.append(
                f"{source}: a complete re-read of {window.start}..{window.end} returned"
                f" {known - len(rows)} of the {known} entries the ledger knows; refusing to"
                f" reverse {len(vanished)} entries as deleted (the tracker may have answered"
                " incompletely). Check the tracker, then run `prepaid sync --full` again."
            )
            return
        assessed = []
        for row in vanished:
            entry = entry_from_row(row)
            gone = TimeEntry(**{**_fields(entry), "deleted": True})
            assessment = self.pricer.assess(gone, None)
            assessed.append(Assessed(int(row.id), gone, assessment))
        for part in chunks([a.entry_id for a in assessed]):
            conn.execute(E.update().where(E.c.id.in_(part)).values(deleted=True, updated_at=now))
        summary.deleted += len(assessed)
        summary.postings += post_assessments(conn, assessed, run_id=state.run_id, now=now)
        conn.execute(
            IR.update()
            .where(
                (IR.c.source == source)
                & IR.c.resolved_at.is_(None)
                & (IR.c.run_id != state.run_id)
                & (
                    IR.c.spent_date.is_(None)
                    | ((IR.c.spent_date >= window.start) & (IR.c.spent_date <= window.end))
                )
            )
            .values(resolved_at=now)
        )


def _fields(entry: TimeEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in TimeEntry.__dataclass_fields__}
