"""The refill policy and the intent -> invoice -> credit state machine.

A refill is born as an *intent*: a committed row with a deterministic idempotency key, written
before any sink is called. Only then is the sink asked to issue the invoice, and every step the
sink reports is recorded, so a run that dies anywhere is finished by the next one with the same
key (I3). The budget is credited by one posting keyed by the refill id, which the database
refuses to write twice (I4). A unique "open slot" per budget makes "at most one open refill" a
property of the schema, not of careful code. The table and the allowed moves between statuses
live in `sync.ledger.refills`; this module decides *when* to move.

Money received is credited whatever came before: an invoice marked uncollectible voids its
refill, but Stripe still lets the client pay it, so such refills keep being polled and a payment
moves them to paid and credits them once. A partly paid invoice is shown as such and credited
when paid in full; a partial payment on an invoice that is then voided is reported for the
operator (it is not credited by itself).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sync.crash import crash_point
from sync.ledger import (
    InvoiceTerms,
    Ledger,
    Refill,
    Retry,
    budget_balance,
    get_refill,
    insert_postings,
    insert_refill,
    installation_id,
    may_move,
    note_error,
    note_payment_error,
    open_refill,
    payable_void_refills,
    posting_exists,
    posting_row,
    record_invoice_state,
    record_webhook,
    refill_by_invoice,
    refills_raised_since,
    transition,
    webhook_seen,
)
from sync.ledger import utcnow as _utcnow
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
from sync.rules import budget_unit
from sync.settings import Budget, Customer, Settings
from sync.shortfall import awaiting, guarded, next_run, still_below

log = logging.getLogger(__name__)
LEASE_TTL = dt.timedelta(minutes=5)

# The refill status an invoice's final state leads to; other states leave the status alone.
_FINAL: Mapping[str, str] = {
    InvoiceStatus.PAID: RefillStatus.PAID,
    InvoiceStatus.VOID: RefillStatus.VOID,
    InvoiceStatus.UNCOLLECTIBLE: RefillStatus.VOID,
}
# Where the operator may record a payment by hand: an invoice that exists or existed.
_PAYABLE_BY_HAND = (RefillStatus.ISSUED, RefillStatus.VOID, RefillStatus.FAILED)


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
    paid_in_part: list[str] = field(default_factory=list)
    # budgets left below their threshold, each with why (a refill awaiting payment, one too
    # small to lift it, max_per_day): never "nothing to do" while a budget sits below
    below_threshold: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when something needs the operator (exit 3)."""
        return bool(self.failed or self.errors or self.guarded)


def refill_config_hash(customer: Customer, budget: Budget) -> str:
    """What a refill invoice depends on; a change lets a failed refill be retried by itself."""
    parts = (customer.currency, customer.invoice_to, budget.rate, budget.refill, budget.unit)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def invoice_terms(customer: Customer, budget: Budget, amount_minor: int) -> InvoiceTerms:
    """What the client is invoiced for a refill of `amount_minor` in the budget's unit; made
    once per attempt and stored, so a resumed attempt sends exactly what the first one did."""
    if budget.unit == "hours":
        assert budget.rate is not None
        hours = from_minor(amount_minor, HOUR_UNIT)
        total = to_minor(hours * budget.rate, customer.currency)
        rate = format_amount(to_minor(budget.rate, customer.currency), customer.currency)
        text = f"Prepaid budget top-up: {hours.normalize():f} h at {customer.currency} {rate}"
        return InvoiceTerms(total, hours, budget.rate, text)
    price = from_minor(amount_minor, customer.currency)
    return InvoiceTerms(amount_minor, Decimal(1), price, "Prepaid budget top-up")


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
        guards = len(report.guarded)
        raised = self._run_policy(customer, budget, report, dry_run=dry_run)
        if budget.refill is not None and len(report.guarded) == guards:
            self._explain_below(customer, budget, report, raised=raised, dry_run=dry_run)

    def _run_policy(
        self, customer: Customer, budget: Budget, report: RefillReport, *, dry_run: bool
    ) -> str | None:
        """Advance the open refill, or raise one where due; return the id raised now."""
        if not dry_run:
            # a late payment first, so the policy does not invoice the same shortfall again
            self._poll_payable_voids(customer, budget, report)
        with self.ledger.read() as conn:
            current = open_refill(conn, customer.id, budget.id)
        if current is not None:
            if not dry_run:
                self._advance(current, customer, budget, report)
            elif current.status == RefillStatus.FAILED:
                report.failed.append(f"{current.id}: {current.error}")
            return None
        if budget.refill is None or customer.invoice_to is None:
            return None
        if dry_run:
            with self.ledger.read() as conn:
                plan = self._plan(conn, customer, budget)
            if plan is not None:
                report.would_raise.append(plan)
            return None
        refill_id = self._raise(customer, budget, report)
        if refill_id is None:
            return None
        crash_point("after_refill_intent")
        with self.ledger.read() as conn:
            raised = get_refill(conn, refill_id)
        assert raised is not None
        self._advance(raised, customer, budget, report)
        return refill_id

    def _poll_payable_voids(self, customer: Customer, budget: Budget, report: RefillReport) -> None:
        """Refresh refills voided because their invoice was marked uncollectible: the client
        may still pay such an invoice, and that money must be credited (a webhook may be
        missed, or the sink may send none)."""
        with self.ledger.read() as conn:
            voided = payable_void_refills(conn, customer.id, budget.id)
        for refill in voided:
            sink = self.sinks.get(refill.sink)
            if sink is None or not sink.reports_payment:
                continue
            try:
                state = sink.refresh(refill.invoice_state())
            except ConnectorError as exc:
                report.errors.append(f"{refill.id}: could not read the invoice: {exc}")
                continue
            if state.status == InvoiceStatus.PAID:
                self._apply_state(refill.id, state, report)

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
            if open_refill(conn, customer.id, budget.id) is not None:
                return None
            balance = budget_balance(conn, customer.id, budget.id)
            if balance >= to_minor(policy.below, unit):
                return None
            today = refills_raised_since(conn, customer.id, budget.id, self._day_start(now))
            if today >= policy.max_per_day:
                report.guarded.append(
                    guarded(customer, budget, balance=balance, raised_today=today)
                )
                return None
            amount = self._amount(policy.amount, policy.top_up_to, balance, unit)
            refill = insert_refill(
                conn,
                customer_id=customer.id,
                budget_id=budget.id,
                sink=customer.invoice_to.sink,
                amount_minor=amount,
                unit=unit,
                currency=customer.currency,
                terms=invoice_terms(customer, budget, amount),
                credit_on=policy.credit_on,
                config_hash=refill_config_hash(customer, budget),
                balance_minor=balance,
                installation=installation_id(conn),
                now=now,
            )
        report.raised.append(refill.id)
        return refill.id

    def _day_start(self, now: dt.datetime) -> dt.datetime:
        """The start of `now`'s day in the configured time zone (the max_per_day window)."""
        return dt.datetime.combine(now.astimezone(self.tz).date(), dt.time(), tzinfo=self.tz)

    def _explain_below(
        self,
        customer: Customer,
        budget: Budget,
        report: RefillReport,
        *,
        raised: str | None,
        dry_run: bool,
    ) -> None:
        """Say why a budget is still below its threshold after this run (or would be).

        At most one refill is open per budget (I3), so a fixed `amount` too small for the
        shortfall is not doubled up in one run: the refill is raised, and the run says what
        it leaves the balance at and what would lift it. A failed refill or a max_per_day stop
        has its own line already."""
        policy = budget.refill
        assert policy is not None
        unit = budget_unit(customer, budget)
        with self.ledger.read() as conn:
            balance = budget_balance(conn, customer.id, budget.id)
            if balance >= to_minor(policy.below, unit):
                return
            refill = open_refill(conn, customer.id, budget.id)
            credited = refill is not None and posting_exists(conn, f"refill:{refill.id}:credit")
            today = refills_raised_since(
                conn, customer.id, budget.id, self._day_start(self.clock())
            )
        if refill is None:
            if dry_run and policy.amount is not None:
                # the refill `would_raise` lists: does it lift the budget?
                amount = to_minor(policy.amount, unit)
                if balance + amount < to_minor(policy.below, unit):
                    report.below_threshold.append(
                        still_below(
                            customer,
                            budget,
                            balance=balance,
                            after=balance + amount,
                            amount=amount,
                            raised_today=today + 1,
                        )
                    )
            elif not dry_run:
                report.below_threshold.append(
                    next_run(customer, budget, balance=balance, raised_today=today)
                )
            return
        if refill.status == RefillStatus.FAILED:
            return
        after = balance if credited else balance + refill.amount_minor
        if after < to_minor(policy.below, unit):
            report.below_threshold.append(
                still_below(
                    customer,
                    budget,
                    balance=balance,
                    after=after,
                    amount=refill.amount_minor,
                    raised_today=today,
                )
            )
        elif refill.id != raised:
            report.below_threshold.append(
                awaiting(customer, budget, balance=balance, refill=refill.id, after=after)
            )

    # --- completing and polling -------------------------------------------------------------

    def _advance(
        self, refill: Refill, customer: Customer, budget: Budget, report: RefillReport
    ) -> None:
        """Move an open refill on: issue an intent, retry a failed one whose config changed,
        poll an issued one for payment."""
        if refill.status == RefillStatus.FAILED:
            if refill.config_hash == refill_config_hash(customer, budget):
                report.failed.append(f"{refill.id}: {refill.error}")
                return
            refill = self._reset_for_retry(refill.id, customer, budget)
        sink = self.sinks.get(refill.sink)
        if sink is None:
            report.errors.append(f"{refill.id}: invoicing sink {refill.sink!r} is not configured")
            return
        if refill.status == RefillStatus.INTENT:
            self._issue(refill, customer, sink, report)
        elif refill.status == RefillStatus.ISSUED and sink.reports_payment:
            try:
                state = sink.refresh(refill.invoice_state())
            except ConnectorError as exc:
                report.errors.append(f"{refill.id}: could not read the invoice: {exc}")
                return
            self._apply_state(refill.id, state, report)

    def _request(self, refill: Refill, customer: Customer) -> InvoiceRequest:
        """The sink request of the refill's current attempt, from its stored terms."""
        assert customer.invoice_to is not None
        return InvoiceRequest(
            refill_id=refill.id,
            idempotency_key=refill.idempotency_key,
            customer_id=customer.id,
            customer_name=customer.name,
            budget_id=refill.budget_id,
            invoice_to=customer.invoice_to,
            currency=refill.currency,
            amount_minor=refill.terms.amount_minor,
            quantity=refill.terms.quantity,
            unit_price=refill.terms.unit_price,
            description=refill.terms.description,
            issue_date=refill.created_at.astimezone(self.tz).date(),
            reference=f"{refill.id}/{self._installation()}",
        )

    def _issue(
        self, refill: Refill, customer: Customer, sink: InvoiceSink, report: RefillReport
    ) -> None:
        request = self._request(refill, customer)
        previous = refill.invoice_state() if refill.step else None
        try:
            state = sink.issue(request, previous, lambda s: self._record(refill.id, s))
        except RequestRejected as exc:
            with self.ledger.begin() as conn:
                transition(conn, refill.id, RefillStatus.FAILED, self.clock(), error=str(exc))
            report.failed.append(f"{refill.id}: {exc}")
            return
        except ConnectorError as exc:
            with self.ledger.begin() as conn:
                note_error(conn, refill.id, str(exc), self.clock())
            report.errors.append(f"{refill.id}: {exc}")
            return
        self._record(refill.id, state)
        with self.ledger.begin() as conn:
            current = get_refill(conn, refill.id)
            # a webhook may have settled the invoice meanwhile; then there is nothing to issue
            if current is not None and current.status == RefillStatus.INTENT:
                issued = transition(conn, refill.id, RefillStatus.ISSUED, self.clock())
                if issued.credit_on == "issued":
                    self._credit(conn, issued, "issued")
        report.issued.append(refill.id)
        crash_point("after_refill_issued")
        if state.status != InvoiceStatus.OPEN:
            self._apply_state(refill.id, state, report)

    def _installation(self) -> str:
        with self.ledger.begin() as conn:
            return installation_id(conn)

    def _record(self, refill_id: str, state: InvoiceState) -> None:
        """Persist a sink's progress the moment it reports it."""
        with self.ledger.begin() as conn:
            record_invoice_state(conn, refill_id, state, self.clock())
        crash_point(f"after_record_{state.step}")

    def _apply_state(self, refill_id: str, state: InvoiceState, report: RefillReport) -> str:
        """Apply the invoice's current state. Paid is terminal and void may only become paid,
        so applying states in any order, any number of times, ends where one delivery in order
        would, and a payment that arrives after a void is still credited once."""
        now = self.clock()
        target = _FINAL.get(state.status)
        with self.ledger.begin() as conn:
            current = get_refill(conn, refill_id)
            assert current is not None
            if target is None:
                if current.status not in (RefillStatus.INTENT, RefillStatus.ISSUED):
                    return f"already {current.status}"
                record_invoice_state(conn, refill_id, state, now)
                self._note_part_paid(current, state, report)
                return state.status
            if not may_move(current.status, target):
                return f"already {current.status}"
            record_invoice_state(conn, refill_id, state, now)
            moved = transition(conn, refill_id, target, now)
            if target == RefillStatus.PAID:
                self._credit(conn, moved, "paid", after=current.status)
                crash_point("before_credit_commit")
                report.credited.append(refill_id)
                return "paid"
            self._reverse_credit(conn, moved, state.status)
            report.voided.append(refill_id)
            if moved.partly_paid:
                report.errors.append(
                    f"{refill_id}: invoice {state.status} with"
                    f" {self._paid_text(moved, 'already paid')}; that part is not credited:"
                    " settle it with the client (refund or `prepaid topup`)"
                )
            return "void"

    def _note_part_paid(self, refill: Refill, state: InvoiceState, report: RefillReport) -> None:
        """Report a payment of less than the invoice's total. Payments include tax, so they are
        compared with the total the sink reports, never with the net amount credited."""
        shown = replace(
            refill,
            amount_paid_minor=state.amount_paid_minor or 0,
            invoice_total_minor=state.total_minor or refill.invoice_total_minor,
        )
        if shown.partly_paid:
            report.paid_in_part.append(
                f"{refill.id}: {self._paid_text(shown)}; credited when paid in full"
            )

    @staticmethod
    def _paid_text(refill: Refill, verb: str = "paid") -> str:
        """ "400.00 of 1000.00 EUR paid", or "1100.00 of 1210.00 EUR paid (incl. tax)" when
        the invoice carries tax: both figures are the invoice's, tax included."""
        paid = format_amount(refill.amount_paid_minor or 0, refill.currency)
        due = format_amount(refill.total_minor, refill.currency)
        tax = " (incl. tax)" if refill.taxed else ""
        return f"{paid} of {due} {refill.currency} {verb}{tax}"

    def _credit(self, conn: Connection, refill: Refill, why: str, *, after: str = "") -> None:
        """Credit the refill's amount once. A refill credited on issue whose credit was taken
        back by a void, and then paid, gets one second credit under its own key: the keys make
        the net credit of a refill its amount, never more."""
        key = f"refill:{refill.id}:credit"
        if posting_exists(conn, key):
            if not posting_exists(conn, f"refill:{refill.id}:void"):
                return
            key = f"refill:{refill.id}:repaid"
            if posting_exists(conn, key):
                return
        invoice = (
            f" (invoice {refill.invoice_number or refill.invoice_id})" if refill.invoice_id else ""
        )
        late = f" after it was {after}" if after in (RefillStatus.VOID, RefillStatus.FAILED) else ""
        reason = (
            f"refill {refill.id} {why}{late}{invoice}:"
            f" {format_amount(refill.terms.amount_minor, refill.currency)} {refill.currency}"
        )
        posting = posting_row(
            key=key,
            customer=refill.customer_id,
            budget=refill.budget_id,
            kind=PostingKind.REFILL_CREDIT,
            amount=refill.amount_minor,
            unit=refill.unit,
            now=self.clock(),
            reason=reason,
            refill_id=refill.id,
        )
        try:
            with conn.begin_nested():
                insert_postings(conn, [posting])
        except IntegrityError:
            log.info("refill %s was credited concurrently", refill.id)

    def _reverse_credit(self, conn: Connection, refill: Refill, status: str) -> None:
        """A refill credited on issue whose invoice is voided: take the credit back."""
        if not posting_exists(conn, f"refill:{refill.id}:credit"):
            return
        key = f"refill:{refill.id}:void"
        if posting_exists(conn, key):
            return
        insert_postings(
            conn,
            [
                posting_row(
                    key=key,
                    customer=refill.customer_id,
                    budget=refill.budget_id,
                    kind=PostingKind.REFILL_CREDIT,
                    amount=-refill.amount_minor,
                    unit=refill.unit,
                    now=self.clock(),
                    reason=f"refill {refill.id} invoice {status}: credit taken back",
                    refill_id=refill.id,
                )
            ],
        )

    def _reset_for_retry(self, refill_id: str, customer: Customer, budget: Budget) -> Refill:
        assert customer.invoice_to is not None
        with self.ledger.begin() as conn:
            current = get_refill(conn, refill_id)
            assert current is not None
            retry = Retry(
                sink=customer.invoice_to.sink,
                terms=invoice_terms(customer, budget, current.amount_minor),
                config_hash=refill_config_hash(customer, budget),
                installation=installation_id(conn),
            )
            return transition(conn, refill_id, RefillStatus.INTENT, self.clock(), retry=retry)

    # --- operator commands and webhooks -----------------------------------------------------

    def retry(self, refill_id: str) -> RefillReport:
        """`prepaid refill retry ID`: try a refused refill again with a fresh idempotency key."""
        customer, budget, refill = self._lookup(refill_id)
        if refill.status != RefillStatus.FAILED:
            raise RefillError(
                f"refill {refill_id} is {refill.status}; only a failed refill is retried"
            )
        refill = self._reset_for_retry(refill_id, customer, budget)
        report = RefillReport()
        self._advance(refill, customer, budget, report)
        return report

    def mark_paid(self, refill_id: str) -> RefillReport:
        """`prepaid refill paid ID`: record a payment the sink cannot report, or one that came
        after the invoice was voided or refused (the money is credited once all the same)."""
        _customer, _budget, refill = self._lookup(refill_id)
        if refill.status == RefillStatus.PAID:
            raise RefillError(f"refill {refill_id} is already paid")
        if refill.status not in _PAYABLE_BY_HAND:
            raise RefillError(
                f"refill {refill_id} is {refill.status}: only an issued, void or failed invoice"
                " can be recorded as paid"
            )
        report = RefillReport()
        state = replace(refill.invoice_state(), status=InvoiceStatus.PAID)
        self._apply_state(refill_id, state, report)
        return report

    def apply_webhook(self, sink_name: str, event: WebhookEvent) -> str:
        """Apply a verified webhook once: dedupe on the event id, then read the invoice's
        current state from the sink (deliveries repeat and arrive out of order).
        Returns a short outcome for the log; raises ConnectorError when the state cannot be
        read, so the sender retries.

        Only the invoice id finds the refill: a refill id in the event's metadata may come
        from another database sharing the account, and an invoice we have not recorded yet is
        found by the next poll. The refill is found in any state, so `invoice.paid` for an
        invoice we voided as uncollectible is still credited."""
        with self.ledger.read() as conn:
            seen = webhook_seen(conn, sink_name, event.event_id)
            refill = (
                refill_by_invoice(conn, sink_name, event.invoice_id) if event.invoice_id else None
            )
        if seen:
            return "duplicate"
        outcome = "ignored: no refill of ours"
        if refill is not None and event.type.startswith("invoice."):
            sink = self.sinks[sink_name]
            state = sink.refresh(refill.invoice_state())
            if event.type == "invoice.payment_failed":
                with self.ledger.begin() as conn:
                    error = f"payment failed ({event.event_id})"
                    note_payment_error(conn, refill.id, error, self.clock())
            outcome = self._apply_state(refill.id, state, RefillReport())
        elif refill is not None:
            outcome = f"ignored: {event.type}"
        try:
            with self.ledger.begin() as conn:
                record_webhook(
                    conn,
                    sink=sink_name,
                    event_id=event.event_id,
                    type=event.type,
                    refill_id=None if refill is None else refill.id,
                    outcome=outcome,
                    now=self.clock(),
                )
        except IntegrityError:
            return "duplicate"
        return outcome

    def _lookup(self, refill_id: str) -> tuple[Customer, Budget, Refill]:
        with self.ledger.read() as conn:
            refill = get_refill(conn, refill_id)
        if refill is None:
            raise RefillError(f"no refill {refill_id!r}: see `prepaid balance` for open refills")
        customer = self.settings.customer(refill.customer_id)
        budget = (
            None
            if customer is None
            else next((b for b in customer.budgets if b.id == refill.budget_id), None)
        )
        if customer is None or budget is None:
            raise RefillError(
                f"refill {refill_id} belongs to {refill.customer_id}/{refill.budget_id},"
                " which is no longer in the config"
            )
        return customer, budget, refill
