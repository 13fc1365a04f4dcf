"""Contract tests of `connectors.invoicing.stripe` against recorded Stripe answers (`responses`).

Every test asserts the exact wire format the real SDK sends: form bodies with bracket keys and
our deterministic `Idempotency-Key` per step. Webhook signatures are checked byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.invoicing.stripe import StripeSink
from sync.ports import (
    CredentialsRejected,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    TemporaryFailure,
    WebhookRejected,
)
from sync.settings import InvoiceTo, Secret, StripeSettings
from tests.support import ALL_FIXTURES

API = "https://api.stripe.com"
FIXTURES = ALL_FIXTURES / "stripe"
KEY = "sk_test_51SbPz02eZvKYlo2Csecretsecretcdef"
WHSEC = "whsec_5f1d2c3b4a5968778695a4b3c2d1e0f1"
INV = "in_1SbQ8F2eZvKYlo2C0aB3cD4e"
CUS = "cus_TfZ9kQ2mXy7LpA"
NOW = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())

CREATE_BODY = (
    f"customer={CUS}&auto_advance=false&pending_invoice_items_behavior=exclude&currency=eur"
    "&metadata[prepaid_refill_id]=rf_42&metadata[prepaid_reference]=rf_42"
    "&metadata[prepaid_customer]=acme"
    "&metadata[prepaid_budget]=retainer&collection_method=send_invoice&days_until_due=14"
)
ITEM_BODY = (
    f"customer={CUS}&invoice={INV}&amount=190000&currency=eur"
    "&description=Prepaid+budget+top-up%3A+20+h+at+EUR+95.00"
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def make_sink(sleeps: list[float] | None = None, **changes: Any) -> StripeSink:
    settings = StripeSettings(
        yaml_path="invoicing[0]",
        name="stripe",
        type="stripe",
        api_key=Secret(KEY),
        webhook_secret=Secret(WHSEC),
        max_network_retries=0,
    )
    log = sleeps if sleeps is not None else []
    return StripeSink(dataclasses.replace(settings, **changes), sleep=log.append)


def make_request(**invoice_to: Any) -> InvoiceRequest:
    target = {"sink": "stripe", "customer": CUS, **invoice_to}
    return InvoiceRequest(
        refill_id="rf_42",
        idempotency_key="rf_42-1",
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


def ignore(state: InvoiceState) -> None:
    """A `record` callback for tests that do not look at progress."""


def key_of(call: Any) -> str | None:
    value = call.request.headers.get("Idempotency-Key")
    return str(value) if value is not None else None


def body_of(call: Any) -> str:
    body = call.request.body
    return body.decode() if isinstance(body, bytes) else str(body)


def add_invoice_lookup(rsps: responses.RequestsMock, listing: str = "invoices_empty.json") -> None:
    rsps.get(
        f"{API}/v1/invoices",
        json=fixture(listing),
        match=[matchers.query_param_matcher({"customer": CUS, "limit": "100"})],
    )


def add_create_flow(rsps: responses.RequestsMock, send: str = "send") -> None:
    method = {"collection_method": "send_invoice" if send == "send" else "charge_automatically"}
    rsps.post(f"{API}/v1/invoices", json={**fixture("invoice_draft.json"), **method})
    rsps.post(f"{API}/v1/invoiceitems", json=fixture("invoiceitem.json"))
    rsps.post(f"{API}/v1/invoices/{INV}/finalize", json={**fixture("invoice_open.json"), **method})
    final = "invoice_open.json" if send == "send" else "invoice_paid.json"
    rsps.post(f"{API}/v1/invoices/{INV}/{send}", json={**fixture(final), **method})


# --- issuing ----------------------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_full_flow_sends_exact_bodies_and_idempotency_keys() -> None:
    add_invoice_lookup(responses.mock)
    add_create_flow(responses.mock)
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), None, recorded.append)

    calls = responses.calls
    assert [(c.request.method, c.request.path_url) for c in calls] == [
        ("GET", f"/v1/invoices?customer={CUS}&limit=100"),
        ("POST", "/v1/invoices"),
        ("POST", "/v1/invoiceitems"),
        ("POST", f"/v1/invoices/{INV}/finalize"),
        ("POST", f"/v1/invoices/{INV}/send"),
    ]
    assert body_of(calls[1]) == CREATE_BODY
    assert body_of(calls[2]) == ITEM_BODY
    assert calls[3].request.body in (None, "", b"")
    assert calls[4].request.body in (None, "", b"")
    assert [key_of(c) for c in calls] == [
        None,
        "rf_42-1:create",
        "rf_42-1:item",
        "rf_42-1:finalize",
        "rf_42-1:send",
    ]
    assert calls[1].request.headers["Authorization"] == f"Bearer {KEY}"
    assert calls[1].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    url = fixture("invoice_open.json")["hosted_invoice_url"]
    assert recorded == [
        InvoiceState(INV, None, None, "created", InvoiceStatus.DRAFT, 0),
        InvoiceState(INV, None, None, "item_added", InvoiceStatus.DRAFT, 0),
        InvoiceState(INV, "9F3C1A2B-0007", url, "finalized", InvoiceStatus.OPEN, 0, None, 190000),
        InvoiceState(INV, "9F3C1A2B-0007", url, "sent", InvoiceStatus.OPEN, 0, None, 190000),
    ]
    assert final == recorded[-1]


@responses.activate(assert_all_requests_are_fired=True)
def test_charge_automatically_with_tax_rates_pays_instead_of_sending() -> None:
    add_invoice_lookup(responses.mock)
    add_create_flow(responses.mock, send="pay")
    request = make_request(collection_method="charge_automatically", tax_rates=("txr_1", "txr_2"))

    final = make_sink().issue(request, None, ignore)

    create = responses.calls[1]
    assert body_of(create) == (
        f"customer={CUS}&auto_advance=false&pending_invoice_items_behavior=exclude"
        "&currency=eur&metadata[prepaid_refill_id]=rf_42&metadata[prepaid_reference]=rf_42"
        "&metadata[prepaid_customer]=acme"
        "&metadata[prepaid_budget]=retainer&collection_method=charge_automatically"
        "&default_tax_rates[0]=txr_1&default_tax_rates[1]=txr_2"
    )
    assert key_of(responses.calls[4]) == "rf_42-1:pay"
    assert responses.calls[4].request.path_url == f"/v1/invoices/{INV}/pay"
    assert (final.step, final.status, final.amount_paid_minor) == ("sent", "paid", 190000)


@responses.activate(assert_all_requests_are_fired=True)
def test_customer_found_by_email() -> None:
    responses.get(
        f"{API}/v1/customers",
        json=fixture("customers_one.json"),
        match=[matchers.query_param_matcher({"email": "ap@acme.example", "limit": "10"})],
    )
    add_invoice_lookup(responses.mock)
    add_create_flow(responses.mock)

    make_sink().issue(make_request(customer=None, email="ap@acme.example"), None, ignore)

    assert body_of(responses.calls[2]) == CREATE_BODY
    assert not [c for c in responses.calls if c.request.path_url == "/v1/customers"]


@responses.activate(assert_all_requests_are_fired=True)
def test_customer_created_when_none_has_the_email() -> None:
    responses.get(f"{API}/v1/customers", json=fixture("customers_empty.json"))
    responses.post(f"{API}/v1/customers", json=fixture("customer.json"))
    add_invoice_lookup(responses.mock)
    add_create_flow(responses.mock)

    make_sink().issue(make_request(customer=None, email="ap@acme.example"), None, ignore)

    create_customer = responses.calls[1]
    assert create_customer.request.path_url == "/v1/customers"
    assert body_of(create_customer) == (
        "email=ap%40acme.example&name=ACME+Corp&metadata[prepaid_customer]=acme"
    )
    assert key_of(create_customer) == "rf_42-1:customer"
    assert body_of(responses.calls[3]) == CREATE_BODY


@responses.activate(assert_all_requests_are_fired=True)
def test_customer_not_created_when_disabled() -> None:
    responses.get(f"{API}/v1/customers", json=fixture("customers_empty.json"))
    sink = make_sink(create_customers=False)

    with pytest.raises(RequestRejected, match=r"invoicing\[0\]\.create_customers"):
        sink.issue(make_request(customer=None, email="ap@acme.example"), None, ignore)
    assert len(responses.calls) == 1


def test_customer_needs_an_id_or_an_email() -> None:
    with pytest.raises(RequestRejected, match=r"customer id .* or an email"):
        make_sink().issue(make_request(customer=None), None, ignore)


@responses.activate(assert_all_requests_are_fired=True)
def test_existing_invoice_found_by_metadata_is_adopted_not_recreated() -> None:
    listing = fixture("invoices_empty.json")
    other = {**fixture("invoice_open.json"), "id": "in_other", "metadata": {"x": "y"}}
    listing["data"] = [other, fixture("invoice_draft.json")]
    responses.get(f"{API}/v1/invoices", json=listing)
    responses.post(f"{API}/v1/invoiceitems", json=fixture("invoiceitem.json"))
    responses.post(f"{API}/v1/invoices/{INV}/finalize", json=fixture("invoice_open.json"))
    responses.post(f"{API}/v1/invoices/{INV}/send", json=fixture("invoice_open.json"))
    recorded: list[InvoiceState] = []

    make_sink().issue(make_request(), None, recorded.append)

    assert [c.request.path_url for c in responses.calls if c.request.method == "POST"] == [
        "/v1/invoiceitems",
        f"/v1/invoices/{INV}/finalize",
        f"/v1/invoices/{INV}/send",
    ]
    assert [s.step for s in recorded] == ["created", "item_added", "finalized", "sent"]


@responses.activate(assert_all_requests_are_fired=True)
def test_invoice_lookup_follows_pages() -> None:
    first = fixture("invoices_empty.json")
    first["data"] = [{**fixture("invoice_paid.json"), "id": "in_old", "metadata": {}}]
    first["has_more"] = True
    second = fixture("invoices_empty.json")
    second["data"] = [fixture("invoice_paid.json")]
    responses.get(
        f"{API}/v1/invoices",
        json=first,
        match=[matchers.query_param_matcher({"customer": CUS, "limit": "100"})],
    )
    responses.get(
        f"{API}/v1/invoices",
        json=second,
        match=[
            matchers.query_param_matcher(
                {"customer": CUS, "limit": "100", "starting_after": "in_old"}
            )
        ],
    )
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), None, recorded.append)

    # Paid before we sent it: reported as it is, nothing created or sent.
    assert (final.invoice_id, final.status, final.amount_paid_minor) == (INV, "paid", 190000)
    assert [s.step for s in recorded] == ["created", "sent"]
    assert all(c.request.method == "GET" for c in responses.calls)


@responses.activate(assert_all_requests_are_fired=True)
def test_resume_after_finalize_only_sends() -> None:
    responses.get(f"{API}/v1/invoices/{INV}", json=fixture("invoice_open.json"))
    responses.post(f"{API}/v1/invoices/{INV}/send", json=fixture("invoice_open.json"))
    state = InvoiceState(INV, "9F3C1A2B-0007", None, "finalized", InvoiceStatus.OPEN, 0)
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), state, recorded.append)

    assert key_of(responses.calls[1]) == "rf_42-1:send"
    assert [s.step for s in recorded] == ["sent"]
    assert final.step == "sent"


@responses.activate(assert_all_requests_are_fired=True)
def test_resume_with_line_already_present_does_not_add_another() -> None:
    responses.get(f"{API}/v1/invoices/{INV}", json=fixture("invoice_draft_with_line.json"))
    responses.post(f"{API}/v1/invoices/{INV}/finalize", json=fixture("invoice_open.json"))
    responses.post(f"{API}/v1/invoices/{INV}/send", json=fixture("invoice_open.json"))
    state = InvoiceState(INV, step="created")
    recorded: list[InvoiceState] = []

    make_sink().issue(make_request(), state, recorded.append)

    assert "/v1/invoiceitems" not in [c.request.path_url for c in responses.calls]
    assert [s.step for s in recorded] == ["item_added", "finalized", "sent"]


@responses.activate(assert_all_requests_are_fired=True)
def test_resume_when_already_sent_makes_no_write() -> None:
    responses.get(f"{API}/v1/invoices/{INV}", json=fixture("invoice_open.json"))
    state = InvoiceState(INV, "9F3C1A2B-0007", None, "sent", InvoiceStatus.OPEN, 0)
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), state, recorded.append)

    assert len(responses.calls) == 1
    assert recorded == []
    assert (final.step, final.status) == ("sent", "open")


@responses.activate(assert_all_requests_are_fired=True)
def test_draft_with_other_terms_is_not_finalized() -> None:
    draft = fixture("invoice_draft_with_line.json")
    draft["lines"]["data"][0]["amount"] = 95000
    listing = {**fixture("invoices_empty.json"), "data": [draft]}
    add_invoice_lookup(responses.mock)
    responses.replace(responses.GET, f"{API}/v1/invoices", json=listing)

    with pytest.raises(RequestRejected, match="totalling 95000 minor units, not 190000"):
        make_sink().issue(make_request(), None, ignore)

    assert all(c.request.method == "GET" for c in responses.calls)


@responses.activate(assert_all_requests_are_fired=True)
def test_recorded_invoice_of_another_refill_is_refused() -> None:
    invoice = fixture("invoice_open.json")
    invoice["metadata"]["prepaid_refill_id"] = "rf_7"
    responses.get(f"{API}/v1/invoices/{INV}", json=invoice)

    with pytest.raises(RequestRejected, match="belongs to refill 'rf_7'"):
        make_sink().issue(make_request(), InvoiceState(INV, step="created"), ignore)


# --- refresh and connection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "paid"),
    [
        ("invoice_draft.json", InvoiceStatus.DRAFT, 0),
        ("invoice_open.json", InvoiceStatus.OPEN, 0),
        ("invoice_paid.json", InvoiceStatus.PAID, 190000),
        ("invoice_void.json", InvoiceStatus.VOID, 0),
    ],
)
@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_maps_status_and_amount_paid(name: str, status: str, paid: int) -> None:
    responses.get(f"{API}/v1/invoices/{INV}", json=fixture(name))

    state = make_sink().refresh(InvoiceState(INV, step="sent"))

    assert (state.invoice_id, state.step, state.status, state.amount_paid_minor) == (
        INV,
        "sent",
        status,
        paid,
    )


@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_uncollectible() -> None:
    invoice = {**fixture("invoice_open.json"), "status": "uncollectible"}
    responses.get(f"{API}/v1/invoices/{INV}", json=invoice)

    assert make_sink().refresh(InvoiceState(INV)).status == InvoiceStatus.UNCOLLECTIBLE


@responses.activate(assert_all_requests_are_fired=True)
def test_check_connection_lists_one_customer() -> None:
    responses.get(
        f"{API}/v1/customers",
        json=fixture("customers_one.json"),
        match=[matchers.query_param_matcher({"limit": "1"})],
    )

    assert make_sink().check_connection() == "Stripe: API key accepted (test mode)"


# --- error mapping ----------------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_bad_key_names_the_setting_and_never_the_key() -> None:
    responses.get(f"{API}/v1/customers", status=401, json=fixture("error_auth.json"))

    with pytest.raises(CredentialsRejected) as caught:
        make_sink().check_connection()

    assert str(caught.value) == ("Stripe rejected the API key (401): check invoicing[0].api_key")
    assert "sk_test" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@responses.activate(assert_all_requests_are_fired=True)
def test_missing_permission_is_a_credentials_error() -> None:
    responses.post(f"{API}/v1/invoices", status=403, json=fixture("error_permission.json"))
    add_invoice_lookup(responses.mock)

    with pytest.raises(CredentialsRejected, match=r"invoicing\[0\]\.api_key"):
        make_sink().issue(make_request(), None, ignore)


@pytest.mark.parametrize(
    ("status", "name", "message"),
    [
        (400, "error_invalid_request.json", "No such customer: 'cus_TfZ9kQ2mXy7LpA'"),
        (400, "error_idempotency.json", "Keys for idempotent requests can only be used"),
        (402, "error_card_declined.json", "Your card was declined."),
    ],
)
@responses.activate(assert_all_requests_are_fired=True)
def test_refusals_carry_stripes_message(status: int, name: str, message: str) -> None:
    add_invoice_lookup(responses.mock)
    responses.post(f"{API}/v1/invoices", status=status, json=fixture(name))

    with pytest.raises(RequestRejected) as caught:
        make_sink().issue(make_request(), None, ignore)

    assert str(caught.value).startswith(f"Stripe refused to create the invoice ({status}): ")
    assert message in str(caught.value)


@responses.activate(assert_all_requests_are_fired=True)
def test_server_error_is_temporary() -> None:
    responses.get(f"{API}/v1/invoices/{INV}", status=500, json=fixture("error_api.json"))

    with pytest.raises(TemporaryFailure) as caught:
        make_sink().refresh(InvoiceState(INV))
    assert caught.value.kind == "server"


@responses.activate(assert_all_requests_are_fired=True)
def test_connection_error_is_temporary() -> None:
    responses.get(f"{API}/v1/invoices/{INV}", body=ConnectionError("connection reset"))

    with pytest.raises(TemporaryFailure) as caught:
        make_sink().refresh(InvoiceState(INV))
    assert caught.value.kind == "network"


@responses.activate(assert_all_requests_are_fired=True)
def test_plain_429_is_retried_honouring_retry_after() -> None:
    limited = fixture("error_rate_limit.json")
    responses.get(
        f"{API}/v1/invoices/{INV}", status=429, json=limited, headers={"Retry-After": "7"}
    )
    responses.get(f"{API}/v1/invoices/{INV}", status=429, json=limited)
    responses.get(f"{API}/v1/invoices/{INV}", json=fixture("invoice_paid.json"))
    sleeps: list[float] = []

    state = make_sink(sleeps).refresh(InvoiceState(INV))

    assert state.status == InvoiceStatus.PAID
    assert sleeps == [7, 2]
    assert len(responses.calls) == 3


@responses.activate(assert_all_requests_are_fired=True)
def test_persistent_429_gives_up_as_temporary() -> None:
    responses.get(f"{API}/v1/invoices/{INV}", status=429, json=fixture("error_rate_limit.json"))
    sleeps: list[float] = []

    with pytest.raises(TemporaryFailure) as caught:
        make_sink(sleeps).refresh(InvoiceState(INV))

    assert caught.value.kind == "rate_limit"
    assert sleeps == [1, 2]
    assert len(responses.calls) == 3


def test_repr_hides_the_key() -> None:
    assert KEY not in repr(make_sink())


# --- webhooks ---------------------------------------------------------------------------------


def signed(body: bytes, t: int = T, secret: str = WHSEC) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def paid_event() -> bytes:
    return (FIXTURES / "event_invoice_paid.json").read_bytes()


def test_webhook_valid_signature() -> None:
    body = paid_event()

    event = make_sink().parse_webhook({"Stripe-Signature": f"t={T},v1={signed(body)}"}, body, NOW)

    assert event.event_id == "evt_1SbRz12eZvKYlo2CjK3lM4nO"
    assert event.type == "invoice.paid"
    assert event.invoice_id == INV
    assert event.refill_id == "rf_42"
    assert event.created == dt.datetime(2026, 11, 4, 10, 0, 1, tzinfo=dt.UTC)
    assert event.payload["type"] == "invoice.paid"


def test_webhook_header_lookup_is_case_insensitive_and_ignores_v0() -> None:
    body = paid_event()
    header = f"t={T},v0={'0' * 64},v1={signed(body)}"

    event = make_sink().parse_webhook({"stripe-signature": header}, body, NOW)

    assert event.invoice_id == INV


def test_webhook_several_v1_one_valid() -> None:
    body = paid_event()
    header = f"t={T},v1={signed(body, secret='whsec_old')},v1={signed(body)}"

    assert make_sink().parse_webhook({"Stripe-Signature": header}, body, NOW).refill_id == "rf_42"


def test_webhook_non_invoice_event_has_no_invoice() -> None:
    body = (FIXTURES / "event_customer_created.json").read_bytes()
    header = f"t={T},v1={signed(body)}"

    event = make_sink().parse_webhook({"Stripe-Signature": header}, body, NOW)

    assert (event.type, event.invoice_id, event.refill_id) == ("customer.created", None, None)


@pytest.mark.parametrize("offset", [-300, 300])
def test_webhook_tolerance_edge_is_accepted(offset: int) -> None:
    body = paid_event()
    t = T + offset

    event = make_sink().parse_webhook(
        {"Stripe-Signature": f"t={t},v1={signed(body, t)}"}, body, NOW
    )
    assert event.invoice_id == INV


@pytest.mark.parametrize("offset", [-301, 301], ids=["stale", "future"])
def test_webhook_outside_tolerance_is_rejected(offset: int) -> None:
    body = paid_event()
    t = T + offset

    with pytest.raises(WebhookRejected, match="tolerance"):
        make_sink().parse_webhook({"Stripe-Signature": f"t={t},v1={signed(body, t)}"}, body, NOW)


def test_webhook_tampered_body_is_rejected() -> None:
    body = paid_event()
    header = f"t={T},v1={signed(body)}"
    tampered = body.replace(b'"amount_paid": 190000', b'"amount_paid": 990000')
    assert tampered != body

    with pytest.raises(WebhookRejected, match="no v1 signature matches"):
        make_sink().parse_webhook({"Stripe-Signature": header}, tampered, NOW)


def test_webhook_without_configured_secret_is_rejected() -> None:
    body = paid_event()
    sink = make_sink(webhook_secret=None)

    with pytest.raises(WebhookRejected, match=r"no webhook_secret configured for invoicing\[0\]"):
        sink.parse_webhook({"Stripe-Signature": f"t={T},v1={signed(body)}"}, body, NOW)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing Stripe-Signature"),
        ({"Stripe-Signature": ""}, "missing Stripe-Signature"),
        ({"Stripe-Signature": "garbage"}, "no timestamp"),
        ({"Stripe-Signature": f"t=soon,v1={'a' * 64}"}, "malformed timestamp"),
        ({"Stripe-Signature": f"t={T}"}, "no v1 signature in"),
        ({"Stripe-Signature": f"t={T},v0={'a' * 64}"}, "no v1 signature in"),
        ({"Stripe-Signature": f"t={T},v1=zz{'a' * 62}"}, "malformed v1"),
        ({"Stripe-Signature": f"t={T},v1=abc"}, "malformed v1"),
    ],
)
def test_webhook_garbage_headers_are_rejected(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason) as caught:
        make_sink().parse_webhook(headers, paid_event(), NOW)
    assert WHSEC not in str(caught.value)


def test_webhook_signed_but_not_json_is_rejected() -> None:
    body = b"not json {"

    with pytest.raises(WebhookRejected, match="not JSON"):
        make_sink().parse_webhook({"Stripe-Signature": f"t={T},v1={signed(body)}"}, body, NOW)


def test_webhook_amounts_are_decimal_never_float() -> None:
    body = json.dumps({"id": "evt_1", "type": "x.y", "data": {"object": {"rate": 1.5}}}).encode()

    event = make_sink().parse_webhook({"Stripe-Signature": f"t={T},v1={signed(body)}"}, body, NOW)

    data = event.payload["data"]
    assert isinstance(data, dict)
    assert data["object"]["rate"] == Decimal("1.5")
    assert isinstance(data["object"]["rate"], Decimal)
