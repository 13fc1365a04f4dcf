"""A fake Toggl Track: v9 `/me/time_entries`, projects and clients, and Reports v3
`search/time_entries`, shaped as api-facts says.

Auth is HTTP Basic with the token as user and `api_token` as password; a bad token gets 403.
v9 `since` (UNIX seconds) returns the owner's entries modified since, deleted ones included with
`server_deleted_at`; `start_date`/`end_date` list by start date (end exclusive) and refuse
windows older than 90 days. Reports group entries into rows (same user, project, task,
billable, description and tags on the same day), page by rows with `page_size` and
`first_row_number`, and send `X-Next-ID` / `X-Next-Row-Number` while more rows follow. A quota
can be set: each request spends one, and an empty quota answers 402 with
`X-Toggl-Quota-Remaining` and `X-Toggl-Quota-Resets-In`.

    with FakeToggl() as fake:
        e = fake.add(start="2026-11-02T09:00:00+00:00", seconds=3600, project_id=fake.PROJECT)
        fake.edit(e["id"], duration=5400)
        fake.delete(e["id"])
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import itertools
from typing import Any

from tests.fakes.base import FakeRequest, FakeService, Reply, serve_forever

TOKEN = "toggl-fake-token-0001"
WORKSPACE_ID = 3134975
ME = 6234512
MAX_REPORT_PAGE = 1000  # the fake's own cap; larger page_size values are clamped, not refused
DEFAULT_REPORT_PAGE = 50


class FakeToggl(FakeService):
    """An in-memory Toggl workspace. `entries` maps id -> the v9 entry (deleted ones too)."""

    PROJECT = 202793181
    CLIENT = 61243453

    def __init__(
        self,
        *,
        token: str = TOKEN,
        workspace_id: int = WORKSPACE_ID,
        now: dt.datetime = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC),
        quota: int | None = None,
        quota_resets_in: int = 1800,
    ) -> None:
        super().__init__()
        self.token = token
        self.workspace_id = workspace_id
        self.now = now.replace(microsecond=0)  # Toggl's `at` is to the second
        self.quota = quota
        self.quota_resets_in = quota_resets_in
        self.entries: dict[int, dict[str, Any]] = {}
        self.users = {ME: "Jane Doe", 6234513: "John Roe"}
        self.clients = [{"id": self.CLIENT, "wid": workspace_id, "name": "ACME Corp"}]
        self.projects = [
            {"id": self.PROJECT, "workspace_id": workspace_id, "client_id": self.CLIENT,
             "name": "Website", "active": True},
            {"id": 202793182, "workspace_id": workspace_id, "client_id": None,
             "name": "Internal", "active": True},
        ]  # fmt: skip
        self._ids = itertools.count(4_000_000_001)
        self._version = 0  # bumped on every change; keys the cache of report rows
        self._rows_cache: dict[tuple[dt.date, dt.date, int], list[dict[str, Any]]] = {}

    # -- data -----------------------------------------------------------------------------------

    def tick(self) -> str:
        """The next `at`: one second after the previous change."""
        self._version += 1
        self.now += dt.timedelta(seconds=1)
        return self.now.isoformat()

    def add(self, *, seconds: int = 3600, **fields: Any) -> dict[str, Any]:
        """Create an entry in v9 shape; `start` defaults to 09:00 UTC on 2026-11-02."""
        with self.lock:
            start = dt.datetime.fromisoformat(fields.pop("start", "2026-11-02T09:00:00+00:00"))
            running = seconds < 0
            entry: dict[str, Any] = {
                "id": int(fields.pop("id", next(self._ids))),
                "workspace_id": self.workspace_id,
                "project_id": None,
                "task_id": None,
                "user_id": ME,
                "billable": True,
                "description": "Work",
                "start": start.isoformat(),
                "stop": None if running else (start + dt.timedelta(seconds=seconds)).isoformat(),
                "duration": -int(start.timestamp()) if running else seconds,
                "tags": [],
                "tag_ids": [],
                "at": self.tick(),
                "server_deleted_at": None,
            }
            entry.update(fields)
            self.entries[entry["id"]] = entry
            return entry

    def edit(self, entry_id: int, **changes: Any) -> dict[str, Any]:
        """Change an entry: `at` moves on; a new `duration` moves `stop`."""
        with self.lock:
            entry = self.entries[entry_id]
            entry.update(changes, at=self.tick())
            if "duration" in changes and changes["duration"] >= 0:
                start = dt.datetime.fromisoformat(entry["start"])
                entry["stop"] = (start + dt.timedelta(seconds=changes["duration"])).isoformat()
            return entry

    def delete(self, entry_id: int) -> None:
        """Delete: v9 `since` still shows it with `server_deleted_at`; lists and reports don't."""
        with self.lock:
            stamp = self.tick()
            self.entries[entry_id].update(server_deleted_at=stamp, at=stamp)

    # -- HTTP -----------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> Reply | None:
        expected = base64.b64encode(f"{self.token}:api_token".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Reply(403, '"Incorrect username and/or password"')
        if self.quota is not None:
            if self.quota <= 0:
                return Reply.json(
                    402,
                    "You have hit your hourly limit for API calls.",
                    {
                        "X-Toggl-Quota-Remaining": "0",
                        "X-Toggl-Quota-Resets-In": str(self.quota_resets_in),
                    },
                )
            self.quota -= 1
        return None

    def handle(self, request: FakeRequest) -> Reply:
        path, ws = request.path, f"/workspaces/{self.workspace_id}"
        if request.method == "GET" and path == "/api/v9/me/time_entries":
            return self._me(request)
        if (
            request.method == "POST"
            and path == f"/reports/api/v3/workspace/{self.workspace_id}/search/time_entries"
        ):
            return self._report(request)
        if request.method == "GET" and path == f"/api/v9{ws}/projects":
            return self._projects(request)
        if request.method == "GET" and path == f"/api/v9{ws}/clients":
            return Reply.json(200, self.clients)
        raise LookupError(path)

    def _live(self) -> list[dict[str, Any]]:
        return [e for e in self.entries.values() if e["server_deleted_at"] is None]

    def _me(self, request: FakeRequest) -> Reply:
        mine = [e for e in self.entries.values() if e["user_id"] == ME]
        if "since" in request.query:
            since = int(request.query["since"])
            if since < int((self.now - dt.timedelta(days=90)).timestamp()):
                return Reply.json(400, "since must be within the last 3 months")
            found = [e for e in mine if _epoch(e["at"]) >= since]
        elif "start_date" in request.query and "end_date" in request.query:
            start = dt.date.fromisoformat(request.query["start_date"])
            end = dt.date.fromisoformat(request.query["end_date"])
            if start < (self.now - dt.timedelta(days=90)).date():
                return Reply.json(400, "start_date must not be earlier than 3 months ago")
            found = [
                e
                for e in mine
                if e["server_deleted_at"] is None and start <= _day(e["start"]) < end
            ]
        else:
            found = [e for e in mine if e["server_deleted_at"] is None]
        found.sort(key=lambda e: e["start"], reverse=True)
        return Reply.json(200, found)

    def _report(self, request: FakeRequest) -> Reply:
        body = request.json() or {}
        try:
            start = dt.date.fromisoformat(body["start_date"])
            end = dt.date.fromisoformat(body["end_date"])
        except (KeyError, TypeError, ValueError):
            return Reply.json(400, "start_date and end_date are required dates")
        if (end - start).days > 366:
            return Reply.json(400, "Maximum allowed date range is 366 days")
        size = min(int(body.get("page_size") or DEFAULT_REPORT_PAGE), MAX_REPORT_PAGE)
        first = int(body.get("first_row_number") or 1)
        key = (start, end, self._version)
        if key not in self._rows_cache:  # computed once per listing, then sliced per page
            self._rows_cache = {key: self._rows(start, end)}
        rows = self._rows_cache[key]
        page = rows[first - 1 : first - 1 + size]
        headers = {}
        if first - 1 + size < len(rows):
            headers = {
                "X-Next-Row-Number": str(first + size),
                "X-Next-ID": str(page[-1]["time_entries"][-1]["id"]),
            }
        return Reply.json(200, page, headers)

    def _rows(self, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        """Live entries with start date in [start, end], grouped as Reports v3 groups them."""
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        entries = sorted(self._live(), key=lambda e: (e["start"], e["id"]))
        for e in entries:
            day = _day(e["start"])
            if not start <= day <= end or e["stop"] is None:
                continue
            key = (day, e["user_id"], e["project_id"], e["task_id"], e["billable"],
                   e["description"], tuple(e["tag_ids"] or ()))  # fmt: skip
            row = groups.get(key)
            if row is None:
                row = groups[key] = {
                    "user_id": e["user_id"],
                    "username": self.users.get(e["user_id"], ""),
                    "project_id": e["project_id"],
                    "task_id": e["task_id"],
                    "billable": e["billable"],
                    "description": e["description"],
                    "tag_ids": e["tag_ids"] or [],
                    "hourly_rate_in_cents": 9500 if e["billable"] else None,
                    "currency": "EUR",
                    "row_number": len(groups) + 1,
                    "time_entries": [],
                }
            row["time_entries"].append(
                {"id": e["id"], "seconds": e["duration"], "start": e["start"],
                 "stop": e["stop"], "at": e["at"]}
            )  # fmt: skip
        return list(groups.values())

    def _projects(self, request: FakeRequest) -> Reply:
        per_page = int(request.query.get("per_page", 50))
        if per_page > 200:
            return Reply.json(400, "per_page must be at most 200")
        page = int(request.query.get("page", 1))
        return Reply.json(200, self.projects[(page - 1) * per_page : page * per_page])


def _epoch(stamp: str) -> int:
    return int(dt.datetime.fromisoformat(stamp).timestamp())


def _day(stamp: str) -> dt.date:
    return dt.datetime.fromisoformat(stamp).date()


def main() -> None:
    """`python -m tests.fakes.toggl_server --port 8002 --entries 100`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--entries", type=int, default=20)
    args = parser.parse_args()
    fake = FakeToggl(now=dt.datetime.now(dt.UTC))
    for n in range(args.entries):
        day = fake.now - dt.timedelta(days=n % 20)
        fake.add(start=day.replace(hour=9, minute=0, second=0, microsecond=0).isoformat(),
                 seconds=900 * (1 + n % 8), project_id=FakeToggl.PROJECT)  # fmt: skip
    serve_forever(fake, args.port, f"token {fake.token}, workspace {fake.workspace_id}")


if __name__ == "__main__":
    main()
