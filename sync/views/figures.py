"""Counts over the ledger that `/metrics` reports at scrape time: refills by status (counted
by the refills' owner, `sync.ledger`), entries by state, sync runs by outcome, and each
source's last finished run.

Read fresh on every scrape, so every replica reports the same truth and a restart loses
nothing. Each function is one grouped query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from sync.ledger import open_refill_counts, schema
from sync.model import OPEN_REFILL_STATUSES, EntryStatus, RefillStatus, RunOutcome


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """When a source's last finished sync run started and finished."""

    source: str
    started_at: dt.datetime
    finished_at: dt.datetime

    @property
    def duration(self) -> dt.timedelta:
        """How long it took."""
        return self.finished_at - self.started_at


def open_refills_by_status(conn: Connection) -> dict[str, int]:
    """Refills not yet paid or void, per open status (every open status, 0 when none)."""
    counts = open_refill_counts(conn)
    return {
        status: counts.get(status, 0) for status in RefillStatus if status in OPEN_REFILL_STATUSES
    }


def entries_by_state(conn: Connection) -> dict[tuple[str, str], int]:
    """Stored entries per (source, state), sorted; a deleted entry counts as `deleted`."""
    entries = schema.entries
    stmt = select(entries.c.source, entries.c.status, entries.c.deleted, func.count()).group_by(
        entries.c.source, entries.c.status, entries.c.deleted
    )
    counts: dict[tuple[str, str], int] = {}
    for source, status, deleted, count in conn.execute(stmt):
        key = (source, EntryStatus.DELETED if deleted else status)
        counts[key] = counts.get(key, 0) + int(count)
    return dict(sorted(counts.items()))


def runs_by_outcome(conn: Connection) -> dict[tuple[str, str], int]:
    """Finished sync runs per (source, outcome), sorted."""
    runs = schema.sync_runs
    stmt = (
        select(runs.c.source, runs.c.outcome, func.count())
        .where(runs.c.outcome != RunOutcome.RUNNING)
        .group_by(runs.c.source, runs.c.outcome)
        .order_by(runs.c.source, runs.c.outcome)
    )
    return {(source, outcome): int(count) for source, outcome, count in conn.execute(stmt)}


def last_finished_runs(conn: Connection) -> list[FinishedRun]:
    """The latest finished run of each source, by source."""
    runs = schema.sync_runs
    latest = (
        select(runs.c.source, func.max(runs.c.id).label("id"))
        .where(runs.c.finished_at.is_not(None))
        .group_by(runs.c.source)
        .subquery()
    )
    stmt = (
        select(runs.c.source, runs.c.started_at, runs.c.finished_at)
        .join(latest, runs.c.id == latest.c.id)
        .order_by(runs.c.source)
    )
    return [
        FinishedRun(source, started, finished) for source, started, finished in conn.execute(stmt)
    ]
