"""Stripe as an invoicing sink: one one-off invoice per refill, driven through the `stripe` SDK.

An invoice is made in four steps (draft created, line added, finalized, sent or charged) and
the engine records our progress after each one. Two things keep a crash or a lost response from
producing a second invoice (invariant I3): every write carries a deterministic Idempotency-Key
(`<refill key>:<step>`), which Stripe replays for 24 hours; and before creating a draft we list
the customer's invoices and adopt the one whose metadata names this refill (`prepaid_refill_id`)
with this refill's reference (`prepaid_reference`: refill id and installation id), which still
works after the key has been pruned and never adopts an invoice left by another database.
When an invoice id is known we read the invoice and continue from its *actual* state (draft
without line, draft with line, open, paid, void) rather than trusting our last recorded step, so
a step that succeeded but was never recorded is not repeated blindly.

Webhook signatures are checked here, not by the SDK, so the rules (v1 only, 300 s both ways,
constant-time comparison) are visible and tested. No message built here contains a secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import stripe
from stripe.params import (
    CustomerCreateParams,
    CustomerListParams,
    InvoiceCreateParams,
    InvoiceItemCreateParams,
    InvoiceListParams,
)

from connectors.http import Retryable, RetryPolicy, call_with_retries
from sync.ports import (
    ConnectorError,
    CredentialsRejected,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    TemporaryFailure,
    WebhookEvent,
    WebhookRejected,
)
from sync.redaction import Redactor
from sync.settings import StripeSettings

T = TypeVar("T")

SIGNATURE_TOLERANCE_SECONDS = 300
"""Stripe's default webhook tolerance, applied both ways (stale and from the future)."""

RATE_LIMIT_ATTEMPTS = 3
"""Calls per operation when Stripe answers 429, which its SDK does not retry by itself."""

MAX_RETRY_AFTER_SECONDS = 60
# Stripe's own pace: no jitter (one process issues the calls) and no waiting longer than a minute.
_RATE_LIMIT_POLICY = RetryPolicy(
    attempts=RATE_LIMIT_ATTEMPTS,
    initial=1.0,
    max_backoff=MAX_RETRY_AFTER_SECONDS,
    jitter=0.0,
    max_retry_after=MAX_RETRY_AFTER_SECONDS,
)
_MAX_IDEMPOTENCY_KEY = 255
log = logging.getLogger(__name__)
_REFILL_KEY = "prepaid_refill_id"
_REFERENCE_KEY = "prepaid_reference"

_STATUSES = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}


class StripeSink:
    """Issues refill invoices in Stripe and reports their payment status.

    `sleep` is the pause between our own 429 retries (injectable so tests never wait);
    `http_client` lets tests hand the SDK a client of their choice.
    """

    def __init__(
        self,
        settings: StripeSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._redact = Redactor([settings.api_key])
        self._client = stripe.StripeClient(
            settings.api_key.reveal(),
            base_addresses={"api": settings.base_url} if settings.base_url else None,
            max_network_retries=settings.max_network_retries,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"StripeSink(name={self._settings.name!r})"

    @property
    def name(self) -> str:
        """The sink's name from the config."""
        return self._settings.name

    @property
    def reports_payment(self) -> bool:
        """Stripe knows when an invoice is paid (webhooks and polling)."""
        return True

    # --- issuing --------------------------------------------------------------------------

    def issue(
        self,
        request: InvoiceRequest,
        state: InvoiceState | None,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        """Create (or adopt) the refill's invoice and carry it to sent, recording each step."""
        state = state or InvoiceState()
        if state.invoice_id:
            invoice = self._call(
                "read the recorded invoice",
                partial(self._client.v1.invoices.retrieve, state.invoice_id),
            )
            refill = _metadata(invoice).get(_REFILL_KEY)
            if refill != request.refill_id:
                raise RequestRejected(
                    f"Stripe invoice {invoice.id} belongs to refill {refill!r}, "
                    f"not {request.refill_id!r}"
                )
        else:
            customer = self._resolve_customer(request)
            invoice = self._find_invoice(customer, request) or self._create_invoice(
                request, customer
            )
            state = _state_of(invoice, "created")
            record(state)
        return self._advance(request, invoice, state, record)

    def _advance(
        self,
        request: InvoiceRequest,
        invoice: stripe.Invoice,
        state: InvoiceState,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        """Take `invoice` from whatever state it is in to sent, one recorded step at a time."""
        invoice_id = invoice.id
        if invoice.status == "draft":
            lines = invoice.lines.data
            billed = sum(line.amount for line in lines)
            if not lines:
                self._add_line(request, _customer_id(invoice), invoice_id)
            elif billed != request.amount_minor:
                # A draft left by an earlier attempt with other terms: finalizing it would bill
                # the wrong amount, and a second invoice would break "one per refill".
                raise RequestRejected(
                    f"Stripe draft {invoice_id} for refill {request.refill_id} has lines "
                    f"totalling {billed} minor units, not {request.amount_minor}; delete the "
                    "draft in Stripe, then retry the refill"
                )
            if state.step in ("", "created"):
                state = _state_of(invoice, "item_added")
                record(state)
            invoice = self._call(
                "finalize the invoice",
                lambda: self._client.v1.invoices.finalize_invoice(
                    invoice_id, options=_key(request, "finalize")
                ),
            )
            state = _state_of(invoice, "finalized")
            record(state)
        if state.step == "sent":
            return _state_of(invoice, "sent")
        if invoice.status == "open":
            invoice = self._send(request, invoice)
        # Otherwise it was paid, voided or written off before we sent it (someone acted in the
        # dashboard): report it as it is; another invoice would break "one per refill".
        state = _state_of(invoice, "sent")
        record(state)
        return state

    def _resolve_customer(self, request: InvoiceRequest) -> str:
        """The Stripe customer id: configured, found by email, or created (when allowed)."""
        to = request.invoice_to
        if to.customer:
            return to.customer
        if not to.email:
            raise RequestRejected(
                f"customer {request.customer_id!r}: invoice_to needs a Stripe customer id "
                "(cus_...) or an email to find or create one"
            )
        email = to.email
        params: CustomerListParams = {"email": email, "limit": 10}
        found = self._call(
            "find the customer by email", lambda: self._client.v1.customers.list(params)
        )
        ours = [
            c for c in found.data if _metadata(c).get("prepaid_customer") == request.customer_id
        ]
        if ours or found.data:
            return (ours or found.data)[0].id
        if not self._settings.create_customers:
            raise RequestRejected(
                f"no Stripe customer has the email {email!r} (customer "
                f"{request.customer_id!r}); create it in Stripe, set invoice_to.customer, or "
                f"set {self._settings.yaml_path}.create_customers: true"
            )
        create: CustomerCreateParams = {
            "email": email,
            "name": request.customer_name,
            "metadata": {"prepaid_customer": request.customer_id},
        }
        customer = self._call(
            "create the customer",
            lambda: self._client.v1.customers.create(create, options=_key(request, "customer")),
        )
        return customer.id

    def _find_invoice(self, customer: str, request: InvoiceRequest) -> stripe.Invoice | None:
        """The customer's invoice made for this refill, if an earlier run created one.

        Listing (not search, which is eventually consistent) finds a draft whose create
        response was lost, even after Stripe pruned the idempotency key. Only an invoice that
        carries this refill's reference is adopted: one with the same refill id from another
        database is not ours.
        """
        params: InvoiceListParams = {"customer": customer, "limit": 100}
        while True:
            page = self._call(
                "list the customer's invoices", partial(self._client.v1.invoices.list, params)
            )
            for invoice in page.data:
                metadata = _metadata(invoice)
                if metadata.get(_REFILL_KEY) != request.refill_id:
                    continue
                if metadata.get(_REFERENCE_KEY, request.refill_id) == request.invoice_reference:
                    return invoice
                log.info(
                    "Stripe invoice %s names refill %s but belongs to another database; "
                    "not adopted",
                    invoice.id,
                    request.refill_id,
                )
            if not page.has_more or not page.data:
                return None
            params = {**params, "starting_after": page.data[-1].id}

    def _create_invoice(self, request: InvoiceRequest, customer: str) -> stripe.Invoice:
        """A draft that collects nothing pending: the refill line is added to it explicitly."""
        to = request.invoice_to
        params: InvoiceCreateParams = {
            "customer": customer,
            "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
            "currency": request.currency.lower(),
            "metadata": {
                _REFILL_KEY: request.refill_id,
                _REFERENCE_KEY: request.invoice_reference,
                "prepaid_customer": request.customer_id,
                "prepaid_budget": request.budget_id,
            },
        }
        if to.collection_method == "charge_automatically":
            params["collection_method"] = "charge_automatically"
        else:
            params["collection_method"] = "send_invoice"
            params["days_until_due"] = to.days_until_due
        if to.tax_rates:
            params["default_tax_rates"] = list(to.tax_rates)
        return self._call(
            "create the invoice",
            lambda: self._client.v1.invoices.create(params, options=_key(request, "create")),
        )

    def _add_line(self, request: InvoiceRequest, customer: str, invoice_id: str) -> None:
        """The one line the client reads: what was bought, for the whole refill amount."""
        params: InvoiceItemCreateParams = {
            "customer": customer,
            "invoice": invoice_id,
            "amount": request.amount_minor,
            "currency": request.currency.lower(),
            "description": request.description,
        }
        self._call(
            "add the invoice line",
            lambda: self._client.v1.invoice_items.create(params, options=_key(request, "item")),
        )

    def _send(self, request: InvoiceRequest, invoice: stripe.Invoice) -> stripe.Invoice:
        """Email the invoice (send_invoice) or charge the saved payment method."""
        invoice_id = invoice.id
        if invoice.collection_method == "charge_automatically":
            return self._call(
                "charge the invoice",
                lambda: self._client.v1.invoices.pay(invoice_id, options=_key(request, "pay")),
            )
        return self._call(
            "send the invoice",
            lambda: self._client.v1.invoices.send_invoice(
                invoice_id, options=_key(request, "send")
            ),
        )

    # --- status ---------------------------------------------------------------------------

    def refresh(self, state: InvoiceState) -> InvoiceState:
        """The invoice's current status and amount paid, read from Stripe."""
        if not state.invoice_id:
            return state
        invoice_id = state.invoice_id
        invoice = self._call(
            "read the invoice", lambda: self._client.v1.invoices.retrieve(invoice_id)
        )
        return _state_of(invoice, state.step)

    def check_connection(self) -> str:
        """List one customer: proves the key works and may read what the sink needs."""
        self._call("list customers", lambda: self._client.v1.customers.list({"limit": 1}))
        key = self._settings.api_key.reveal()
        mode = "live" if key.startswith(("sk_live_", "rk_live_")) else "test"
        return f"Stripe: API key accepted ({mode} mode)"

    # --- webhooks -------------------------------------------------------------------------

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        """Verify the `Stripe-Signature` header and decode the event it signs."""
        secret = self._settings.webhook_secret
        if not secret:
            raise WebhookRejected(f"no webhook_secret configured for {self._settings.yaml_path}")
        header = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        if not header:
            raise WebhookRejected("missing Stripe-Signature header")
        timestamp, signatures = _parse_signature_header(header)
        if abs(now.timestamp() - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
            raise WebhookRejected("signature timestamp outside the 300 s tolerance")
        expected = hmac.new(
            secret.reveal().encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise WebhookRejected("no v1 signature matches the body")
        return _event_of(body)

    # --- plumbing -------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call: retry a plain 429 (the SDK does not) in the HTTP layer's one retry
        loop, translate every other error."""

        def attempt() -> T:
            try:
                return fn()
            except stripe.RateLimitError as exc:
                detail = f"rate-limited (429) while trying to {what}"
                raise Retryable(detail, "rate_limit", delay=_retry_after(exc)) from None
            except stripe.StripeError as exc:
                raise self._translate(exc, what) from None

        return call_with_retries(
            attempt,
            name="Stripe",
            policy=_RATE_LIMIT_POLICY,
            redact=self._redact,
            sleep=self._sleep,
            clock=time.time,
            jitter=lambda: 0.0,
        )

    def _translate(self, exc: stripe.StripeError, what: str) -> ConnectorError:
        """Map an SDK error to the ports' classes; the operator gets a setting to fix or
        Stripe's own explanation (Stripe masks keys in its messages; we never add one)."""
        status = exc.http_status
        setting = f"{self._settings.yaml_path}.api_key"
        if isinstance(exc, stripe.AuthenticationError):
            return CredentialsRejected(f"Stripe rejected the API key ({status}): check {setting}")
        if isinstance(exc, stripe.PermissionError):
            return CredentialsRejected(
                f"the Stripe key may not {what} ({status}): give {setting} write access to "
                "customers, invoices and invoice items"
            )
        reason = exc.user_message or type(exc).__name__
        ref = f" [{exc.request_id}]" if exc.request_id else ""
        if isinstance(exc, (stripe.InvalidRequestError, stripe.CardError, stripe.IdempotencyError)):
            return RequestRejected(f"Stripe refused to {what} ({status}): {reason}{ref}")
        if isinstance(exc, stripe.APIConnectionError):
            return TemporaryFailure(f"could not reach Stripe to {what}: {reason}", kind="network")
        return TemporaryFailure(f"Stripe failed to {what} ({status}): {reason}{ref}")


def _key(request: InvoiceRequest, step: str) -> stripe.RequestOptions:
    """The deterministic Idempotency-Key of one step of this refill attempt (<= 255 chars)."""
    key = f"{request.idempotency_key}:{step}"
    if len(key) > _MAX_IDEMPOTENCY_KEY:
        key = f"{hashlib.sha256(request.idempotency_key.encode()).hexdigest()}:{step}"
    return {"idempotency_key": key}


def _metadata(obj: stripe.StripeObject) -> dict[str, Any]:
    """An object's metadata as a plain dict ({} when absent)."""
    metadata = getattr(obj, "metadata", None)
    return metadata.to_dict() if isinstance(metadata, stripe.StripeObject) else {}


def _customer_id(invoice: stripe.Invoice) -> str:
    customer = invoice.customer
    if customer is None:
        raise RequestRejected(f"Stripe invoice {invoice.id} has no customer")
    return customer if isinstance(customer, str) else customer.id


def _state_of(invoice: stripe.Invoice, step: str) -> InvoiceState:
    """Our record of a Stripe invoice at `step`."""
    raw = invoice.status or ""
    status = _STATUSES.get(raw, InvoiceStatus.OPEN)
    return InvoiceState(
        invoice_id=invoice.id,
        number=invoice.number,
        url=invoice.hosted_invoice_url,
        step=step,
        status=status,
        amount_paid_minor=invoice.amount_paid,
        detail=None if raw in _STATUSES else f"unknown Stripe invoice status {raw!r}",
        total_minor=_total_of(invoice),
    )


def _total_of(invoice: stripe.Invoice) -> int | None:
    """What the client is asked to pay, tax included: `amount_due` (the total less any credit
    balance applied), else `total`; None while neither is known (a draft without items)."""
    for value in (getattr(invoice, "amount_due", None), getattr(invoice, "total", None)):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _retry_after(exc: stripe.StripeError) -> float | None:
    """Seconds Stripe's Retry-After asks for after a 429 (at most a minute), or None; without
    it the retry loop backs off 1 s, 2 s, ..."""
    headers = exc.headers or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    text = str(value).strip()
    return min(float(text), MAX_RETRY_AFTER_SECONDS) if text.isdigit() else None


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    """`t=<unix>,v1=<hex>[,v1=<hex>...]` -> (t, v1 signatures); other schemes are ignored."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        scheme, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if scheme == "t" and timestamp is None:
            if not value.isdigit():
                raise WebhookRejected("malformed timestamp in Stripe-Signature")
            timestamp = int(value)
        elif scheme == "v1":
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise WebhookRejected("malformed v1 signature in Stripe-Signature")
            signatures.append(value)
    if timestamp is None:
        raise WebhookRejected("no timestamp in Stripe-Signature")
    if not signatures:
        raise WebhookRejected("no v1 signature in Stripe-Signature")
    return timestamp, signatures


def _event_of(body: bytes) -> WebhookEvent:
    """Decode a verified Stripe event; invoice events carry the invoice and our refill id."""
    try:
        event = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected("webhook body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise WebhookRejected("webhook body is not a Stripe event")
    event_type = str(event.get("type", ""))
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    metadata = obj.get("metadata")
    refill = metadata.get(_REFILL_KEY) if isinstance(metadata, dict) else None
    invoice_id = obj.get("id") if event_type.startswith("invoice.") else None
    created = event.get("created")
    return WebhookEvent(
        event_id=event["id"],
        type=event_type,
        invoice_id=invoice_id if isinstance(invoice_id, str) else None,
        refill_id=refill if isinstance(refill, str) else None,
        created=dt.datetime.fromtimestamp(created, dt.UTC) if isinstance(created, int) else None,
        payload=event,
    )
