"""Typed readers for the fields of a tracker's JSON record, shared by the source adapters.

Each reader either returns a clean value (ids as strings, times as aware UTC datetimes,
numbers as Decimal) or raises `RecordError` with a short reason. An adapter converts a whole
record inside `read_record`, which turns that error into an `InvalidRecord` carrying the id and
date when they can still be read, so one bad record never stops the rest of the page, and an
invalid new version is never mistaken for a deletion of the valid one before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sync.model import HOUR_UNIT, InvalidRecord, TimeEntry, to_minor
from sync.ports import ConnectorError
from sync.settings import SourceSettings

_T = TypeVar("_T")


@dataclass(slots=True)
class Batch:
    """What one HTTP page turned into: entries and records that could not be read."""

    entries: list[TimeEntry] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)

    def add(self, read: TimeEntry | InvalidRecord) -> None:
        """Keep a record `read_record` produced, on the side it belongs to."""
        if isinstance(read, TimeEntry):
            self.entries.append(read)
        else:
            self.invalid.append(read)


class RecordError(ValueError):
    """A field of a record is missing or has the wrong type; the text says which."""


def within_limit(entry: TimeEntry, settings: SourceSettings) -> TimeEntry:
    """`entry`, or a `RecordError` when its duration is negative or over the source's
    `max_hours`: such a record is listed as invalid with the reason, never charged.

    A deletion passes whatever its duration, so an absurd entry can still be removed.
    """
    if entry.deleted:
        return entry
    if entry.seconds < 0:
        raise RecordError("duration is negative")
    if entry.seconds > to_minor(settings.max_hours, HOUR_UNIT):
        hours = (Decimal(entry.seconds) / 3600).quantize(Decimal("0.01"))
        setting = f"{settings.yaml_path}.max_hours"
        raise RecordError(
            f"{hours} hours is more than {setting} ({settings.max_hours}): not charged"
        )
    return entry


def content_version(entry: TimeEntry) -> str:
    """The entry's version: a hash of what it says (date, times, duration, who, for whom, what,
    tags, billable, description, rate), never its updated-at stamp alone.

    A tracker may write two versions under one stamp (at a page boundary, or an edit within the
    stamp's second), and the engine skips a record whose version it knows: a stamp-based version
    would keep charging the first. A touch that changes nothing keeps the version.
    """
    fields = (
        entry.spent_date.isoformat(),
        entry.seconds,
        entry.billable,
        entry.start.isoformat() if entry.start else None,
        entry.stop.isoformat() if entry.stop else None,
        entry.running,
        entry.user_id,
        entry.user_name,
        entry.client_id,
        entry.client_name,
        entry.project_id,
        entry.project_name,
        entry.task_id,
        entry.task_name,
        list(entry.tags),
        entry.description,
        None if entry.rate is None else str(entry.rate.normalize()),
        entry.rate_currency,
    )
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def with_content_version(entry: TimeEntry) -> TimeEntry:
    """`entry` with its version set from its content (see `content_version`)."""
    return dataclasses.replace(entry, version=content_version(entry))


def required(raw: Mapping[str, Any], key: str) -> Any:
    """A required field: present and not null."""
    value = raw.get(key)
    if value is None:
        raise RecordError(f"{key} is missing")
    return value


def text_id(value: Any, key: str = "id") -> str:
    """A tracker id (a number or a non-empty string) as a string, as ids are compared."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise RecordError(f"{key} must be a number or a string, not {value!r}")
    return str(value)


def optional_id(value: Any, key: str) -> str | None:
    """An id that may be absent (null, missing or "" for "no project")."""
    return None if value is None or value == "" else text_id(value, key)


def number(value: Any, key: str) -> Decimal:
    """A JSON number (already Decimal or int when parsed with parse_float=Decimal)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RecordError(f"{key} must be a number, not {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise RecordError(f"{key} must be a finite number")
    return result


def whole(value: Any, key: str) -> int:
    """A whole number (durations in seconds, epoch times)."""
    result = number(value, key)
    if result != result.to_integral_value():
        raise RecordError(f"{key} must be a whole number, not {value!r}")
    return int(result)


def flag(value: Any, key: str, default: bool = False) -> bool:
    """A boolean that may be absent."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RecordError(f"{key} must be true or false, not {value!r}")
    return value


def text(value: Any, key: str) -> str:
    """Free text that may be absent (becomes "")."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{key} must be text, not {value!r}")
    return value


def day(value: Any, key: str) -> dt.date:
    """A date written `YYYY-MM-DD`."""
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise RecordError(f"{key} must be a date like 2026-11-02, not {value!r}") from None


def moment(value: Any, key: str) -> dt.datetime:
    """An ISO 8601 timestamp with a zone (`Z` or an offset), as it was given."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise RecordError(f"{key} must be an ISO 8601 time, not {value!r}") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{key} has no time zone: {value!r}")
    return parsed


def zone(name: str) -> dt.tzinfo:
    """The configured time zone (`SourceSettings.timezone`, already validated by the reader)."""
    return dt.UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def local_date(value: Any, where: dt.tzinfo) -> Any:
    """For `read_record`'s `date_of`: the day an instant falls on in the configured zone.

    A value that is no instant with a zone is given back as written, so that its first ten
    characters may still name the date of an invalid record.
    """
    try:
        return moment(value, "start").astimezone(where).date().isoformat()
    except RecordError:
        return value


def utc(value: Any, key: str) -> dt.datetime:
    """An ISO 8601 timestamp with a zone, converted to UTC."""
    return moment(value, key).astimezone(dt.UTC)


def iso_z(when: dt.datetime) -> str:
    """`2026-11-02T10:00:00Z`: UTC to the second, the form every tracker accepts."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mapping(value: Any, key: str) -> Mapping[str, Any]:
    """A nested object that may be absent (becomes empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{key} must be an object, not {value!r}")
    return value


def items_of(payload: Any, key: str | None, where: str) -> list[Any]:
    """The list of records in a page (`payload[key]`, or the payload itself for bare arrays).

    A page that is not shaped like that is a broken response, not a bad record.
    """
    found = payload.get(key) if key is not None and isinstance(payload, dict) else payload
    if not isinstance(found, list):
        raise ConnectorError(f"{where}: expected a list of records", kind="invalid_response")
    return found


def read_record(
    source: str,
    raw: Any,
    locator: str,
    convert: Callable[[Mapping[str, Any]], TimeEntry],
    *,
    date_of: Callable[[Mapping[str, Any]], Any] | None = None,
) -> TimeEntry | InvalidRecord:
    """`convert(raw)`, or an `InvalidRecord` saying why not (with its id and date if readable).

    `date_of` picks the field whose first ten characters are the work date (`spent_date`, or
    a start time's day in the configured zone, see `local_date`).
    """
    if not isinstance(raw, dict):
        return InvalidRecord(source, locator, f"not an object: {raw!r}"[:200], raw={"value": raw})
    try:
        return convert(raw)
    except (RecordError, ArithmeticError) as exc:
        external_id = _try(lambda: text_id(raw.get("id")))
        spent = _try(lambda: day(str(date_of(raw))[:10], "date")) if date_of else None
        return InvalidRecord(source, locator, str(exc), raw, external_id, spent)


def _try(read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except (RecordError, AttributeError, TypeError, KeyError):
        return None


def read_page(
    source: str,
    records: list[Any],
    page_number: int,
    convert: Callable[[Mapping[str, Any]], TimeEntry],
    *,
    date_of: Callable[[Mapping[str, Any]], Any] | None = None,
) -> Batch:
    """Every record of one page, located as "page N item M" when it cannot be read."""
    batch = Batch()
    for index, raw in enumerate(records, 1):
        where = f"page {page_number} item {index}"
        batch.add(read_record(source, raw, where, convert, date_of=date_of))
    return batch
