"""The delta rule: post what an entry should cost now minus what it already costs.

Everything that can change an entry's cost (a new version, a deletion, a review decision, a
config change) ends here, in `post_assessments`, inside the caller's transaction. Because the
amount posted is always a difference against the ledger itself, running it twice, or after a
crash, posts nothing the second time (I1).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import Connection, Row, bindparam, func, select

from sync.ledger import schema
from sync.ledger.database import insert_postings
from sync.model import PostingKind, TimeEntry, format_amount
from sync.rules import Assessment

E = schema.entries
P = schema.postings
T = TypeVar("T")

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


# Stay well below SQLite's bound-parameter limit in IN (...) lists.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Assessed(NamedTuple):
    """An entry (already stored, with its row id) and what it should cost now (a named tuple,
    as `Assessment` is: one is built for every entry a sync stores).
    """

    entry_id: int
    entry: TimeEntry
    assessment: Assessment
    new: bool = False  # just inserted: it has no postings yet


# The `entries` columns that hold the tracker's data for one version, in `entry_values` order.
ENTRY_COLUMNS = (
    "source", "external_id", "version", "spent_date", "seconds", "billable", "start_at",
    "stop_at", "running", "deleted", "user_id", "user_name", "client_id", "client_name",
    "project_id", "project_name", "task_id", "task_name", "tags", "description", "rate",
    "rate_currency", "raw",
)  # fmt: skip

# The `entries` columns that cache the latest assessment for listings, in
# `assessment_values` order; the money truth is always the postings.
ASSESSMENT_COLUMNS = (
    "status", "reason", "customer_id", "budget_id", "unit", "amount_minor", "rule",
)  # fmt: skip


def entry_values(entry: TimeEntry) -> tuple[Any, ...]:
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


def entry_columns(entry: TimeEntry) -> dict[str, Any]:
    """`entry_values` by column name."""
    return dict(zip(ENTRY_COLUMNS, entry_values(entry), strict=True))


def assessment_values(a: Assessment) -> tuple[Any, ...]:
    """The values of `ASSESSMENT_COLUMNS` for an assessment."""
    # a pending entry shows what it will cost once approved; only postings carry money
    amount = a.amount_minor or a.pending_amount_minor
    return (a.status, a.reason, a.customer_id, a.budget_id, a.unit, amount, a.rule)


def assessment_columns(a: Assessment) -> dict[str, Any]:
    """`assessment_values` by column name."""
    return dict(zip(ASSESSMENT_COLUMNS, assessment_values(a), strict=True))


def entry_from_row(row: Row[Any]) -> TimeEntry:
    """Rebuild the normalised entry from its stored row (to re-value it under new rules)."""
    m = row._mapping
    return TimeEntry(
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


def decision_for(row: Any, version: str) -> str | None:
    """The operator's review decision that still applies to `version` of an entry.

    Exclusion sticks to the entry; approval covers the version that was approved, so an entry
    edited after approval goes back to review instead of charging the client unseen.
    """
    if row is None or row.decision is None:
        return None
    if row.decision == "excluded":
        return "excluded"
    return "approved" if row.decision_version == version else None


def posted_by_entry(
    conn: Connection, entry_ids: Sequence[int]
) -> dict[int, dict[tuple[str, str, str], tuple[int, int]]]:
    """What each entry already costs: {(customer, budget, unit): (sum, postings)} per entry."""
    found: dict[int, dict[tuple[str, str, str], tuple[int, int]]] = {}
    for part in chunks(entry_ids):
        stmt = (
            select(
                P.c.entry_id,
                P.c.customer_id,
                P.c.budget_id,
                P.c.unit,
                func.sum(P.c.amount_minor),
                func.count(),
            )
            .where(P.c.entry_id.in_(part))
            .group_by(P.c.entry_id, P.c.customer_id, P.c.budget_id, P.c.unit)
        )
        for entry_id, cust, budget, unit, total, count in conn.execute(stmt):
            found.setdefault(int(entry_id), {})[(cust, budget, unit)] = (int(total), int(count))
    return found


def post_assessments(
    conn: Connection,
    items: Iterable[Assessed],
    *,
    run_id: int | None,
    now: dt.datetime,
    update_entries: bool = True,
) -> int:
    """Post the difference between each entry's target cost and its postings; return how
    many postings were written. Also refreshes the entries' cached assessment columns.
    """
    items = list(items)
    if not items:
        return 0
    posted = posted_by_entry(conn, [item.entry_id for item in items if not item.new])
    rows: list[dict[str, Any]] = []
    for item in items:
        rows.extend(_deltas(item, posted.get(item.entry_id, {}), run_id=run_id, now=now))
    insert_postings(conn, rows)
    if update_entries:
        stmt = (
            E.update()
            .where(E.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in ASSESSMENT_COLUMNS})
        )
        conn.execute(
            stmt,
            [{"_id": item.entry_id, **assessment_columns(item.assessment)} for item in items],
        )
    return len(rows)


def _deltas(
    item: Assessed,
    posted: dict[tuple[str, str, str], tuple[int, int]],
    *,
    run_id: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    a, entry = item.assessment, item.entry
    target: tuple[str, str, str] | None = None
    if a.amount_minor and a.customer_id and a.budget_id and a.unit:
        target = (a.customer_id, a.budget_id, a.unit)
    if not posted:  # most entries: new, or never charged before
        if target is None:
            return []
        keys = [target]
    else:
        keys = sorted(set(posted) | ({target} if target is not None else set()))
    rows = []
    label = f"{entry.source}:{entry.external_id} ({entry.spent_date.isoformat()})"
    for key in keys:
        current, count = posted.get(key, (0, 0))
        wanted = -a.amount_minor if key == target else 0
        delta = wanted - current
        if delta == 0:
            continue
        cust, budget, unit = key
        if key == target:
            why = a.explanation
        elif a.customer_id and a.budget_id and (a.customer_id, a.budget_id) != (cust, budget):
            why = f"moved to {a.customer_id}/{a.budget_id}"
        else:
            why = f"now {a.status}" + (f": {a.reason}" if a.reason else "")
        if current:
            why += f"; it cost {format_amount(-current, unit)} before"
        rows.append(
            {
                "key": f"entry:{item.entry_id}:{cust}:{budget}:{count + 1}",
                "customer_id": cust,
                "budget_id": budget,
                "kind": PostingKind.ENTRY if delta < 0 else PostingKind.REVERSAL,
                "amount_minor": delta,
                "unit": unit,
                "entry_id": item.entry_id,
                "entry_version": entry.version,
                "rule": a.rule,
                "refill_id": None,
                "work_date": entry.spent_date,
                "recorded_at": now,
                "run_id": run_id,
                "reason": f"{label} v{entry.version}: {why}",
                "note": None,
            }
        )
    return rows
