"""Toggl Track as a `TimeSource`.

`scope: workspace` (the default) reads the whole team through Reports v3, which has no
updated-since filter and hides deletions: each run re-reads a short recent window as a snapshot
(`connectors.sources.windows`) and, when asked, the look-back window. `scope: me` reads the token
owner's entries through v9 `since`, which reports edits and deletions (`server_deleted_at`).
Quotas are tiny (30 requests an hour on Free), so project and client names are fetched only
when an entry of the run references a project, once per run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from connectors.http import (
    BasicAuth,
    HeaderRowPaginator,
    HttpClient,
    Outcome,
    PageNumberPaginator,
    PageRequest,
    paginate,
)
from connectors.sources.projects import ProjectDirectory, ProjectInfo, ProjectListing, load_projects
from connectors.sources.records import (
    Batch,
    flag,
    items_of,
    local_date,
    moment,
    optional_id,
    read_page,
    read_record,
    required,
    text,
    text_id,
    utc,
    whole,
    with_content_version,
    within_limit,
    zone,
)
from connectors.sources.windows import PlannedWindow, plan_windows, snapshot_pages
from sync.model import TimeEntry
from sync.ports import ConnectorError, DateWindow, FetchRequest, Page
from sync.settings import TogglSettings

BASE_URL = "https://api.track.toggl.com"  # v9 under /api/v9, Reports v3 under /reports/api/v3
V9, REPORTS = "/api/v9", "/reports/api/v3"
# Reports v3 documents no maximum page_size (unconfirmed); paging follows X-Next-Row-Number
# alone, so a server that caps the size lower still pages correctly.
PAGE_SIZE = 1000
PROJECTS_PER_PAGE = 200  # the v9 maximum
MAX_REPORT_DAYS = 364  # Reports refuse ranges over a year; each request adds a day each side
ME_MAX_AGE = dt.timedelta(days=89)  # v9 refuses windows older than about 90 days
OVERLAP_SECONDS = 300  # clock skew between Toggl's `at` and its `since` filter


def http_client(settings: TogglSettings, **options: Any) -> HttpClient:
    """The HTTP client Toggl needs (402 is a quota); `options` go to `HttpClient`."""
    base = (settings.base_url or BASE_URL).rstrip("/")
    for suffix in (V9, REPORTS):  # accept a base written with an API path
        base = base.removesuffix(suffix)
    return HttpClient(
        base,
        name=settings.name,
        auth=BasicAuth(settings.token, "api_token"),
        credential_setting=f"{settings.yaml_path}.token",
        status_overrides={402: Outcome.QUOTA},
        **options,
    )


class TogglSource:
    """Time entries of a Toggl workspace (Reports v3) or of the token's owner (v9)."""

    def __init__(self, settings: TogglSettings, *, http: HttpClient | None = None) -> None:
        self.settings = settings
        self.http = http or http_client(settings)
        self.projects = ProjectDirectory(self._load_projects)
        self.zone = zone(settings.timezone)

    @property
    def name(self) -> str:
        """The source's name from the config."""
        return self.settings.name

    def check_connection(self) -> str:
        """One cheap request the token must be valid for."""
        if self.settings.scope == "me":
            since = int(dt.datetime.now(dt.UTC).timestamp()) - 3600
            self.http.get_json(f"{V9}/me/time_entries", {"since": since})
            return "Toggl Track: token accepted for its owner's time entries"
        clients = self.http.get_json(f"{V9}/workspaces/{self._workspace()}/clients")
        return f"Toggl Track workspace {self._workspace()}: {len(clients or [])} clients"

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        """`me`: what changed since the cursor; workspace: the recent window. Then the window
        asked for, as a snapshot.
        """
        self.projects.new_run()
        if self.settings.scope == "me":
            yield from self._fetch_me(request)
            return
        lookback = self.settings.lookback_days
        planned = plan_windows(request, lookback_days=lookback, max_days=MAX_REPORT_DAYS)
        yield from snapshot_pages(planned, self._read_report, lambda: self.http.requests_made)

    # -- workspace scope: Reports v3 ---------------------------------------------------------

    def _workspace(self) -> str:
        if not self.settings.workspace_id:
            raise ConnectorError(
                f"{self.name}: scope workspace needs {self.settings.yaml_path}.workspace_id",
                kind="config",
            )
        return self.settings.workspace_id

    def _read_report(self, plan: PlannedWindow) -> Iterator[Batch]:
        workspace = self._workspace()
        body = {
            "start_date": plan.request_start.isoformat(),
            "end_date": plan.request_end.isoformat(),
            "page_size": PAGE_SIZE,
            "order_by": "date",
            "order_dir": "asc",
        }
        path = f"{REPORTS}/workspace/{workspace}/search/time_entries"
        for page in paginate(self.http, PageRequest("POST", path, {}, body), HeaderRowPaginator()):
            batch = Batch()
            rows = items_of(page.payload, None, f"{self.name}: report page {page.number}")
            for where, raw in _flatten(rows):
                locator = f"page {page.number} {where}"
                batch.add(
                    read_record(self.name, raw, locator, self._report_entry, date_of=self._day)
                )
            enriched = self.projects.enrich(batch.entries, lambda _entry: workspace)
            batch.entries = [with_content_version(entry) for entry in enriched]
            yield batch

    def _report_entry(self, raw: Mapping[str, Any]) -> TimeEntry:
        cents = raw.get("hourly_rate_in_cents")
        entry = dataclasses.replace(
            self._common(raw, seconds_key="seconds"),
            user_name=text(raw.get("username"), "username") or None,
            rate=None if cents is None else Decimal(whole(cents, "hourly_rate_in_cents")) / 100,
            rate_currency=text(raw.get("currency"), "currency") or None,
        )
        return within_limit(entry, self.settings)

    # -- me scope: v9 ------------------------------------------------------------------------

    def _fetch_me(self, request: FetchRequest) -> Iterator[Page]:
        stored = int(request.cursor) if request.cursor and request.cursor.isdigit() else None
        lookback = request.now - dt.timedelta(days=self.settings.lookback_days)
        since = int(lookback.timestamp()) if stored is None else stored - OVERLAP_SECONDS
        since = max(since, int((request.now - ME_MAX_AGE).timestamp()))
        counted = self.http.requests_made
        batch = self._read_v9({"since": since})
        stamps = [int(utc(e.raw["at"], "at").timestamp()) for e in batch.entries]
        newest = max([*stamps, stored or 0])
        cursor = str(newest) if newest else None
        spent, counted = self.http.requests_made - counted, self.http.requests_made
        yield Page(batch.entries, batch.invalid, cursor=cursor, requests=spent)
        if request.window is None:
            return
        # Only the part v9 still serves can be a snapshot; older days are left alone.
        first_day = (request.now - ME_MAX_AGE).date() + dt.timedelta(days=1)
        if request.window.end < first_day:
            return
        plan = PlannedWindow(DateWindow(max(request.window.start, first_day), request.window.end))
        # end_date one more day out: whether v9 reads it inclusively is unconfirmed.
        end = plan.request_end + dt.timedelta(days=1)
        batch = self._read_v9(
            {"start_date": plan.request_start.isoformat(), "end_date": end.isoformat()}
        )
        spent = self.http.requests_made - counted
        yield Page(
            batch.entries,
            batch.invalid,
            snapshot=plan.window,
            snapshot_complete=True,
            requests=spent,
        )

    def _read_v9(self, params: Mapping[str, Any]) -> Batch:
        answer = self.http.get_json(f"{V9}/me/time_entries", params)
        records = items_of(answer, None, f"{self.name}: me/time_entries")
        batch = read_page(self.name, records, 1, self._v9_entry, date_of=self._day)
        enriched = self.projects.enrich(batch.entries, self._entry_workspace)
        # Versioned once the project's name and client are known: they route the entry too.
        batch.entries = [with_content_version(entry) for entry in enriched]
        return batch

    def _v9_entry(self, raw: Mapping[str, Any]) -> TimeEntry:
        entry = dataclasses.replace(
            self._common(raw, seconds_key="duration"),
            deleted=raw.get("server_deleted_at") is not None,
            tags=tuple(text(tag, "tags") for tag in raw.get("tags") or ()),
        )
        return within_limit(entry, self.settings)

    def _entry_workspace(self, entry: TimeEntry) -> str:
        found = entry.raw.get("workspace_id", entry.raw.get("wid"))
        return str(found) if found is not None else (self.settings.workspace_id or "")

    # -- shared ------------------------------------------------------------------------------

    def _common(self, raw: Mapping[str, Any], *, seconds_key: str) -> TimeEntry:
        """The fields v9 entries and report entries share (v9's legacy names accepted)."""
        start = moment(required(raw, "start"), "start")
        stop = raw.get("stop")
        seconds = whole(required(raw, seconds_key), seconds_key)
        running = stop is None or seconds < 0  # a running timer has a negative duration
        return TimeEntry(
            source=self.name,
            external_id=text_id(required(raw, "id")),
            version=_stamp(required(raw, "at")),  # replaced by the content version, once enriched
            # The configured zone's day, whatever offset Toggl wrote: statements count by it.
            spent_date=start.astimezone(self.zone).date(),
            seconds=0 if running else seconds,
            billable=flag(raw.get("billable"), "billable"),
            start=start.astimezone(dt.UTC),
            stop=None if stop is None else utc(stop, "stop"),
            running=running,
            user_id=optional_id(_either(raw, "user_id", "uid"), "user_id"),
            project_id=optional_id(_either(raw, "project_id", "pid"), "project_id"),
            task_id=optional_id(_either(raw, "task_id", "tid"), "task_id"),
            # Reports give only tag_ids (names need an endpoint api-facts does not list), so
            # the ids stand in for tags: a budget's `tags` rules name them by id here.
            tags=tuple(str(tag) for tag in raw.get("tag_ids") or () if tag is not None),
            description=text(raw.get("description"), "description"),
            raw=dict(raw),
        )

    def _day(self, raw: Mapping[str, Any]) -> Any:
        return local_date(raw.get("start"), self.zone)

    def _load_projects(self, workspace: str, wanted: frozenset[str]) -> Mapping[str, ProjectInfo]:
        per_page = {"page": 1, "per_page": PROJECTS_PER_PAGE}
        listing = ProjectListing(
            projects=PageRequest("GET", f"{V9}/workspaces/{workspace}/projects", per_page),
            projects_pages=PageNumberPaginator(PROJECTS_PER_PAGE),
            client_keys=("client_id", "cid"),
            clients=PageRequest("GET", f"{V9}/workspaces/{workspace}/clients"),
        )
        return load_projects(self.http, listing, wanted)


def _either(raw: Mapping[str, Any], key: str, legacy: str) -> Any:
    value = raw.get(key)
    return raw.get(legacy) if value is None else value


def _stamp(value: Any) -> str:
    """`at` exactly as Toggl wrote it (the cursor's stamp), once known to be a valid time."""
    utc(value, "at")
    return str(value)


def _flatten(rows: list[Any]) -> Iterator[tuple[str, Any]]:
    """Each entry of grouped report rows, merged with its row's fields (user, project, ...)."""
    for row_no, row in enumerate(rows, 1):
        inner = row.get("time_entries") if isinstance(row, dict) else None
        if not isinstance(inner, list):
            yield f"row {row_no}", row  # not grouped: read the row itself as the entry
            continue
        shared = {k: v for k, v in row.items() if k != "time_entries"}
        for item_no, item in enumerate(inner, 1):
            yield (
                f"row {row_no} entry {item_no}",
                ({**shared, **item} if isinstance(item, dict) else item),
            )
