"""The small interfaces between the engine and the adapters, and the errors they share.

A source turns a tracker into pages of `TimeEntry`; a sink turns a refill into an invoice and
reports its status. Both are `typing.Protocol`s: an adapter is any class with these methods, it
imports only `sync.model`, `sync.settings` and this module, and it never touches the ledger.
Whatever an adapter must persist (a rotated OAuth refresh token) goes through `CredentialStore`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from sync.model import InvalidRecord, TimeEntry
from sync.settings import InvoiceTo

# --- errors ---------------------------------------------------------------------------------


class ConnectorError(Exception):
    """A failure talking to an outside system. Its message is safe to show: no secrets.

    `kind` is a short label for metrics ("auth", "quota", "rate_limit", "server", "network",
    "rejected", "invalid_response").
    """

    kind = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class CredentialsRejected(ConnectorError):
    """401/403 or an expired OAuth grant: the operator must fix a setting (named in the text)."""

    kind = "auth"


class QuotaExhausted(ConnectorError):
    """The service's request quota is used up until `resets_in` seconds from now."""

    kind = "quota"

    def __init__(self, message: str, *, resets_in: int | None = None) -> None:
        super().__init__(message)
        self.resets_in = resets_in


class TemporaryFailure(ConnectorError):
    """Retries ran out (5xx, 429, network): try again on the next run; nothing is lost."""

    kind = "server"


class RequestRejected(ConnectorError):
    """The service refused the request as invalid (404, 422, a validation error): retrying the
    same request cannot help. For a sink this marks the refill failed until the operator retries.
    """

    kind = "rejected"


class WebhookRejected(ConnectorError):
    """A webhook that must be answered 400: bad or stale signature, unreadable body."""

    kind = "webhook"


# --- sources --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateWindow:
    """An inclusive range of work dates (the tracker's spent date)."""

    start: dt.date
    end: dt.date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What the engine asks of a source for one run.

    `cursor` is the opaque text the source returned last time (None on the first run).
    `window`, when set, asks the source to re-read every entry whose work date lies in it and to
    mark those pages as a snapshot, so the engine can find entries that vanished (deletions).
    """

    cursor: str | None
    window: DateWindow | None
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class Page:
    """One batch of a source's answer; the engine commits it and its cursor together (I6).

    `cursor`: what to store once this page is committed (None leaves the stored one).
    `snapshot`: set on every page of a complete re-read of that window; `snapshot_complete` on
    the last page of it, when the engine diffs the window against the ledger.
    `snapshot_clients`: when set, the snapshot covers only entries of these client names in
    the window ("" for entries without a client): an export filtered to one client says
    nothing about the others' work.
    `requests`: HTTP requests spent producing this page (quota accounting).
    """

    entries: Sequence[TimeEntry] = ()
    invalid: Sequence[InvalidRecord] = ()
    cursor: str | None = None
    snapshot: DateWindow | None = None
    snapshot_complete: bool = False
    requests: int = 0
    snapshot_clients: frozenset[str] | None = None


class TimeSource(Protocol):
    """A tracker, seen from the engine."""

    @property
    def name(self) -> str:
        """The source's name from the config."""
        ...

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        """Yield pages: first what changed since the cursor, then the window if one is asked."""
        ...

    def check_connection(self) -> str:
        """Make one cheap authenticated request; return a short description of what answered."""
        ...


# --- sinks ----------------------------------------------------------------------------------


class InvoiceStatus(enum.StrEnum):
    """An invoice's state as the sink reports it."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """Everything a sink needs to issue one refill invoice.

    `idempotency_key` is deterministic for this refill attempt; a sink derives one key per step
    from it (`<key>:create`, `<key>:item`, ...). `amount_minor` is the invoice total in the
    currency's minor units; `quantity` x `unit_price` describes the line (hours x rate for an
    hours budget, 1 x amount for a money budget).
    """

    refill_id: str
    idempotency_key: str
    customer_id: str
    customer_name: str
    budget_id: str
    invoice_to: InvoiceTo
    currency: str
    amount_minor: int
    quantity: Decimal
    unit_price: Decimal
    description: str
    issue_date: dt.date
    reference: str = ""

    @property
    def invoice_reference(self) -> str:
        """What a sink stores with the invoice and matches on when it looks one up.

        Refill ids restart at 1 in a new database; the reference adds this database's
        installation id, so an invoice left in the sink by another (or a reset) database is
        never adopted and credited. Empty `reference` means the refill id alone.
        """
        return self.reference or self.refill_id


@dataclass(frozen=True, slots=True)
class InvoiceState:
    """How far a sink got with an invoice, persisted by the engine after every step.

    `step` is the sink's own progress marker ("created", "item_added", "finalized", "sent");
    the engine stores it and hands it back so a crashed run resumes where it stopped.
    `amount_paid_minor` and `total_minor` are what the sink says was received and what the
    invoice asks for, both including tax; a sink that does not know the total leaves it None
    (the invoice is then taken to ask for the refill's net amount).
    """

    invoice_id: str | None = None
    number: str | None = None
    url: str | None = None
    step: str = ""
    status: InvoiceStatus = InvoiceStatus.DRAFT
    amount_paid_minor: int | None = None
    detail: str | None = None
    total_minor: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified webhook delivery, reduced to what the refill state machine needs."""

    event_id: str
    type: str
    invoice_id: str | None
    refill_id: str | None
    created: dt.datetime | None = None
    payload: Mapping[str, object] = field(default_factory=dict)


class InvoiceSink(Protocol):
    """An invoicing system, seen from the engine."""

    @property
    def name(self) -> str:
        """The sink's name from the config."""
        ...

    @property
    def reports_payment(self) -> bool:
        """False for sinks that cannot tell when an invoice is paid (outbox)."""
        ...

    def issue(
        self,
        request: InvoiceRequest,
        state: InvoiceState | None,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        """Create (or find) and send the invoice, resuming from `state`; call `record` after
        each step so the engine can persist progress. Idempotent: calling it again for the same
        request never makes a second invoice.
        """
        ...

    def refresh(self, state: InvoiceState) -> InvoiceState:
        """The invoice's current state (paid, void, ...), read from the sink."""
        ...

    def check_connection(self) -> str:
        """Make one cheap authenticated request; return a short description of what answered."""
        ...

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        """Verify and decode a webhook; raise `WebhookRejected` when it must be refused."""
        ...


class CredentialStore(Protocol):
    """Where an adapter keeps credentials it must not lose (a rotated refresh token)."""

    def load(self, name: str) -> str | None:
        """The stored value, or None when nothing was stored yet."""
        ...

    def save(self, name: str, value: str) -> None:
        """Persist (and commit) at once; never logged."""
        ...
