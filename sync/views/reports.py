"""Read-only views of the ledger for the CLI, the status page and statements.

Every figure is computed from postings at the moment it is asked for, so whatever any report
shows equals a from-scratch recomputation (I2). Rows are plain dicts with decimal strings, ready
for a table, JSON or CSV.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select

from sync.books import budget_unit
from sync.ledger import schema
from sync.ledger.database import balances
from sync.model import HOUR_UNIT, OPEN_REFILL_STATUSES, EntryStatus, format_amount, to_minor
from sync.settings import Settings

E = schema.entries
P = schema.postings
R = schema.refills


def balance_rows(
    conn: Connection, settings: Settings, customer_id: str | None = None
) -> list[dict[str, Any]]:
    """One row per configured budget: balance, its parts, what waits for review, open refill."""
    parts = balances(conn, customer_id)
    pending = _pending(conn)
    refills = {
        (r.customer_id, r.budget_id): r for r in conn.execute(select(R).where(R.c.open_slot == 1))
    }
    rows = []
    for customer in settings.customers:
        if customer_id is not None and customer.id != customer_id:
            continue
        for budget in customer.budgets:
            unit = budget_unit(customer, budget)
            p = parts.get((customer.id, budget.id))
            opening, credited, debited = (p.opening, p.credited, p.debited) if p else (0, 0, 0)
            refill = refills.get((customer.id, budget.id))
            rows.append(
                {
                    "customer": customer.id,
                    "customer_name": customer.name,
                    "budget": budget.id,
                    "unit": budget.unit,
                    "currency": customer.currency,
                    "balance": format_amount(opening + credited - debited, unit),
                    "opening": format_amount(opening, unit),
                    "credited": format_amount(credited, unit),
                    "debited": format_amount(debited, unit),
                    "pending": format_amount(pending.get((customer.id, budget.id), 0), unit),
                    "below": None
                    if budget.refill is None
                    else format_amount(to_minor(budget.refill.below, unit), unit),
                    "open_refill": None if refill is None else _refill_summary(refill),
                }
            )
    return rows


def _refill_summary(refill: Any) -> dict[str, Any]:
    return {
        "id": refill.id,
        "amount": format_amount(int(refill.amount_minor), refill.unit),
        "invoice_amount": format_amount(int(refill.invoice_amount_minor), refill.currency),
        "status": refill.status,
        "invoice": refill.invoice_number or refill.invoice_id,
        "invoice_url": refill.invoice_url,
        "error": refill.error,
        "payment_error": refill.payment_error,
        "created_at": refill.created_at.isoformat(),
    }


def _pending(conn: Connection) -> dict[tuple[str, str], int]:
    """What entries waiting for review would cost once approved, per budget."""
    stmt = (
        select(E.c.customer_id, E.c.budget_id, func.sum(E.c.amount_minor))
        .where((E.c.status == EntryStatus.PENDING) & E.c.deleted.is_(False))
        .group_by(E.c.customer_id, E.c.budget_id)
    )
    return {(c, b): int(total or 0) for c, b, total in conn.execute(stmt)}


def entry_rows(
    conn: Connection,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    source: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Time entries with their state; `status=invalid` lists unreadable records instead."""
    if status == EntryStatus.INVALID:
        return invalid_rows(conn, source=source, limit=limit)
    stmt = select(E).order_by(E.c.spent_date.desc(), E.c.id.desc())
    if customer_id is not None:
        stmt = stmt.where(E.c.customer_id == customer_id)
    if status is not None:
        if status == EntryStatus.DELETED:
            stmt = stmt.where(E.c.deleted.is_(True))
        else:
            stmt = stmt.where((E.c.status == status) & E.c.deleted.is_(False))
    if source is not None:
        stmt = stmt.where(E.c.source == source)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = []
    for r in conn.execute(stmt):
        state = EntryStatus.DELETED if r.deleted else r.status
        rows.append(
            {
                "id": int(r.id),
                "source": r.source,
                "external_id": r.external_id,
                "customer": r.customer_id,
                "budget": r.budget_id,
                "status": state,
                "date": r.spent_date.isoformat(),
                "hours": format_amount(int(r.seconds), HOUR_UNIT),
                "amount": format_amount(int(r.amount_minor), r.unit) if r.unit else None,
                "unit": r.unit,
                "reason": r.reason,
                "user": r.user_name or r.user_id,
                "client": r.client_name or r.client_id,
                "project": r.project_name or r.project_id,
                "task": r.task_name or r.task_id,
                "tags": json.loads(r.tags or "[]"),
                "description": r.description,
                "version": r.version,
                "rule": r.rule,
            }
        )
    return rows


def invalid_rows(
    conn: Connection, *, source: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Unresolved invalid records, newest first."""
    ir = schema.invalid_records
    stmt = select(ir).where(ir.c.resolved_at.is_(None)).order_by(ir.c.id.desc())
    if source is not None:
        stmt = stmt.where(ir.c.source == source)
    if limit is not None:
        stmt = stmt.limit(limit)
    known = {}
    records = conn.execute(stmt).all()
    ext_ids = [r.external_id for r in records if r.external_id]
    if ext_ids:
        for row in conn.execute(
            select(E.c.id, E.c.source, E.c.external_id).where(E.c.external_id.in_(ext_ids))
        ):
            known[(row.source, row.external_id)] = int(row.id)
    return [
        {
            "id": known.get((r.source, r.external_id)),
            "source": r.source,
            "external_id": r.external_id,
            "customer": None,
            "budget": None,
            "status": EntryStatus.INVALID,
            "date": None if r.spent_date is None else r.spent_date.isoformat(),
            "hours": None,
            "amount": None,
            "reason": f"{r.locator}: {r.reason}",
            "locator": r.locator,
            "raw": json.loads(r.raw),
        }
        for r in records
    ]


def ledger_rows(conn: Connection, *, customer_id: str | None = None) -> list[dict[str, Any]]:
    """Every posting in order, with the running balance of its budget after it."""
    stmt = select(P).order_by(P.c.id)
    if customer_id is not None:
        stmt = stmt.where(P.c.customer_id == customer_id)
    running: dict[tuple[str, str], int] = {}
    rows = []
    for p in conn.execute(stmt):
        key = (p.customer_id, p.budget_id)
        running[key] = running.get(key, 0) + int(p.amount_minor)
        rows.append(
            {
                "id": int(p.id),
                "recorded_at": p.recorded_at.isoformat(),
                "work_date": None if p.work_date is None else p.work_date.isoformat(),
                "customer": p.customer_id,
                "budget": p.budget_id,
                "kind": p.kind,
                "amount": format_amount(int(p.amount_minor), p.unit),
                "unit": p.unit,
                "balance_after": format_amount(running[key], p.unit),
                "reason": p.reason,
                "note": p.note,
                "entry_id": p.entry_id,
                "refill_id": p.refill_id,
                "key": p.key,
            }
        )
    return rows


def refill_rows(conn: Connection, *, open_only: bool = False) -> list[dict[str, Any]]:
    """Refills, newest first."""
    stmt = select(R).order_by(R.c.created_at.desc())
    if open_only:
        stmt = stmt.where(R.c.status.in_(sorted(OPEN_REFILL_STATUSES)))
    return [
        {"customer": r.customer_id, "budget": r.budget_id, **_refill_summary(r)}
        for r in conn.execute(stmt)
    ]


def last_runs(conn: Connection) -> dict[str, dict[str, Any]]:
    """The latest sync run of each source."""
    runs = schema.sync_runs
    latest = (
        select(runs.c.source, func.max(runs.c.id).label("id")).group_by(runs.c.source).subquery()
    )
    stmt = select(runs).join(latest, runs.c.id == latest.c.id)
    return {
        r.source: {
            "started_at": r.started_at.isoformat(),
            "finished_at": None if r.finished_at is None else r.finished_at.isoformat(),
            "outcome": r.outcome,
            "counts": json.loads(r.counts or "{}"),
            "error": r.error,
        }
        for r in conn.execute(stmt)
    }
