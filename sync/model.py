"""Domain records and exact money: the vocabulary every other module speaks.

Nothing here does I/O. Money is `Decimal` quantised to the currency's ISO 4217 minor unit and
stored as integer minor units; durations are integer seconds, so an hours budget is exact too.
The ledger keeps every amount as an integer in its budget's *unit*: minor units of the currency
for a money budget, seconds for an hours budget (`HOUR_UNIT`).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

HOUR_UNIT = "HOUR"
SECONDS_PER_HOUR = 3600

# ISO 4217 currencies whose minor unit is not 2 digits. Every other known code has 2.
_MINOR_DIGITS_EXCEPTIONS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip

# Active ISO 4217 codes with two minor digits (the common case), so a typo such as "EURO" or
# "USDD" is caught instead of silently treated as a two-digit currency.
_TWO_DIGIT_CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP
    BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT
    LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO
    NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS
    SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UZS VED VES WST XCD XCG
    YER ZAR ZMW ZWG ZWL""".split()
)


class UnknownCurrency(ValueError):
    """A currency code that is not an active ISO 4217 code."""


def is_known_currency(code: str) -> bool:
    """True for an active ISO 4217 code (upper case, as written in the config)."""
    return code in _TWO_DIGIT_CURRENCIES or code in _MINOR_DIGITS_EXCEPTIONS


def minor_digits(unit: str) -> int:
    """Digits after the decimal point of `unit`'s minor unit; hours are kept in seconds."""
    if unit == HOUR_UNIT:
        return 0
    if unit in _MINOR_DIGITS_EXCEPTIONS:
        return _MINOR_DIGITS_EXCEPTIONS[unit]
    if unit in _TWO_DIGIT_CURRENCIES:
        return 2
    raise UnknownCurrency(f"unknown currency {unit!r}: use an ISO 4217 code such as EUR or JPY")


def quantize_money(value: Decimal, currency: str) -> Decimal:
    """Round `value` half-up to `currency`'s minor unit: the one place money is rounded."""
    exponent = Decimal(1).scaleb(-minor_digits(currency))
    return value.quantize(exponent, rounding=ROUND_HALF_UP)


def to_minor(value: Decimal, unit: str) -> int:
    """Convert a decimal amount in `unit` (currency, or hours) to integer minor units.

    Money is rounded half-up to the minor unit; hours become whole seconds (half-up).
    """
    if unit == HOUR_UNIT:
        return int((value * SECONDS_PER_HOUR).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return int(quantize_money(value, unit).scaleb(minor_digits(unit)))


def from_minor(minor: int, unit: str) -> Decimal:
    """Integer minor units back to a decimal amount in `unit` (seconds -> hours for hours).

    Hours print with two decimals when exact (any multiple of 36 seconds) and six otherwise,
    so a sum of displayed hours never silently disagrees with the exact ledger.
    """
    if unit == HOUR_UNIT:
        hours = Decimal(minor) / SECONDS_PER_HOUR
        two = hours.quantize(Decimal("0.01"))
        return two if two * SECONDS_PER_HOUR == minor else hours.quantize(Decimal("0.000001"))
    return Decimal(minor).scaleb(-minor_digits(unit))


def shown_amount(minor: int, unit: str) -> Decimal:
    """An amount as the read commands show it: money exactly, hours to two decimals (half away
    from zero, as the statement shows them). The ledger keeps whole seconds; a view that shows
    several figures that must add up derives them from rounded running totals (see
    `sync.views.reports`), never by rounding each figure on its own."""
    if unit == HOUR_UNIT:
        hundredths = (Decimal(minor) * 100 / SECONDS_PER_HOUR).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return hundredths.scaleb(-2)
    return from_minor(minor, unit)


def format_amount(minor: int, unit: str) -> str:
    """The decimal string of an amount, e.g. "1234.50" for EUR, "12" for JPY, "1.25" hours."""
    return str(from_minor(minor, unit))


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """Parse a decimal from a string (never a float); raises ValueError with a short reason."""
    if isinstance(text, (bool, float)):
        raise ValueError('use a quoted decimal such as "95.00", not a floating-point number')
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


@dataclass(frozen=True, slots=True)
class TimeEntry:
    """One time entry as a tracker reports it, normalised; the unit of work of a sync.

    `external_id` is the tracker's own id as a string (CSV exports derive one from the row's
    content). `version` changes whenever the tracker changes the entry (its updated-at stamp, or
    a content hash), so an unchanged entry is skipped cheaply. `seconds` is the exact duration;
    `start`/`stop` are timezone-aware UTC when the tracker gives them. `raw` is the payload as
    received, kept for audit. `rate` is the tracker's billable rate, used by `rate: from_source`.
    """

    source: str
    external_id: str
    version: str
    spent_date: dt.date
    seconds: int
    billable: bool = True
    start: dt.datetime | None = None
    stop: dt.datetime | None = None
    running: bool = False
    deleted: bool = False
    user_id: str | None = None
    user_name: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    rate: Decimal | None = None
    rate_currency: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The id an earlier release gave this entry (CSV rows without an id column): an entry
    # stored under it is renamed to `external_id`, keeping its postings and decisions.
    former_id: str | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record a source could not turn into a `TimeEntry`: kept with its reason, never posted.

    `locator` says where it came from ("time_entries.csv line 14", "page 3 item 7");
    `external_id` is set when the record still names its id, so an invalid new version never
    counts as a deletion of the valid one before it. `spent_date` is set when it could be read,
    so a snapshot diff can leave that day alone.
    """

    source: str
    locator: str
    reason: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    external_id: str | None = None
    spent_date: dt.date | None = None


class EntryStatus(enum.StrEnum):
    """The states an entry can be in; their values are what JSON and SQL hold."""

    DEDUCTED = "deducted"
    PENDING = "pending"
    EXCLUDED = "excluded"
    # Routed work with no usable price (`rate: from_source` and no rate, or one in another
    # currency): not charged, and never silent; it is charged once a version brings a price.
    UNPRICED = "unpriced"
    UNROUTED = "unrouted"
    RUNNING = "running"
    INVALID = "invalid"
    DELETED = "deleted"


class PostingKind(enum.StrEnum):
    """Why a posting exists. Entry postings are debits (negative) or their reversals."""

    OPENING = "opening"
    ENTRY = "entry"
    TOPUP = "topup"
    REFILL_CREDIT = "refill_credit"
    REVERSAL = "reversal"


class RefillStatus(enum.StrEnum):
    """The refill state machine: intent -> issued -> paid | void; failed waits for the operator.

    `intent` means committed but the sink has not confirmed an invoice yet (a completer finishes
    it); `issued` means the invoice exists and was sent; `failed` means the sink refused it.
    """

    INTENT = "intent"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"
    FAILED = "failed"


# The refills that still need the operator or a sink: neither paid nor void.
OPEN_REFILL_STATUSES = frozenset({RefillStatus.INTENT, RefillStatus.ISSUED, RefillStatus.FAILED})


class RunOutcome(enum.StrEnum):
    """How a sync run of one source ended, as `sync_runs.outcome` stores it.

    `running` is recorded while the run is under way; `partial` means it finished with invalid
    records or warnings; `busy` means another process held the source's lease.
    """

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    BUSY = "busy"
