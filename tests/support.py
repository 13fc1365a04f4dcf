"""In-memory stand-ins for tests of the core: a scripted source, a recording sink, builders."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sync.model import TimeEntry
from sync.ports import (
    DateWindow,
    FetchRequest,
    InvoiceRequest,
    InvoiceState,
    InvoiceStatus,
    Page,
    RequestRejected,
    WebhookEvent,
    WebhookRejected,
)
from sync.settings import (
    Budget,
    Criteria,
    CsvSettings,
    Customer,
    InvoiceTo,
    MatchRule,
    OutboxSettings,
    RefillPolicy,
    Rounding,
    ServerSettings,
    Settings,
    SourceSettings,
)

# The `prepaid` console script of the environment running the tests.
ROOT = Path(__file__).resolve().parent.parent
ALL_FIXTURES = ROOT / "tests" / "fixtures"
PREPAID = str(Path(sys.executable).parent / "prepaid")


def run_prepaid(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `prepaid --config CONFIG ARGS...` in the config's folder and capture its output."""
    return subprocess.run(
        [PREPAID, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=config.parent,
    )


NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def entry(
    external_id: str,
    *,
    hours: str = "1",
    day: int = 10,
    version: str = "v1",
    client: str = "ACME Corp",
    source: str = "tracker",
    billable: bool = True,
    tags: tuple[str, ...] = (),
    running: bool = False,
    deleted: bool = False,
) -> TimeEntry:
    """A time entry on 2026-11-`day` of `hours` hours."""
    return TimeEntry(
        source=source,
        external_id=external_id,
        version=version,
        spent_date=dt.date(2026, 11, day),
        seconds=int(Decimal(hours) * 3600),
        billable=billable,
        client_name=client,
        user_name="Ann",
        tags=tags,
        running=running,
        deleted=deleted,
        raw={"id": external_id},
    )


@dataclass
class ScriptedSource:
    """A source whose entries a test edits; every fetch is a full snapshot of its window."""

    name: str = "tracker"
    entries: dict[str, TimeEntry] = field(default_factory=dict)
    page_size: int = 2
    fetches: list[FetchRequest] = field(default_factory=list)
    fail_after_pages: int | None = None

    def put(self, e: TimeEntry) -> None:
        self.entries[e.external_id] = e

    def remove(self, external_id: str) -> None:
        del self.entries[external_id]

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        from sync.ports import TemporaryFailure

        self.fetches.append(request)
        window = request.window or DateWindow(dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        items = sorted(
            (e for e in self.entries.values() if e.spent_date in window),
            key=lambda e: e.external_id,
        )
        pages = [items[i : i + self.page_size] for i in range(0, len(items), self.page_size)]
        pages = pages or [[]]
        for number, chunk in enumerate(pages, start=1):
            if self.fail_after_pages is not None and number > self.fail_after_pages:
                raise TemporaryFailure(f"{self.name}: server error on page {number}")
            yield Page(
                entries=chunk,
                cursor=f"page-{number}",
                snapshot=window,
                snapshot_complete=number == len(pages),
                requests=1,
            )

    def check_connection(self) -> str:
        return "scripted"


@dataclass
class RecordingSink:
    """An invoicing sink that keeps invoices in memory and can refuse or report payment."""

    name: str = "files"
    reports_payment: bool = True
    invoices: dict[str, InvoiceState] = field(default_factory=dict)
    requests: list[InvoiceRequest] = field(default_factory=list)
    refuse_with: str | None = None
    on_step: Callable[[str], None] | None = None

    def issue(
        self,
        request: InvoiceRequest,
        state: InvoiceState | None,
        record: Callable[[InvoiceState], None],
    ) -> InvoiceState:
        self.requests.append(request)
        if self.refuse_with:
            raise RequestRejected(self.refuse_with)
        existing = self.invoices.get(request.refill_id)
        if existing is None:
            existing = InvoiceState(
                invoice_id=f"inv_{request.refill_id}",
                number=f"N-{len(self.invoices) + 1}",
                step="sent",
                status=InvoiceStatus.OPEN,
            )
            self.invoices[request.refill_id] = existing
        record(existing)
        return existing

    def refresh(self, state: InvoiceState) -> InvoiceState:
        for current in self.invoices.values():
            if current.invoice_id == state.invoice_id:
                return current
        return state

    def set_status(self, refill_id: str, status: str) -> None:
        current = self.invoices[refill_id]
        self.invoices[refill_id] = InvoiceState(
            invoice_id=current.invoice_id, number=current.number, step="sent", status=status
        )

    def check_connection(self) -> str:
        return "memory"

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        raise WebhookRejected("no webhooks")


def money_customer(
    *,
    rate: str = "100.00",
    opening: str = "1000.00",
    below: str | None = "300.00",
    amount: str = "1000.00",
    credit_on: str = "paid",
    approval: str = "auto",
    rounding: Rounding | None = None,
    currency: str = "EUR",
    max_per_day: int = 2,
    source: str = "tracker",
) -> Customer:
    """ACME with one money budget `retainer` routed from `source` by client name."""
    refill = None
    if below is not None:
        refill = RefillPolicy(
            below=Decimal(below),
            amount=Decimal(amount),
            credit_on=credit_on,
            max_per_day=max_per_day,
        )
    budget = Budget(
        yaml_path="customers[0].budgets[0]",
        id="retainer",
        unit="money",
        rate=Decimal(rate),
        opening_balance=Decimal(opening),
        exclude=Criteria(tags=("internal",)),
        rounding=rounding,
        approval=approval,
        refill=refill,
    )
    return Customer(
        yaml_path="customers[0]",
        id="acme",
        name="ACME Corp",
        currency=currency,
        invoice_to=InvoiceTo(sink="files"),
        match=(MatchRule("customers[0].match[0]", source, Criteria(clients=("acme corp",))),),
        budgets=(budget,),
    )


def settings_for(
    database: str, *customers: Customer, sources: tuple[SourceSettings, ...] = ()
) -> Settings:
    """Settings with the given customers, a tracker source and a `files` outbox sink."""
    return Settings(
        config_path=Path("test.yaml"),
        database=database,
        timezone="UTC",
        server=ServerSettings(),
        sources=sources
        or (
            # The scripted entries are dated November 2026; a ten-year look-back keeps them
            # inside the re-read window whatever day the tests run on.
            CsvSettings(
                yaml_path="sources[0]",
                name="tracker",
                type="csv",
                file=Path("x.csv"),
                lookback_days=3650,
            ),
        ),
        invoicing=(
            OutboxSettings(
                yaml_path="invoicing[0]", name="files", type="outbox", folder=Path("outbox")
            ),
        ),
        customers=customers,
    )
