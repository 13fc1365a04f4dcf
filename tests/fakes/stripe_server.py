"""A local fake of the part of the Stripe API a refill invoice uses, for the real `stripe` SDK.

`localstripe` lacks one-off invoices, finalize, send and idempotency, so this fake implements
exactly that flow, with Stripe's wire format: form-encoded bodies with bracket keys
(`metadata[prepaid_refill_id]=r1`, `default_tax_rates[0]=txr_1`), JSON answers shaped like the
real objects, `{"error": {...}}` bodies with the real status codes, and `Authorization: Bearer`.

Idempotency follows Stripe's documentation: on a POST, the first answer an endpoint produced
for a key (status and body, errors included) is stored and replayed for the same key and the
same parameters, with `Idempotent-Replayed: true`; the same key with other parameters (or on
another endpoint) is a 400 `idempotency_error`. Nothing is stored when the request never reached
an endpoint: a bad API key, an unknown or missing parameter, or a failure injected with
`fail_next` (unless `stored=True`, which imitates a 500 raised inside the endpoint).

Failure injection: `fail_next(n, status)` answers the next n matching requests with an error;
`lose_next_response(prefix)` performs the next matching request and then drops the connection
without answering, as a network failure after the write would. `prune_idempotency_keys()` does
what Stripe does after 24 hours. `events.signed_webhook(...)` builds a signed delivery of an
invoice event. Every request is kept in `requests` for assertions.

    with FakeStripe() as fake:
        client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url})
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2026-10-28.endive"
ACCOUNT = "acct_1FakeAccount00"
# Stripe takes payment for an open invoice and for one marked uncollectible, not a void one.
_PAYABLE = ("open", "uncollectible")

Json = dict[str, Any]


class StripeFailure(Exception):
    """An error answer: raised inside an endpoint, turned into `{"error": {...}}`."""

    def __init__(
        self, status: int, message: str, *, type_: str = "invalid_request_error", **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: Json = {"error": {"message": message, "type": type_, **extra}}


class _NotExecuted(StripeFailure):
    """A failure before any endpoint ran: never stored for idempotency."""


@dataclass
class RecordedRequest:
    """One request as the fake received it (params decoded from the form or query)."""

    method: str
    path: str
    params: Json
    raw_body: str
    idempotency_key: str | None
    headers: dict[str, str]


@dataclass
class _Stored:
    """An answer kept under an idempotency key."""

    method: str
    path: str
    pairs: list[tuple[str, str]]
    status: int
    body: Json


@dataclass
class _Injected:
    status: int
    prefix: str
    method: str | None
    stored: bool

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.prefix) and self.method in (None, method)


@dataclass
class _State:
    customers: dict[str, Json] = field(default_factory=dict)
    invoices: dict[str, Json] = field(default_factory=dict)
    invoice_items: dict[str, Json] = field(default_factory=dict)


def decode_form(pairs: list[tuple[str, str]]) -> Json:
    """`a[b][0]=x` pairs -> {"a": {"b": ["x"]}}: Stripe's bracket notation, values as strings."""
    root: Json = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if not match:
            raise _NotExecuted(400, f"Invalid parameter name: {key}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    decoded: Json = _lists(root)
    return decoded


def _lists(node: Any) -> Any:
    """Dicts keyed "0", "1", ... become lists."""
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def sign(body: bytes, secret: str, t: int) -> str:
    """The `Stripe-Signature` header value Stripe would send for `body` at unix time `t`."""
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


class StripeEvents:
    """Builds webhook deliveries from the fake's current objects."""

    def __init__(self, fake: FakeStripe) -> None:
        self._fake = fake
        self._ids = itertools.count(1)

    def event(self, event_type: str, invoice_id: str, t: int) -> Json:
        """An event whose `data.object` is the invoice as it is now."""
        with self._fake.lock:
            invoice = json.loads(json.dumps(self._fake.state.invoices[invoice_id]))
        return {
            "id": f"evt_fake{next(self._ids):010d}",
            "object": "event",
            "api_version": API_VERSION,
            "created": t,
            "data": {"object": invoice},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def signed_webhook(
        self, event_type: str, invoice_id: str, secret: str, t: int
    ) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a delivery of `event_type` for the invoice, signed at time `t`."""
        body = json.dumps(self.event(event_type, invoice_id, t)).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        headers["Stripe-Signature"] = sign(body, secret, t)
        return headers, body


class FakeStripe:
    """A threaded fake Stripe on 127.0.0.1; use as a context manager."""

    def __init__(self, api_key: str = "sk_test_fake_0123456789abcdef") -> None:
        self.api_key = api_key
        self.lock = threading.RLock()
        self.state = _State()
        self.requests: list[RecordedRequest] = []
        self.sends: Counter[str] = Counter()
        self.charges: Counter[str] = Counter()
        self.declining_customers: set[str] = set()
        # exclusive tax rates by id (`txr_...` -> percent), applied to invoices that name them
        # in `default_tax_rates`, as Stripe adds tax on top of the lines
        self.tax_percent: dict[str, Decimal] = {}
        self.events = StripeEvents(self)
        self._idempotency: dict[str, _Stored] = {}
        self._failures: list[_Injected] = []
        self._lose: list[_Injected] = []
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._clock = itertools.count(1_790_000_000)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FakeStripe:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval keeps `shutdown()` (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, for `base_addresses={"api": ...}`."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- test controls ----------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        path_prefix: str = "",
        *,
        method: str | None = None,
        stored: bool = False,
    ) -> None:
        """Answer the next `n` requests whose path starts with `path_prefix` (and whose method
        is `method`, when given) with `status`; `stored` keeps the error for idempotent replay.
        """
        with self.lock:
            self._failures.extend(_Injected(status, path_prefix, method, stored) for _ in range(n))

    def lose_next_response(self, path_prefix: str, method: str | None = "POST") -> None:
        """Perform the next matching request (a POST by default), then drop the connection
        without an answer.
        """
        with self.lock:
            self._lose.append(_Injected(0, path_prefix, method, stored=True))

    def prune_idempotency_keys(self) -> None:
        """Forget every stored answer, as Stripe does once a key is 24 hours old."""
        with self.lock:
            self._idempotency.clear()

    def add_customer(
        self, email: str | None = None, name: str | None = None, **metadata: str
    ) -> str:
        """Create a customer directly (no request); returns its id."""
        with self.lock:
            customer = self._new_customer({"email": email, "name": name, "metadata": metadata})
            return str(customer["id"])

    def invoices_for_refill(self, refill_id: str) -> list[Json]:
        """Every invoice whose metadata names this refill."""
        with self.lock:
            return [
                inv
                for inv in self.state.invoices.values()
                if inv["metadata"].get("prepaid_refill_id") == refill_id
            ]

    def invoice_count(self, refill_id: str) -> int:
        """How many invoices exist for this refill (the answer must be 1)."""
        return len(self.invoices_for_refill(refill_id))

    def mark_paid(self, invoice_id: str) -> Json:
        """The client pays the invoice (as through the hosted page)."""
        with self.lock:
            invoice = self.state.invoices[invoice_id]
            self._settle(invoice)
            return invoice

    def mark_uncollectible(self, invoice_id: str) -> Json:
        """The account owner writes the open invoice off (as in the dashboard)."""
        with self.lock:
            return self._uncollectible({}, invoice_id)

    def pay_in_part(self, invoice_id: str, amount: int) -> Json:
        """The client pays `amount` (minor units) of an open or uncollectible invoice; paying
        what remains settles it. Stripe keeps a partly paid invoice `open`."""
        with self.lock:
            invoice = self.state.invoices[invoice_id]
            if invoice["status"] not in _PAYABLE:
                raise ValueError(f"invoice {invoice_id} is {invoice['status']}")
            if amount >= invoice["amount_remaining"]:
                self._settle(invoice)
            else:
                invoice["amount_paid"] += amount
                invoice["amount_remaining"] -= amount
            return invoice

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method and exact path."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # --- dispatch ---------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: str
    ) -> tuple[int, Json, bool, dict[str, str]]:
        """Answer one request: (status, body, drop the connection, extra headers)."""
        url = urlsplit(target)
        path = url.path
        text = raw if method == "POST" else url.query
        pairs = parse_qsl(text, keep_blank_values=True)
        key = headers.get("idempotency-key")
        with self.lock:
            try:
                params = decode_form(pairs)
            except _NotExecuted as exc:
                return exc.status, exc.body, False, {}
            self.requests.append(RecordedRequest(method, path, params, raw, key, headers))
            lose = next((f for f in self._lose if f.matches(method, path)), None)
            if lose is not None:
                self._lose.remove(lose)
            injected = next((f for f in self._failures if f.matches(method, path)), None)
            if injected is not None:
                self._failures.remove(injected)
            status, body, extra = self._answer(method, path, params, pairs, key, headers, injected)
            return status, body, lose is not None, extra

    def _answer(
        self,
        method: str,
        path: str,
        params: Json,
        pairs: list[tuple[str, str]],
        key: str | None,
        headers: dict[str, str],
        injected: _Injected | None,
    ) -> tuple[int, Json, dict[str, str]]:
        try:
            self._authenticate(headers.get("authorization", ""))
        except StripeFailure as exc:
            return exc.status, exc.body, {}
        idempotent = method == "POST" and key is not None
        if idempotent:
            assert key is not None
            stored = self._idempotency.get(key)
            if stored is not None:
                if (stored.method, stored.path, sorted(stored.pairs)) == (
                    method,
                    path,
                    sorted(pairs),
                ):
                    return stored.status, stored.body, {"Idempotent-Replayed": "true"}
                failure = StripeFailure(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
                return failure.status, failure.body, {}
        if injected is not None:
            failure = StripeFailure(
                injected.status,
                "Too many requests hit the API too quickly."
                if injected.status == 429
                else "An unknown error occurred",
                type_="invalid_request_error" if injected.status < 500 else "api_error",
                **({"code": "rate_limit"} if injected.status == 429 else {}),
            )
            if idempotent and injected.stored:
                assert key is not None
                self._idempotency[key] = _Stored(method, path, pairs, failure.status, failure.body)
            return failure.status, failure.body, {}
        try:
            status, body = 200, self._route(method, path, params)
        except _NotExecuted as exc:
            return exc.status, exc.body, {}
        except StripeFailure as exc:
            status, body = exc.status, exc.body
        # A snapshot: later changes to the object must not alter what a replay answers.
        body = json.loads(json.dumps(body))
        if idempotent:
            assert key is not None
            self._idempotency[key] = _Stored(method, path, pairs, status, body)
        return status, body, {}

    def _authenticate(self, authorization: str) -> None:
        if not authorization.startswith("Bearer "):
            raise StripeFailure(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth "
                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        given = authorization.removeprefix("Bearer ")
        if given != self.api_key:
            raise StripeFailure(401, f"Invalid API Key provided: {given[:8]}****{given[-4:]}")

    def _route(self, method: str, path: str, params: Json) -> Json:
        routes: list[tuple[str, str, Callable[..., Json]]] = [
            ("GET", r"/v1/balance", self._balance),
            ("GET", r"/v1/customers", self._list_customers),
            ("POST", r"/v1/customers", self._create_customer),
            ("GET", r"/v1/customers/(?P<id>[^/]+)", self._retrieve_customer),
            ("GET", r"/v1/invoices", self._list_invoices),
            ("POST", r"/v1/invoices", self._create_invoice),
            ("GET", r"/v1/invoices/(?P<id>[^/]+)", self._retrieve_invoice),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/finalize", self._finalize),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/send", self._send),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/pay", self._pay),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/void", self._void),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/mark_uncollectible", self._uncollectible),
            ("POST", r"/v1/invoiceitems", self._create_item),
        ]
        for verb, pattern, endpoint in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return endpoint(params, **match.groupdict())
        raise _NotExecuted(404, f"Unrecognized request URL ({method}: {path}).")

    # --- helpers ----------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_Fake{next(self._ids):010d}"

    def _now(self) -> int:
        return next(self._clock)

    @staticmethod
    def _allow(params: Json, allowed: Collection[str], required: Collection[str] = ()) -> None:
        for name in params:
            if name not in allowed:
                raise _NotExecuted(400, f"Received unknown parameter: {name}", param=name)
        for name in required:
            if name not in params:
                raise _NotExecuted(400, f"Missing required param: {name}.", param=name)

    @staticmethod
    def _int(params: Json, name: str) -> int:
        value = params[name]
        if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
            raise _NotExecuted(400, f"Invalid integer: {value}", param=name)
        return int(value)

    @staticmethod
    def _bool(params: Json, name: str) -> bool:
        value = params[name]
        if value not in ("true", "false"):
            raise _NotExecuted(400, f"Invalid boolean: {value}", param=name)
        return bool(value == "true")

    def _missing(self, kind: str, object_id: str, param: str = "id") -> StripeFailure:
        return StripeFailure(
            404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
        )

    def _invoice(self, invoice_id: str) -> Json:
        invoice = self.state.invoices.get(invoice_id)
        if invoice is None:
            raise self._missing("invoice", invoice_id)
        return invoice

    @staticmethod
    def _page(items: list[Json], params: Json, url: str) -> Json:
        limit = FakeStripe._int(params, "limit") if "limit" in params else 10
        after = params.get("starting_after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return {
            "object": "list",
            "data": items[:limit],
            "has_more": len(items) > limit,
            "url": url,
        }

    # --- endpoints --------------------------------------------------------------------------

    def _balance(self, params: Json) -> Json:
        return {
            "object": "balance",
            "available": [{"amount": 0, "currency": "eur", "source_types": {"card": 0}}],
            "livemode": False,
            "pending": [{"amount": 0, "currency": "eur", "source_types": {"card": 0}}],
        }

    def _new_customer(self, params: Json) -> Json:
        customer_id = self._id("cus")
        customer: Json = {
            "id": customer_id,
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": self._now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": params.get("description"),
            "email": params.get("email"),
            "invoice_prefix": f"FAKE{len(self.state.customers) + 1:04d}",
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "name": params.get("name"),
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self.state.customers[customer_id] = customer
        return customer

    def _create_customer(self, params: Json) -> Json:
        self._allow(params, {"email", "name", "description", "metadata", "expand"})
        return self._new_customer(params)

    def _list_customers(self, params: Json) -> Json:
        self._allow(params, {"email", "limit", "starting_after", "expand"})
        found = [
            c
            for c in reversed(self.state.customers.values())
            if "email" not in params or c["email"] == params["email"]
        ]
        return self._page(found, params, "/v1/customers")

    def _retrieve_customer(self, params: Json, id: str) -> Json:
        if id not in self.state.customers:
            raise self._missing("customer", id)
        return self.state.customers[id]

    def _create_invoice(self, params: Json) -> Json:
        self._allow(
            params,
            {
                "customer",
                "auto_advance",
                "collection_method",
                "days_until_due",
                "currency",
                "metadata",
                "pending_invoice_items_behavior",
                "default_tax_rates",
                "description",
                "expand",
            },
            {"customer"},
        )
        customer = self.state.customers.get(params["customer"])
        if customer is None:
            raise self._missing("customer", params["customer"], "customer")
        method = params.get("collection_method", "charge_automatically")
        if method not in ("charge_automatically", "send_invoice"):
            raise StripeFailure(
                400, f"Invalid collection_method: {method}", param="collection_method"
            )
        days = self._int(params, "days_until_due") if "days_until_due" in params else None
        if method == "send_invoice" and days is None:
            raise StripeFailure(
                400,
                "Invoices with `collection_method=send_invoice` must have a `days_until_due` "
                "or `due_date`.",
                param="days_until_due",
            )
        if method == "charge_automatically" and days is not None:
            raise StripeFailure(
                400,
                "Invoices with `collection_method=charge_automatically` cannot have "
                "`days_until_due`.",
                param="days_until_due",
            )
        behavior = params.get("pending_invoice_items_behavior", "exclude")
        if behavior not in ("exclude", "include"):
            raise StripeFailure(400, f"Invalid pending_invoice_items_behavior: {behavior}")
        invoice_id = self._id("in")
        created = self._now()
        invoice: Json = {
            "id": invoice_id,
            "object": "invoice",
            "account_country": "BE",
            "account_name": "Fake Agency",
            "amount_due": 0,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": self._bool(params, "auto_advance")
            if "auto_advance" in params
            else True,
            "billing_reason": "manual",
            "collection_method": method,
            "created": created,
            "currency": params.get("currency", "eur"),
            "customer": customer["id"],
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "days_until_due": days,
            "default_tax_rates": list(params.get("default_tax_rates") or []),
            "description": params.get("description"),
            "due_date": created + days * 86400 if days is not None else None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "lines": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "number": None,
            "period_end": created,
            "period_start": created,
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subtotal": 0,
            "total": 0,
        }
        self.state.invoices[invoice_id] = invoice
        return invoice

    def _list_invoices(self, params: Json) -> Json:
        self._allow(params, {"customer", "status", "limit", "starting_after", "expand"})
        found = [
            inv
            for inv in reversed(self.state.invoices.values())
            if ("customer" not in params or inv["customer"] == params["customer"])
            and ("status" not in params or inv["status"] == params["status"])
        ]
        return self._page(found, params, "/v1/invoices")

    def _retrieve_invoice(self, params: Json, id: str) -> Json:
        self._allow(params, {"expand"})
        return self._invoice(id)

    def _create_item(self, params: Json) -> Json:
        self._allow(
            params,
            {"customer", "invoice", "amount", "currency", "description", "metadata", "expand"},
            {"customer"},
        )
        customer = params["customer"]
        if customer not in self.state.customers:
            raise self._missing("customer", customer, "customer")
        amount = self._int(params, "amount") if "amount" in params else 0
        item_id = self._id("ii")
        invoice_id = params.get("invoice")
        if invoice_id is not None:
            invoice = self._invoice(invoice_id)
            if invoice["status"] != "draft":
                raise StripeFailure(
                    400,
                    f"Invoice {invoice_id} is no longer editable: only draft invoices accept "
                    "new invoice items.",
                    code="invoice_not_editable",
                    param="invoice",
                )
            if invoice["customer"] != customer:
                raise StripeFailure(
                    400, "The invoice belongs to another customer.", param="invoice"
                )
            if params.get("currency", invoice["currency"]) != invoice["currency"]:
                raise StripeFailure(
                    400, "The currency of the item must match the invoice's.", param="currency"
                )
        item = {
            "id": item_id,
            "object": "invoiceitem",
            "amount": amount,
            "currency": params.get("currency", "eur"),
            "customer": customer,
            "date": self._now(),
            "description": params.get("description"),
            "discountable": True,
            "invoice": invoice_id,
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "quantity": 1,
        }
        self.state.invoice_items[item_id] = item
        if invoice_id is not None:
            lines = invoice["lines"]
            lines["data"].append(
                {
                    "id": f"il_{item_id}",
                    "object": "line_item",
                    "amount": amount,
                    "currency": item["currency"],
                    "description": item["description"],
                    "invoice": invoice_id,
                    "livemode": False,
                    "metadata": item["metadata"],
                    "parent": {
                        "type": "invoice_item_details",
                        "invoice_item_details": {"invoice_item": item_id},
                    },
                    "quantity": 1,
                }
            )
            lines["total_count"] = len(lines["data"])
            subtotal = sum(line["amount"] for line in lines["data"])
            taxes = [
                {
                    "amount": int(
                        (subtotal * self.tax_percent[rate] / 100).quantize(
                            Decimal(1), rounding=ROUND_HALF_UP
                        )
                    ),
                    "tax_rate": rate,
                }
                for rate in invoice["default_tax_rates"]
                if rate in self.tax_percent
            ]
            total = subtotal + sum(tax["amount"] for tax in taxes)
            invoice.update(
                subtotal=subtotal,
                total=total,
                total_tax_amounts=taxes,
                amount_due=total,
                amount_remaining=total,
            )
        return item

    def _finalize(self, params: Json, id: str) -> Json:
        self._allow(params, {"auto_advance", "expand"})
        invoice = self._invoice(id)
        if invoice["status"] != "draft":
            raise StripeFailure(
                400,
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_unexpected_state",
            )
        customer = self.state.customers[invoice["customer"]]
        invoice["number"] = f"{customer['invoice_prefix']}-{next(self._numbers):04d}"
        invoice["hosted_invoice_url"] = f"https://invoice.stripe.com/i/{ACCOUNT}/test_{id}"
        invoice["invoice_pdf"] = f"https://pay.stripe.com/invoice/{ACCOUNT}/test_{id}/pdf"
        invoice["status"] = "open"
        invoice["status_transitions"]["finalized_at"] = self._now()
        if invoice["total"] == 0:
            self._settle(invoice)
        return invoice

    def _send(self, params: Json, id: str) -> Json:
        self._allow(params, {"expand"})
        invoice = self._invoice(id)
        if invoice["collection_method"] != "send_invoice":
            raise StripeFailure(
                400,
                "You can only manually send an invoice if its collection method is 'send_invoice'.",
            )
        if invoice["status"] != "open":
            raise StripeFailure(
                400, f"You can only send an open invoice; this one is {invoice['status']}."
            )
        if not invoice["customer_email"]:
            raise StripeFailure(400, "The customer has no email address to send the invoice to.")
        self.sends[id] += 1
        return invoice

    def _pay(self, params: Json, id: str) -> Json:
        self._allow(params, {"paid_out_of_band", "forgive", "payment_method", "expand"})
        invoice = self._invoice(id)
        if invoice["status"] not in _PAYABLE:
            raise StripeFailure(
                400, f"Invoice is already {invoice['status']}", code="invoice_unexpected_state"
            )
        out_of_band = "paid_out_of_band" in params and self._bool(params, "paid_out_of_band")
        if not out_of_band:
            invoice["attempt_count"] += 1
            invoice["attempted"] = True
            self.charges[id] += 1
            if invoice["customer"] in self.declining_customers:
                raise StripeFailure(
                    402,
                    "Your card was declined.",
                    type_="card_error",
                    code="card_declined",
                    decline_code="generic_decline",
                )
        self._settle(invoice)
        return invoice

    def _settle(self, invoice: Json) -> None:
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["status"] = "paid"
        invoice["status_transitions"]["paid_at"] = self._now()

    def _void(self, params: Json, id: str) -> Json:
        invoice = self._invoice(id)
        if invoice["status"] != "open":
            raise StripeFailure(400, "You can only void an open invoice.")
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = self._now()
        return invoice

    def _uncollectible(self, params: Json, id: str) -> Json:
        invoice = self._invoice(id)
        if invoice["status"] != "open":
            raise StripeFailure(400, "You can only mark an open invoice as uncollectible.")
        invoice["status"] = "uncollectible"
        invoice["status_transitions"]["marked_uncollectible_at"] = self._now()
        return invoice


def _handler_for(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output is for assertions."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, drop, extra = fake.handle(self.command, self.path, headers, raw)
            if drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_fake{time.monotonic_ns()}")
            self.send_header("Stripe-Version", API_VERSION)
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve
        do_DELETE = _serve

    return Handler
