"""Clockify as a `TimeSource`.

Clockify lists time entries per user and has no modified-since filter, so like Toggl's
workspace scope each run re-reads a recent date window (and, when asked, the look-back window)
for every user of the workspace, as snapshots the engine diffs for deletions
(`connectors.sources.windows`). Entries carry no updated-at stamp: the version is a hash of the
fields that decide what an entry costs and where it is routed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from connectors.http import HeaderAuth, HttpClient, PageNumberPaginator, PageRequest, paginate
from connectors.sources.projects import ProjectDirectory, ProjectInfo, ProjectListing, load_projects
from connectors.sources.records import (
    Batch,
    RecordError,
    flag,
    items_of,
    local_date,
    mapping,
    optional_id,
    read_page,
    required,
    text,
    text_id,
    utc,
    whole,
    within_limit,
    zone,
)
from connectors.sources.windows import PlannedWindow, plan_windows, snapshot_pages
from sync.model import TimeEntry
from sync.ports import FetchRequest, Page
from sync.settings import ClockifySettings

BASE_URL = "https://api.clockify.me/api/v1"
PAGE_SIZE = 5000  # the documented maximum, for entries, users and projects alike
PAGED = {"page": 1, "page-size": PAGE_SIZE}
MAX_WINDOW_DAYS = 366
# Fields that change what an entry costs or where it is routed: their hash is the version.
VERSIONED = ("userId", "projectId", "taskId", "tagIds", "billable", "description",
             "hourlyRate", "timeInterval")  # fmt: skip

_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(value: Any) -> int:
    """Exact seconds of an ISO 8601 duration as Clockify writes it (`PT1H30M`, `P1DT2H`).

    Only days, hours, minutes and whole seconds: years and months have no fixed length, and
    Clockify never writes fractions, so anything else is a broken record.
    """
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT") or value.endswith("T"):
        raise RecordError(f"timeInterval.duration is not an ISO 8601 duration: {value!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def http_client(settings: ClockifySettings, **options: Any) -> HttpClient:
    """The HTTP client Clockify needs; `options` go to `HttpClient`."""
    return HttpClient(
        settings.base_url or BASE_URL,
        name=settings.name,
        auth=HeaderAuth("X-Api-Key", settings.api_key),
        credential_setting=f"{settings.yaml_path}.api_key",
        **options,
    )


class ClockifySource:
    """Time entries of every user of one Clockify workspace."""

    def __init__(self, settings: ClockifySettings, *, http: HttpClient | None = None) -> None:
        self.settings = settings
        self.http = http or http_client(settings)
        self.projects = ProjectDirectory(self._load_projects)
        self._users: dict[str, str] | None = None
        self.zone = zone(settings.timezone)

    @property
    def name(self) -> str:
        """The source's name from the config."""
        return self.settings.name

    @property
    def _workspace_path(self) -> str:
        return f"/workspaces/{self.settings.workspace_id}"

    def check_connection(self) -> str:
        """One cheap request: the first user of the workspace."""
        self.http.get_json(f"{self._workspace_path}/users", {"page": 1, "page-size": 1})
        return f"Clockify workspace {self.settings.workspace_id}: key accepted"

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        """The recent window, then the window asked for, each as a snapshot."""
        self.projects.new_run()
        self._users = None
        lookback = self.settings.lookback_days
        planned = plan_windows(request, lookback_days=lookback, max_days=MAX_WINDOW_DAYS)
        yield from snapshot_pages(planned, self._read_window, lambda: self.http.requests_made)

    def _read_window(self, plan: PlannedWindow) -> Iterator[Batch]:
        if self._users is None:  # once per run, and only when a window is actually read
            self._users = self._list_users()
        end = plan.request_end + dt.timedelta(days=1)  # `end` is a moment: the next midnight
        for user_id in self._users:
            params = {
                "start": f"{plan.request_start.isoformat()}T00:00:00Z",
                "end": f"{end.isoformat()}T00:00:00Z",
                "page": 1,
                "page-size": PAGE_SIZE,
            }
            first = PageRequest(
                "GET", f"{self._workspace_path}/user/{user_id}/time-entries", params
            )
            for page in paginate(self.http, first, PageNumberPaginator(PAGE_SIZE)):
                records = items_of(
                    page.payload, None, f"{self.name}: user {user_id} page {page.number}"
                )
                batch = read_page(self.name, records, page.number, self._entry, date_of=self._day)
                batch.entries = self.projects.enrich(
                    batch.entries, lambda _e: self.settings.workspace_id
                )
                yield batch

    def _list_users(self) -> dict[str, str]:
        first = PageRequest(
            "GET", f"{self._workspace_path}/users", {"page": 1, "page-size": PAGE_SIZE}
        )
        users: dict[str, str] = {}
        for page in paginate(self.http, first, PageNumberPaginator(PAGE_SIZE)):
            for user in items_of(page.payload, None, f"{self.name}: users"):
                if isinstance(user, dict) and user.get("id"):
                    users[str(user["id"])] = str(user.get("name") or "")
        return users

    def _entry(self, raw: Mapping[str, Any]) -> TimeEntry:
        interval = mapping(required(raw, "timeInterval"), "timeInterval")
        start = utc(required(interval, "start"), "timeInterval.start")
        end, duration = interval.get("end"), interval.get("duration")
        running = end is None or duration is None
        rate = mapping(raw.get("hourlyRate"), "hourlyRate")
        cents = rate.get("amount")
        user_id = text_id(required(raw, "userId"), "userId")
        entry = TimeEntry(
            source=self.name,
            external_id=text_id(required(raw, "id")),
            version=_version(raw),
            spent_date=start.astimezone(self.zone).date(),  # the configured zone's day
            seconds=0 if running else parse_duration(duration),
            billable=flag(raw.get("billable"), "billable"),
            start=start,
            stop=None if end is None else utc(end, "timeInterval.end"),
            running=running,
            user_id=user_id,
            user_name=(self._users or {}).get(user_id) or None,
            project_id=optional_id(raw.get("projectId"), "projectId"),
            task_id=optional_id(raw.get("taskId"), "taskId"),
            # tagIds only (names need a tags listing api-facts does not describe), so the ids
            # stand in for tags: a budget's `tags` rules name them by id here.
            tags=tuple(str(tag) for tag in raw.get("tagIds") or () if tag is not None),
            description=text(raw.get("description"), "description"),
            # Clockify keeps rates in cents of the currency (per api-facts).
            rate=None if cents is None else Decimal(whole(cents, "hourlyRate.amount")) / 100,
            rate_currency=text(rate.get("currency"), "hourlyRate.currency") or None,
            raw=dict(raw),
        )
        return within_limit(entry, self.settings)

    def _day(self, raw: Mapping[str, Any]) -> Any:
        return local_date(_start(raw), self.zone)

    def _load_projects(self, workspace: str, wanted: frozenset[str]) -> Mapping[str, ProjectInfo]:
        listing = ProjectListing(
            projects=PageRequest("GET", f"/workspaces/{workspace}/projects", PAGED),
            projects_pages=PageNumberPaginator(PAGE_SIZE),
            client_keys=("clientId",),
            client_name_key="clientName",
            clients=PageRequest("GET", f"/workspaces/{workspace}/clients", PAGED),
            clients_pages=PageNumberPaginator(PAGE_SIZE),
        )
        return load_projects(self.http, listing, wanted)


def _start(raw: Mapping[str, Any]) -> Any:
    interval = raw.get("timeInterval")
    return interval.get("start") if isinstance(interval, dict) else None


def _version(raw: Mapping[str, Any]) -> str:
    """A content hash standing in for the updated-at stamp Clockify does not have."""
    fields = {key: raw.get(key) for key in VERSIONED}
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]
