"""Contract tests of `connectors.invoicing.xero` (and the OAuth rotation in
`connectors.http.oauth`) against recorded Xero answers replayed with `responses`; every
registered call must be made.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from connectors.invoicing.xero import XeroSink, parse_xero_date
from sync.ports import (
    CredentialsRejected,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    TemporaryFailure,
    WebhookRejected,
)
from sync.settings import InvoiceTo, Secret, XeroSettings
from tests.fakes.credentials import MemoryCredentials
from tests.support import ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "xero"
API = "https://api.xero.com/api.xro/2.0"
TOKEN_URL = "https://identity.xero.com/connect/token"
TENANT = "70784a63-d24b-46a9-a4db-0e70a274b056"
CONTACT = "bd2270c3-8706-4c11-9cfb-000b551c3f51"
INVOICE = "243216c5-369e-4056-ac67-05388f86dc81"
CLIENT_SECRET = "xero-client-secret-4f9a8b7c6d5e"
INITIAL = "initial-refresh-token-0001"
STORE_KEY = "xero:xero:refresh_token"
TOKEN = json.loads((FIXTURES / "token.json").read_text())
ACCESS = TOKEN["access_token"]
ROTATED = TOKEN["refresh_token"]
BASIC = "Basic " + base64.b64encode(f"CLIENT0123:{CLIENT_SECRET}".encode()).decode()
WHERE = {"where": 'Reference=="acme-retainer-1"'}

PUT_BODY = (
    '{"Invoices":[{"Type":"ACCREC","Contact":{"ContactID":"' + CONTACT + '"},'
    '"Date":"2026-11-03","DueDate":"2026-11-17","LineAmountTypes":"Exclusive",'
    '"Reference":"acme-retainer-1","Status":"AUTHORISED","LineItems":[{"Description":'
    '"Prepaid budget top-up: 20 h at EUR 95.00","Quantity":20,"UnitAmount":95.00,'
    '"AccountCode":"200","TaxType":"OUTPUT2"}]}]}'
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class Clock:
    """A settable epoch clock."""

    def __init__(self) -> None:
        self.now = 1_793_696_400.0

    def __call__(self) -> float:
        return self.now


def make_sink(
    store: MemoryCredentials | None = None,
    *,
    sleeps: list[float] | None = None,
    clock: Clock | None = None,
    **changes: Any,
) -> XeroSink:
    settings = XeroSettings(
        yaml_path="invoicing[1]",
        name="xero",
        type="xero",
        client_id="CLIENT0123",
        client_secret=Secret(CLIENT_SECRET),
        refresh_token=Secret(INITIAL),
        tenant_id=TENANT,
        account_code="200",
        tax_type="OUTPUT2",
    )
    return XeroSink(
        dataclasses.replace(settings, **changes),
        store if store is not None else MemoryCredentials(),
        sleep=(sleeps if sleeps is not None else []).append,
        clock=clock or Clock(),
    )


def make_request(**changes: Any) -> InvoiceRequest:
    request = InvoiceRequest(
        refill_id="acme-retainer-1",
        idempotency_key="prepaid-sync:0a1b2c3d4e5f:acme-retainer-1:a1",
        customer_id="acme",
        customer_name="ACME Corp",
        budget_id="retainer",
        invoice_to=InvoiceTo(sink="xero", customer=CONTACT),
        currency="EUR",
        amount_minor=190000,
        quantity=Decimal("20"),
        unit_price=Decimal("95.00"),
        description="Prepaid budget top-up: 20 h at EUR 95.00",
        issue_date=dt.date(2026, 11, 3),
    )
    return dataclasses.replace(request, **changes)


def add_token(refresh_token: str = INITIAL, *, status: int = 200, body: Any = None) -> None:
    responses.post(
        TOKEN_URL,
        status=status,
        json=TOKEN if body is None else body,
        match=[
            matchers.urlencoded_params_matcher(
                {"grant_type": "refresh_token", "refresh_token": refresh_token}
            ),
            matchers.header_matcher({"Authorization": BASIC}),
        ],
    )


API_HEADERS = matchers.header_matcher(
    {"Authorization": f"Bearer {ACCESS}", "Xero-tenant-id": TENANT, "Accept": "application/json"}
)


def ignore(state: InvoiceState) -> None:
    """A `record` callback for tests that do not look at progress."""


# --- issuing ----------------------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_issue_refreshes_saves_rotation_first_then_looks_up_and_creates() -> None:
    store = MemoryCredentials()
    add_token()

    def lookup(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        # The rotated token is already persisted when the first API call goes out.
        assert store.saves == [(STORE_KEY, ROTATED)]
        return 200, {}, json.dumps(fixture("invoices_none.json"))

    responses.add_callback(
        responses.GET,
        f"{API}/Invoices",
        callback=lookup,
        match=[matchers.query_param_matcher(WHERE), API_HEADERS],
    )
    responses.put(
        f"{API}/Invoices",
        body=(FIXTURES / "invoice_created.json").read_text(),
        match=[
            API_HEADERS,
            matchers.header_matcher(
                {"Idempotency-Key": "prepaid-sync:0a1b2c3d4e5f:acme-retainer-1:a1:create"}
            ),
        ],
    )
    recorded: list[InvoiceState] = []

    final = make_sink(store).issue(make_request(), None, recorded.append)

    put = responses.calls[2].request
    assert put.body is not None
    body = put.body.decode() if isinstance(put.body, bytes) else put.body
    assert body == PUT_BODY
    assert put.headers["Content-Type"] == "application/json"
    assert recorded == [
        InvoiceState(INVOICE, "INV-0042", None, "created", InvoiceStatus.OPEN, 0, None, 229900)
    ]
    assert final == recorded[0]
    assert store.values == {STORE_KEY: ROTATED}


@responses.activate(assert_all_requests_are_fired=True)
def test_lookup_by_reference_prevents_a_second_create() -> None:
    add_token()
    responses.get(f"{API}/Invoices", json=fixture("invoices_found.json"))
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), None, recorded.append)

    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert (final.invoice_id, final.number, final.step) == (INVOICE, "INV-0042", "created")
    assert recorded == [final]


OURS = "acme-retainer-1/0a1b2c3d4e5f"


@pytest.mark.parametrize("theirs", ["acme-retainer-1/ffffffffffff", "acme-retainer-1"])
@responses.activate(assert_all_requests_are_fired=True)
def test_an_invoice_from_another_database_is_not_adopted(theirs: str) -> None:
    # Refill ids restart at 1 in a new database; the old, paid invoice keeps its reference.
    add_token()
    old = fixture("invoices_found.json")
    for invoice in old["Invoices"]:
        invoice.update(Reference=theirs, Status="PAID", AmountDue=0, AmountPaid=2299)
    responses.get(
        f"{API}/Invoices",
        json=old,
        match=[matchers.query_param_matcher({"where": f'Reference=="{OURS}"'})],
    )
    responses.put(f"{API}/Invoices", body=(FIXTURES / "invoice_created.json").read_text())

    final = make_sink().issue(make_request(reference=OURS), None, ignore)

    put = responses.calls[2].request
    assert put.body is not None
    assert json.loads(put.body)["Invoices"][0]["Reference"] == OURS
    assert (final.status, final.amount_paid_minor) == (InvoiceStatus.OPEN, 0)


@responses.activate(assert_all_requests_are_fired=True)
def test_the_invoice_with_our_reference_is_adopted() -> None:
    add_token()
    found = fixture("invoices_found.json")
    for invoice in found["Invoices"]:
        invoice["Reference"] = OURS
    responses.get(
        f"{API}/Invoices",
        json=found,
        match=[matchers.query_param_matcher({"where": f'Reference=="{OURS}"'})],
    )

    final = make_sink().issue(make_request(reference=OURS), None, ignore)

    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert final.invoice_id == INVOICE


@responses.activate(assert_all_requests_are_fired=True)
def test_recorded_invoice_is_read_not_recreated() -> None:
    add_token()
    responses.get(f"{API}/Invoices/{INVOICE}", json=fixture("invoice_created.json"))
    recorded: list[InvoiceState] = []

    final = make_sink().issue(
        make_request(), InvoiceState(INVOICE, step="created"), recorded.append
    )

    assert recorded == []
    assert (final.invoice_id, final.status) == (INVOICE, InvoiceStatus.OPEN)


@responses.activate(assert_all_requests_are_fired=True)
def test_draft_status_and_fractional_hours_fall_back_to_one_line_of_the_amount() -> None:
    add_token()
    responses.get(f"{API}/Invoices", json=fixture("invoices_none.json"))
    responses.put(f"{API}/Invoices", json=fixture("invoice_draft.json"))
    request = make_request(
        amount_minor=126667, quantity=Decimal("13.333333"), unit_price=Decimal("95.00")
    )

    state = make_sink(status="DRAFT", tax_type=None).issue(request, None, ignore)

    sent = json.loads(responses.calls[2].request.body or "{}", parse_float=Decimal)
    invoice = sent["Invoices"][0]
    assert invoice["Status"] == "DRAFT"
    assert invoice["LineItems"] == [
        {
            "Description": "Prepaid budget top-up: 20 h at EUR 95.00",
            "Quantity": 1,
            "UnitAmount": Decimal("1266.67"),
            "AccountCode": "200",
        }
    ]
    assert state.status == InvoiceStatus.DRAFT


@responses.activate(assert_all_requests_are_fired=True)
def test_validation_error_is_rejected_with_xeros_messages() -> None:
    add_token()
    responses.get(f"{API}/Invoices", json=fixture("invoices_none.json"))
    responses.put(f"{API}/Invoices", status=400, json=fixture("validation_error.json"))

    with pytest.raises(RequestRejected) as caught:
        make_sink().issue(make_request(), None, ignore)

    message = str(caught.value)
    assert "Account code '999' is not a valid code for this document." in message
    assert "Invoice not of valid status for creation" in message


def test_missing_contact_is_rejected_before_any_call() -> None:
    request = make_request(invoice_to=InvoiceTo(sink="xero"))

    with pytest.raises(RequestRejected, match="ContactID"):
        make_sink().issue(request, None, ignore)


@responses.activate(assert_all_requests_are_fired=True)
def test_rate_limit_is_retried_after_retry_after() -> None:
    add_token()
    responses.get(
        f"{API}/Invoices/{INVOICE}",
        status=429,
        headers={"Retry-After": "5", "X-Rate-Limit-Problem": "minute"},
    )
    responses.get(f"{API}/Invoices/{INVOICE}", json=fixture("invoice_paid.json"))
    sleeps: list[float] = []

    state = make_sink(sleeps=sleeps).refresh(InvoiceState(INVOICE, step="created"))

    assert sleeps == [5.0]
    assert state.status == InvoiceStatus.PAID


@responses.activate(assert_all_requests_are_fired=True)
def test_daily_limit_gives_up_at_once() -> None:
    add_token()
    responses.get(
        f"{API}/Invoices/{INVOICE}",
        status=429,
        headers={"Retry-After": "43200", "X-Rate-Limit-Problem": "day"},
    )
    sleeps: list[float] = []

    with pytest.raises(TemporaryFailure):
        make_sink(sleeps=sleeps).refresh(InvoiceState(INVOICE))
    assert sleeps == []


# --- tokens -----------------------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_stored_token_is_used_first_and_access_token_is_cached() -> None:
    store = MemoryCredentials(**{STORE_KEY: "stored-refresh-token-0002"})
    clock = Clock()
    add_token("stored-refresh-token-0002")
    responses.get(f"{API}/Invoices/{INVOICE}", json=fixture("invoice_created.json"))
    sink = make_sink(store, clock=clock)

    sink.refresh(InvoiceState(INVOICE))
    clock.now += 1800 - 61  # still more than a minute to live: reused
    sink.refresh(InvoiceState(INVOICE))

    assert [c.request.url for c in responses.calls].count(TOKEN_URL) == 1
    assert store.values[STORE_KEY] == ROTATED

    clock.now += 2  # within the last minute: refreshed with the rotated token
    add_token(ROTATED, body={**TOKEN, "refresh_token": "third-refresh-token-0003"})
    sink.refresh(InvoiceState(INVOICE))
    assert store.saves == [(STORE_KEY, ROTATED), (STORE_KEY, "third-refresh-token-0003")]


@responses.activate(assert_all_requests_are_fired=True)
def test_refused_stored_token_falls_back_to_a_new_token_in_the_config() -> None:
    store = MemoryCredentials(**{STORE_KEY: "dead-stored-token-0009"})
    add_token("dead-stored-token-0009", status=400, body=fixture("token_invalid_grant.json"))
    add_token("operator-new-token-0010")
    responses.get(f"{API}/Organisation", json=fixture("organisation.json"))

    result = make_sink(store, refresh_token=Secret("operator-new-token-0010")).check_connection()

    assert result == "Xero: connected to Acme Agency BV"
    assert store.values == {STORE_KEY: ROTATED}


@responses.activate(assert_all_requests_are_fired=True)
def test_invalid_grant_says_how_to_reauthorise_without_secrets() -> None:
    store = MemoryCredentials(**{STORE_KEY: "dead-stored-token-0009"})
    add_token("dead-stored-token-0009", status=400, body=fixture("token_invalid_grant.json"))
    add_token(INITIAL, status=400, body=fixture("token_invalid_grant.json"))

    with pytest.raises(CredentialsRejected) as caught:
        make_sink(store).check_connection()

    message = str(caught.value)
    assert "invalid_grant" in message
    assert "invoicing[1].refresh_token" in message
    for secret in (INITIAL, "dead-stored-token-0009", CLIENT_SECRET):
        assert secret not in message
    assert store.saves == []


@responses.activate(assert_all_requests_are_fired=True)
def test_initial_token_alone_is_tried_once() -> None:
    add_token(INITIAL, status=400, body=fixture("token_invalid_grant.json"))

    with pytest.raises(CredentialsRejected):
        make_sink().check_connection()
    assert len(responses.calls) == 1


@responses.activate(assert_all_requests_are_fired=True)
def test_invalid_client_names_client_settings() -> None:
    add_token(INITIAL, status=400, body=fixture("token_invalid_client.json"))

    with pytest.raises(CredentialsRejected, match=r"invoicing\[1\]\.client_secret"):
        make_sink().check_connection()


@responses.activate(assert_all_requests_are_fired=True)
def test_cached_token_refused_by_the_api_is_refreshed_once() -> None:
    add_token()
    responses.get(f"{API}/Invoices/{INVOICE}", json=fixture("invoice_created.json"))
    responses.get(f"{API}/Invoices/{INVOICE}", status=401, json={"Title": "Unauthorized"})
    add_token(ROTATED, body={**TOKEN, "access_token": "second-access", "refresh_token": "r3"})
    responses.get(
        f"{API}/Invoices/{INVOICE}",
        json=fixture("invoice_paid.json"),
        match=[matchers.header_matcher({"Authorization": "Bearer second-access"})],
    )
    sink = make_sink()

    sink.refresh(InvoiceState(INVOICE))
    state = sink.refresh(InvoiceState(INVOICE))

    assert state.status == InvoiceStatus.PAID


@responses.activate(assert_all_requests_are_fired=True)
def test_fresh_token_refused_by_the_api_is_a_credentials_error() -> None:
    add_token()
    responses.get(f"{API}/Organisation", status=403, json={"Title": "Forbidden"})

    with pytest.raises(CredentialsRejected, match=r"invoicing\[1\]\.tenant_id") as caught:
        make_sink().check_connection()
    assert ACCESS not in str(caught.value)


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "paid", "detail"),
    [
        ("invoice_created.json", InvoiceStatus.OPEN, 0, None),
        ("invoice_part_paid.json", InvoiceStatus.OPEN, 100000, None),
        ("invoice_paid.json", InvoiceStatus.PAID, 229900, "paid in full on 2026-11-04"),
        ("invoice_authorised_nothing_due.json", InvoiceStatus.PAID, 229900, None),
        ("invoice_draft.json", InvoiceStatus.DRAFT, 0, None),
        ("invoice_voided.json", InvoiceStatus.VOID, 0, "voided in Xero"),
        ("invoice_deleted.json", InvoiceStatus.VOID, 0, "deleted in Xero"),
    ],
)
@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_maps_status(name: str, status: str, paid: int, detail: str | None) -> None:
    add_token()
    responses.get(f"{API}/Invoices/{INVOICE}", json=fixture(name))

    state = make_sink().refresh(InvoiceState(INVOICE, step="created"))

    assert (state.status, state.amount_paid_minor, state.detail) == (status, paid, detail)
    assert (state.invoice_id, state.number, state.step) == (INVOICE, "INV-0042", "created")


@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_reports_the_total_including_tax() -> None:
    """A part payment (1000.00) is compared with the invoice's Total (1900.00 + 399.00 tax)."""
    add_token()
    responses.get(f"{API}/Invoices/{INVOICE}", json=fixture("invoice_part_paid.json"))

    state = make_sink().refresh(InvoiceState(INVOICE, step="created"))

    assert (state.amount_paid_minor, state.total_minor) == (100000, 229900)


def test_refresh_without_invoice_id_makes_no_call() -> None:
    assert make_sink().refresh(InvoiceState()) == InvoiceState()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/Date(1588633397422+0000)/",
            dt.datetime(2020, 5, 4, 23, 3, 17, 422000, tzinfo=dt.UTC),
        ),
        ("/Date(1793750400000)/", dt.datetime(2026, 11, 4, tzinfo=dt.UTC)),
        ("/Date(1793750400000+0200)/", dt.datetime(2026, 11, 4, tzinfo=dt.UTC)),
        ("/Date(-86400000+0000)/", dt.datetime(1969, 12, 31, tzinfo=dt.UTC)),
    ],
)
def test_parse_xero_date(text: str, expected: dt.datetime) -> None:
    parsed = parse_xero_date(text)

    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_parse_xero_date_keeps_the_offset_for_display() -> None:
    parsed = parse_xero_date("/Date(1793750400000+0200)/")

    assert parsed.utcoffset() == dt.timedelta(hours=2)
    assert parsed.hour == 2


@pytest.mark.parametrize("text", ["2026-11-04", "/Date()/", "/Date(12.5)/", ""])
def test_parse_xero_date_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a Xero date"):
        parse_xero_date(text)


def test_webhooks_are_refused() -> None:
    with pytest.raises(WebhookRejected, match="not supported"):
        make_sink().parse_webhook({}, b"{}", dt.datetime(2026, 11, 3, tzinfo=dt.UTC))


def test_repr_hides_secrets() -> None:
    text = repr(make_sink())
    assert CLIENT_SECRET not in text and INITIAL not in text
