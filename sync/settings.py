"""Typed, frozen settings: what the YAML file means once `sync.config` has validated it.

These are plain data, so the pure core (rules), the engine and the adapters can all take them
without knowing how they were read. Every record keeps `yaml_path`, its place in the YAML file
(`customers[0].budgets[1]`), so any later message can point the operator at the line to fix.
Secrets are wrapped in `Secret`, whose repr never shows the value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Literal

# The closed vocabularies of the config file: the reader accepts exactly these values, and the
# type checker holds every use of a setting to them.
SourceType = Literal["harvest", "toggl", "clockify", "csv"]
SinkType = Literal["stripe", "xero", "quickbooks", "outbox"]
BudgetUnit = Literal["money", "hours"]
RoundingMode = Literal["up", "down", "nearest"]
Approval = Literal["auto", "review"]
CreditOn = Literal["paid", "issued"]
CollectionMethod = Literal["send_invoice", "charge_automatically"]
TogglScope = Literal["workspace", "me"]
CsvFormat = Literal["generic", "harvest", "toggl", "clockify"]
DateOrder = Literal["auto", "dmy", "mdy", "ymd"]
CsvSnapshot = Literal["dates", "dates_and_clients", "none"]
XeroStatus = Literal["DRAFT", "AUTHORISED"]
XeroLineAmountTypes = Literal["Exclusive", "Inclusive", "NoTax"]
# Metadata key of a settings field the reader fills from the top level, not from a YAML key.
TOP_LEVEL = "top_level"


class Secret:
    """A credential from the config. Printing, logging or repr'ing it shows `***`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that sends it (an auth header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class Criteria:
    """Conditions on an entry. Ids are compared as strings; names and tags case-insensitively
    (stored lower-cased here). An empty tuple means "not constrained".
    """

    client_ids: tuple[str, ...] = ()
    project_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when no condition is set."""
        return not any(
            (
                self.client_ids,
                self.project_ids,
                self.task_ids,
                self.user_ids,
                self.clients,
                self.projects,
                self.tasks,
                self.users,
                self.tags,
            )
        )


@dataclass(frozen=True, slots=True)
class MatchRule:
    """Routes entries of `source` that meet every given criterion to a customer.

    `budget` optionally names the customer's budget; without it the first budget whose
    `include` accepts the entry is used (or the first budget, where the entry is then excluded).
    """

    yaml_path: str
    source: str
    criteria: Criteria
    budget: str | None = None


@dataclass(frozen=True, slots=True)
class Rounding:
    """Per-entry rounding of the duration before valuation."""

    increment_minutes: int
    mode: RoundingMode
    minimum_minutes: int = 0


@dataclass(frozen=True, slots=True)
class RateOverride:
    """A different hourly rate for entries that meet `criteria` (first match wins)."""

    criteria: Criteria
    rate: Decimal


@dataclass(frozen=True, slots=True)
class RefillPolicy:
    """When and how much to refill a budget. Amounts are in the budget's unit.

    Exactly one of `amount` and `top_up_to` is set. `max_per_day` is the runaway guard.
    """

    below: Decimal
    amount: Decimal | None = None
    top_up_to: Decimal | None = None
    credit_on: CreditOn = "paid"
    max_per_day: int = 2


@dataclass(frozen=True, slots=True)
class Budget:
    """A prepaid budget of a customer: money (valued at `rate`) or hours.

    For an hours budget `rate` prices the refill invoice. `rate_from_source` values each entry at
    the tracker's billable rate instead (money budgets only).
    """

    yaml_path: str
    id: str
    unit: BudgetUnit
    rate: Decimal | None
    opening_balance: Decimal
    rate_from_source: bool = False
    billable_only: bool = True
    include: Criteria = field(default_factory=Criteria)
    exclude: Criteria = field(default_factory=Criteria)
    rounding: Rounding | None = None
    rate_overrides: tuple[RateOverride, ...] = ()
    approval: Approval = "auto"
    refill: RefillPolicy | None = None


@dataclass(frozen=True, slots=True)
class InvoiceTo:
    """Where a customer's refill invoices go, and the sink's own id for the customer.

    `customer` is the sink's id (Stripe `cus_...`, Xero ContactID, QuickBooks Customer Id);
    for Stripe it may be omitted and found by `email` or created.
    """

    sink: str
    customer: str | None = None
    email: str | None = None
    collection_method: CollectionMethod = "send_invoice"
    days_until_due: int = 14
    tax_rates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Customer:
    """A client of the agency with its routing rules and budgets."""

    yaml_path: str
    id: str
    name: str
    currency: str
    invoice_to: InvoiceTo | None
    match: tuple[MatchRule, ...]
    budgets: tuple[Budget, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings:
    """What every source has. `lookback_days` is the re-read window for late edits and
    deletions; `reconcile_every` how often it is re-read; `schedule` is a cron line for serve.

    `timezone` is not a key of the source: the reader copies the config's top-level
    `timezone` here, because the adapter dates an instant (a start written as UTC or with an
    offset) by the day it falls on in that zone, the day the statements count it in.
    """

    yaml_path: str
    name: str
    type: SourceType
    schedule: str = "*/15 * * * *"
    lookback_days: int = 30
    reconcile_every: dt.timedelta = dt.timedelta(hours=6)
    base_url: str | None = None
    max_hours: Decimal = Decimal(24)
    timezone: str = field(default="UTC", metadata={TOP_LEVEL: True})
    # Whether the source reads files on this machine rather than a remote API: the engine
    # then parses pages as it stores them instead of fetching the next one ahead.
    reads_local_files: ClassVar[bool] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HarvestSettings(SourceSettings):
    """Harvest API v2: personal access token and account id."""

    account_id: str
    token: Secret
    user_agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TogglSettings(SourceSettings):
    """Toggl Track: the whole workspace through Reports v3, or `scope: me` through v9."""

    token: Secret
    workspace_id: str | None = None
    scope: TogglScope = "workspace"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockifySettings(SourceSettings):
    """Clockify: API key and workspace."""

    api_key: Secret
    workspace_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvSettings(SourceSettings):
    """CSV exports on disk: each file is a full snapshot of the dates it covers.

    `file` (the YAML's `path`): one file, a folder (its `*.csv` files) or a glob, the files
    applied in name order.

    `date_order`: how D/M/Y-like dates are read; `auto` reads only what the source's dates
    prove (README, "CSV exports").
    `encoding`: the file's text encoding (Python codec name, e.g. cp1252). `snapshot`: what a
    file is a complete list of, so what its missing rows delete: its dates, its dates for the
    clients it names (an export filtered to one client), or nothing.
    """

    reads_local_files: ClassVar[bool] = True
    file: Path
    format: CsvFormat = "generic"
    date_order: DateOrder = "auto"
    encoding: str = "utf-8"
    snapshot: CsvSnapshot = "dates_and_clients"


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkSettings:
    """What every invoicing sink has."""

    yaml_path: str
    name: str
    type: SinkType
    base_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StripeSettings(SinkSettings):
    """Stripe invoices. `create_customers`: create a customer when none is found by email."""

    api_key: Secret
    webhook_secret: Secret | None = None
    create_customers: bool = True
    max_network_retries: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class XeroSettings(SinkSettings):
    """Xero ACCREC invoices over OAuth2 (the refresh token rotates and is persisted)."""

    client_id: str
    client_secret: Secret
    refresh_token: Secret
    tenant_id: str
    account_code: str
    tax_type: str | None = None
    status: XeroStatus = "AUTHORISED"
    line_amount_types: XeroLineAmountTypes = "Exclusive"
    token_url: str = "https://identity.xero.com/connect/token"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuickBooksSettings(SinkSettings):
    """QuickBooks Online invoices over OAuth2."""

    client_id: str
    client_secret: Secret
    refresh_token: Secret
    realm_id: str
    item_id: str
    minor_version: int = 75
    token_url: str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings(SinkSettings):
    """Invoices written as JSON + HTML files to a folder (the embedded default)."""

    folder: Path


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """`prepaid serve`: where to listen and the token that guards the status page.

    `unresolved` holds `(yaml_path, problem)` for each of these keys that names an unset
    environment variable: only `serve` uses them, so only `serve` refuses to start over it,
    and every other command runs on the same config.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    status_token: Secret | None = None
    unresolved: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole validated config file."""

    config_path: Path
    database: str
    timezone: str
    server: ServerSettings
    sources: tuple[SourceSettings, ...]
    invoicing: tuple[SinkSettings, ...]
    customers: tuple[Customer, ...]
    encryption_key: Secret | None = None

    def customer(self, customer_id: str) -> Customer | None:
        """The customer with this id, or None."""
        return next((c for c in self.customers if c.id == customer_id), None)

    def source(self, name: str) -> SourceSettings | None:
        """The source with this name, or None."""
        return next((s for s in self.sources if s.name == name), None)

    def sink(self, name: str) -> SinkSettings | None:
        """The invoicing sink with this name, or None."""
        return next((s for s in self.invoicing if s.name == name), None)
