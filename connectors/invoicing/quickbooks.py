"""QuickBooks Online as an invoicing sink: one invoice per refill, over OAuth2.

The create (`POST /v3/company/<realm>/invoice`) carries a deterministic `requestid`, which makes
QuickBooks answer a repeated request with the invoice it already made. The refill's reference
(refill id and installation id, see `InvoiceRequest.reference`) travels in `PrivateNote`
("prepaid-sync refill <reference>"), not in `DocNumber`: DocNumber holds at most 21 characters
and belongs to the company's own invoice numbering. Since PrivateNote cannot be filtered on, the
look-up before a create reads the customer's 100 most recent invoices
(`select * from Invoice where CustomerRef = '<id>' ORDERBY MetaData.CreateTime DESC`) and matches
the whole reference in the note, so an invoice left by another database with the same refill id
is never adopted; a refill invoice is always among the newest of its customer.

Paid: `Balance == 0` on an invoice whose `TotalAmt > 0`. Voiding zeroes an invoice's amounts, so
a zero total reads as void, as does an invoice deleted in QuickBooks. Webhooks (signed with
`intuit-signature`) need a verifier token this sink has no setting for: payment status is
polled, and `parse_webhook` refuses every delivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from connectors.http import HttpClient, HttpRejected, oauth_clients
from sync.model import from_minor, is_known_currency, to_minor
from sync.ports import (
    ConnectorError,
    CredentialStore,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    WebhookEvent,
    WebhookRejected,
)
from sync.settings import QuickBooksSettings

DEFAULT_BASE_URL = "https://quickbooks.api.intuit.com"
REQUEST_ID_LENGTH = 40  # *unconfirmed* limit (50 is commonly cited): a 40-hex digest fits
LOOKUP_LIMIT = 100
NOTE_PREFIX = "prepaid-sync refill"
QUANTITY_PLACES = 4
UNIT_PRICE_PLACES = 2


class QuickBooksSink:
    """Issues refill invoices in one QuickBooks company (realm) and polls their status.

    `http` talks to the Accounting API, `token_http` to Intuit's token endpoint; both are built
    from the settings (with `sleep` and `clock`, injectable for tests) unless given.
    """

    def __init__(
        self,
        settings: QuickBooksSettings,
        credentials: CredentialStore,
        *,
        http: HttpClient | None = None,
        token_http: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http, self._tokens = oauth_clients(
            settings,
            credentials,
            base_url=DEFAULT_BASE_URL,
            service="QuickBooks",
            account_setting="realm_id",
            reauthorise="Connect the app to the company again (Intuit's OAuth consent flow)",
            http=http,
            token_http=token_http,
            sleep=sleep,
            clock=clock,
        )
        self._company = f"v3/company/{settings.realm_id}"

    def __repr__(self) -> str:
        return f"QuickBooksSink(name={self._settings.name!r}, realm={self._settings.realm_id!r})"

    @property
    def name(self) -> str:
        """The sink's name from the config."""
        return self._settings.name

    @property
    def reports_payment(self) -> bool:
        """QuickBooks knows when an invoice is paid (read by polling)."""
        return True

    # --- issuing --------------------------------------------------------------------------

    def issue(
        self,
        request: InvoiceRequest,
        state: InvoiceState | None,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        """Find or create the refill's invoice; one recorded step ("created")."""
        if state is not None and state.invoice_id:
            return _state_of(self._get(state.invoice_id), state.step or "created")
        customer = request.invoice_to.customer
        if not customer:
            raise RequestRejected(
                f"customer {request.customer_id!r}: invoice_to.customer must be the QuickBooks "
                "Customer Id of the customer"
            )
        invoice = self._find(customer, request.invoice_reference) or self._create(request, customer)
        created = _state_of(invoice, "created")
        record(created)
        return created

    def _find(self, customer: str, reference: str) -> dict[str, Any] | None:
        """The invoice an earlier run made for this refill, matched by its PrivateNote.

        The whole reference must match: `acme-retainer-1` is not `acme-retainer-10`, and
        `acme-retainer-1/<other installation>` (an invoice left by another database) is not ours.
        """
        quoted = customer.replace("\\", "\\\\").replace("'", "\\'")
        query = (
            f"select * from Invoice where CustomerRef = '{quoted}' "
            f"ORDERBY MetaData.CreateTime DESC MAXRESULTS {LOOKUP_LIMIT}"
        )
        payload = self._api("GET", "query", params={"query": query})
        result = payload.get("QueryResponse") if isinstance(payload, dict) else None
        invoices = result.get("Invoice") if isinstance(result, dict) else None
        mark = re.compile(rf"(?<![\w-]){re.escape(_note(reference))}(?![\w/-])")
        for invoice in invoices if isinstance(invoices, list) else []:
            if isinstance(invoice, dict) and mark.search(str(invoice.get("PrivateNote") or "")):
                return invoice
        return None

    def _create(self, request: InvoiceRequest, customer: str) -> dict[str, Any]:
        """`POST .../invoice?requestid=...`: idempotent by the request id."""
        quantity, price = _line_figures(request)
        amount = from_minor(request.amount_minor, request.currency)
        due = request.issue_date + dt.timedelta(days=request.invoice_to.days_until_due)
        body = {
            "CustomerRef": {"value": customer},
            "TxnDate": request.issue_date.isoformat(),
            "DueDate": due.isoformat(),
            "PrivateNote": _note(request.invoice_reference),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": amount,
                    "Description": request.description,
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": self._settings.item_id},
                        "Qty": quantity,
                        "UnitPrice": price,
                    },
                }
            ],
        }
        payload = self._api(
            "POST", "invoice", params={"requestid": _request_id(request)}, json_body=body
        )
        return _invoice_of(payload, "POST invoice")

    # --- status ---------------------------------------------------------------------------

    def refresh(self, state: InvoiceState) -> InvoiceState:
        """The invoice's balance read from QuickBooks; deleted invoices read as void."""
        if not state.invoice_id:
            return state
        try:
            invoice = self._get(state.invoice_id)
        except HttpRejected as exc:
            # QuickBooks answers a deleted entity with a 400 ValidationFault, code 610.
            if "Object Not Found" not in exc.api_message:
                raise
            return InvoiceState(
                invoice_id=state.invoice_id,
                number=state.number,
                step=state.step,
                status=InvoiceStatus.VOID,
                amount_paid_minor=0,
                detail="deleted in QuickBooks",
            )
        return _state_of(invoice, state.step)

    def check_connection(self) -> str:
        """Read the company's info: proves the token, the realm id and the scopes."""
        realm = self._settings.realm_id
        payload = self._api("GET", f"companyinfo/{realm}")
        info = payload.get("CompanyInfo") if isinstance(payload, dict) else None
        name = info.get("CompanyName") if isinstance(info, dict) else None
        return f"QuickBooks: connected to {name or realm}"

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        """Not supported (no verifier token setting): payment status is polled instead."""
        raise WebhookRejected("QuickBooks webhooks are not supported: payment status is polled")

    # --- plumbing -------------------------------------------------------------------------

    def _get(self, invoice_id: str) -> dict[str, Any]:
        return _invoice_of(self._api("GET", f"invoice/{invoice_id}"), "GET invoice")

    def _api(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """One API call under the company, with the minor version and a valid token. A
        `Fault` in a 200 answer is a refusal too."""
        query = {**(params or {}), "minorversion": str(self._settings.minor_version)}
        payload = self._tokens.call(
            lambda auth: (
                self._http.request_json(
                    method,
                    f"{self._company}/{path}",
                    params=query,
                    headers={"Accept": "application/json"},
                    auth=auth,
                    **kwargs,
                ).payload
            )
        )
        fault = payload.get("Fault") if isinstance(payload, dict) else None
        if isinstance(fault, dict):
            raise RequestRejected(
                f"{self.name}: QuickBooks refused {method} {path}: {_fault(fault)}"
            )
        return payload


def _note(reference: str) -> str:
    return f"{NOTE_PREFIX} {reference}"


def _fault(fault: Mapping[str, Any]) -> str:
    """Every error of a `Fault`: "Message: Detail (code)"."""
    parts = []
    for error in fault.get("Error") or []:
        if isinstance(error, dict):
            text = ": ".join(str(error[k]) for k in ("Message", "Detail") if error.get(k))
            parts.append(f"{text} ({error.get('code', '?')})")
    return "; ".join(parts) or str(fault.get("type", "Fault"))


def _invoice_of(payload: Any, where: str) -> dict[str, Any]:
    invoice = payload.get("Invoice") if isinstance(payload, dict) else None
    if not isinstance(invoice, dict) or not invoice.get("Id"):
        raise ConnectorError(
            f"QuickBooks: {where} answered without an invoice", kind="invalid_response"
        )
    return invoice


def _state_of(invoice: Mapping[str, Any], step: str) -> InvoiceState:
    """Our record of a QuickBooks invoice: paid when nothing is left of a non-zero total."""
    total = _decimal(invoice.get("TotalAmt"))
    balance = _decimal(invoice.get("Balance"))
    currency_ref = invoice.get("CurrencyRef")
    currency = str(currency_ref.get("value", "")) if isinstance(currency_ref, dict) else ""
    paid = total - balance if total is not None and balance is not None else None
    detail = None
    if total is not None and total == 0:
        status, detail = InvoiceStatus.VOID, "total is 0 (voided in QuickBooks)"
    elif balance is not None and balance == 0:
        status = InvoiceStatus.PAID
    else:
        status = InvoiceStatus.OPEN
    return InvoiceState(
        invoice_id=str(invoice["Id"]),
        number=invoice.get("DocNumber") or None,
        url=None,
        step=step,
        status=status,
        amount_paid_minor=_minor(paid, currency),
        detail=detail,
        total_minor=_minor(total, currency) if total else None,  # TotalAmt includes tax
    )


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    return Decimal(str(value))


def _minor(value: Decimal | None, currency: str) -> int | None:
    """An amount in minor units; a currency we cannot read is taken to have 2 digits."""
    if value is None:
        return None
    return to_minor(value, currency if is_known_currency(currency) else "USD")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _line_figures(request: InvoiceRequest) -> tuple[Decimal, Decimal]:
    """Qty and UnitPrice whose product is exactly the line Amount (QuickBooks rejects a line
    where they disagree): hours x rate when exact, else 1 x the amount."""
    amount = from_minor(request.amount_minor, request.currency)
    quantity, price = request.quantity, request.unit_price
    exact = (
        _places(quantity) <= QUANTITY_PLACES
        and _places(price) <= UNIT_PRICE_PLACES
        and quantity * price == amount
    )
    return (quantity, price) if exact else (Decimal(1), amount)


def _request_id(request: InvoiceRequest) -> str:
    """The deterministic `requestid` of the create: a digest of `<refill key>:create`, so it
    stays within QuickBooks' length limit whatever the key looks like."""
    return hashlib.sha256(f"{request.idempotency_key}:create".encode()).hexdigest()[
        :REQUEST_ID_LENGTH
    ]
