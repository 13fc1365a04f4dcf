"""Xero as an invoicing sink: one ACCREC invoice per refill, over OAuth2 with a rotating token.

Issuing is one write (`PUT /Invoices`, which only ever creates), so the protection against a
second invoice (invariant I3) is twofold: the PUT carries a deterministic `Idempotency-Key`
(`<refill key>:create`), and before it we look the invoice up by its `Reference`, which holds the
refill's reference (refill id and installation id, see `InvoiceRequest.reference`), with
`GET /Invoices?where=Reference=="<reference>"` (the documented `where` filter; we do not rely on
a `References` parameter). The look-up also covers a key Xero has forgotten, and never finds an
invoice left by another database whose refill ids restarted at 1.

Payment status is polled (`refresh`): Xero's webhooks carry no invoice state and this sink has
no webhook key, so `parse_webhook` refuses every delivery. Tokens: see `connectors.http.oauth`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from connectors.http import HttpClient, oauth_clients
from sync.model import from_minor, is_known_currency, quantize_money, to_minor
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
from sync.settings import XeroSettings

DEFAULT_BASE_URL = "https://api.xero.com/api.xro/2.0"
MAX_IDEMPOTENCY_KEY = 128
QUANTITY_PLACES = 4  # Xero keeps 4 decimals of a quantity ...
UNIT_AMOUNT_PLACES = 2  # ... and 2 of a unit amount (4 only with ?unitdp=4, which we do not use)

_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def parse_xero_date(text: str) -> dt.datetime:
    """`/Date(1588633397422+0000)/` -> an aware datetime (milliseconds since the epoch, UTC;
    the optional offset is the zone to show it in, it does not move the instant).
    """
    match = _DATE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a Xero date: {text!r}")
    instant = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(match[1]))
    if match[2]:
        sign = -1 if match[2][0] == "-" else 1
        offset = dt.timedelta(hours=int(match[2][1:3]), minutes=int(match[2][3:5]))
        return instant.astimezone(dt.timezone(sign * offset))
    return instant


class XeroSink:
    """Issues refill invoices in one Xero organisation (tenant) and polls their status.

    `http` talks to the Accounting API, `token_http` to the token endpoint; both are built from
    the settings (with `sleep` and `clock`, injectable for tests) unless given.
    """

    def __init__(
        self,
        settings: XeroSettings,
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
            service="Xero",
            account_setting="tenant_id",
            reauthorise="Connect the app to the organisation again (Xero's OAuth consent flow)",
            http=http,
            token_http=token_http,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"XeroSink(name={self._settings.name!r}, tenant={self._settings.tenant_id!r})"

    @property
    def name(self) -> str:
        """The sink's name from the config."""
        return self._settings.name

    @property
    def reports_payment(self) -> bool:
        """Xero knows when an invoice is paid (read by polling)."""
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
            return self._state_of(self._get(state.invoice_id), state.step or "created", request)
        contact = request.invoice_to.customer
        if not contact:
            raise RequestRejected(
                f"customer {request.customer_id!r}: invoice_to.customer must be the Xero "
                "ContactID of the customer"
            )
        invoice = self._find(request.invoice_reference) or self._create(request, contact)
        created = self._state_of(invoice, "created", request)
        record(created)
        return created

    def _find(self, reference: str) -> dict[str, Any] | None:
        """The invoice an earlier run made for this refill, if any (by `Reference`)."""
        quoted = reference.replace("\\", "\\\\").replace('"', '\\"')
        payload = self._api("GET", "Invoices", params={"where": f'Reference=="{quoted}"'})
        found = [i for i in _invoices(payload) if i.get("Reference") == reference]
        # Prefer a live invoice; a voided one is still ours and is reported as void.
        found.sort(key=lambda i: i.get("Status") in ("VOIDED", "DELETED"))
        return found[0] if found else None

    def _create(self, request: InvoiceRequest, contact: str) -> dict[str, Any]:
        """`PUT /Invoices` (create only) with the refill's reference as Reference."""
        settings = self._settings
        quantity, unit_amount = _line_figures(request)
        line: dict[str, Any] = {
            "Description": request.description,
            "Quantity": quantity,
            "UnitAmount": unit_amount,
            "AccountCode": settings.account_code,
        }
        if settings.tax_type:
            line["TaxType"] = settings.tax_type
        due = request.issue_date + dt.timedelta(days=request.invoice_to.days_until_due)
        body = {
            "Invoices": [
                {
                    "Type": "ACCREC",
                    "Contact": {"ContactID": contact},
                    "Date": request.issue_date.isoformat(),
                    "DueDate": due.isoformat(),
                    "LineAmountTypes": settings.line_amount_types,
                    "Reference": request.invoice_reference,
                    "Status": settings.status,
                    "LineItems": [line],
                }
            ]
        }
        payload = self._api(
            "PUT", "Invoices", json_body=body, idempotency_key=_idempotency_key(request)
        )
        invoices = _invoices(payload)
        if not invoices:
            raise ConnectorError(
                f"{self.name}: PUT /Invoices answered without an invoice", kind="invalid_response"
            )
        invoice = invoices[0]
        errors = [e.get("Message", "") for e in invoice.get("ValidationErrors") or []]
        if invoice.get("HasErrors") or errors:
            raise RequestRejected(f"{self.name}: Xero refused the invoice: {'; '.join(errors)}")
        return invoice

    # --- status ---------------------------------------------------------------------------

    def refresh(self, state: InvoiceState) -> InvoiceState:
        """The invoice's status and amount paid, read from Xero."""
        if not state.invoice_id:
            return state
        return self._state_of(self._get(state.invoice_id), state.step)

    def check_connection(self) -> str:
        """Read the organisation: proves the token, the tenant id and the scopes."""
        payload = self._api("GET", "Organisation")
        organisations = payload.get("Organisations") if isinstance(payload, dict) else None
        name = organisations[0].get("Name") if organisations else None
        return f"Xero: connected to {name or self._settings.tenant_id}"

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        """Not supported: Xero's payment status is polled on every sync and refill run."""
        raise WebhookRejected("Xero webhooks are not supported: payment status is polled")

    # --- plumbing -------------------------------------------------------------------------

    def _get(self, invoice_id: str) -> dict[str, Any]:
        invoices = _invoices(self._api("GET", f"Invoices/{invoice_id}"))
        if not invoices:
            raise RequestRejected(f"{self.name}: Xero has no invoice {invoice_id}")
        return invoices[0]

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        """One Accounting API call with a valid access token and the tenant header."""
        headers = {"Xero-tenant-id": self._settings.tenant_id, "Accept": "application/json"}
        return self._tokens.call(
            lambda auth: (
                self._http.request_json(method, path, headers=headers, auth=auth, **kwargs).payload
            )
        )

    def _state_of(
        self, invoice: Mapping[str, Any], step: str, request: InvoiceRequest | None = None
    ) -> InvoiceState:
        """Our record of a Xero invoice. Paid: Status PAID, or nothing left due on an invoice
        that is neither a draft nor voided/deleted."""
        raw = str(invoice.get("Status", ""))
        due = _decimal(invoice.get("AmountDue"))
        currency = str(invoice.get("CurrencyCode") or (request.currency if request else ""))
        if raw == "PAID" or (raw not in ("DRAFT", "VOIDED", "DELETED") and due == 0):
            status = InvoiceStatus.PAID
        elif raw in ("VOIDED", "DELETED"):
            status = InvoiceStatus.VOID
        elif raw in ("DRAFT", "SUBMITTED"):
            status = InvoiceStatus.DRAFT
        else:
            status = InvoiceStatus.OPEN
        details = []
        paid_on = invoice.get("FullyPaidOnDate")
        if status == InvoiceStatus.PAID and isinstance(paid_on, str):
            details.append(f"paid in full on {parse_xero_date(paid_on).date().isoformat()}")
        if request is not None and currency and currency != request.currency:
            details.append(
                f"invoice currency {currency} differs from the customer's {request.currency}: "
                "set the contact's default currency in Xero"
            )
        if raw in ("VOIDED", "DELETED"):
            details.append(f"{raw.lower()} in Xero")
        paid = invoice.get("AmountPaid")
        # `Total` includes tax; without it, what was paid plus what is still due.
        total = _decimal(invoice.get("Total"))
        paid_so_far, due = _decimal(paid), _decimal(invoice.get("AmountDue"))
        if total is None and paid_so_far is not None and due is not None:
            total = paid_so_far + due
        return InvoiceState(
            invoice_id=str(invoice.get("InvoiceID")),
            number=invoice.get("InvoiceNumber") or None,
            url=None,
            step=step,
            status=status,
            amount_paid_minor=_minor(_decimal(paid), currency) if paid is not None else None,
            detail="; ".join(details) or None,
            total_minor=_minor(total, currency) if total else None,
        )


def _invoices(payload: Any) -> list[dict[str, Any]]:
    invoices = payload.get("Invoices") if isinstance(payload, dict) else None
    return [i for i in invoices if isinstance(i, dict)] if isinstance(invoices, list) else []


def _decimal(value: Any) -> Decimal | None:
    """A JSON number (already Decimal or int) as Decimal; None when absent."""
    if value is None or isinstance(value, bool):
        return None
    return Decimal(str(value))


def _minor(value: Decimal | None, currency: str) -> int | None:
    """An amount in minor units; a currency we cannot read is taken to have 2 digits."""
    if value is None:
        return None
    return to_minor(value, currency if is_known_currency(currency) else "EUR")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _line_figures(request: InvoiceRequest) -> tuple[Decimal, Decimal]:
    """Quantity and unit amount for the line, such that Xero's line amount is exactly the
    refill amount: hours x rate when Xero can hold them exactly, else 1 x the amount (the
    description still says what was bought)."""
    amount = from_minor(request.amount_minor, request.currency)
    quantity, price = request.quantity, request.unit_price
    exact = (
        _places(quantity) <= QUANTITY_PLACES
        and _places(price) <= UNIT_AMOUNT_PLACES
        and quantize_money(quantity * price, request.currency) == amount
    )
    return (quantity, price) if exact else (Decimal(1), amount)


def _idempotency_key(request: InvoiceRequest) -> str:
    """`<refill key>:create`, hashed when Xero's 128-character limit would cut it."""
    key = f"{request.idempotency_key}:create"
    if len(key) > MAX_IDEMPOTENCY_KEY:
        key = f"{hashlib.sha256(request.idempotency_key.encode()).hexdigest()}:create"
    return key
