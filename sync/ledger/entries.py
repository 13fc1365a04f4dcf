"""The `entries` table: each fetched time entry at its latest version, with the last
assessment cached for listings (the money truth is always `postings`) and the operator's
review decision.

The sync's hot path (`stored_versions`, `insert_entries`) speaks to the driver directly: a
sync stores tens of thousands of entries, and SQLAlchemy's per-row processing costs more than
the database itself there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Connection, RowMapping, bindparam, case, func, or_, select

from sync.ledger import schema
from sync.ledger.database import chunks, insert_values
from sync.model import TimeEntry
from sync.rules import Assessment, Priced

E = schema.entries

# The fallback for what orjson refuses (an integer beyond 64 bits): one standard encoder,
# built once, because building one per call costs more than encoding a small row.
_STANDARD_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode


def _encode(value: object) -> str:
    """Compact JSON for an entry's tags and raw payload. orjson, because this runs for every
    entry a sync stores, where the standard encoder took about 5% of a whole CSV sync.
    """
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return _STANDARD_ENCODE(value)


# The columns that hold the tracker's data for one version, in `_entry_values` order.
ENTRY_COLUMNS = (
    "source", "external_id", "version", "spent_date", "seconds", "billable", "start_at",
    "stop_at", "running", "deleted", "user_id", "user_name", "client_id", "client_name",
    "project_id", "project_name", "task_id", "task_name", "tags", "description", "rate",
    "rate_currency", "raw",
)  # fmt: skip

# The columns that cache the latest assessment for listings, in `_assessment_values` order.
ASSESSMENT_COLUMNS = (
    "status", "reason", "customer_id", "budget_id", "unit", "amount_minor", "rule", "priced",
)  # fmt: skip

# What a new entry's row holds, in the order `insert_entries` builds it.
_INSERT_COLUMNS = (
    *ENTRY_COLUMNS,
    *ASSESSMENT_COLUMNS,
    "updated_at",
    "first_seen_at",
    "seen_run",
    "decision",
)


def _entry_values(entry: TimeEntry) -> tuple[Any, ...]:
    """The values of `ENTRY_COLUMNS` for this version (a tuple: a sync inserts thousands)."""
    return (
        entry.source,
        entry.external_id,
        entry.version,
        entry.spent_date,
        entry.seconds,
        entry.billable,
        entry.start,
        entry.stop,
        entry.running,
        entry.deleted,
        entry.user_id,
        entry.user_name,
        entry.client_id,
        entry.client_name,
        entry.project_id,
        entry.project_name,
        entry.task_id,
        entry.task_name,
        _encode(entry.tags) if entry.tags else "[]",
        entry.description,
        None if entry.rate is None else str(entry.rate),
        entry.rate_currency,
        _encode(entry.raw),
    )


def _assessment_values(a: Assessment) -> tuple[Any, ...]:
    """The values of `ASSESSMENT_COLUMNS` for an assessment."""
    # a pending entry shows what it will cost once approved; only postings carry money
    amount = a.amount_minor or a.pending_amount_minor
    priced = a.priced.version if a.priced is not None else None
    return (a.status, a.reason, a.customer_id, a.budget_id, a.unit, amount, a.rule, priced)


# The columns of a decision's figures, in `_decided_on` order.
DECISION_COLUMNS = (
    "decision_customer", "decision_budget", "decision_unit", "decision_seconds",
    "decision_rate", "decision_amount",
)  # fmt: skip


def _decided_on(
    customer: str | None,
    budget: str | None,
    unit: str | None,
    seconds: int | None,
    rate: str | None,
    amount: int | None,
) -> Priced | None:
    """The figures a decision was made on, or None for a decision recorded before they were
    kept (revision 0006)."""
    if customer is None or budget is None or unit is None or seconds is None or amount is None:
        return None
    return Priced(
        customer, budget, unit, int(seconds), None if rate is None else Decimal(rate), int(amount)
    )


class StoredVersion(NamedTuple):
    """What the sync needs to know about a stored entry to tell whether a fetched one is new,
    changed or unchanged, and which review decision still applies to it: the decision with the
    figures it was made on (`decided_on`), and the cached `status` and `priced` version of what
    the entry is charged at now."""

    id: int
    external_id: str
    version: str
    deleted: bool
    decision: str | None
    decision_version: str | None
    decided_on: Priced | None = None
    status: str | None = None
    priced: str | None = None


class StoredEntry(NamedTuple):
    """A stored entry rebuilt as the tracker gave it (to re-value it under new rules), with its
    row id and the operator's review decision."""

    id: int
    entry: TimeEntry
    decision: str | None
    decision_version: str | None
    decided_on: Priced | None = None
    status: str | None = None
    priced: str | None = None


def stored_versions(
    conn: Connection, source: str, external_ids: Sequence[str]
) -> dict[str, StoredVersion]:
    """The stored versions of these entries, by external id.

    Plain driver SQL: this runs for every page of every sync, and building a 500-item IN
    list through the expression layer costs more than the index look-ups themselves.
    """
    found: dict[str, StoredVersion] = {}
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    for part in chunks(external_ids):
        sql = (
            "SELECT id, external_id, version, deleted, decision, decision_version, status,"
            f" priced, {', '.join(DECISION_COLUMNS)}"
            f" FROM entries WHERE source = {mark} AND external_id IN"
            f" ({', '.join(mark for _ in part)})"
        )
        for row in conn.exec_driver_sql(sql, (source, *part)):
            eid, ext, version, deleted, decision, decided, status, priced, *on = row
            found[ext] = StoredVersion(
                eid,
                ext,
                version,
                bool(deleted),
                decision,
                decided,
                _decided_on(*on) if decision is not None else None,
                status,
                priced,
            )
    return found


def rename_entries(conn: Connection, renames: Sequence[tuple[int, str]]) -> None:
    """Give stored entries their new external ids (an adapter changed how it derives them):
    the entry, its postings and its review decision stay one."""
    for entry_id, external_id in renames:
        conn.execute(E.update().where(E.c.id == entry_id).values(external_id=external_id))


def insert_entries(
    conn: Connection,
    new: Sequence[tuple[TimeEntry, Assessment]],
    *,
    now: dt.datetime,
    seen_run: int | None,
) -> list[int]:
    """Insert new entries (all of one source) with their assessment; return their ids in order.

    On SQLite the write lock is ours (BEGIN IMMEDIATE) and a rowid table numbers new rows
    max + 1, max + 2, ...; that is checked, and any surprise falls back to a look-up.
    """
    if not new:
        return []
    # updated_at, first_seen_at, seen_run, decision: the same for every new entry
    tail = (now, now, seen_run, None)
    rows = [_entry_values(entry) + _assessment_values(a) + tail for entry, a in new]
    before = None
    if conn.dialect.name == "sqlite":
        before = int(conn.execute(select(func.coalesce(func.max(E.c.id), 0))).scalar_one())
    insert_values(conn, E, _INSERT_COLUMNS, rows)
    if before is not None:
        after = int(conn.execute(select(func.max(E.c.id))).scalar_one())
        if after - before == len(rows):
            return list(range(before + 1, after + 1))
    source = new[0][0].source
    found = stored_versions(conn, source, [entry.external_id for entry, _ in new])
    return [found[entry.external_id].id for entry, _ in new]


def update_entries(
    conn: Connection,
    changed: Sequence[tuple[int, TimeEntry, Assessment]],
    *,
    now: dt.datetime,
    seen_run: int | None,
) -> None:
    """Store a new version of each entry (by row id) with its assessment, in one executemany."""
    if not changed:
        return
    names = [*ENTRY_COLUMNS, *ASSESSMENT_COLUMNS, "updated_at"]
    if seen_run is not None:
        names.append("seen_run")
    stmt = (
        E.update()
        .where(E.c.id == bindparam("_id"))
        .values({name: bindparam(f"v_{name}") for name in names})
    )
    tail = (now,) if seen_run is None else (now, seen_run)
    params = [
        {
            "_id": entry_id,
            **dict(
                zip(
                    (f"v_{name}" for name in names),
                    _entry_values(entry) + _assessment_values(a) + tail,
                    strict=True,
                )
            ),
        }
        for entry_id, entry, a in changed
    ]
    conn.execute(stmt, params)


def update_assessments(conn: Connection, assessed: Sequence[tuple[int, Assessment]]) -> None:
    """Refresh the cached assessment of these entries (by row id)."""
    if not assessed:
        return
    stmt = (
        E.update()
        .where(E.c.id == bindparam("_id"))
        .values({name: bindparam(name) for name in ASSESSMENT_COLUMNS})
    )
    conn.execute(
        stmt,
        [
            {"_id": entry_id, **dict(zip(ASSESSMENT_COLUMNS, _assessment_values(a), strict=True))}
            for entry_id, a in assessed
        ],
    )


def mark_seen(conn: Connection, entry_ids: Sequence[int], run_id: int) -> None:
    """Record that a complete re-read by run `run_id` returned these entries unchanged."""
    if entry_ids:
        conn.execute(
            E.update().where(E.c.id == bindparam("_id")).values(seen_run=run_id),
            [{"_id": entry_id} for entry_id in entry_ids],
        )


def mark_deleted(conn: Connection, entry_ids: Sequence[int], now: dt.datetime) -> None:
    """Record that these entries were deleted in their tracker."""
    for part in chunks(entry_ids):
        conn.execute(E.update().where(E.c.id.in_(part)).values(deleted=True, updated_at=now))


def record_decision(
    conn: Connection,
    entry_id: int,
    decision: str,
    version: str,
    on: Priced | None,
    now: dt.datetime,
) -> None:
    """Store the operator's review decision on `version` of an entry and the budget and priced
    figures it was made `on` (None when the entry could not be priced: then it applies as a
    plain decision)."""
    figures: tuple[Any, ...] = (None,) * len(DECISION_COLUMNS)
    if on is not None:
        rate = None if on.rate is None else str(on.rate)
        figures = (on.customer_id, on.budget_id, on.unit, on.billed_seconds, rate, on.amount_minor)
    conn.execute(
        E.update()
        .where(E.c.id == entry_id)
        .values(
            decision=decision,
            decision_version=version,
            decided_at=now,
            **dict(zip(DECISION_COLUMNS, figures, strict=True)),
        )
    )


def _stored(m: RowMapping) -> StoredEntry:
    """Rebuild the normalised entry from its stored row."""
    entry = TimeEntry(
        source=m["source"],
        external_id=m["external_id"],
        version=m["version"],
        spent_date=m["spent_date"],
        seconds=int(m["seconds"]),
        billable=bool(m["billable"]),
        start=m["start_at"],
        stop=m["stop_at"],
        running=bool(m["running"]),
        deleted=bool(m["deleted"]),
        user_id=m["user_id"],
        user_name=m["user_name"],
        client_id=m["client_id"],
        client_name=m["client_name"],
        project_id=m["project_id"],
        project_name=m["project_name"],
        task_id=m["task_id"],
        task_name=m["task_name"],
        tags=tuple(json.loads(m["tags"] or "[]")),
        description=m["description"] or "",
        rate=None if m["rate"] is None else Decimal(m["rate"]),
        rate_currency=m["rate_currency"],
    )
    decided_on = None
    if m["decision"] is not None:
        decided_on = _decided_on(*(m[name] for name in DECISION_COLUMNS))
    return StoredEntry(
        int(m["id"]),
        entry,
        m["decision"],
        m["decision_version"],
        decided_on,
        m["status"],
        m["priced"],
    )


def entries_after(conn: Connection, last_id: int, limit: int) -> list[StoredEntry]:
    """Up to `limit` entries with ids above `last_id`, in id order (to walk the whole table)."""
    stmt = select(E).where(E.c.id > last_id).order_by(E.c.id).limit(limit)
    return [_stored(row) for row in conn.execute(stmt).mappings()]


def entries_by_id(conn: Connection, entry_ids: Sequence[int]) -> dict[int, StoredEntry]:
    """The stored entries with these ids (ids that do not exist are left out)."""
    found: dict[int, StoredEntry] = {}
    for part in chunks(entry_ids):
        for row in conn.execute(select(E).where(E.c.id.in_(part))).mappings():
            stored = _stored(row)
            found[stored.id] = stored
    return found


def _in_window(
    source: str, start: dt.date, end: dt.date, clients: frozenset[str] | None
) -> ColumnElement[bool]:
    """A source's live entries in `start`..`end`; with `clients`, only those of these client
    names ("" for entries without a client), as `Page.snapshot_clients` narrows a snapshot."""
    where = (
        (E.c.source == source)
        & (E.c.spent_date >= start)
        & (E.c.spent_date <= end)
        & E.c.deleted.is_(False)
    )
    if clients is not None:
        named = E.c.client_name.in_(sorted(name for name in clients if name))
        where = where & (or_(named, E.c.client_name.is_(None)) if "" in clients else named)
    return where


def _not_seen(run_id: int) -> ColumnElement[bool]:
    return or_(E.c.seen_run.is_(None), E.c.seen_run != run_id)


class WindowCount(NamedTuple):
    """How many live entries of a source the ledger knows in a date window, and how many of
    them a complete re-read (run) did not return."""

    known: int
    missed: int


def count_window(
    conn: Connection,
    source: str,
    start: dt.date,
    end: dt.date,
    run_id: int,
    clients: frozenset[str] | None = None,
) -> WindowCount:
    """`WindowCount` for `start`..`end` (inclusive; `clients` as in `_in_window`) after run
    `run_id`, in one pass."""
    in_window, not_seen = _in_window(source, start, end, clients), _not_seen(run_id)
    known, missed = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((not_seen, 1), else_=0)), 0)).where(
            in_window
        )
    ).one()
    return WindowCount(int(known), int(missed))


def missed_in_window(
    conn: Connection,
    source: str,
    start: dt.date,
    end: dt.date,
    run_id: int,
    clients: frozenset[str] | None = None,
) -> list[StoredEntry]:
    """The live entries in `start`..`end` (`clients` as in `_in_window`) that run `run_id` did
    not return."""
    stmt = select(E).where(_in_window(source, start, end, clients) & _not_seen(run_id))
    return [_stored(row) for row in conn.execute(stmt).mappings()]
