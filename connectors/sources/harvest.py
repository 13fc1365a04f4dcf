"""Harvest API v2 as a `TimeSource`.

Incremental runs list `updated_since` the cursor (the largest `updated_at` seen) minus a few
minutes of overlap for clock skew; the first run reads what changed in the look-back period.
Harvest deletes entries without a trace, so when the engine asks for a window the adapter lists
it by work date (`from`/`to`) and flags those pages as a snapshot for the engine to diff. Pages
are followed through `links.next` until it is null (Harvest's cursor pagination), never by
computed page numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from connectors.http import BearerAuth, HttpClient, LinkPaginator, PageRequest, paginate
from connectors.sources.records import (
    Batch,
    day,
    flag,
    iso_z,
    items_of,
    mapping,
    number,
    optional_id,
    read_page,
    required,
    text,
    text_id,
    utc,
    with_content_version,
    within_limit,
)
from sync.model import HOUR_UNIT, TimeEntry, to_minor
from sync.ports import DateWindow, FetchRequest, Page
from sync.settings import HarvestSettings

BASE_URL = "https://api.harvestapp.com/v2"
PER_PAGE = 2000  # Harvest's maximum: fewest requests against 100 per 15 s
OVERLAP = dt.timedelta(minutes=5)


def http_client(settings: HarvestSettings, **options: Any) -> HttpClient:
    """The HTTP client Harvest needs; `options` (sleep, clock, retry...) go to `HttpClient`."""
    return HttpClient(
        settings.base_url or BASE_URL,
        name=settings.name,
        auth=BearerAuth(settings.token),
        credential_setting=f"{settings.yaml_path}.token",
        user_agent=settings.user_agent,
        headers={"Harvest-Account-Id": settings.account_id},
        **options,
    )


class HarvestSource:
    """Time entries of one Harvest account."""

    def __init__(self, settings: HarvestSettings, *, http: HttpClient | None = None) -> None:
        self.settings = settings
        self.http = http or http_client(settings)

    @property
    def name(self) -> str:
        """The source's name from the config."""
        return self.settings.name

    def check_connection(self) -> str:
        """One cheap request: who the token belongs to."""
        me = self.http.get_json("/users/me")
        me = me if isinstance(me, dict) else {}
        who = " ".join(str(me.get(k) or "") for k in ("first_name", "last_name")).strip()
        return f"Harvest account {self.settings.account_id}, signed in as {who or me.get('id')}"

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        """What changed since the cursor, then the asked window as a snapshot."""
        stored = _cursor_time(request.cursor)
        lookback = dt.timedelta(days=self.settings.lookback_days)
        since = stored - OVERLAP if stored else request.now - lookback
        newest = stored
        params = {"per_page": PER_PAGE, "updated_since": iso_z(since)}
        for batch, spent, _last in self._pages(params):
            # The running max rides on every page: pages commit in order, so the cursor
            # never passes an entry that is not committed yet (I6).
            for entry in batch.entries:
                stamp = utc(entry.raw["updated_at"], "updated_at")
                newest = stamp if newest is None or stamp > newest else newest
            cursor = iso_z(newest) if newest else None
            yield Page(batch.entries, batch.invalid, cursor=cursor, requests=spent)
        if request.window is not None:
            yield from self._snapshot(request.window)

    def _snapshot(self, window: DateWindow) -> Iterator[Page]:
        params = {
            "per_page": PER_PAGE,
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
        }
        for batch, spent, last in self._pages(params):
            yield Page(
                batch.entries,
                batch.invalid,
                snapshot=window,
                snapshot_complete=last,
                requests=spent,
            )

    def _pages(self, params: Mapping[str, Any]) -> Iterator[tuple[Batch, int, bool]]:
        """Each page of a listing as (records read, requests spent, is it the last page)."""
        counted = self.http.requests_made
        first = PageRequest("GET", "/time_entries", params)
        for page in paginate(self.http, first, LinkPaginator()):
            records = items_of(page.payload, "time_entries", f"{self.name}: page {page.number}")
            batch = read_page(self.name, records, page.number, self._entry, date_of=_spent)
            spent, counted = self.http.requests_made - counted, self.http.requests_made
            yield batch, spent, page.last

    def _entry(self, raw: Mapping[str, Any]) -> TimeEntry:
        client = mapping(raw.get("client"), "client")
        project = mapping(raw.get("project"), "project")
        task = mapping(raw.get("task"), "task")
        user = mapping(raw.get("user"), "user")
        running = flag(raw.get("is_running"), "is_running")
        rate = raw.get("billable_rate")
        start = None
        if running and raw.get("timer_started_at") and raw.get("hours_without_timer") == 0:
            # Only the running segment exists, so the timer's start is the entry's start.
            start = utc(raw["timer_started_at"], "timer_started_at")
        _checked_stamp(required(raw, "updated_at"))  # the cursor's stamp: read it now
        entry = TimeEntry(
            source=self.name,
            external_id=text_id(required(raw, "id")),
            version="",
            spent_date=day(required(raw, "spent_date"), "spent_date"),
            seconds=to_minor(number(required(raw, "hours"), "hours"), HOUR_UNIT),
            billable=flag(raw.get("billable"), "billable", default=True),
            start=start,
            running=running,
            user_id=optional_id(user.get("id"), "user.id"),
            user_name=text(user.get("name"), "user.name") or None,
            client_id=optional_id(client.get("id"), "client.id"),
            client_name=text(client.get("name"), "client.name") or None,
            project_id=optional_id(project.get("id"), "project.id"),
            project_name=text(project.get("name"), "project.name") or None,
            task_id=optional_id(task.get("id"), "task.id"),
            task_name=text(task.get("name"), "task.name") or None,
            description=text(raw.get("notes"), "notes"),
            rate=None if rate is None else number(rate, "billable_rate"),
            rate_currency=text(client.get("currency"), "client.currency") or None,
            raw=dict(raw),
        )
        return with_content_version(within_limit(entry, self.settings))


def _spent(raw: Mapping[str, Any]) -> Any:
    return raw.get("spent_date")


def _checked_stamp(value: Any) -> str:
    """`updated_at` exactly as Harvest wrote it (the cursor), once known to be a valid time."""
    utc(value, "updated_at")
    return str(value)


def _cursor_time(cursor: str | None) -> dt.datetime | None:
    """The stored cursor as an aware time; an unreadable one counts as none (first run)."""
    if not cursor:
        return None
    try:
        parsed = dt.datetime.fromisoformat(cursor)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
