"""The `sync_runs` and `source_state` tables: one row per sync of a source, and where each
source's incremental fetch resumes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import Connection, select

from sync.ledger import schema

RUNS = schema.sync_runs
STATE = schema.source_state


def start_run(conn: Connection, source: str, now: dt.datetime) -> int:
    """Open a run's record (outcome "running"); return its id."""
    result = conn.execute(
        RUNS.insert().values(source=source, started_at=now, outcome="running", counts="{}")
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    finished_at: dt.datetime,
    outcome: str,
    counts: Mapping[str, int],
    error: str | None,
) -> None:
    """Close a run's record with what it did."""
    conn.execute(
        RUNS.update()
        .where(RUNS.c.id == run_id)
        .values(finished_at=finished_at, outcome=outcome, counts=json.dumps(counts), error=error)
    )


class SourceState(NamedTuple):
    """Where a source's next fetch resumes (`cursor`, the connector's own token) and when a
    complete re-read of its look-back window last reconciled deletions."""

    cursor: str | None
    last_reconciled_at: dt.datetime | None


def load_state(conn: Connection, source: str) -> SourceState:
    """The source's state; both None before its first sync."""
    row = conn.execute(
        select(STATE.c.cursor, STATE.c.last_reconciled_at).where(STATE.c.source == source)
    ).first()
    return SourceState(None, None) if row is None else SourceState(row[0], row[1])


def save_cursor(conn: Connection, source: str, cursor: str) -> None:
    """Remember where the source's next fetch resumes."""
    _save(conn, source, {"cursor": cursor})


def save_reconciled(conn: Connection, source: str, at: dt.datetime) -> None:
    """Remember when the source's deletions were last reconciled."""
    _save(conn, source, {"last_reconciled_at": at})


def _save(conn: Connection, source: str, values: Mapping[str, object]) -> None:
    updated = conn.execute(STATE.update().where(STATE.c.source == source).values(**values))
    if updated.rowcount == 0:
        conn.execute(STATE.insert().values(source=source, **values))
