"""The refill policy and state machine against a real database and an in-memory sink."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from sync.books import ensure_books, topup
from sync.ledger import (
    TRANSITIONS,
    IllegalTransition,
    Ledger,
    budget_balance,
    get_refill,
    installation_id,
    schema,
    transition,
)
from sync.model import RefillStatus
from sync.ports import InvoiceStatus, WebhookEvent
from sync.refill import RefillError, RefillReport, RefillService
from sync.rules import Pricer
from sync.settings import Budget, RefillPolicy, Settings
from sync.shortfall import setting_warnings
from sync.views.reports import refill_rows
from tests.fakes.stripe_server import FakeStripe
from tests.support import RecordingSink, money_customer, settings_for

CLOCK = [dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)]


def setup(db_url: str, **customer_args: object) -> tuple[Ledger, Settings, RecordingSink]:
    settings = settings_for(db_url, money_customer(**customer_args))  # type: ignore[arg-type]
    ledger = Ledger(db_url)
    ledger.upgrade()
    ensure_books(ledger, settings, Pricer(settings.customers))
    return ledger, settings, RecordingSink()


def service(ledger: Ledger, settings: Settings, sink: RecordingSink) -> RefillService:
    return RefillService(ledger, settings, {"files": sink}, clock=lambda: CLOCK[0])


def spend(ledger: Ledger, settings: Settings, amount: str) -> None:
    """Move the balance by a negative top-up (a test shortcut for deducted time)."""
    customer = settings.customers[0]
    topup(ledger, customer, customer.budgets[0], Decimal(amount), None)


def balance(ledger: Ledger) -> int:
    with ledger.read() as conn:
        return budget_balance(conn, "acme", "retainer")


def refills(ledger: Ledger) -> list[tuple[str, str, int]]:
    r = schema.refills
    with ledger.read() as conn:
        return [
            (x.id, x.status, int(x.amount_minor)) for x in conn.execute(select(r).order_by(r.c.seq))
        ]


def test_no_refill_above_threshold(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="300.00", below="300.00")
    report = service(ledger, settings, sink).run()
    assert report.raised == [] and refills(ledger) == []


def test_refill_raised_once_issued_then_credited_when_paid(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="299.99", below="300.00")
    svc = service(ledger, settings, sink)
    report = svc.run()
    assert (report.raised, report.issued) == (["acme-retainer-1"], ["acme-retainer-1"])
    assert refills(ledger) == [("acme-retainer-1", "issued", 100000)]
    assert sink.requests[0].amount_minor == 100000
    assert sink.requests[0].description == "Prepaid budget top-up"
    with ledger.begin() as conn:
        installation = installation_id(conn)
    assert sink.requests[0].reference == f"acme-retainer-1/{installation}"
    assert svc.run().raised == []  # one open refill per budget
    assert len(sink.invoices) == 1
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    assert svc.run().credited == ["acme-retainer-1"]
    assert balance(ledger) == 29999 + 100000
    assert svc.run().credited == []
    assert balance(ledger) == 129999


def test_top_up_to_and_credit_on_issued(db_url: str) -> None:
    settings = settings_for(db_url, money_customer(opening="100.00", below="300.00"))
    customer = settings.customers[0]
    budget = customer.budgets[0]
    policy = RefillPolicy(below=Decimal("300"), top_up_to=Decimal("1250.00"), credit_on="issued")
    customer = customer.__class__(
        **{**_fields(customer), "budgets": (_with_refill(budget, policy),)}
    )
    settings = settings_for(db_url, customer)
    ledger = Ledger(db_url)
    ledger.upgrade()
    ensure_books(ledger, settings, Pricer(settings.customers))
    sink = RecordingSink()
    service(ledger, settings, sink).run()
    assert refills(ledger) == [("acme-retainer-1", "issued", 115000)]
    assert balance(ledger) == 125000
    sink.set_status("acme-retainer-1", InvoiceStatus.VOID)
    report = service(ledger, settings, sink).run()
    assert report.voided == ["acme-retainer-1"]
    assert balance(ledger) == 10000  # credit taken back when the invoice is voided


def _fields(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def _with_refill(budget: Budget, policy: RefillPolicy) -> Budget:
    return Budget(**{**_fields(budget), "refill": policy})  # type: ignore[arg-type]


def test_refused_invoice_fails_until_retried(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    sink.refuse_with = "stripe: No such customer: cus_404"
    svc = service(ledger, settings, sink)
    report = svc.run()
    assert report.failed == ["acme-retainer-1: stripe: No such customer: cus_404"]
    assert report.partial
    again = svc.run()
    assert again.raised == [] and len(sink.requests) == 1  # not retried by itself
    sink.refuse_with = None
    retried = svc.retry("acme-retainer-1")
    assert retried.issued == ["acme-retainer-1"]
    assert sink.requests[-1].idempotency_key.endswith(":acme-retainer-1:a2")
    with pytest.raises(RefillError):
        svc.retry("acme-retainer-1")


def test_runaway_guard(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0", max_per_day=2)
    svc = service(ledger, settings, sink)
    for n in (1, 2):
        svc.run()
        sink.set_status(f"acme-retainer-{n}", InvoiceStatus.VOID)
        svc.run()
    report = svc.run()
    assert report.raised == []
    assert "2 refills were already raised today" in report.guarded[0]
    assert "max_per_day 2" in report.guarded[0]


def test_manual_payment_for_outbox(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    sink.reports_payment = False
    svc = service(ledger, settings, sink)
    svc.run()
    svc.mark_paid("acme-retainer-1")
    assert balance(ledger) == 100000
    with pytest.raises(RefillError, match="already paid"):
        svc.mark_paid("acme-retainer-1")
    with pytest.raises(RefillError, match="no refill"):
        svc.mark_paid("nope")


def test_intent_without_invoice_is_completed_by_next_run(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    customer = settings.customers[0]
    raised = svc._raise(customer, customer.budgets[0], RefillReport())
    assert raised == "acme-retainer-1" and sink.requests == []
    done = svc.run()
    assert done.issued == ["acme-retainer-1"] and done.raised == []
    assert len(sink.invoices) == 1


def test_open_slot_is_unique_in_the_schema(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    service(ledger, settings, sink).run()
    from sqlalchemy.exc import IntegrityError

    r = schema.refills
    with pytest.raises(IntegrityError), ledger.begin() as conn:
        row = dict(conn.execute(select(r)).one()._mapping)
        conn.execute(r.insert().values(**{**row, "id": "dup", "seq": 99}))


EVENTS = st.lists(
    st.sampled_from(["invoice.payment_failed", "invoice.paid", "invoice.voided", "other"]),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    final=st.sampled_from([InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.OPEN]),
    deliveries=EVENTS,
    repeats=st.integers(min_value=1, max_value=3),
)
def test_webhooks_in_any_order_and_repeats(
    sqlite_url: str,
    final: str,
    deliveries: list[str],
    repeats: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('wh') / 'ledger.db'}"
    ledger, settings, sink = setup(url, opening="0")
    svc = service(ledger, settings, sink)
    svc.run()
    sink.set_status("acme-retainer-1", final)
    outcomes = []
    for n, kind in enumerate(deliveries * repeats):
        event = WebhookEvent(
            event_id=f"evt_{n % len(deliveries)}",
            type=kind,
            invoice_id="inv_acme-retainer-1",
            refill_id="acme-retainer-1",
        )
        outcomes.append(svc.apply_webhook("files", event))
    expected = {
        InvoiceStatus.PAID: ("paid", 100000),
        InvoiceStatus.VOID: ("void", 0),
        InvoiceStatus.OPEN: ("issued", 0),
    }[final]
    if not any(k.startswith("invoice.") for k in deliveries):
        expected = ("issued", 0)
    assert (refills(ledger)[0][1], balance(ledger)) == expected
    with ledger.read() as conn:
        credits = conn.execute(
            select(func.count()).where(schema.postings.c.kind == "refill_credit")
        ).scalar_one()
    assert credits == (1 if expected[0] == "paid" else 0)
    assert outcomes.count("duplicate") == len(deliveries) * repeats - len(deliveries)


# --- money received after a void, a refusal, or in parts (issue 10, item 8) -----------------


def credit_keys(ledger: Ledger) -> list[str]:
    p = schema.postings
    with ledger.read() as conn:
        stmt = select(p.c.key).where(p.c.kind == "refill_credit").order_by(p.c.id)
        return list(conn.execute(stmt).scalars())


def paid_event(n: int) -> WebhookEvent:
    return WebhookEvent(
        event_id=f"evt_paid_{n}",
        type="invoice.paid",
        invoice_id="inv_acme-retainer-1",
        refill_id="acme-retainer-1",
    )


def test_uncollectible_then_paid_is_polled_and_credited_once(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    svc.run()
    sink.set_status("acme-retainer-1", InvoiceStatus.UNCOLLECTIBLE)
    assert svc.run().voided == ["acme-retainer-1"]
    assert refills(ledger) == [("acme-retainer-1", "void", 100000)]
    # the client pays the written-off invoice before the next run: that run credits it and,
    # the balance now above the threshold, raises no second invoice for the same shortfall
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    report = svc.run()
    assert (report.credited, report.raised) == (["acme-retainer-1"], [])
    assert refills(ledger) == [("acme-retainer-1", "paid", 100000)]
    assert balance(ledger) == 100000
    assert credit_keys(ledger) == ["refill:acme-retainer-1:credit"]
    assert svc.run().credited == [] and balance(ledger) == 100000
    assert len(sink.invoices) == 1


def test_paid_webhook_after_uncollectible_credits_once(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    svc.run()
    sink.set_status("acme-retainer-1", InvoiceStatus.UNCOLLECTIBLE)
    svc.run()
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    assert svc.apply_webhook("files", paid_event(1)) == "paid"
    assert svc.apply_webhook("files", paid_event(1)) == "duplicate"
    assert svc.apply_webhook("files", paid_event(2)) == "already paid"
    assert refills(ledger) == [("acme-retainer-1", "paid", 100000)]
    assert balance(ledger) == 100000
    assert credit_keys(ledger) == ["refill:acme-retainer-1:credit"]
    assert svc.run().credited == []


def test_refill_paid_by_hand_on_a_void_refill_credits_it_once(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    sink.reports_payment = False
    svc = service(ledger, settings, sink)
    svc.run()
    with ledger.begin() as conn:  # voided by a sink report we no longer poll
        transition(conn, "acme-retainer-1", RefillStatus.VOID, CLOCK[0])
    assert svc.mark_paid("acme-retainer-1").credited == ["acme-retainer-1"]
    assert balance(ledger) == 100000
    with pytest.raises(RefillError, match="already paid"):
        svc.mark_paid("acme-retainer-1")
    assert credit_keys(ledger) == ["refill:acme-retainer-1:credit"]


def test_refill_paid_by_hand_on_a_failed_refill_credits_it(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    sink.refuse_with = "stripe: No such customer: cus_404"
    svc = service(ledger, settings, sink)
    svc.run()
    assert refills(ledger) == [("acme-retainer-1", "failed", 100000)]
    assert svc.mark_paid("acme-retainer-1").credited == ["acme-retainer-1"]
    assert refills(ledger) == [("acme-retainer-1", "paid", 100000)]
    assert balance(ledger) == 100000


def test_credit_on_issued_voided_then_paid_nets_one_credit(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0", credit_on="issued")
    svc = service(ledger, settings, sink)
    svc.run()
    assert balance(ledger) == 100000
    sink.set_status("acme-retainer-1", InvoiceStatus.UNCOLLECTIBLE)
    svc.run()
    assert balance(ledger) == 0  # credit taken back
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    for n in (1, 2):
        svc.apply_webhook("files", paid_event(n))
    svc.run()
    assert balance(ledger) == 100000
    assert credit_keys(ledger) == [
        "refill:acme-retainer-1:credit",
        "refill:acme-retainer-1:void",
        "refill:acme-retainer-1:repaid",
    ]


def test_partial_payment_is_shown_and_credited_when_paid_in_full(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    svc.run()
    part = replace(sink.invoices["acme-retainer-1"], amount_paid_minor=40000)
    sink.invoices["acme-retainer-1"] = part
    report = svc.run()
    assert report.paid_in_part == [
        "acme-retainer-1: 400.00 of 1000.00 EUR paid; credited when paid in full"
    ]
    assert (report.credited, report.partial, balance(ledger)) == ([], False, 0)
    with ledger.read() as conn:
        [row] = refill_rows(conn, open_only=True)
    assert (row.status, row.amount_paid, row.partly_paid) == ("issued", Decimal("400.00"), True)
    sink.invoices["acme-retainer-1"] = replace(
        part, status=InvoiceStatus.PAID, amount_paid_minor=100000
    )
    assert svc.run().credited == ["acme-retainer-1"]
    assert balance(ledger) == 100000
    with ledger.read() as conn:
        [row] = refill_rows(conn)
    assert (row.status, row.amount_paid, row.partly_paid) == ("paid", Decimal("1000.00"), False)


def test_partial_payment_on_a_voided_invoice_needs_the_operator(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    svc.run()
    sink.invoices["acme-retainer-1"] = replace(
        sink.invoices["acme-retainer-1"],
        status=InvoiceStatus.UNCOLLECTIBLE,
        amount_paid_minor=25000,
    )
    report = svc.run()
    assert report.voided == ["acme-retainer-1"] and report.partial
    assert "250.00 of 1000.00 EUR already paid" in report.errors[0]


def test_the_transition_table_refuses_illegal_moves(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    customer = settings.customers[0]
    svc._raise(customer, customer.budgets[0], RefillReport())
    with pytest.raises(RefillError, match="is intent"):
        svc.mark_paid("acme-retainer-1")  # no invoice confirmed yet
    svc.run()
    for target in (RefillStatus.INTENT, RefillStatus.FAILED):
        with pytest.raises(IllegalTransition, match="from issued to"), ledger.begin() as conn:
            transition(conn, "acme-retainer-1", target, CLOCK[0])
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    svc.run()
    assert TRANSITIONS[RefillStatus.PAID] == frozenset()
    for target in (RefillStatus.VOID, RefillStatus.ISSUED, RefillStatus.FAILED):
        with pytest.raises(IllegalTransition, match="from paid to"), ledger.begin() as conn:
            transition(conn, "acme-retainer-1", target, CLOCK[0])
    with ledger.read() as conn:
        refill = get_refill(conn, "acme-retainer-1")
    assert refill is not None and refill.status == RefillStatus.PAID and not refill.is_open


# --- a refill that cannot lift the balance (issue 10) -------------------------------------


def test_a_refill_too_small_says_what_it_leaves_and_how_to_fix_it(db_url: str) -> None:
    """`below: 500, amount: 100` at 350.00: one refill (I3), and the run says it leaves the
    budget at 450.00; later runs never say nothing while the budget sits below."""
    ledger, settings, sink = setup(db_url, opening="350.00", below="500.00", amount="100.00")
    svc = service(ledger, settings, sink)
    report = svc.run()
    assert report.raised == ["acme-retainer-1"] and len(sink.invoices) == 1
    assert report.below_threshold == [
        "refill of 100.00 leaves acme/retainer at 450.00, below 500.00 (balance now 350.00);"
        " the next refill is raised once this one is paid (1 more needed):"
        " raise refill.amount or use top_up_to"
    ]
    assert not report.partial
    again = svc.run()
    assert again.raised == [] and len(again.below_threshold) == 1
    assert "leaves acme/retainer at 450.00, below 500.00" in again.below_threshold[0]
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    paid = svc.run()
    assert paid.credited == ["acme-retainer-1"] and balance(ledger) == 45000
    assert paid.below_threshold == [
        "acme/retainer: balance 450.00 is below 500.00; its last refill was settled in this"
        " run, the next one is raised next run"
    ]
    lifted = svc.run()
    assert lifted.raised == ["acme-retainer-2"] and lifted.below_threshold == []


def test_an_open_refill_that_will_lift_the_budget_is_named(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="290.00", below="300.00")
    svc = service(ledger, settings, sink)
    assert svc.run().below_threshold == []  # the raised and issued lines say it
    assert svc.run().below_threshold == [
        "acme/retainer: balance 290.00 is below 300.00 until refill acme-retainer-1 is paid,"
        " which lifts it to 1290.00"
    ]


def test_a_deep_overrun_gets_one_small_refill_then_max_per_day_in_plain_words(
    db_url: str,
) -> None:
    """−2000.00 with `amount: 300`: each run raises at most one refill of 300.00, says it
    takes many more than max_per_day allows, and the run stopped by the limit says so."""
    ledger, settings, sink = setup(
        db_url, opening="0", below="500.00", amount="300.00", max_per_day=2
    )
    spend(ledger, settings, "-2000.00")
    svc = service(ledger, settings, sink)
    first = svc.run()
    assert first.raised == ["acme-retainer-1"]
    assert first.below_threshold == [
        "refill of 300.00 leaves acme/retainer at -1700.00, below 500.00 (balance now"
        " -2000.00); it takes 8 more refills of 300.00, one at a time, and max_per_day (2 in"
        " customers[0].budgets[0].refill) allows 1 more today: raise refill.amount or use"
        " top_up_to"
    ]
    sink.set_status("acme-retainer-1", InvoiceStatus.PAID)
    svc.run()
    second = svc.run()
    assert second.raised == ["acme-retainer-2"]
    assert "allows 0 more today" in second.below_threshold[0]
    sink.set_status("acme-retainer-2", InvoiceStatus.PAID)
    svc.run()
    stopped = svc.run()
    assert stopped.raised == [] and stopped.partial
    assert stopped.guarded == [
        "acme/retainer: balance -1400.00 stays below the threshold 500.00 and no refill was"
        " raised: 2 refills were already raised today, the limit (max_per_day 2 in"
        " customers[0].budgets[0].refill); the next one is raised tomorrow, or raise the"
        " limit; a refill of 300.00 would not lift it either: raise refill.amount or use"
        " top_up_to; check the entries, or record a payment with `prepaid topup`"
    ]
    assert stopped.below_threshold == []  # the guard line says it once


def test_dry_run_says_the_planned_refill_would_not_lift_the_budget(db_url: str) -> None:
    ledger, settings, sink = setup(db_url, opening="100.00", below="500.00", amount="100.00")
    report = service(ledger, settings, sink).run(dry_run=True)
    assert len(report.would_raise) == 1
    assert report.below_threshold[0].startswith(
        "refill of 100.00 leaves acme/retainer at 200.00, below 500.00"
    )
    assert refills(ledger) == []


def test_check_warns_about_an_amount_that_cannot_lift_a_used_up_budget() -> None:
    def warnings(amount: str) -> list[str]:
        customer = money_customer(below="500.00", amount=amount)
        return setting_warnings(settings_for("sqlite://", customer))

    assert warnings("500.01") == []
    (equal,) = warnings("500.00")  # reaches the threshold, not above it
    assert equal.startswith(
        "customers[0].budgets[0].refill.amount: a refill of 500.00 cannot lift a used-up"
        " budget above its threshold (500.00): from 0 it reaches only 500.00."
    )
    (small,) = warnings("100.00")
    assert "One refill lifts only a balance above 400.00 above the threshold" in small
    assert "at most 2 a day (max_per_day)" in small


# --- tax: the budget is credited the net amount (issue 10) ------------------------------


@contextmanager
def taxed_stripe_refills(db_url: str) -> Iterator[tuple[Ledger, RefillService, FakeStripe]]:
    """ACME at 290.00 under a 300.00 threshold, refilled by 1000.00 through the fake Stripe
    with a 21 % tax rate on the invoice."""
    from connectors.invoicing.stripe import StripeSink
    from sync.settings import InvoiceTo, Secret, StripeSettings

    base = money_customer(opening="290.00", below="300.00", amount="1000.00")
    to = InvoiceTo(sink="stripe", email="accounts@acme.example", tax_rates=("txr_vat21",))
    settings = settings_for(db_url, replace(base, invoice_to=to))
    ledger = Ledger(db_url)
    ledger.upgrade()
    ensure_books(ledger, settings, Pricer(settings.customers))
    with FakeStripe() as fake:
        fake.tax_percent["txr_vat21"] = Decimal(21)
        sink = StripeSink(
            StripeSettings(
                yaml_path="invoicing[0]",
                name="stripe",
                type="stripe",
                api_key=Secret(fake.api_key),
                base_url=fake.base_url,
                max_network_retries=0,
            ),
            sleep=lambda seconds: None,
        )
        yield (
            ledger,
            RefillService(ledger, settings, {"stripe": sink}, clock=lambda: CLOCK[0]),
            fake,
        )


def test_a_taxed_stripe_invoice_credits_the_budget_its_net_amount(db_url: str) -> None:
    """VAT is on the invoice, not in the budget: a refill of 1000.00 under a 21 % tax rate
    invoices 1210.00, the client pays 1210.00, and the budget is credited 1000.00."""
    with taxed_stripe_refills(db_url) as (ledger, svc, fake):
        assert svc.run().issued == ["acme-retainer-1"]
        (invoice,) = fake.invoices_for_refill("acme-retainer-1")
        assert invoice["default_tax_rates"] == ["txr_vat21"]
        assert (invoice["subtotal"], invoice["total"]) == (100000, 121000)
        fake.mark_paid(invoice["id"])
        assert svc.run().credited == ["acme-retainer-1"]
    assert balance(ledger) == 29000 + 100000
    p = schema.postings
    with ledger.read() as conn:
        credit = conn.execute(
            select(p.c.amount_minor).where(p.c.key == "refill:acme-retainer-1:credit")
        ).scalar_one()
    assert credit == 100000


def test_a_taxed_invoice_paid_in_part_is_compared_with_its_total(db_url: str) -> None:
    """Payments include tax: 1100.00 of a 1210.00 invoice (1000.00 net + 21 %) is a part
    payment, shown against the total; paid in full, the budget is credited the net 1000.00."""
    with taxed_stripe_refills(db_url) as (ledger, svc, fake):
        assert svc.run().issued == ["acme-retainer-1"]
        (invoice,) = fake.invoices_for_refill("acme-retainer-1")
        fake.pay_in_part(invoice["id"], 110000)
        report = svc.run()
        assert report.paid_in_part == [
            "acme-retainer-1: 1100.00 of 1210.00 EUR paid (incl. tax); credited when paid in full"
        ]
        assert report.credited == [] and balance(ledger) == 29000
        with ledger.read() as conn:
            [row] = refill_rows(conn, open_only=True)
        assert (row.amount_paid, row.invoice_total, row.invoice_amount, row.partly_paid) == (
            Decimal("1100.00"),
            Decimal("1210.00"),
            Decimal("1000.00"),
            True,
        )
        fake.pay_in_part(invoice["id"], 11000)
        assert svc.run().credited == ["acme-retainer-1"]
    assert balance(ledger) == 29000 + 100000


def test_a_voided_taxed_invoice_paid_in_part_names_the_total(db_url: str) -> None:
    """A part payment on a taxed invoice that is then voided is reported against the total."""
    ledger, settings, sink = setup(db_url, opening="0")
    svc = service(ledger, settings, sink)
    svc.run()
    sink.invoices["acme-retainer-1"] = replace(
        sink.invoices["acme-retainer-1"],
        status=InvoiceStatus.UNCOLLECTIBLE,
        amount_paid_minor=110000,
        total_minor=121000,
    )
    report = svc.run()
    assert report.voided == ["acme-retainer-1"] and report.partial
    assert "1100.00 of 1210.00 EUR already paid (incl. tax)" in report.errors[0]


def test_check_warns_about_tax_settings_that_would_not_credit_the_net_amount() -> None:
    from sync.settings import InvoiceTo, Secret, XeroSettings
    from sync.tax import tax_warnings

    base = money_customer()
    customer = replace(base, invoice_to=InvoiceTo(sink="files", tax_rates=("txr_1",)))
    settings = settings_for("sqlite://", customer)
    xero = XeroSettings(
        yaml_path="invoicing[1]",
        name="xero",
        type="xero",
        client_id="id",
        client_secret=Secret("s"),
        refresh_token=Secret("r"),
        tenant_id="t",
        account_code="200",
        line_amount_types="Inclusive",
    )
    settings = replace(settings, invoicing=(*settings.invoicing, xero))
    assert tax_warnings(settings) == [
        "invoicing[1].line_amount_types: Inclusive makes the refill amount the invoice total"
        " including tax, and the budget is credited that amount; use Exclusive (the default)"
        " so the budget is credited the net amount",
        "customers[0].invoice_to.tax_rates: ignored by the outbox sink 'files' (only Stripe"
        " uses tax_rates); set the tax in the invoicing system",
    ]
