"""Contract tests of `connectors.invoicing.quickbooks` against recorded QuickBooks Online answers
replayed with `responses`; every registered call must be made.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from connectors.http import HttpClient
from connectors.invoicing.quickbooks import QuickBooksSink
from sync.ports import (
    CredentialsRejected,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    WebhookRejected,
)
from sync.settings import InvoiceTo, QuickBooksSettings, Secret
from tests.fakes.credentials import MemoryCredentials
from tests.support import ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "quickbooks"
REALM = "9130355277426846"
API = f"https://quickbooks.api.intuit.com/v3/company/{REALM}"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
CLIENT_SECRET = "qbo-client-secret-77aa66bb55cc"
INITIAL = "AB11initial-refresh-token-0001"
STORE_KEY = "quickbooks:qbo:refresh_token"
TOKEN = json.loads((FIXTURES / "token.json").read_text())
ACCESS = TOKEN["access_token"]
ROTATED = TOKEN["refresh_token"]
BASIC = "Basic " + base64.b64encode(f"ABclient0123:{CLIENT_SECRET}".encode()).decode()
KEY = "prepaid-sync:0a1b2c3d4e5f:acme-retainer-1:a1"
REQUEST_ID = hashlib.sha256(f"{KEY}:create".encode()).hexdigest()[:40]
QUERY = {
    "query": "select * from Invoice where CustomerRef = '58' "
    "ORDERBY MetaData.CreateTime DESC MAXRESULTS 100",
    "minorversion": "75",
}
POST_BODY = (
    '{"CustomerRef":{"value":"58"},"TxnDate":"2026-11-03","DueDate":"2026-11-17",'
    '"PrivateNote":"prepaid-sync refill acme-retainer-1","Line":[{"DetailType":'
    '"SalesItemLineDetail","Amount":1900.00,"Description":"Prepaid budget top-up: 20 h at '
    'USD 95.00","SalesItemLineDetail":{"ItemRef":{"value":"19"},"Qty":20,"UnitPrice":95.00}}]}'
)
API_HEADERS = matchers.header_matcher(
    {"Authorization": f"Bearer {ACCESS}", "Accept": "application/json"}
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def make_settings(**changes: Any) -> QuickBooksSettings:
    settings = QuickBooksSettings(
        yaml_path="invoicing[2]",
        name="qbo",
        type="quickbooks",
        client_id="ABclient0123",
        client_secret=Secret(CLIENT_SECRET),
        refresh_token=Secret(INITIAL),
        realm_id=REALM,
        item_id="19",
    )
    return dataclasses.replace(settings, **changes)


def make_sink(
    store: MemoryCredentials | None = None, *, sleeps: list[float] | None = None, **changes: Any
) -> QuickBooksSink:
    return QuickBooksSink(
        make_settings(**changes),
        store if store is not None else MemoryCredentials(),
        sleep=(sleeps if sleeps is not None else []).append,
        clock=lambda: 1_793_696_400.0,
    )


def make_request(**changes: Any) -> InvoiceRequest:
    request = InvoiceRequest(
        refill_id="acme-retainer-1",
        idempotency_key=KEY,
        customer_id="acme",
        customer_name="ACME Corp",
        budget_id="retainer",
        invoice_to=InvoiceTo(sink="qbo", customer="58"),
        currency="USD",
        amount_minor=190000,
        quantity=Decimal("20"),
        unit_price=Decimal("95.00"),
        description="Prepaid budget top-up: 20 h at USD 95.00",
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


def ignore(state: InvoiceState) -> None:
    """A `record` callback for tests that do not look at progress."""


# --- issuing ----------------------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_issue_refreshes_saves_rotation_first_then_looks_up_and_creates() -> None:
    store = MemoryCredentials()
    add_token()

    def lookup(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert store.saves == [(STORE_KEY, ROTATED)]
        return 200, {}, json.dumps(fixture("query_empty.json"))

    responses.add_callback(
        responses.GET,
        f"{API}/query",
        callback=lookup,
        match=[matchers.query_param_matcher(QUERY), API_HEADERS],
    )
    responses.post(
        f"{API}/invoice",
        body=(FIXTURES / "invoice_created.json").read_text(),
        match=[
            matchers.query_param_matcher({"requestid": REQUEST_ID, "minorversion": "75"}),
            API_HEADERS,
        ],
    )
    recorded: list[InvoiceState] = []

    final = make_sink(store).issue(make_request(), None, recorded.append)

    post = responses.calls[2].request
    body = post.body.decode() if isinstance(post.body, bytes) else post.body
    assert body == POST_BODY
    assert post.headers["Content-Type"] == "application/json"
    assert recorded == [
        InvoiceState("130", "1037", None, "created", InvoiceStatus.OPEN, 0, None, 190000)
    ]
    assert final == recorded[0]


@responses.activate(assert_all_requests_are_fired=True)
def test_lookup_by_private_note_prevents_a_second_create() -> None:
    add_token()
    responses.get(f"{API}/query", json=fixture("query_found.json"))
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), None, recorded.append)

    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert (final.invoice_id, final.number) == ("130", "1037")
    assert recorded == [final]


@responses.activate(assert_all_requests_are_fired=True)
def test_lookup_does_not_confuse_refill_1_with_refill_10() -> None:
    add_token()
    responses.get(f"{API}/query", json=fixture("query_other_only.json"))
    responses.post(f"{API}/invoice", json=fixture("invoice_created.json"))

    final = make_sink().issue(make_request(), None, ignore)

    assert final.invoice_id == "130"
    assert responses.calls[2].request.method == "POST"


OURS = "acme-retainer-1/0a1b2c3d4e5f"


def query_with_notes(*notes: str) -> dict[str, Any]:
    """`query_found.json` with the given PrivateNotes, every invoice paid in full."""
    payload = fixture("query_found.json")
    invoices = payload["QueryResponse"]["Invoice"]
    payload["QueryResponse"]["Invoice"] = [
        {**invoices[-1], "Id": str(200 + i), "PrivateNote": note, "Balance": 0}
        for i, note in enumerate(notes)
    ]
    return payload


@pytest.mark.parametrize(
    "theirs",
    [
        "prepaid-sync refill acme-retainer-1/ffffffffffff",  # another database
        "prepaid-sync refill acme-retainer-1",  # before references existed
        "prepaid-sync refill acme-retainer-10/0a1b2c3d4e5f",
        "prepaid-sync refill acme-retainer-1/0a1b2c3d4e5f0",
    ],
)
@responses.activate(assert_all_requests_are_fired=True)
def test_an_invoice_from_another_database_is_not_adopted(theirs: str) -> None:
    add_token()
    responses.get(f"{API}/query", json=query_with_notes(theirs))
    responses.post(f"{API}/invoice", json=fixture("invoice_created.json"))

    final = make_sink().issue(make_request(reference=OURS), None, ignore)

    post = responses.calls[2].request
    assert post.body is not None
    assert json.loads(post.body)["PrivateNote"] == f"prepaid-sync refill {OURS}"
    assert (final.invoice_id, final.status) == ("130", InvoiceStatus.OPEN)


@responses.activate(assert_all_requests_are_fired=True)
def test_the_invoice_with_our_reference_is_adopted() -> None:
    add_token()
    notes = ("prepaid-sync refill acme-retainer-1/ffffffffffff", f"prepaid-sync refill {OURS}")
    responses.get(f"{API}/query", json=query_with_notes(*notes))

    final = make_sink().issue(make_request(reference=OURS), None, ignore)

    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert (final.invoice_id, final.status) == ("201", InvoiceStatus.PAID)


@responses.activate(assert_all_requests_are_fired=True)
def test_without_a_reference_an_invoice_with_one_is_not_adopted() -> None:
    add_token()
    responses.get(f"{API}/query", json=query_with_notes(f"prepaid-sync refill {OURS}"))
    responses.post(f"{API}/invoice", json=fixture("invoice_created.json"))

    final = make_sink().issue(make_request(), None, ignore)

    assert final.invoice_id == "130"


@responses.activate(assert_all_requests_are_fired=True)
def test_recorded_invoice_is_read_not_recreated() -> None:
    add_token()
    responses.get(
        f"{API}/invoice/130",
        json=fixture("invoice_created.json"),
        match=[matchers.query_param_matcher({"minorversion": "75"})],
    )
    recorded: list[InvoiceState] = []

    final = make_sink().issue(make_request(), InvoiceState("130", step="created"), recorded.append)

    assert recorded == []
    assert (final.invoice_id, final.status, final.step) == ("130", InvoiceStatus.OPEN, "created")


@responses.activate(assert_all_requests_are_fired=True)
def test_validation_fault_is_rejected_with_the_message() -> None:
    add_token()
    responses.get(f"{API}/query", json=fixture("query_empty.json"))
    responses.post(f"{API}/invoice", status=400, json=fixture("fault_validation.json"))

    with pytest.raises(RequestRejected, match="Invalid Reference Id"):
        make_sink().issue(make_request(), None, ignore)


@responses.activate(assert_all_requests_are_fired=True)
def test_fault_inside_a_200_answer_is_rejected() -> None:
    add_token()
    responses.get(f"{API}/query", json=fixture("query_empty.json"))
    responses.post(f"{API}/invoice", json=fixture("fault_validation.json"))

    with pytest.raises(RequestRejected, match=r"Invalid Reference Id : .* \(2500\)"):
        make_sink().issue(make_request(), None, ignore)


@responses.activate(assert_all_requests_are_fired=True)
def test_throttle_exceeded_is_retried() -> None:
    add_token()
    responses.get(f"{API}/invoice/130", status=429, json=fixture("fault_throttle.json"))
    responses.get(f"{API}/invoice/130", json=fixture("invoice_paid.json"))
    sleeps: list[float] = []
    http = HttpClient(
        "https://quickbooks.api.intuit.com", name="qbo", sleep=sleeps.append, jitter=lambda: 0.0
    )
    sink = QuickBooksSink(make_settings(), MemoryCredentials(), http=http)

    state = sink.refresh(InvoiceState("130"))

    assert sleeps == [1.0]
    assert state.status == InvoiceStatus.PAID


@responses.activate(assert_all_requests_are_fired=True)
def test_fractional_hours_become_one_line_of_the_amount() -> None:
    add_token()
    responses.get(f"{API}/query", json=fixture("query_empty.json"))
    responses.post(f"{API}/invoice", json=fixture("invoice_created.json"))
    request = make_request(amount_minor=126667, quantity=Decimal("13.333333"))

    make_sink().issue(request, None, ignore)

    sent = json.loads(responses.calls[2].request.body or "{}", parse_float=Decimal)
    line = sent["Line"][0]
    assert line["Amount"] == Decimal("1266.67")
    assert line["SalesItemLineDetail"] == {
        "ItemRef": {"value": "19"},
        "Qty": 1,
        "UnitPrice": Decimal("1266.67"),
    }


@responses.activate(assert_all_requests_are_fired=True)
def test_another_attempt_gets_another_request_id() -> None:
    second = KEY.replace(":a1", ":a2")
    expected = hashlib.sha256(f"{second}:create".encode()).hexdigest()[:40]
    assert expected != REQUEST_ID
    add_token()
    responses.get(f"{API}/query", json=fixture("query_empty.json"))
    responses.post(
        f"{API}/invoice",
        json=fixture("invoice_created.json"),
        match=[matchers.query_param_matcher({"requestid": expected, "minorversion": "75"})],
    )

    make_sink().issue(make_request(idempotency_key=second), None, ignore)


def test_missing_customer_is_rejected_before_any_call() -> None:
    with pytest.raises(RequestRejected, match="Customer Id"):
        make_sink().issue(make_request(invoice_to=InvoiceTo(sink="qbo")), None, ignore)


# --- tokens -----------------------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_invalid_grant_is_a_credentials_error_naming_the_setting() -> None:
    add_token(INITIAL, status=400, body=fixture("token_invalid_grant.json"))

    with pytest.raises(CredentialsRejected) as caught:
        make_sink().check_connection()

    assert "invoicing[2].refresh_token" in str(caught.value)
    assert INITIAL not in str(caught.value) and CLIENT_SECRET not in str(caught.value)


@responses.activate(assert_all_requests_are_fired=True)
def test_unchanged_refresh_token_is_not_saved_again() -> None:
    store = MemoryCredentials(**{STORE_KEY: ROTATED})
    add_token(ROTATED)
    responses.get(f"{API}/companyinfo/{REALM}", json=fixture("companyinfo.json"))

    assert make_sink(store).check_connection() == "QuickBooks: connected to Acme Agency LLC"
    assert store.saves == []


@responses.activate(assert_all_requests_are_fired=True)
def test_expired_access_token_is_refreshed_and_never_shown() -> None:
    add_token()
    responses.get(f"{API}/invoice/130", json=fixture("invoice_created.json"))
    responses.get(f"{API}/invoice/130", status=401, json=fixture("fault_auth.json"))
    add_token(ROTATED, body={**TOKEN, "access_token": "second-access", "refresh_token": "r3"})
    responses.get(f"{API}/invoice/130", status=401, json=fixture("fault_auth.json"))
    sink = make_sink()
    sink.refresh(InvoiceState("130"))

    with pytest.raises(CredentialsRejected) as caught:
        sink.refresh(InvoiceState("130"))
    assert ACCESS not in str(caught.value)
    assert "second-access" not in str(caught.value)


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "paid", "detail"),
    [
        ("invoice_created.json", InvoiceStatus.OPEN, 0, None),
        ("invoice_part_paid.json", InvoiceStatus.OPEN, 100000, None),
        ("invoice_paid.json", InvoiceStatus.PAID, 190000, None),
        ("invoice_voided.json", InvoiceStatus.VOID, 0, "total is 0 (voided in QuickBooks)"),
    ],
)
@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_maps_balance(name: str, status: str, paid: int, detail: str | None) -> None:
    add_token()
    responses.get(f"{API}/invoice/130", json=fixture(name))

    state = make_sink().refresh(InvoiceState("130", step="created"))

    assert (state.status, state.amount_paid_minor, state.detail) == (status, paid, detail)
    assert (state.invoice_id, state.number) == ("130", "1037")


@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_reports_the_total_amount_including_tax() -> None:
    """TotalAmt (tax included) is what a payment is compared with; a voided invoice (total 0)
    reports none, so the refill keeps the total it had."""
    add_token()
    responses.get(f"{API}/invoice/130", json=fixture("invoice_part_paid.json"))
    responses.get(f"{API}/invoice/130", json=fixture("invoice_voided.json"))
    sink = make_sink()

    part = sink.refresh(InvoiceState("130", step="created"))
    voided = sink.refresh(InvoiceState("130", step="created"))

    assert (part.amount_paid_minor, part.total_minor) == (100000, 190000)
    assert voided.total_minor is None


@responses.activate(assert_all_requests_are_fired=True)
def test_refresh_of_a_deleted_invoice_is_void() -> None:
    add_token()
    responses.get(f"{API}/invoice/130", status=400, json=fixture("fault_not_found.json"))

    state = make_sink().refresh(InvoiceState("130", number="1037", step="created"))

    assert state == InvoiceState(
        "130", "1037", None, "created", InvoiceStatus.VOID, 0, "deleted in QuickBooks"
    )


def test_webhooks_are_refused() -> None:
    with pytest.raises(WebhookRejected, match="not supported"):
        make_sink().parse_webhook({}, b"{}", dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
