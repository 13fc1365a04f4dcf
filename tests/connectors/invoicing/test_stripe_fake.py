"""The real `stripe` SDK, driven by `StripeSink`, against the local `FakeStripe`.

These tests prove invariant I3 for Stripe: whatever step a run dies after (or whichever response
the network loses), running `issue` again with the last state the engine recorded ends with
exactly one invoice for the refill, with one line, sent once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import stripe

from connectors.invoicing.stripe import StripeSink
from sync.ports import (
    CredentialsRejected,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    TemporaryFailure,
)
from sync.settings import InvoiceTo, Secret, StripeSettings
from tests.fakes.stripe_server import FakeStripe

WHSEC = "whsec_fake_5f1d2c3b4a596877"
EMAIL = "ap@acme.example"


class Crash(Exception):
    """The process dying right after a step succeeded, before the engine stored it."""


class NoDelayClient(stripe.RequestsClient):
    """The SDK's own HTTP client without the real sleep between its network retries."""

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.0


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


def make_sink(fake: FakeStripe, **changes: Any) -> StripeSink:
    settings = StripeSettings(
        yaml_path="invoicing[0]",
        name="stripe",
        type="stripe",
        api_key=Secret(fake.api_key),
        webhook_secret=Secret(WHSEC),
        base_url=fake.base_url,
        max_network_retries=0,
    )
    return StripeSink(
        dataclasses.replace(settings, **changes),
        sleep=lambda seconds: None,
        http_client=NoDelayClient(),
    )


def make_request(refill_id: str = "rf_1", **invoice_to: Any) -> InvoiceRequest:
    target = {"sink": "stripe", "email": EMAIL, **invoice_to}
    return InvoiceRequest(
        refill_id=refill_id,
        idempotency_key=f"{refill_id}-1",
        customer_id="acme",
        customer_name="ACME Corp",
        budget_id="retainer",
        invoice_to=InvoiceTo(**target),
        currency="EUR",
        amount_minor=190000,
        quantity=Decimal("20"),
        unit_price=Decimal("95.00"),
        description="Prepaid budget top-up: 20 h at EUR 95.00",
        issue_date=dt.date(2026, 11, 3),
    )


def assert_one_invoice_sent_once(fake: FakeStripe, refill_id: str = "rf_1") -> dict[str, Any]:
    invoices = fake.invoices_for_refill(refill_id)
    assert len(invoices) == 1
    invoice = invoices[0]
    assert invoice["status"] == "open"
    assert [line["amount"] for line in invoice["lines"]["data"]] == [190000]
    assert invoice["total"] == 190000
    assert fake.sends[invoice["id"]] == 1
    return invoice


def test_uncollectible_invoice_paid_in_parts_reads_as_open_then_uncollectible_then_paid(
    fake: FakeStripe,
) -> None:
    """What the refill service relies on: a partial payment leaves the invoice open with its
    amount paid; an uncollectible invoice can still be paid (through the API too), and then
    reads as paid in full."""
    sink = make_sink(fake)
    final = sink.issue(make_request(), None, lambda state: None)
    invoice_id = final.invoice_id
    assert invoice_id is not None

    fake.pay_in_part(invoice_id, 40000)
    part = sink.refresh(final)
    assert (part.status, part.amount_paid_minor, part.total_minor) == (
        InvoiceStatus.OPEN,
        40000,
        190000,
    )

    fake.mark_uncollectible(invoice_id)
    written_off = sink.refresh(final)
    assert (written_off.status, written_off.amount_paid_minor) == (
        InvoiceStatus.UNCOLLECTIBLE,
        40000,
    )

    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url})
    client.v1.invoices.pay(invoice_id, {"paid_out_of_band": True})
    paid = sink.refresh(final)
    assert (paid.status, paid.amount_paid_minor) == (InvoiceStatus.PAID, 190000)


def test_full_flow_then_paid(fake: FakeStripe) -> None:
    sink = make_sink(fake)
    recorded: list[InvoiceState] = []

    final = sink.issue(make_request(), None, recorded.append)

    invoice = assert_one_invoice_sent_once(fake)
    assert [s.step for s in recorded] == ["created", "item_added", "finalized", "sent"]
    assert final == recorded[-1]
    assert final.invoice_id == invoice["id"]
    assert final.number == invoice["number"]
    assert final.url == invoice["hosted_invoice_url"]
    assert (final.status, final.amount_paid_minor) == (InvoiceStatus.OPEN, 0)
    customer = fake.state.customers[invoice["customer"]]
    assert (customer["email"], customer["metadata"]) == (EMAIL, {"prepaid_customer": "acme"})
    assert invoice["metadata"] == {
        "prepaid_refill_id": "rf_1",
        "prepaid_reference": "rf_1",
        "prepaid_customer": "acme",
        "prepaid_budget": "retainer",
    }
    assert invoice["currency"] == "eur"
    assert invoice["lines"]["data"][0]["description"] == "Prepaid budget top-up: 20 h at EUR 95.00"

    fake.mark_paid(invoice["id"])
    paid = sink.refresh(final)
    assert (paid.status, paid.amount_paid_minor) == (InvoiceStatus.PAID, 190000)

    t = 1_800_000_000
    headers, body = fake.events.signed_webhook("invoice.paid", invoice["id"], WHSEC, t)
    event = sink.parse_webhook(headers, body, dt.datetime.fromtimestamp(t + 5, dt.UTC))
    assert (event.type, event.invoice_id, event.refill_id) == (
        "invoice.paid",
        invoice["id"],
        "rf_1",
    )


def test_second_issue_for_the_same_refill_reuses_the_customer_and_the_invoice(
    fake: FakeStripe,
) -> None:
    sink = make_sink(fake)
    sink.issue(make_request(), None, lambda state: None)

    again = sink.issue(make_request(), None, lambda state: None)

    assert_one_invoice_sent_once(fake)
    assert len(fake.state.customers) == 1
    assert again.step == "sent"


STEPS = ["created", "item_added", "finalized", "sent"]


@pytest.mark.parametrize("crash_at", STEPS)
@pytest.mark.parametrize("pruned", [False, True], ids=["within-24h", "keys-pruned"])
def test_crash_after_each_step_then_resume(fake: FakeStripe, crash_at: str, pruned: bool) -> None:
    sink = make_sink(fake)
    stored: list[InvoiceState] = []

    def crashing(state: InvoiceState) -> None:
        if state.step == crash_at:
            raise Crash(state.step)
        stored.append(state)

    with pytest.raises(Crash):
        sink.issue(make_request(), None, crashing)
    if pruned:
        fake.prune_idempotency_keys()
    last = stored[-1] if stored else None

    final = sink.issue(make_request(), last, stored.append)

    invoice = fake.invoices_for_refill("rf_1")
    assert len(invoice) == 1
    assert [line["amount"] for line in invoice[0]["lines"]["data"]] == [190000]
    assert (final.step, final.status, final.invoice_id) == ("sent", "open", invoice[0]["id"])
    assert [s.step for s in stored][-1] == "sent"
    # After 24 h Stripe forgets the send key: a crash between sending and recording it sends
    # the same invoice a second time (an extra email, never a second invoice).
    expected_sends = 2 if (pruned and crash_at == "sent") else 1
    assert fake.sends[invoice[0]["id"]] == expected_sends


def test_lost_create_response_then_rerun_finds_invoice_by_metadata(fake: FakeStripe) -> None:
    sink = make_sink(fake)
    fake.lose_next_response("/v1/invoices")
    recorded: list[InvoiceState] = []

    with pytest.raises(TemporaryFailure) as caught:
        sink.issue(make_request(), None, recorded.append)
    assert caught.value.kind == "network"
    assert recorded == []
    assert fake.invoice_count("rf_1") == 1
    fake.prune_idempotency_keys()  # the rerun comes a day later: only the metadata is left

    final = sink.issue(make_request(), None, recorded.append)

    invoice = assert_one_invoice_sent_once(fake)
    assert final.invoice_id == invoice["id"]
    assert len(fake.calls("POST", "/v1/invoices")) == 1


def test_lost_response_is_replayed_by_the_sdk_retry(fake: FakeStripe) -> None:
    sink = make_sink(fake, max_network_retries=1)
    fake.lose_next_response("/v1/invoiceitems")

    sink.issue(make_request(), None, lambda state: None)

    assert_one_invoice_sent_once(fake)
    items = fake.calls("POST", "/v1/invoiceitems")
    assert [r.idempotency_key for r in items] == ["rf_1-1:item", "rf_1-1:item"]
    assert len(fake.state.invoice_items) == 1


def test_injected_server_errors_are_retried_by_the_sdk(fake: FakeStripe) -> None:
    sink = make_sink(fake, max_network_retries=2)
    fake.fail_next(2, 503, "/v1/invoices", method="POST")

    sink.issue(make_request(), None, lambda state: None)

    assert_one_invoice_sent_once(fake)
    assert [r.idempotency_key for r in fake.calls("POST", "/v1/invoices")] == ["rf_1-1:create"] * 3


def test_rate_limited_create_is_retried_by_the_sink(fake: FakeStripe) -> None:
    sleeps: list[float] = []
    settings = StripeSettings(
        yaml_path="invoicing[0]",
        name="stripe",
        type="stripe",
        api_key=Secret(fake.api_key),
        base_url=fake.base_url,
        max_network_retries=2,
    )
    sink = StripeSink(settings, sleep=sleeps.append, http_client=NoDelayClient())
    fake.fail_next(2, 429, "/v1/invoices", method="POST")

    sink.issue(make_request(), None, lambda state: None)

    assert_one_invoice_sent_once(fake)
    assert sleeps == [1, 2]


def test_idempotent_replay_and_idempotency_error(fake: FakeStripe) -> None:
    client = stripe.StripeClient(
        fake.api_key, base_addresses={"api": fake.base_url}, max_network_retries=0
    )
    customer = fake.add_customer(EMAIL)
    params: stripe.params.InvoiceCreateParams = {
        "customer": customer,
        "collection_method": "send_invoice",
        "days_until_due": 14,
        "metadata": {"prepaid_refill_id": "rf_9"},
    }

    first = client.v1.invoices.create(params, options={"idempotency_key": "k-1"})
    replay = client.v1.invoices.create(params, options={"idempotency_key": "k-1"})

    assert replay.id == first.id
    assert fake.invoice_count("rf_9") == 1
    assert replay.last_response is not None
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"

    changed: stripe.params.InvoiceCreateParams = {**params, "days_until_due": 30}
    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        client.v1.invoices.create(changed, options={"idempotency_key": "k-1"})
    assert fake.invoice_count("rf_9") == 1


def test_errors_are_replayed_too(fake: FakeStripe) -> None:
    client = stripe.StripeClient(
        fake.api_key, base_addresses={"api": fake.base_url}, max_network_retries=0
    )
    fake.fail_next(1, 500, "/v1/customers", method="POST", stored=True)

    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.customers.create({"email": EMAIL}, options={"idempotency_key": "k-2"})
    assert fake.state.customers == {}

    created = client.v1.customers.create({"email": EMAIL}, options={"idempotency_key": "k-3"})
    assert created.email == EMAIL


def test_sink_reports_idempotency_error_as_rejected(fake: FakeStripe) -> None:
    sink = make_sink(fake)
    sink.issue(make_request(), None, lambda state: None)
    fake.state.invoices.clear()  # the invoice vanished, but Stripe still holds the key
    changed = dataclasses.replace(make_request(), currency="USD")

    with pytest.raises(RequestRejected, match="same parameters"):
        sink.issue(changed, None, lambda state: None)


def test_charge_automatically_pays_the_invoice(fake: FakeStripe) -> None:
    sink = make_sink(fake)

    final = sink.issue(
        make_request(collection_method="charge_automatically"), None, lambda state: None
    )

    invoice = fake.invoices_for_refill("rf_1")[0]
    assert (final.step, final.status, final.amount_paid_minor) == ("sent", "paid", 190000)
    assert fake.charges[invoice["id"]] == 1
    assert fake.sends[invoice["id"]] == 0


def test_declined_card_is_rejected_and_the_invoice_stays_open(fake: FakeStripe) -> None:
    customer = fake.add_customer(EMAIL, "ACME Corp", prepaid_customer="acme")
    fake.declining_customers.add(customer)
    recorded: list[InvoiceState] = []
    sink = make_sink(fake)

    with pytest.raises(RequestRejected, match="Your card was declined"):
        sink.issue(make_request(collection_method="charge_automatically"), None, recorded.append)

    assert recorded[-1].step == "finalized"
    assert fake.invoices_for_refill("rf_1")[0]["status"] == "open"


def test_fake_marks_an_invoice_paid_out_of_band(fake: FakeStripe) -> None:
    sink = make_sink(fake)
    state = sink.issue(make_request(), None, lambda s: None)
    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url})

    client.v1.invoices.pay(str(state.invoice_id), {"paid_out_of_band": True})

    refreshed = sink.refresh(state)
    assert (refreshed.status, refreshed.amount_paid_minor) == (InvoiceStatus.PAID, 190000)
    assert fake.charges[str(state.invoice_id)] == 0


@pytest.mark.parametrize("action", ["void", "mark_uncollectible"])
def test_refresh_reports_void_and_uncollectible(fake: FakeStripe, action: str) -> None:
    sink = make_sink(fake)
    state = sink.issue(make_request(), None, lambda s: None)
    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url})
    if action == "void":
        client.v1.invoices.void_invoice(str(state.invoice_id))
    else:
        client.v1.invoices.mark_uncollectible(str(state.invoice_id))

    refreshed = sink.refresh(state)

    expected = InvoiceStatus.VOID if action == "void" else InvoiceStatus.UNCOLLECTIBLE
    assert refreshed.status == expected


def test_voided_draft_found_by_metadata_is_reported_not_replaced(fake: FakeStripe) -> None:
    sink = make_sink(fake)

    def crash_after_finalize(state: InvoiceState) -> None:
        if state.step == "finalized":
            raise Crash()

    with pytest.raises(Crash):
        sink.issue(make_request(), None, crash_after_finalize)
    invoice_id = fake.invoices_for_refill("rf_1")[0]["id"]
    stripe.StripeClient(
        fake.api_key, base_addresses={"api": fake.base_url}
    ).v1.invoices.void_invoice(invoice_id)

    final = sink.issue(make_request(), None, lambda state: None)

    assert (final.invoice_id, final.status) == (invoice_id, InvoiceStatus.VOID)
    assert fake.invoice_count("rf_1") == 1
    assert fake.sends[invoice_id] == 0


def test_wrong_key_is_a_credentials_error_without_the_key(fake: FakeStripe) -> None:
    sink = make_sink(fake, api_key=Secret("sk_test_wrong_9876543210"))

    with pytest.raises(CredentialsRejected) as caught:
        sink.check_connection()

    assert "invoicing[0].api_key" in str(caught.value)
    assert "9876543210" not in str(caught.value)


def test_check_connection(fake: FakeStripe) -> None:
    assert make_sink(fake).check_connection() == "Stripe: API key accepted (test mode)"


def test_an_invoice_from_another_database_is_never_adopted(fake: FakeStripe) -> None:
    sink = make_sink(fake)
    old = dataclasses.replace(make_request(), reference="rf_1/oldoldoldold")
    sink.issue(old, None, lambda state: None)
    fake.mark_paid(fake.invoices_for_refill("rf_1")[0]["id"])
    new = dataclasses.replace(
        make_request(), reference="rf_1/newnewnewnew", idempotency_key="other-db:rf_1:a1"
    )
    state = sink.issue(new, None, lambda state: None)
    invoices = fake.invoices_for_refill("rf_1")
    assert len(invoices) == 2
    assert state.invoice_id == invoices[1]["id"]
    assert state.status == InvoiceStatus.OPEN  # the new one, not the old paid one
    assert invoices[1]["metadata"]["prepaid_reference"] == "rf_1/newnewnewnew"


def test_an_invoice_made_before_references_existed_is_not_adopted(fake: FakeStripe) -> None:
    sink = make_sink(fake)
    sink.issue(make_request(), None, lambda state: None)
    old = fake.invoices_for_refill("rf_1")[0]
    del old["metadata"]["prepaid_reference"]  # an invoice from an older version
    fake.mark_paid(old["id"])
    new = dataclasses.replace(
        make_request(), reference="rf_1/newnewnewnew", idempotency_key="other-db:rf_1:a1"
    )
    state = sink.issue(new, None, lambda state: None)
    assert fake.invoice_count("rf_1") == 2
    assert (state.status, state.invoice_id) == (InvoiceStatus.OPEN, new_invoice_id(fake, old))


def test_the_invoice_with_our_reference_is_adopted_after_a_lost_record(
    fake: FakeStripe,
) -> None:
    sink = make_sink(fake)
    request = dataclasses.replace(make_request(), reference="rf_1/0a1b2c3d4e5f")
    first = sink.issue(request, None, lambda state: None)
    again = sink.issue(request, None, lambda state: None)  # the engine lost every record
    assert fake.invoice_count("rf_1") == 1
    assert again.invoice_id == first.invoice_id


def new_invoice_id(fake: FakeStripe, old: dict[str, Any]) -> str:
    (new,) = [i for i in fake.invoices_for_refill("rf_1") if i["id"] != old["id"]]
    return str(new["id"])
