"""The outbox sink: refill invoices written as files, for agencies that send invoices by hand.

Each refill becomes `<folder>/<refill id>.json` (the invoice as data, for scripts and
accounting imports) and `<folder>/<refill id>.html` (a standalone page to read, print or send:
no external assets, every text escaped). Each file is written atomically (temporary file,
fsync, rename), the HTML first and the JSON last, so a JSON file means a complete invoice:
issuing the same refill again finds it and rewrites nothing, whatever crashed in between. The
JSON carries the refill's `reference` (refill id and installation id): refill ids restart at 1
in a new database, so a file whose reference differs was left by another database and is
refused, never adopted.

A folder cannot tell when an invoice is paid (`reports_payment` is False): the operator records
a payment with `prepaid refill paid ID`. Optionally, an accountant may mark one by creating an
empty file `<refill id>.paid` next to the invoice; `refresh` then reports it paid.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from sync.model import format_amount
from sync.ports import (
    ConnectorError,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    TemporaryFailure,
    WebhookEvent,
    WebhookRejected,
)
from sync.settings import OutboxSettings

_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader (or a crash) sees the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable; Windows cannot open a folder
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _invoice_document(request: InvoiceRequest) -> dict[str, Any]:
    """The invoice as JSON-ready data: amounts as decimal strings, never floats."""
    to = request.invoice_to
    amount = format_amount(request.amount_minor, request.currency)
    due = request.issue_date + dt.timedelta(days=to.days_until_due)
    return {
        "number": request.refill_id,
        "refill_id": request.refill_id,
        "reference": request.invoice_reference,
        "idempotency_key": request.idempotency_key,
        "customer": {"id": request.customer_id, "name": request.customer_name},
        "invoice_to": {"sink": to.sink, "customer": to.customer, "email": to.email},
        "budget_id": request.budget_id,
        "currency": request.currency,
        "amount": amount,
        "amount_minor": request.amount_minor,
        "lines": [
            {
                "description": request.description,
                "quantity": str(request.quantity),
                "unit_price": str(request.unit_price),
                "amount": amount,
            }
        ],
        "issue_date": request.issue_date.isoformat(),
        "due_date": due.isoformat(),
    }


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Invoice {number}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #222; max-width: 44rem; margin: 2rem auto;
  padding: 0 1rem; }}
table {{ width: 100%; border-collapse: collapse; margin: 1.5rem 0; }}
th, td {{ padding: .5rem; border-bottom: 1px solid #ddd; text-align: left; }}
.num {{ text-align: right; white-space: nowrap; }}
tfoot td {{ font-weight: bold; border-bottom: none; }}
.muted {{ color: #666; }}
</style>
</head>
<body>
<h1>Invoice {number}</h1>
<p class="muted">Issued {issue_date} &middot; Due {due_date}</p>
<h2>Bill to</h2>
<p>{bill_to}</p>
<table>
<thead><tr><th>Description</th><th class="num">Quantity</th><th class="num">Unit price</th>
<th class="num">Amount</th></tr></thead>
<tbody><tr><td>{description}</td><td class="num">{quantity}</td>
<td class="num">{unit_price} {currency}</td><td class="num">{amount} {currency}</td></tr></tbody>
<tfoot><tr><td colspan="3">Total due</td><td class="num">{amount} {currency}</td></tr></tfoot>
</table>
<p class="muted">Please quote {number} with your payment.</p>
</body>
</html>
"""


def _invoice_page(document: Mapping[str, Any]) -> str:
    """A readable, self-contained HTML invoice; every value from the request is escaped."""
    line = document["lines"][0]
    to = document["invoice_to"]
    bill_to = [document["customer"]["name"], to["email"]]
    if to["customer"]:
        bill_to.append(f"Customer reference: {to['customer']}")
    return _PAGE.format(
        number=html.escape(document["number"]),
        issue_date=html.escape(document["issue_date"]),
        due_date=html.escape(document["due_date"]),
        bill_to="<br>".join(html.escape(text) for text in bill_to if text),
        description=html.escape(line["description"]),
        quantity=html.escape(line["quantity"]),
        unit_price=html.escape(line["unit_price"]),
        amount=html.escape(document["amount"]),
        currency=html.escape(document["currency"]),
    )


class OutboxSink:
    """Refill invoices as JSON + HTML files in a folder (see the module docstring)."""

    reports_payment = False

    def __init__(self, settings: OutboxSettings) -> None:
        self._settings = settings
        self._folder = settings.folder

    @property
    def name(self) -> str:
        return self._settings.name

    def issue(
        self,
        request: InvoiceRequest,
        state: InvoiceState | None,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        """Write the invoice files unless they exist; record and return the "sent" state.

        An existing invoice is read back, not rewritten, and its state recorded again (the
        previous run may have crashed between writing the files and recording them).
        """
        stem = self._stem(request.refill_id)
        json_path = self._folder / f"{stem}.json"
        if not json_path.exists():
            paid_marker = self._folder / f"{stem}.paid"
            if paid_marker.exists():
                # The marker is made only after the invoice is read, so without one it is left
                # over from an older invoice; it would report the new invoice paid at once.
                raise RequestRejected(
                    f"outbox {paid_marker} is left from another invoice (there is no"
                    f" {stem}.json); move it out of the folder, then: prepaid refill retry"
                    f" {request.refill_id}"
                )
            document = _invoice_document(request)
            try:
                self._folder.mkdir(parents=True, exist_ok=True)
                _write_atomically(self._folder / f"{stem}.html", _invoice_page(document).encode())
                text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
                _write_atomically(json_path, text.encode())
            except OSError as error:
                raise TemporaryFailure(
                    f"outbox folder {self._folder}: cannot write invoice {stem}: "
                    f"{error.strerror} (check {self._settings.yaml_path}.path)"
                ) from None
        document = self._read(stem)
        # A file without a reference was written before references existed: the refill id alone.
        reference = document.get("reference") or document.get("refill_id")
        if reference != request.invoice_reference:
            raise RequestRejected(
                f"outbox invoice {json_path} belongs to another database (reference"
                f" {reference!r}, not {request.invoice_reference!r}); move the old invoices"
                f" ({stem}.json, .html, .paid) out of the folder, then: prepaid refill retry"
                f" {request.refill_id}"
            )
        number = document.get("number")
        issued = InvoiceState(
            invoice_id=stem,
            number=number if isinstance(number, str) else stem,
            url=(self._folder / f"{stem}.html").resolve().as_uri(),
            step="sent",
            status=InvoiceStatus.OPEN,
        )
        record(issued)
        return issued

    def refresh(self, state: InvoiceState) -> InvoiceState:
        """Paid when `<refill id>.paid` exists in the folder; otherwise `state` unchanged."""
        if state.invoice_id is None:
            return state
        stem = self._stem(state.invoice_id)
        if not (self._folder / f"{stem}.paid").exists():
            return state
        try:
            amount = self._read(stem).get("amount_minor")
        except ConnectorError:
            amount = None  # the marker is what counts; the amount is only a courtesy
        paid = amount if isinstance(amount, int) else None
        return replace(state, status=InvoiceStatus.PAID, amount_paid_minor=paid)

    def check_connection(self) -> str:
        """The folder exists and takes a file, or can be created."""
        folder, where = self._folder, self._settings.yaml_path
        if folder.is_dir():
            try:
                _write_atomically(folder / ".prepaid-write-check", b"")
                (folder / ".prepaid-write-check").unlink()
            except OSError as error:
                raise ConnectorError(
                    f"outbox folder {folder} is not writable: {error.strerror} (check {where}.path)"
                ) from None
            count = sum(1 for _ in folder.glob("*.json"))
            return f"outbox folder {folder}: writable, {count} invoices"
        if folder.exists():
            raise ConnectorError(f"outbox {folder} is not a folder (check {where}.path)")
        parent = folder.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ConnectorError(
                f"outbox folder {folder} cannot be created: {parent} is not writable "
                f"(check {where}.path)"
            )
        return f"outbox folder {folder}: does not exist yet, created with the first invoice"

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        raise WebhookRejected("the outbox sink has no webhooks")

    def _stem(self, refill_id: str) -> str:
        """The refill id as a file name; anything that could leave the folder is refused."""
        if not refill_id or refill_id.startswith(".") or not set(refill_id) <= _SAFE_NAME:
            raise RequestRejected(f"refill id {refill_id!r} cannot name an outbox file")
        return refill_id

    def _read(self, stem: str) -> dict[str, Any]:
        """The invoice's JSON document (amounts stay exact: floats parse as Decimal)."""
        path = self._folder / f"{stem}.json"
        try:
            document = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        except (OSError, ValueError) as error:
            raise ConnectorError(
                f"outbox invoice {path} cannot be read back: {error}", kind="invalid_response"
            ) from None
        if not isinstance(document, dict) or document.get("refill_id") != stem:
            raise ConnectorError(
                f"outbox invoice {path} is not the invoice of refill {stem}",
                kind="invalid_response",
            )
        return document
