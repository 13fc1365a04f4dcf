"""The refill policy and the intent -> invoice -> credit state machine.

A refill is born as an *intent*: a committed row with a deterministic idempotency key, written
before any sink is called. Only then is the sink asked to issue the invoice, and every step the
sink reports is recorded, so a run that dies anywhere is finished by the next one with the same
key (I3). The budget is credited by one posting keyed by the refill id, which the database
refuses to write twice (I4). A unique "open slot" per budget makes "at most one open refill" a
property of the schema, not of careful code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError

from sync.books import budget_unit
from sync.crash import crash_point
from sync.ledger import schema
from sync.ledger.database import (
    Ledger,
    budget_balance,
    insert_postings,
    installation_id,
    posting_exists,
    posting_row,
)
from sync.ledger.database import utcnow as _utcnow
from sync.model import HOUR_UNIT, PostingKind, RefillStatus, format_amount, from_minor, to_minor
from sync.ports import (
    ConnectorError,
    InvoiceRequest,
    InvoiceSink,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    WebhookEvent,
)
from sync.settings import Budget, Customer, Settings

log = logging.getLogger(__name__)
R = schema.refills
LEASE_TTL = dt.timedelta(minutes=5)


class RefillError(Exception):
    """An operator request about a refill that cannot be done (unknown id, wrong state)."""


@dataclass
class RefillReport:
    """What a refill run did, for the summary and the exit code."""

    raised: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    credited: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    guarded: list[str] = field(default_factory=list)
    would_raise: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when something needs the operator (exit 3)."""
        return bool(self.failed or self.errors or self.guarded)


def refill_config_hash(customer: Customer, budget: Budget) -> str:
    """What a refill invoice depends on; a change lets a failed refill be retried by itself."""
    parts = (customer.currency, customer.invoice_to, budget.rate, budget.refill, budget.unit)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


class RefillService:
    """Runs the policy, completes half-done refills, polls payments, applies webhooks."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        sinks: Mapping[str, InvoiceSink],
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
        holder: str = "prepaid",
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.sinks = sinks
        self.clock = clock
        self.holder = holder
        self.tz = ZoneInfo(settings.timezone)

    # --- the whole run ----------------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> RefillReport:
        """Finish open refills and poll their payment, then raise new ones where due."""
        report = RefillReport()
        for customer in self.settings.customers:
            for budget in customer.budgets:
                lease = f"refill:{customer.id}/{budget.id}"
                if not dry_run:
                    other = self.ledger.acquire_lease(lease, self.holder, LEASE_TTL)
                    if other is not None:
                        continue
                try:
                    self._run_budget(customer, budget, report, dry_run=dry_run)
                finally:
                    if not dry_run:
                        self.ledger.release_lease(lease, self.holder)
        return report

    def _run_budget(
        self, customer: Customer, budget: Budget, report: RefillReport, *, dry_run: bool
    ) -> None:
        with self.ledger.read() as conn:
            open_row = self._open_refill(conn, customer.id, budget.id)
        if open_row is not None:
            if not dry_run:
                self._advance(open_row, customer, budget, report)
            elif open_row.status == RefillStatus.FAILED:
                report.failed.append(f"{open_row.id}: {open_row.error}")
            return
        if budget.refill is None or customer.invoice_to is None:
            return
        if dry_run:
            with self.ledger.read() as conn:
                plan = self._plan(conn, customer, budget)
            if plan is not None:
                report.would_raise.append(plan)
            return
        refill_id = self._raise(customer, budget, report)
        if refill_id is None:
            return
        crash_point("after_refill_intent")
        with self.ledger.read() as conn:
            row = conn.execute(select(R).where(R.c.id == refill_id)).one()
        self._advance(row, customer, budget, report)

    # --- policy -----------------------------------------------------------------------------

    def _plan(self, conn: Connection, customer: Customer, budget: Budget) -> str | None:
        policy = budget.refill
        assert policy is not None
        unit = budget_unit(customer, budget)
        balance = budget_balance(conn, customer.id, budget.id)
        if balance >= to_minor(policy.below, unit):
            return None
        amount = self._amount(policy.amount, policy.top_up_to, balance, unit)
        return (
            f"{customer.id}/{budget.id}: balance {format_amount(balance, unit)} is below"
            f" {format_amount(to_minor(policy.below, unit), unit)}; would refill"
            f" {format_amount(amount, unit)}"
        )

    @staticmethod
    def _amount(amount: Decimal | None, top_up_to: Decimal | None, balance: int, unit: str) -> int:
        if amount is not None:
            return to_minor(amount, unit)
        assert top_up_to is not None
        return to_minor(top_up_to, unit) - balance

    def _raise(self, customer: Customer, budget: Budget, report: RefillReport) -> str | None:
        """Commit a refill intent when the balance is below the threshold; return its id."""
        policy = budget.refill
        assert policy is not None and customer.invoice_to is not None
        unit = budget_unit(customer, budget)
        now = self.clock()
        with self.ledger.begin() as conn:
            if self._open_refill(conn, customer.id, budget.id) is not None:
                return None
            balance = budget_balance(conn, customer.id, budget.id)
            if balance >= to_minor(policy.below, unit):
                return None
            day_start = dt.datetime.combine(
                now.astimezone(self.tz).date(), dt.time(), tzinfo=self.tz
            )
            today = conn.execute(
                select(func.count()).where(
                    (R.c.customer_id == customer.id)
                    & (R.c.budget_id == budget.id)
                    & (R.c.created_at >= day_start)
                )
            ).scalar_one()
            if today >= policy.max_per_day:
                report.guarded.append(
                    f"{customer.id}/{budget.id}: balance {format_amount(balance, unit)} is"
                    f" below the threshold but {today} refills were already raised today"
                    f" (max_per_day {policy.max_per_day} in {budget.yaml_path}.refill);"
                    " check the entries, or raise the limit"
                )
                return None
            amount = self._amount(policy.amount, policy.top_up_to, balance, unit)
            seq = 1 + int(
                conn.execute(
                    select(func.coalesce(func.max(R.c.seq), 0)).where(
                        (R.c.customer_id == customer.id) & (R.c.budget_id == budget.id)
                    )
                ).scalar_one()
            )
            refill_id = f"{customer.id}-{budget.id}-{seq}"
            invoice = _invoice_terms(customer, budget, amount)
            conn.execute(
                R.insert().values(
                    id=refill_id,
                    customer_id=customer.id,
                    budget_id=budget.id,
                    seq=seq,
                    sink=customer.invoice_to.sink,
                    status=RefillStatus.INTENT,
                    open_slot=1,
                    amount_minor=amount,
                    unit=unit,
                    currency=customer.currency,
                    invoice_amount_minor=invoice.amount_minor,
                    quantity=str(invoice.quantity),
                    unit_price=str(invoice.unit_price),
                    description=invoice.description,
                    credit_on=policy.credit_on,
                    attempt=1,
                    idempotency_key=f"prepaid-sync:{installation_id(conn)}:{refill_id}:a1",
                    config_hash=refill_config_hash(customer, budget),
                    balance_minor=balance,
                    step="",
                    created_at=now,
                    updated_at=now,
                )
            )
        report.raised.append(refill_id)
        return refill_id

    @staticmethod
    def _open_refill(conn: Connection, customer_id: str, budget_id: str) -> Row[Any] | None:
        return conn.execute(
            select(R).where(
                (R.c.customer_id == customer_id)
                & (R.c.budget_id == budget_id)
                & (R.c.open_slot == 1)
            )
        ).first()

    # --- completing and polling -------------------------------------------------------------

    def _advance(
        self, row: Row[Any], customer: Customer, budget: Budget, report: RefillReport
    ) -> None:
        """Move an open refill on: issue an intent, retry a failed one whose config changed,
        poll an issued one for payment."""
        if row.status == RefillStatus.FAILED:
            if row.config_hash == refill_config_hash(customer, budget):
                report.failed.append(f"{row.id}: {row.error}")
                return
            row = self._reset_for_retry(row.id, customer, budget)
        sink = self.sinks.get(row.sink)
        if sink is None:
            report.errors.append(f"{row.id}: invoicing sink {row.sink!r} is not configured")
            return
        if row.status == RefillStatus.INTENT:
            self._issue(row, customer, sink, report)
        elif row.status == RefillStatus.ISSUED and sink.reports_payment:
            try:
                state = sink.refresh(_state_of(row))
            except ConnectorError as exc:
                report.errors.append(f"{row.id}: could not read the invoice: {exc}")
                return
            self._apply_state(row.id, state, report)

    def _issue(
        self, row: Row[Any], customer: Customer, sink: InvoiceSink, report: RefillReport
    ) -> None:
        assert customer.invoice_to is not None
        request = InvoiceRequest(
            refill_id=row.id,
            idempotency_key=row.idempotency_key,
            customer_id=customer.id,
            customer_name=customer.name,
            budget_id=row.budget_id,
            invoice_to=customer.invoice_to,
            currency=row.currency,
            amount_minor=int(row.invoice_amount_minor),
            quantity=Decimal(row.quantity),
            unit_price=Decimal(row.unit_price),
            description=row.description,
            issue_date=row.created_at.astimezone(self.tz).date(),
            reference=f"{row.id}/{self._installation()}",
        )
        previous = _state_of(row) if row.step else None
        try:
            state = sink.issue(request, previous, lambda s: self._record(row.id, s))
        except RequestRejected as exc:
            self._update(row.id, status=RefillStatus.FAILED, error=str(exc))
            report.failed.append(f"{row.id}: {exc}")
            return
        except ConnectorError as exc:
            self._update(row.id, error=str(exc))
            report.errors.append(f"{row.id}: {exc}")
            return
        self._record(row.id, state)
        now = self.clock()
        with self.ledger.begin() as conn:
            conn.execute(
                R.update()
                .where((R.c.id == row.id) & (R.c.status == RefillStatus.INTENT))
                .values(status=RefillStatus.ISSUED, issued_at=now, updated_at=now, error=None)
            )
            if row.credit_on == "issued":
                self._credit(conn, row.id, "issued")
        report.issued.append(row.id)
        crash_point("after_refill_issued")
        if state.status != InvoiceStatus.OPEN:
            self._apply_state(row.id, state, report)

    def _installation(self) -> str:
        with self.ledger.begin() as conn:
            return installation_id(conn)

    def _record(self, refill_id: str, state: InvoiceState) -> None:
        """Persist a sink's progress the moment it reports it."""
        self._update(
            refill_id,
            invoice_id=state.invoice_id,
            invoice_number=state.number,
            invoice_url=state.url,
            step=state.step,
            invoice_status=state.status,
        )
        crash_point(f"after_record_{state.step}")

    def _update(self, refill_id: str, **values: Any) -> None:
        with self.ledger.begin() as conn:
            conn.execute(
                R.update().where(R.c.id == refill_id).values(updated_at=self.clock(), **values)
            )

    def _apply_state(self, refill_id: str, state: InvoiceState, report: RefillReport) -> str:
        """Apply the invoice's current state. Paid and void are terminal, so applying states
        in any order, any number of times, ends where one delivery in order would."""
        now = self.clock()
        with self.ledger.begin() as conn:
            row = conn.execute(select(R).where(R.c.id == refill_id)).one()
            if row.status not in (RefillStatus.INTENT, RefillStatus.ISSUED):
                return f"already {row.status}"
            conn.execute(R.update().where(R.c.id == refill_id).values(invoice_status=state.status))
            if state.status == InvoiceStatus.PAID:
                conn.execute(
                    R.update()
                    .where(R.c.id == refill_id)
                    .values(status=RefillStatus.PAID, open_slot=None, paid_at=now, closed_at=now)
                )
                self._credit(conn, refill_id, "paid")
                crash_point("before_credit_commit")
                report.credited.append(refill_id)
                return "paid"
            if state.status in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
                conn.execute(
                    R.update()
                    .where(R.c.id == refill_id)
                    .values(status=RefillStatus.VOID, open_slot=None, closed_at=now)
                )
                self._reverse_credit(conn, row, state.status)
                report.voided.append(refill_id)
                return "void"
        return state.status

    def _credit(self, conn: Connection, refill_id: str, why: str) -> None:
        row = conn.execute(select(R).where(R.c.id == refill_id)).one()
        key = f"refill:{refill_id}:credit"
        if posting_exists(conn, key):
            return
        now = self.clock()
        invoice = f" (invoice {row.invoice_number or row.invoice_id})" if row.invoice_id else ""
        reason = (
            f"refill {refill_id} {why}{invoice}:"
            f" {format_amount(int(row.invoice_amount_minor), row.currency)} {row.currency}"
        )
        posting = posting_row(
            key=key,
            customer=row.customer_id,
            budget=row.budget_id,
            kind=PostingKind.REFILL_CREDIT,
            amount=int(row.amount_minor),
            unit=row.unit,
            now=now,
            reason=reason,
            refill_id=refill_id,
        )
        try:
            with conn.begin_nested():
                insert_postings(conn, [posting])
        except IntegrityError:
            log.info("refill %s was credited concurrently", refill_id)

    def _reverse_credit(self, conn: Connection, row: Row[Any], status: str) -> None:
        """A refill credited on issue whose invoice is voided: take the credit back."""
        if not posting_exists(conn, f"refill:{row.id}:credit"):
            return
        key = f"refill:{row.id}:void"
        if posting_exists(conn, key):
            return
        insert_postings(
            conn,
            [
                posting_row(
                    key=key,
                    customer=row.customer_id,
                    budget=row.budget_id,
                    kind=PostingKind.REFILL_CREDIT,
                    amount=-int(row.amount_minor),
                    unit=row.unit,
                    now=self.clock(),
                    reason=f"refill {row.id} invoice {status}: credit taken back",
                    refill_id=row.id,
                )
            ],
        )

    def _reset_for_retry(self, refill_id: str, customer: Customer, budget: Budget) -> Row[Any]:
        with self.ledger.begin() as conn:
            row = conn.execute(select(R).where(R.c.id == refill_id)).one()
            attempt = int(row.attempt) + 1
            invoice = _invoice_terms(customer, budget, int(row.amount_minor))
            assert customer.invoice_to is not None
            conn.execute(
                R.update()
                .where(R.c.id == refill_id)
                .values(
                    status=RefillStatus.INTENT,
                    attempt=attempt,
                    idempotency_key=f"prepaid-sync:{installation_id(conn)}:{refill_id}:a{attempt}",
                    config_hash=refill_config_hash(customer, budget),
                    sink=customer.invoice_to.sink,
                    invoice_amount_minor=invoice.amount_minor,
                    quantity=str(invoice.quantity),
                    unit_price=str(invoice.unit_price),
                    description=invoice.description,
                    step="",
                    invoice_id=None,
                    invoice_number=None,
                    invoice_url=None,
                    error=None,
                    updated_at=self.clock(),
                )
            )
            return conn.execute(select(R).where(R.c.id == refill_id)).one()

    # --- operator commands and webhooks -----------------------------------------------------

    def retry(self, refill_id: str) -> RefillReport:
        """`prepaid refill retry ID`: try a refused refill again with a fresh idempotency key."""
        customer, budget, row = self._lookup(refill_id)
        if row.status != RefillStatus.FAILED:
            raise RefillError(
                f"refill {refill_id} is {row.status}; only a failed refill is retried"
            )
        row = self._reset_for_retry(refill_id, customer, budget)
        report = RefillReport()
        self._advance(row, customer, budget, report)
        return report

    def mark_paid(self, refill_id: str) -> RefillReport:
        """`prepaid refill paid ID`: record a payment the sink cannot report."""
        _customer, _budget, row = self._lookup(refill_id)
        if row.status == RefillStatus.PAID:
            raise RefillError(f"refill {refill_id} is already paid")
        if row.status != RefillStatus.ISSUED:
            raise RefillError(
                f"refill {refill_id} is {row.status}: only an issued invoice can be paid"
            )
        report = RefillReport()
        state = InvoiceState(
            invoice_id=row.invoice_id, number=row.invoice_number, status=InvoiceStatus.PAID
        )
        self._apply_state(refill_id, state, report)
        return report

    def apply_webhook(self, sink_name: str, event: WebhookEvent) -> str:
        """Apply a verified webhook once: dedupe on the event id, then read the invoice's
        current state from the sink (deliveries repeat and arrive out of order).
        Returns a short outcome for the log; raises ConnectorError when the state cannot be
        read, so the sender retries."""
        table = schema.webhook_events
        with self.ledger.read() as conn:
            seen = conn.execute(
                select(table.c.outcome).where(
                    (table.c.sink == sink_name) & (table.c.event_id == event.event_id)
                )
            ).first()
            row = self._find_refill(conn, sink_name, event)
        if seen is not None:
            return "duplicate"
        outcome = "ignored: no refill of ours"
        if row is not None and event.type.startswith("invoice."):
            sink = self.sinks[sink_name]
            state = sink.refresh(_state_of(row))
            if event.type == "invoice.payment_failed":
                self._update(row.id, payment_error=f"payment failed ({event.event_id})")
            outcome = self._apply_state(row.id, state, RefillReport())
        elif row is not None:
            outcome = f"ignored: {event.type}"
        try:
            with self.ledger.begin() as conn:
                conn.execute(
                    table.insert().values(
                        sink=sink_name,
                        event_id=event.event_id,
                        type=event.type,
                        refill_id=None if row is None else row.id,
                        outcome=outcome,
                        received_at=self.clock(),
                    )
                )
        except IntegrityError:
            return "duplicate"
        return outcome

    def _find_refill(self, conn: Connection, sink: str, event: WebhookEvent) -> Row[Any] | None:
        """Our refill whose recorded invoice the event is about. Only the invoice id counts:
        a refill id in the event's metadata may come from another database sharing the
        account, and an invoice we have not recorded yet is found by the next poll."""
        if not event.invoice_id:
            return None
        return conn.execute(
            select(R).where((R.c.sink == sink) & (R.c.invoice_id == event.invoice_id))
        ).first()

    def _lookup(self, refill_id: str) -> tuple[Customer, Budget, Row[Any]]:
        with self.ledger.read() as conn:
            row = conn.execute(select(R).where(R.c.id == refill_id)).first()
        if row is None:
            raise RefillError(f"no refill {refill_id!r}: see `prepaid balance` for open refills")
        customer = self.settings.customer(row.customer_id)
        budget = (
            None
            if customer is None
            else next((b for b in customer.budgets if b.id == row.budget_id), None)
        )
        if customer is None or budget is None:
            raise RefillError(
                f"refill {refill_id} belongs to {row.customer_id}/{row.budget_id},"
                " which is no longer in the config"
            )
        return customer, budget, row


@dataclass(frozen=True, slots=True)
class _InvoiceTerms:
    amount_minor: int
    quantity: Decimal
    unit_price: Decimal
    description: str


def _invoice_terms(customer: Customer, budget: Budget, amount_minor: int) -> _InvoiceTerms:
    """What the client is invoiced for a refill of `amount_minor` in the budget's unit."""
    if budget.unit == "hours":
        assert budget.rate is not None
        hours = from_minor(amount_minor, HOUR_UNIT)
        total = to_minor(hours * budget.rate, customer.currency)
        rate = format_amount(to_minor(budget.rate, customer.currency), customer.currency)
        text = f"Prepaid budget top-up: {hours.normalize():f} h at {customer.currency} {rate}"
        return _InvoiceTerms(total, hours, budget.rate, text)
    price = from_minor(amount_minor, customer.currency)
    return _InvoiceTerms(amount_minor, Decimal(1), price, "Prepaid budget top-up")


def _state_of(row: Row[Any]) -> InvoiceState:
    return InvoiceState(
        invoice_id=row.invoice_id,
        number=row.invoice_number,
        url=row.invoice_url,
        step=row.step or "",
        status=row.invoice_status or InvoiceStatus.DRAFT,
    )
