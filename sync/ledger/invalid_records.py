"""The `invalid_records` table: records a source could not read, with the reason.

A record is resolved when a valid version of it arrives, or when a later complete re-read of
its dates no longer contains it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import Connection, select

from sync.ledger import schema
from sync.ledger.database import chunks
from sync.model import InvalidRecord

IR = schema.invalid_records


def has_open(conn: Connection, source: str) -> bool:
    """True when the source has unresolved invalid records."""
    stmt = select(IR.c.id).where((IR.c.source == source) & IR.c.resolved_at.is_(None)).limit(1)
    return conn.execute(stmt).first() is not None


def record_invalid(
    conn: Connection, record: InvalidRecord, *, run_id: int, now: dt.datetime
) -> None:
    """Store (or refresh, when the same record was seen before) one invalid record."""
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
        "run_id": run_id,
        "last_seen_at": now,
        "resolved_at": None,
    }
    updated = conn.execute(
        IR.update()
        .where((IR.c.source == record.source) & (IR.c.fingerprint == fingerprint))
        .values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(
            IR.insert().values(
                source=record.source, fingerprint=fingerprint, first_seen_at=now, **values
            )
        )


def resolve_by_external_ids(
    conn: Connection, source: str, external_ids: Sequence[str], now: dt.datetime
) -> None:
    """A valid version of a record that was invalid before resolves it."""
    for part in chunks(external_ids):
        conn.execute(
            IR.update()
            .where(
                (IR.c.source == source) & IR.c.external_id.in_(part) & IR.c.resolved_at.is_(None)
            )
            .values(resolved_at=now)
        )


def resolve_in_window(
    conn: Connection, source: str, start: dt.date, end: dt.date, run_id: int, now: dt.datetime
) -> None:
    """Resolve what a complete re-read of `start`..`end` by run `run_id` no longer returned
    (records without a date included)."""
    conn.execute(
        IR.update()
        .where(
            (IR.c.source == source)
            & IR.c.resolved_at.is_(None)
            & (IR.c.run_id != run_id)
            & (IR.c.spent_date.is_(None) | ((IR.c.spent_date >= start) & (IR.c.spent_date <= end)))
        )
        .values(resolved_at=now)
    )
