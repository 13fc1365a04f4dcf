"""The JSON (and CSV) shapes of what the read commands print: the only place report records
become text for a machine.

These shapes are a contract (`shared/design.md`, the README): keys in this order, amounts as
decimal strings in their unit ("1234.50", "12" for JPY, "1.25" hours), a unit as its currency
code or "hours", dates in ISO 8601 and times in ISO 8601 with their offset, missing values as
null. The records themselves keep values, so a change of shape is a
change here only.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sync.model import HOUR_UNIT, EntryStatus
from sync.views.reports import BalanceRow, EntryRow, InvalidRow, LedgerRow, RefillSummary

LEDGER_FIELDS = (
    "id",
    "recorded_at",
    "work_date",
    "customer",
    "budget",
    "kind",
    "amount",
    "unit",
    "balance_after",
    "reason",
    "note",
    "entry_id",
    "refill_id",
    "key",
)


def amount_text(value: Decimal | None) -> str | None:
    """An amount as its decimal string (never in exponent form); None stays None."""
    return None if value is None else format(value, "f")


def unit_text(unit: str | None) -> str | None:
    """A ledger unit as the user sees it: the currency code, or "hours" (the ledger stores
    HOUR; `balance` says "hours" too, so every command spells a unit one way)."""
    return "hours" if unit == HOUR_UNIT else unit


def iso(value: dt.date | dt.datetime | None) -> str | None:
    """A date or a moment in ISO 8601; None stays None."""
    return None if value is None else value.isoformat()


def balance_json(row: BalanceRow) -> dict[str, Any]:
    """One item of `balance --format json`."""
    return {
        "customer": row.customer,
        "customer_name": row.customer_name,
        "budget": row.budget,
        "unit": row.unit,
        "currency": row.currency,
        "balance": amount_text(row.balance),
        "opening": amount_text(row.opening),
        "credited": amount_text(row.credited),
        "debited": amount_text(row.debited),
        "pending": amount_text(row.pending),
        "below": amount_text(row.below),
        "open_refill": None if row.open_refill is None else refill_json(row.open_refill),
    }


def refill_json(refill: RefillSummary) -> dict[str, Any]:
    """A refill inside a balance item (its customer and budget are the item's)."""
    return {
        "id": refill.id,
        "amount": amount_text(refill.amount),
        "unit": refill.unit,
        "invoice_amount": amount_text(refill.invoice_amount),
        "invoice_total": amount_text(refill.invoice_total),
        "amount_paid": amount_text(refill.amount_paid),
        "partly_paid": refill.partly_paid,
        "status": refill.status,
        "invoice": refill.invoice,
        "invoice_url": refill.invoice_url,
        "error": refill.error,
        "payment_error": refill.payment_error,
        "created_at": iso(refill.created_at),
    }


def entry_json(row: EntryRow) -> dict[str, Any]:
    """One item of `entries --format json`."""
    return {
        "id": row.id,
        "source": row.source,
        "external_id": row.external_id,
        "customer": row.customer,
        "budget": row.budget,
        "status": row.status,
        "date": iso(row.date),
        "hours": amount_text(row.hours),
        "amount": amount_text(row.amount),
        "unit": unit_text(row.unit),
        "reason": row.reason,
        "user": row.user,
        "client": row.client,
        "project": row.project,
        "task": row.task,
        "tags": list(row.tags),
        "description": row.description,
        "version": row.version,
        "priced_version": row.priced_version,
        "rule": row.rule,
    }


def invalid_json(row: InvalidRow) -> dict[str, Any]:
    """One item of `entries --status invalid --format json`: the entry keys a record has,
    plus where it failed and what came in."""
    return {
        "id": row.id,
        "source": row.source,
        "external_id": row.external_id,
        "customer": None,
        "budget": None,
        "status": EntryStatus.INVALID,
        "date": iso(row.date),
        "hours": None,
        "amount": None,
        "reason": row.reason,
        "locator": row.locator,
        "raw": row.raw,
    }


def ledger_json(row: LedgerRow) -> dict[str, Any]:
    """One item of `ledger --format json`, and one line of its CSV (`LEDGER_FIELDS`)."""
    return {
        "id": row.id,
        "recorded_at": iso(row.recorded_at),
        "work_date": iso(row.work_date),
        "customer": row.customer,
        "budget": row.budget,
        "kind": row.kind,
        "amount": amount_text(row.amount),
        "unit": unit_text(row.unit),
        "balance_after": amount_text(row.balance_after),
        "reason": row.reason,
        "note": row.note,
        "entry_id": row.entry_id,
        "refill_id": row.refill_id,
        "key": row.key,
    }
