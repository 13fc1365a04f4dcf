"""What the CSV exports look like, and how one row's cells become typed fields.

`csv_export` streams files and turns rows into entries; this module knows the formats. Headers
are matched case-insensitively, in any order, extra columns ignored:

- `generic` (design.md): id, updated_at, date, start, end, hours, user, client, project, task,
  tags (`;`-separated), billable, description; optional user_id, client_id, project_id, task_id,
  rate, currency. `start`/`end` are ISO 8601 date-times or times of day; a start with an offset
  (or `Z`) is an instant, dated by the day it falls on in the configured `timezone`.
- `harvest`, the detailed time report: Date, Client, Project, Task, Notes, Hours, Billable?,
  First Name, Last Name, Billable Rate, Currency ("Euro - EUR").
- `toggl`, the detailed report: User, Email, Client, Project, Task, Description, Billable,
  Start date/time, End date/time, Duration (H:MM:SS), Tags (`,`-separated).
- `clockify`, the detailed report: as Toggl, with Duration (h) (H:MM:SS, preferred because it
  is exact to the second), Duration (decimal), Billable Rate (CUR).

Dates: YYYY-MM-DD (or YYYY/MM/DD), always; D/M/YYYY, M/D/YYYY, D.M.YYYY in the source's
`date_order`, or in `auto` only as far as the dates prove their order (see `Dates`; the caller
decides for the whole file).
Times of day: HH:MM[:SS] with an optional AM/PM. Durations: decimal hours (no exponent, not
negative) or H:MM[:SS], at most the source's `max_hours`. A start or end without an offset is
read as UTC. Booleans: true/false, yes/no, y/n, 1/0, any case.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from sync.model import HOUR_UNIT, to_minor

_UTC = dt.UTC
_CACHE_LIMIT = 4096  # distinct cell texts remembered per file: dates and durations repeat a lot
_BOOLEANS = {"true": True, "yes": True, "y": True, "1": True}
_BOOLEANS.update({"false": False, "no": False, "n": False, "0": False})


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """How one export names its columns: lower-cased header -> field, and what must be there.

    Each item of `required` is met when all fields of one of its alternatives are present.
    `rate_prefix` names a rate column whose header carries the currency ("billable rate (usd)").
    `signature` holds header sets only this export has, to catch a wrong `format:` setting.
    """

    name: str
    columns: Mapping[str, str]
    required: tuple[tuple[tuple[str, ...], ...], ...]
    tag_separator: str = ","
    rate_prefix: str | None = None
    signature: tuple[frozenset[str], ...] = ()

    def header_of(self, field: str) -> str:
        """The header name this format uses for `field`, for messages."""
        return next(header for header, name in self.columns.items() if name == field)


_COMMON = ("client", "project", "task", "tags", "billable", "description", "user", "email")
_TRACKER_TIMES = {"start date": "date", "start time": "start", "end date": "end_date"}
FORMATS: Mapping[str, ExportFormat] = {
    "generic": ExportFormat(
        "generic",
        {name: name for name in (*_COMMON, "id", "updated_at", "date", "start", "end", "hours")}
        | {name: name for name in ("user_id", "client_id", "project_id", "task_id")}
        | {"rate": "rate", "currency": "currency"},
        required=((("date",), ("start",)), (("hours",), ("start", "end"))),
        tag_separator=";",
    ),
    "harvest": ExportFormat(
        "harvest",
        {"date": "date", "client": "client", "project": "project", "task": "task"}
        | {"notes": "description", "hours": "hours", "billable?": "billable"}
        | {"first name": "first_name", "last name": "last_name", "billable rate": "rate"}
        | {"currency": "currency"},
        required=((("date",),), (("hours",),)),
        signature=(frozenset({"billable?", "first name"}),),
    ),
    "toggl": ExportFormat(
        "toggl",
        {name: name for name in _COMMON}
        | _TRACKER_TIMES
        | {"end time": "end", "duration": "duration", "duration (h:mm:ss)": "duration"},
        required=((("date",),), (("duration",), ("start", "end"))),
        signature=(frozenset({"start date", "duration"}), frozenset({"duration (h:mm:ss)"})),
    ),
    "clockify": ExportFormat(
        "clockify",
        {name: name for name in _COMMON}
        | _TRACKER_TIMES
        | {"end time": "end", "duration (h)": "duration", "duration (decimal)": "hours"},
        required=((("date",),), (("duration",), ("hours",), ("start", "end"))),
        rate_prefix="billable rate (",
        signature=(frozenset({"duration (h)"}), frozenset({"duration (decimal)"})),
    ),
}


def guess_format(header: Sequence[str]) -> str | None:
    """The tracker export this header can only belong to, if any (generic has no signature)."""
    lowered = {name.strip().lower() for name in header}
    for fmt in FORMATS.values():
        if any(signature <= lowered for signature in fmt.signature):
            return fmt.name
    return None


class BadRow(Exception):
    """A row that cannot become an entry. `day` is its work date when readable; `head` is set
    when its identity could still be read, so an invalid edit keeps the entry's identity.
    """

    def __init__(self, reason: str, day: dt.date | None = None, head: RowHead | None = None):
        super().__init__(reason)
        self.reason = reason
        self.day = day
        self.head = head


class RowHead(NamedTuple):
    """What identifies a row's work; read first, so a row found invalid later keeps it."""

    day: dt.date
    start: dt.datetime | None
    user: str | None
    client: str | None
    project: str | None
    task: str | None
    description: str
    row_id: str | None


class RowFields(NamedTuple):
    """A fully parsed row. `cells` is the recognised cells but id and updated_at, stripped, in
    field order: what the row says, hashed into its version.
    """

    head: RowHead
    seconds: int
    billable: bool
    stop: dt.datetime | None
    tags: tuple[str, ...]
    rate: Decimal | None
    currency: str | None
    user_id: str | None
    client_id: str | None
    project_id: str | None
    task_id: str | None
    updated_at: str | None
    cells: tuple[str, ...]


DATE_ORDERS = ("auto", "dmy", "mdy", "ymd")


class Dates:
    """Reads dates in one order, and notes what the file's dates prove about their order.

    `order` is "dmy", "mdy" or "ymd", or None while a file in `auto` has proven nothing: then
    a date is read only when it is unambiguous (ISO 8601, year first, or day equal to month),
    and an ambiguous one raises `AmbiguousDate`. Whatever the order, the first date of the file
    that could only be day first (13/02/2026) or only month first (02/13/2026) is remembered
    with its text, so the caller can prove, or refuse, the order of the whole file.
    """

    def __init__(self, order: str | None) -> None:
        self.order = order
        self.day_first_proof: str | None = None  # the first date with a day > 12 first
        self.month_first_proof: str | None = None  # the first date with a day > 12 second
        self.ambiguous: str | None = None  # the first date whose order matters and is unproven
        self.known: dict[str, dt.date] = {}  # dates already read: a file has few distinct days

    def parse(self, text: str) -> dt.date:
        """The date, or ValueError (AmbiguousDate when only the order is missing)."""
        day = self.known.get(text)
        if day is None:
            day = self._parse(text)
            if len(self.known) < _CACHE_LIMIT:
                self.known[text] = day
        return day

    def _parse(self, text: str) -> dt.date:
        if len(text) == 10 and text[4] == "-":
            return dt.date.fromisoformat(text)
        sep = "/" if "/" in text else "."
        parts = text.split(sep)
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(text)
        if len(parts[0]) == 4 and len(parts[2]) <= 2:  # 2026/03/15: year first, never doubtful
            return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
        if len(parts[2]) != 4:
            raise ValueError(text)
        first, second, year = int(parts[0]), int(parts[1]), int(parts[2])
        if first > 12 >= second and self.day_first_proof is None:
            self.day_first_proof = text
        if second > 12 >= first and self.month_first_proof is None:
            self.month_first_proof = text
        order = self.order
        if order is None:
            if first > 12 >= second:
                order = "dmy"
            elif second > 12 >= first or first == second:
                order = "mdy"
            else:
                if self.ambiguous is None:
                    self.ambiguous = text
                raise AmbiguousDate(text)
        if order == "dmy":
            return dt.date(year, second, first)
        if order == "mdy":
            return dt.date(year, first, second)
        raise ValueError(text)  # ymd: a date with the year last is not in the set order


_DATE_FORMS = {
    "dmy": "or D/M/YYYY as date_order says",
    "mdy": "or M/D/YYYY as date_order says",
    "ymd": "or YYYY/MM/DD as date_order says",
}


class AmbiguousDate(ValueError):
    """A date that reads both ways (03/04/2026) in a file whose order is not known."""


def is_clock(text: str) -> bool:
    """A time of day alone ("09:00:00", "9:00 PM"), as opposed to a full date-time."""
    return len(text) <= 11 and ":" in text and "-" not in text and "/" not in text


def parse_clock(text: str) -> dt.time:
    """HH:MM[:SS] with an optional AM/PM, or ValueError."""
    if len(text) == 8 and text[2] == ":" and text[5] == ":":
        return dt.time.fromisoformat(text)
    meridiem = text[-2:].upper()
    if meridiem in ("AM", "PM"):
        text = text[:-2].rstrip()
    parts = [int(part) for part in text.split(":")]
    if len(parts) not in (2, 3):
        raise ValueError(text)
    hour = parts[0]
    if meridiem in ("AM", "PM"):
        if not 1 <= hour <= 12:
            raise ValueError(text)
        hour = hour % 12 + (12 if meridiem == "PM" else 0)
    return dt.time(hour, parts[1], parts[2] if len(parts) == 3 else 0)


def currency_code(text: str) -> str | None:
    """ "EUR", or Harvest's "Euro - EUR", to "EUR"; anything else is not a code."""
    code = text.rpartition(" - ")[2].strip().upper()
    return code if len(code) == 3 and code.isalpha() else None


# The fields a row is read into, in the order `RowParser.parse` unpacks them.
_PICKED = (
    "date", "start", "end", "end_date", "duration", "hours", "user", "email", "first_name",
    "last_name", "client", "project", "task", "description", "tags", "billable", "rate",
    "currency", "user_id", "client_id", "project_id", "task_id", "id", "updated_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DurationLimit:
    """The longest entry a source may charge (`max_hours`); `setting` names it in reasons."""

    hours: Decimal
    setting: str

    @property
    def seconds(self) -> int:
        return to_minor(self.hours, HOUR_UNIT)

    def reason(self, seconds: int) -> str:
        hours = (Decimal(seconds) / 3600).quantize(Decimal("0.01"))
        return f"{hours} hours is more than {self.setting} ({self.hours}): not charged"


class RowParser:
    """Turns one record's cells into `RowFields` for a format, or raises `BadRow` saying why.

    Cells are stripped once into a list with one extra empty cell at the end, so a column the
    file lacks (index -1) reads as ""; one `itemgetter` call then picks every field. That and
    the caches of repeated dates, durations and times keep a row to a few microseconds.
    """

    def __init__(
        self,
        fmt: ExportFormat,
        header: Sequence[str],
        decimal_comma: bool,
        dates: Dates,
        limit: DurationLimit | None = None,
        zone: dt.tzinfo = _UTC,
    ):
        self.index: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.rate_currency: str | None = None
        for position, name in enumerate(cell.strip().lower() for cell in header):
            field = fmt.columns.get(name)
            if field is None and fmt.rate_prefix and name.startswith(fmt.rate_prefix):
                field = "rate"
                self.rate_currency = currency_code(name[len(fmt.rate_prefix) :].rstrip(")"))
            if field is not None and field not in self.index:
                self.index[field] = position
                self.labels[field] = header[position].strip()
        self.width = len(header)
        self.dates = dates
        self.limit = limit
        self.zone = zone  # dates instants: the same instant is one day whatever its offset
        self._max_seconds = limit.seconds if limit is not None else 1 << 62
        self.decimal_comma = decimal_comma
        self.tag_separator = fmt.tag_separator
        self.has_billable = "billable" in self.index
        self.split_name = "first_name" in self.index or "last_name" in self.index
        self._durations: dict[str, int] = {}
        self._clocks: dict[str, dt.time] = {}
        self._pick = operator.itemgetter(*(self.index.get(name, -1) for name in _PICKED))
        # In field order, so a re-export with its columns moved keeps every version; the two
        # trailing -1 make itemgetter return a tuple however few columns are recognised.
        # The export's id and updated_at are not content: the id is the identity, and a stamp
        # that did not move must not hide an edit (nor a touched stamp make a new version).
        content = sorted(set(self.index) - {"id", "updated_at"})
        recognised = [self.index[field] for field in content] + [-1, -1]
        self._recognised = operator.itemgetter(*recognised)

    def missing(self, fmt: ExportFormat) -> list[str]:
        """The required columns this header lacks, as header names ("Hours", "start+end")."""
        return [
            " or ".join("+".join(fmt.header_of(field) for field in alt) for alt in need)
            for need in fmt.required
            if not any(all(field in self.index for field in alt) for alt in need)
        ]

    def day_of(self, row: list[str]) -> dt.date | None:
        """The row's work date if readable, else None; reads only the date (or start) cell."""
        date_index, start_index = self.index.get("date", -1), self.index.get("start", -1)
        width = len(row)
        text = row[date_index].strip() if 0 <= date_index < width else ""
        try:
            if text:
                return self.dates.parse(text)
            start = row[start_index].strip() if 0 <= start_index < width else ""
            if start and not is_clock(start):
                moment = dt.datetime.fromisoformat(start)
                return (moment.astimezone(self.zone) if moment.tzinfo else moment).date()
        except ValueError:
            pass
        return None

    def client_of(self, row: list[str]) -> str:
        """The row's client cell, stripped ("" when empty or absent)."""
        index = self.index.get("client", -1)
        return row[index].strip() if 0 <= index < len(row) else ""

    def row_id(self, row: list[str]) -> str | None:
        """The export's own id for this row, when it has one."""
        index = self.index.get("id", -1)
        return (row[index].strip() or None) if 0 <= index < len(row) else None

    def parse(self, row: list[str]) -> RowFields:
        """The row's fields. What identifies the work is read first, so a `BadRow` raised
        after that carries the row's identity (`head`) and work date.
        """
        width = self.width
        if len(row) != width:
            if any(cell.strip() for cell in row[width:]):
                reason = f"row has {len(row)} cells but the header has {width}"
                raise BadRow(reason, self.day_of(row))
            row = (row + [""] * width)[:width]
        cells = [cell.strip() for cell in row]
        cells.append("")
        (
            date_text, start_text, end_text, end_date_text, duration_text, hours_text,
            user, email, first_name, last_name, client, project, task, description,
            tags_text, billable_text, rate_text, currency_text,
            user_id, client_id, project_id, task_id, row_id, updated_at,
        ) = self._pick(cells)  # fmt: skip
        day = self.dates.known.get(date_text) if date_text else None
        if day is None and date_text:
            day = self._date(date_text, "date")
        start: dt.datetime | None = None
        if start_text:
            start, local_day = self._moment(start_text, day, "start")
            day = day or local_day
        if day is None:
            raise BadRow(f"{self.labels.get('date', 'date')} is empty")
        if self.split_name:
            user = f"{first_name} {last_name}".strip()
        head = RowHead(
            day,
            start,
            user or email or None,
            client or None,
            project or None,
            task or None,
            description,
            row_id or None,
        )
        try:
            stop = self._stop(end_text, end_date_text, head) if end_text else None
            if duration_text or hours_text:
                text = duration_text or hours_text
                seconds = self._durations.get(text)
                if seconds is None:
                    seconds = self._duration(text, "duration" if duration_text else "hours")
            else:
                seconds = self._elapsed(start, stop)
            if seconds > self._max_seconds and self.limit is not None:
                raise BadRow(self.limit.reason(seconds))
            billable = self._flag(billable_text) if self.has_billable else True
            tags: tuple[str, ...] = ()
            if tags_text:
                tags = tuple(filter(None, map(str.strip, tags_text.split(self.tag_separator))))
            rate: Decimal | None = None
            currency: str | None = None
            if rate_text:
                rate = self._number(rate_text, "rate")
                currency = currency_code(currency_text) or self.rate_currency
        except BadRow as bad:
            raise BadRow(bad.reason, day, head) from None
        return RowFields(
            head,
            seconds,
            billable,
            stop,
            tags,
            rate,
            currency,
            user_id or None,
            client_id or None,
            project_id or None,
            task_id or None,
            updated_at or None,
            self._recognised(cells),
        )

    def _stop(self, end_text: str, end_date_text: str, head: RowHead) -> dt.datetime:
        end_day = self._date(end_date_text, "end_date") if end_date_text else head.day
        stop, _ = self._moment(end_text, end_day, "end")
        if head.start and stop < head.start and not end_date_text and is_clock(end_text):
            stop += dt.timedelta(days=1)  # a time-only end before the start: past midnight
        return stop

    def _elapsed(self, start: dt.datetime | None, stop: dt.datetime | None) -> int:
        if start is not None and stop is not None:
            delta = stop - start
            if delta < dt.timedelta(0):
                raise BadRow("end is before start")
            return delta.days * 86400 + delta.seconds
        names = [self.labels[name] for name in ("duration", "hours") if name in self.labels]
        raise BadRow(f"no duration: {' and '.join(names) or 'start and end'} empty")

    def _flag(self, text: str) -> bool:
        flag = _BOOLEANS.get(text)
        if flag is None:
            flag = _BOOLEANS.get(text.lower())
            if flag is None:
                label = self.labels["billable"]
                raise BadRow(f"{label} {text!r} is not true/false, yes/no or 1/0")
        return flag

    def _duration(self, text: str, field: str) -> int:
        """Whole seconds from decimal hours ("1.5") or H:MM[:SS] ("1:30", "01:30:00")."""
        label = self.labels[field]
        if text.startswith("-"):
            raise BadRow(f"{label} {text!r} is negative")
        if ":" not in text:
            seconds = to_minor(self._number(text, field), HOUR_UNIT)
        else:
            parts = text.split(":")
            if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
                raise BadRow(f"{label} {text!r} is not a duration (H:MM or H:MM:SS)")
            numbers = [int(part) for part in parts] + [0]
            if numbers[1] >= 60 or numbers[2] >= 60:
                raise BadRow(f"{label} {text!r} is not a duration (H:MM or H:MM:SS)")
            seconds = numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
        if len(self._durations) < _CACHE_LIMIT:
            self._durations[text] = seconds
        return seconds

    def _number(self, text: str, field: str) -> Decimal:
        """A non-negative finite decimal, never a float (a decimal comma where allowed)."""
        label = self.labels[field]
        if self.decimal_comma and "," in text and "." not in text:
            text = text.replace(",", ".")
        if "e" in text or "E" in text:  # Decimal reads 1e3 as 1000: nobody types hours so
            raise BadRow(f"{label} {text!r} is in exponent notation: write the plain number")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise BadRow(f"{label} {text!r} is not a number") from None
        if not value.is_finite():
            raise BadRow(f"{label} {text!r} is not a number")
        if value < 0:
            raise BadRow(f"{label} {text!r} is negative")
        return value

    def _date(self, text: str, field: str) -> dt.date:
        try:
            return self.dates.parse(text)
        except AmbiguousDate:
            label = self.labels[field]
            reason = f"{label} {text!r} reads as day first or month first: set date_order"
            raise BadRow(reason) from None
        except ValueError:
            label = self.labels[field]
            form = _DATE_FORMS.get(self.dates.order or "", "M/D/YYYY or D.M.YYYY")
            raise BadRow(f"{label} {text!r} is not a date (YYYY-MM-DD, {form})") from None

    def _moment(self, text: str, day: dt.date | None, field: str) -> tuple[dt.datetime, dt.date]:
        """A start or end as an aware UTC datetime, with its work date: the date it names, or for
        an instant (with an offset) the day it falls on in the configured zone.
        """
        label = self.labels[field]
        if is_clock(text):
            if day is None:
                raise BadRow(f"{label} {text!r} is a time of day without a date")
            clock = self._clocks.get(text)
            if clock is None:
                try:
                    clock = parse_clock(text)
                except ValueError:
                    reason = f"{label} {text!r} is not a time (HH:MM[:SS] [AM|PM])"
                    raise BadRow(reason, day) from None
                if len(self._clocks) < _CACHE_LIMIT:
                    self._clocks[text] = clock
            return dt.datetime.combine(day, clock, tzinfo=_UTC), day
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise BadRow(f"{label} {text!r} is not an ISO 8601 date-time", day) from None
        if moment.tzinfo is None:
            return moment.replace(tzinfo=_UTC), moment.date()
        return moment.astimezone(_UTC), moment.astimezone(self.zone).date()
