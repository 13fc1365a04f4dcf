"""The `refills` and `webhook_events` tables: the only module that reads or writes them.

A refill is read into one typed record, `Refill`, built in `_refill` and nowhere else. Its
status changes only through `transition`, which checks `TRANSITIONS` and refuses any other
move, so the state machine is a table one can read rather than a set of `WHERE` clauses spread
over the service. The idempotency key of an attempt is made by `idempotency_key` alone.

Money received is never dropped: `void` and `failed` may still move to `paid` (Stripe lets a
client pay an invoice marked uncollectible), and `paid` is the one terminal state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, select

from sync.ledger import schema
from sync.model import OPEN_REFILL_STATUSES, RefillStatus
from sync.ports import InvoiceState, InvoiceStatus

R = schema.refills
W = schema.webhook_events

# Statuses that hold the budget's one open slot: the policy raises nothing new while a refill
# is in one of them.


# Every legal move. `intent -> paid | void` happens when a sink reports the invoice's final
# state before the issue step was recorded; `failed -> intent` is a retry with a fresh key;
# `void | failed -> paid` is money that arrived anyway (a payment after "uncollectible", or a
# payment the operator records by hand), which must be credited rather than lost.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    RefillStatus.INTENT: frozenset(
        {RefillStatus.ISSUED, RefillStatus.FAILED, RefillStatus.PAID, RefillStatus.VOID}
    ),
    RefillStatus.ISSUED: frozenset({RefillStatus.PAID, RefillStatus.VOID}),
    RefillStatus.FAILED: frozenset({RefillStatus.INTENT, RefillStatus.PAID}),
    RefillStatus.VOID: frozenset({RefillStatus.PAID}),
    RefillStatus.PAID: frozenset(),
}


class IllegalTransition(Exception):
    """A status change `TRANSITIONS` does not allow (a bug, or a stale decision)."""

    def __init__(self, refill_id: str, current: str, target: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing (final)"
        super().__init__(
            f"refill {refill_id} cannot move from {current} to {target}; from {current} it may"
            f" move to: {allowed}"
        )
        self.refill_id = refill_id
        self.current = current
        self.target = target


def may_move(current: str, target: str) -> bool:
    """True when `TRANSITIONS` allows `current -> target`."""
    return target in TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True, slots=True)
class InvoiceTerms:
    """What the client is invoiced for one refill attempt: `amount_minor` in the currency's
    minor units, a line of `quantity` x `unit_price`, and its `description`."""

    amount_minor: int
    quantity: Decimal
    unit_price: Decimal
    description: str


@dataclass(frozen=True, slots=True)
class Refill:
    """One refill as stored.

    Identity and budget: `id` (`<customer>-<budget>-<seq>`), `customer_id`, `budget_id`,
    `seq`. What it adds to the budget: `amount_minor` in `unit`, credited on `credit_on`
    (`issued` or `paid`). The invoice asked for: `sink`, `currency`, `terms`, `attempt`,
    `idempotency_key`, `config_hash` (the settings it was made from), `balance_minor` (the
    balance when raised). What the sink reported: `invoice_id`, `invoice_number`, `invoice_url`,
    `step`, `invoice_status`, `amount_paid_minor` (money received so far, when the sink says),
    `invoice_total_minor` (what the invoice asks for, tax included, when the sink says).
    State: `status`, `error` (why the sink refused or failed), `payment_error`, and the times
    `created_at`, `updated_at`, `issued_at`, `paid_at`, `closed_at`.
    """

    id: str
    customer_id: str
    budget_id: str
    seq: int
    sink: str
    status: str
    amount_minor: int
    unit: str
    currency: str
    terms: InvoiceTerms
    credit_on: str
    attempt: int
    idempotency_key: str
    config_hash: str
    balance_minor: int
    invoice_id: str | None
    invoice_number: str | None
    invoice_url: str | None
    step: str
    invoice_status: str | None
    amount_paid_minor: int | None
    invoice_total_minor: int | None
    error: str | None
    payment_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    issued_at: dt.datetime | None
    paid_at: dt.datetime | None
    closed_at: dt.datetime | None

    @property
    def is_open(self) -> bool:
        """True while the refill holds its budget's open slot."""
        return self.status in OPEN_REFILL_STATUSES

    @property
    def total_minor(self) -> int:
        """What the invoice asks for, tax included: the sink's total, or the net amount while
        the sink has not reported one. Payments (which include tax) are compared with this."""
        return self.invoice_total_minor or self.terms.amount_minor

    @property
    def taxed(self) -> bool:
        """True when the invoice's total differs from the net amount (tax on the invoice)."""
        return self.total_minor != self.terms.amount_minor

    @property
    def partly_paid(self) -> bool:
        """True when the sink reports some, but not all, of the invoice as paid."""
        paid = self.amount_paid_minor or 0
        return self.status != RefillStatus.PAID and 0 < paid < self.total_minor

    def invoice_state(self) -> InvoiceState:
        """The sink's last reported state, handed back to it to resume or refresh."""
        return InvoiceState(
            invoice_id=self.invoice_id,
            number=self.invoice_number,
            url=self.invoice_url,
            step=self.step,
            status=InvoiceStatus(self.invoice_status or InvoiceStatus.DRAFT),
            amount_paid_minor=self.amount_paid_minor,
            total_minor=self.invoice_total_minor,
        )


def _refill(row: Row[Any]) -> Refill:
    """The one place a stored row becomes a `Refill`."""
    return Refill(
        id=row.id,
        customer_id=row.customer_id,
        budget_id=row.budget_id,
        seq=int(row.seq),
        sink=row.sink,
        status=row.status,
        amount_minor=int(row.amount_minor),
        unit=row.unit,
        currency=row.currency,
        terms=InvoiceTerms(
            amount_minor=int(row.invoice_amount_minor),
            quantity=Decimal(row.quantity),
            unit_price=Decimal(row.unit_price),
            description=row.description,
        ),
        credit_on=row.credit_on,
        attempt=int(row.attempt),
        idempotency_key=row.idempotency_key,
        config_hash=row.config_hash,
        balance_minor=int(row.balance_minor),
        invoice_id=row.invoice_id,
        invoice_number=row.invoice_number,
        invoice_url=row.invoice_url,
        step=row.step or "",
        invoice_status=row.invoice_status,
        amount_paid_minor=None if row.amount_paid_minor is None else int(row.amount_paid_minor),
        invoice_total_minor=None
        if row.invoice_total_minor is None
        else int(row.invoice_total_minor),
        error=row.error,
        payment_error=row.payment_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        issued_at=row.issued_at,
        paid_at=row.paid_at,
        closed_at=row.closed_at,
    )


def idempotency_key(installation: str, refill_id: str, attempt: int) -> str:
    """The key every sink request of this attempt derives its own keys from (I3). The
    installation keeps two databases sharing one sink account from replaying each other."""
    return f"prepaid-sync:{installation}:{refill_id}:a{attempt}"


def _terms_values(terms: InvoiceTerms) -> dict[str, Any]:
    return {
        "invoice_amount_minor": terms.amount_minor,
        "quantity": str(terms.quantity),
        "unit_price": str(terms.unit_price),
        "description": terms.description,
    }


# --- reading --------------------------------------------------------------------------------


def get_refill(conn: Connection, refill_id: str) -> Refill | None:
    """The refill with this id, if any."""
    row = conn.execute(select(R).where(R.c.id == refill_id)).first()
    return None if row is None else _refill(row)


def open_refill(conn: Connection, customer_id: str, budget_id: str) -> Refill | None:
    """The budget's one open refill (intent, issued or failed), if any."""
    row = conn.execute(
        select(R).where(
            (R.c.customer_id == customer_id) & (R.c.budget_id == budget_id) & (R.c.open_slot == 1)
        )
    ).first()
    return None if row is None else _refill(row)


def open_refills(conn: Connection) -> dict[tuple[str, str], Refill]:
    """Every budget's open refill, by (customer, budget)."""
    rows = conn.execute(select(R).where(R.c.open_slot == 1))
    return {(r.customer_id, r.budget_id): _refill(r) for r in rows}


def list_refills(conn: Connection, *, open_only: bool = False) -> list[Refill]:
    """Refills newest first; `open_only` keeps those holding an open slot."""
    stmt = select(R).order_by(R.c.created_at.desc(), R.c.seq.desc())
    if open_only:
        stmt = stmt.where(R.c.status.in_(sorted(OPEN_REFILL_STATUSES)))
    return [_refill(r) for r in conn.execute(stmt)]


def open_refill_counts(conn: Connection) -> dict[str, int]:
    """How many refills are in each open status (for metrics)."""
    stmt = (
        select(R.c.status, func.count())
        .where(R.c.status.in_(sorted(OPEN_REFILL_STATUSES)))
        .group_by(R.c.status)
    )
    return {str(status): int(n) for status, n in conn.execute(stmt)}


def payable_void_refills(conn: Connection, customer_id: str, budget_id: str) -> list[Refill]:
    """Void refills whose invoice was only marked uncollectible: the client may still pay
    them, so they are polled like open ones."""
    stmt = (
        select(R)
        .where(
            (R.c.customer_id == customer_id)
            & (R.c.budget_id == budget_id)
            & (R.c.status == RefillStatus.VOID)
            & (R.c.invoice_status == InvoiceStatus.UNCOLLECTIBLE)
        )
        .order_by(R.c.seq)
    )
    return [_refill(r) for r in conn.execute(stmt)]


def refill_by_invoice(conn: Connection, sink: str, invoice_id: str) -> Refill | None:
    """Our refill whose recorded invoice this is, in any state."""
    row = conn.execute(select(R).where((R.c.sink == sink) & (R.c.invoice_id == invoice_id))).first()
    return None if row is None else _refill(row)


def refills_raised_since(
    conn: Connection, customer_id: str, budget_id: str, since: dt.datetime
) -> int:
    """How many refills the budget has had since `since` (the runaway guard)."""
    stmt = select(func.count()).where(
        (R.c.customer_id == customer_id) & (R.c.budget_id == budget_id) & (R.c.created_at >= since)
    )
    return int(conn.execute(stmt).scalar_one())


# --- writing --------------------------------------------------------------------------------


def insert_refill(
    conn: Connection,
    *,
    customer_id: str,
    budget_id: str,
    sink: str,
    amount_minor: int,
    unit: str,
    currency: str,
    terms: InvoiceTerms,
    credit_on: str,
    config_hash: str,
    balance_minor: int,
    installation: str,
    now: dt.datetime,
) -> Refill:
    """Commit a new refill intent with the budget's next number (it takes the open slot;
    a second open refill for the budget violates the schema)."""
    last = conn.execute(
        select(func.coalesce(func.max(R.c.seq), 0)).where(
            (R.c.customer_id == customer_id) & (R.c.budget_id == budget_id)
        )
    ).scalar_one()
    seq = int(last) + 1
    refill_id = f"{customer_id}-{budget_id}-{seq}"
    conn.execute(
        R.insert().values(
            id=refill_id,
            customer_id=customer_id,
            budget_id=budget_id,
            seq=seq,
            sink=sink,
            status=RefillStatus.INTENT,
            open_slot=1,
            amount_minor=amount_minor,
            unit=unit,
            currency=currency,
            credit_on=credit_on,
            attempt=1,
            idempotency_key=idempotency_key(installation, refill_id, 1),
            config_hash=config_hash,
            balance_minor=balance_minor,
            step="",
            created_at=now,
            updated_at=now,
            **_terms_values(terms),
        )
    )
    refill = get_refill(conn, refill_id)
    assert refill is not None
    return refill


def record_invoice_state(
    conn: Connection, refill_id: str, state: InvoiceState, now: dt.datetime
) -> None:
    """Persist what the sink reports (its step, the invoice, its status and amount paid); the
    refill's own status is `transition`'s business."""
    values: dict[str, Any] = {"invoice_status": state.status, "updated_at": now}
    if state.invoice_id is not None:
        values |= {
            "invoice_id": state.invoice_id,
            "invoice_number": state.number,
            "invoice_url": state.url,
        }
    if state.step:
        values["step"] = state.step
    if state.amount_paid_minor is not None:
        values["amount_paid_minor"] = state.amount_paid_minor
    if state.total_minor:
        values["invoice_total_minor"] = state.total_minor
    conn.execute(R.update().where(R.c.id == refill_id).values(**values))


def note_error(conn: Connection, refill_id: str, error: str, now: dt.datetime) -> None:
    """Remember why the last attempt to reach the sink did not finish (it will be retried)."""
    conn.execute(R.update().where(R.c.id == refill_id).values(error=error, updated_at=now))


def note_payment_error(conn: Connection, refill_id: str, error: str, now: dt.datetime) -> None:
    """Remember that a payment of the invoice failed (shown to the operator)."""
    conn.execute(R.update().where(R.c.id == refill_id).values(payment_error=error, updated_at=now))


@dataclass(frozen=True, slots=True)
class Retry:
    """What a failed refill is retried with: the sink and terms of the current config."""

    sink: str
    terms: InvoiceTerms
    config_hash: str
    installation: str


def transition(
    conn: Connection,
    refill_id: str,
    target: str,
    now: dt.datetime,
    *,
    error: str | None = None,
    retry: Retry | None = None,
) -> Refill:
    """Move a refill to `target`, the only way its status changes. Raises `IllegalTransition`
    for a move `TRANSITIONS` does not allow (and `LookupError` for an unknown id). The update
    is conditional on the status read, so two writers cannot both make the same move.

    `failed` keeps `error`; `intent` (a retry) needs `retry`, which gives the attempt a fresh
    idempotency key and the current terms; `paid` and `void` free the budget's open slot.
    """
    current = get_refill(conn, refill_id)
    if current is None:
        raise LookupError(f"no refill {refill_id!r}")
    if not may_move(current.status, target):
        raise IllegalTransition(refill_id, current.status, target)
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target == RefillStatus.ISSUED:
        values |= {"issued_at": now, "error": None}
    elif target == RefillStatus.FAILED:
        values["error"] = error
    elif target == RefillStatus.PAID:
        values |= {"open_slot": None, "paid_at": now, "closed_at": now}
    elif target == RefillStatus.VOID:
        values |= {"open_slot": None, "closed_at": now}
    elif target == RefillStatus.INTENT:
        if retry is None:
            raise ValueError(f"refill {refill_id}: a retry needs its new terms")
        attempt = current.attempt + 1
        values |= {
            "attempt": attempt,
            "idempotency_key": idempotency_key(retry.installation, refill_id, attempt),
            "config_hash": retry.config_hash,
            "sink": retry.sink,
            "step": "",
            "invoice_id": None,
            "invoice_number": None,
            "invoice_url": None,
            "invoice_status": None,
            "amount_paid_minor": None,
            "invoice_total_minor": None,
            "error": None,
            **_terms_values(retry.terms),
        }
    done = conn.execute(
        R.update().where((R.c.id == refill_id) & (R.c.status == current.status)).values(**values)
    )
    if done.rowcount != 1:
        raise IllegalTransition(refill_id, "changed concurrently", target)
    moved = get_refill(conn, refill_id)
    assert moved is not None
    return moved


# --- webhook deliveries ---------------------------------------------------------------------


def webhook_seen(conn: Connection, sink: str, event_id: str) -> bool:
    """True when this delivery was applied before."""
    stmt = select(W.c.outcome).where((W.c.sink == sink) & (W.c.event_id == event_id))
    return conn.execute(stmt).first() is not None


def record_webhook(
    conn: Connection,
    *,
    sink: str,
    event_id: str,
    type: str,
    refill_id: str | None,
    outcome: str,
    now: dt.datetime,
) -> None:
    """Remember a delivery; raises IntegrityError when another process recorded it first."""
    conn.execute(
        W.insert().values(
            sink=sink,
            event_id=event_id,
            type=type,
            refill_id=refill_id,
            outcome=outcome,
            received_at=now,
        )
    )
