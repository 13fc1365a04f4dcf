"""A fake Clockify API v1: users, per-user time entries, projects and clients of a workspace,
shaped as api-facts says.

Auth is the `X-Api-Key` header (401 otherwise). Every listing is a bare JSON array paged by
`page` (from 1) and `page-size` (default 50, at most 5000: more is a 400), with no total: a
short page is the last. Time entries filter on `start`/`end` (`yyyy-MM-ddThh:mm:ssZ`, on the
entry's start), newest first, with ISO 8601 durations; a running entry has `end` and `duration`
null. Deleted entries simply vanish.

    with FakeClockify() as fake:
        e = fake.add(start="2026-11-02T09:00:00Z", seconds=5400)
        fake.edit(e["id"], description="Design")
        fake.delete(e["id"])
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from typing import Any

from tests.fakes.base import FakeRequest, FakeService, Reply, serve_forever

API_KEY = "clockify-fake-key-0001"
WORKSPACE_ID = "64a687e29ae1f428e7ebe303"
USER_1 = "5a0ab5acb07987125438b60f"
USER_2 = "5a0ab5acb07987125438b610"
MAX_PAGE_SIZE = 5000


def iso_duration(seconds: int) -> str:
    """`PT1H30M` style, as Clockify writes durations."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


class FakeClockify(FakeService):
    """An in-memory Clockify workspace; `entries` maps id -> the entry as Clockify returns it."""

    prefix = "/api/v1"
    PROJECT = "5b641568b07987035750505e"
    CLIENT = "5b6415a5b07987035750506a"

    def __init__(self, *, api_key: str = API_KEY, workspace_id: str = WORKSPACE_ID) -> None:
        super().__init__()
        self.api_key = api_key
        self.workspace_id = workspace_id
        self.users = [
            {"id": USER_1, "name": "Jane Doe", "email": "jane@example.com", "status": "ACTIVE"},
            {"id": USER_2, "name": "John Roe", "email": "john@example.com", "status": "ACTIVE"},
        ]
        self.clients = [{"id": self.CLIENT, "name": "ACME Corp", "workspaceId": workspace_id}]
        self.projects = [
            {"id": self.PROJECT, "name": "Website", "clientId": self.CLIENT,
             "clientName": "ACME Corp", "workspaceId": workspace_id, "billable": True},
            {"id": "5b641568b07987035750505f", "name": "Internal", "clientId": "",
             "clientName": "", "workspaceId": workspace_id, "billable": False},
        ]  # fmt: skip
        self.entries: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    # -- data -----------------------------------------------------------------------------------

    def add(
        self, *, start: str = "2026-11-02T09:00:00Z", seconds: int | None = 3600, **fields: Any
    ) -> dict[str, Any]:
        """Create an entry; `seconds=None` makes it a running timer."""
        with self.lock:
            begin = dt.datetime.fromisoformat(start)
            end = None if seconds is None else begin + dt.timedelta(seconds=seconds)
            entry: dict[str, Any] = {
                "id": fields.pop("id", f"6540{next(self._ids):020x}"),
                "description": "Work",
                "tagIds": None,
                "userId": USER_1,
                "billable": True,
                "taskId": None,
                "projectId": None,
                "workspaceId": self.workspace_id,
                "timeInterval": {
                    "start": _z(begin),
                    "end": None if end is None else _z(end),
                    "duration": None if seconds is None else iso_duration(seconds),
                },
                "customFieldValues": [],
                "type": "REGULAR",
                "kioskId": None,
                "hourlyRate": {"amount": 9500, "currency": "EUR"},
                "costRate": None,
                "isLocked": False,
            }
            entry.update(fields)
            self.entries[entry["id"]] = entry
            return entry

    def edit(self, entry_id: str, *, seconds: int | None = None, **changes: Any) -> dict[str, Any]:
        """Change an entry; `seconds` re-times it (end and duration)."""
        with self.lock:
            entry = self.entries[entry_id]
            entry.update(changes)
            if seconds is not None:
                begin = dt.datetime.fromisoformat(entry["timeInterval"]["start"])
                entry["timeInterval"] = {
                    "start": entry["timeInterval"]["start"],
                    "end": _z(begin + dt.timedelta(seconds=seconds)),
                    "duration": iso_duration(seconds),
                }
            return entry

    def delete(self, entry_id: str) -> None:
        """Delete without a trace."""
        with self.lock:
            del self.entries[entry_id]

    # -- HTTP -----------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> Reply | None:
        if request.headers.get("x-api-key") != self.api_key:
            return Reply.json(401, {"message": "Full authentication is required", "code": 1000})
        return None

    def handle(self, request: FakeRequest) -> Reply:
        ws = f"/api/v1/workspaces/{self.workspace_id}"
        parts = request.path.removeprefix(ws + "/").split("/")
        if request.method != "GET" or not request.path.startswith(ws + "/"):
            raise LookupError(request.path)
        if parts == ["users"]:
            return self._page(request, self.users)
        if parts == ["projects"]:
            return self._page(request, self.projects)
        if parts == ["clients"]:
            return self._page(request, self.clients)
        if len(parts) == 3 and parts[0] == "user" and parts[2] == "time-entries":
            return self._entries(request, parts[1])
        raise LookupError(request.path)

    def _entries(self, request: FakeRequest, user_id: str) -> Reply:
        try:
            start = _parse(request.query["start"]) if "start" in request.query else None
            end = _parse(request.query["end"]) if "end" in request.query else None
        except ValueError:
            return Reply.json(
                400, {"message": "start/end must be yyyy-MM-ddThh:mm:ssZ", "code": 501}
            )
        found = []
        for entry in self.entries.values():
            begin = _parse(entry["timeInterval"]["start"])
            if entry["userId"] != user_id:
                continue
            if (start is not None and begin < start) or (end is not None and begin > end):
                continue
            found.append(entry)
        found.sort(key=lambda e: (e["timeInterval"]["start"], e["id"]), reverse=True)
        return self._page(request, found)

    def _page(self, request: FakeRequest, items: list[dict[str, Any]]) -> Reply:
        try:
            page = int(request.query.get("page", 1))
            size = int(request.query.get("page-size", 50))
        except ValueError:
            return Reply.json(400, {"message": "page and page-size must be numbers", "code": 501})
        if not 1 <= size <= MAX_PAGE_SIZE or page < 1:
            return Reply.json(400, {"message": "page-size must be between 1 and 5000", "code": 501})
        return Reply.json(200, items[(page - 1) * size : page * size])


def _z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> dt.datetime:
    if not text.endswith("Z") or len(text) != 20:
        raise ValueError(text)
    return dt.datetime.fromisoformat(text)


def main() -> None:
    """`python -m tests.fakes.clockify_server --port 8003 --entries 100`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--entries", type=int, default=20)
    args = parser.parse_args()
    fake = FakeClockify()
    today = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    for n in range(args.entries):
        fake.add(start=_z(today - dt.timedelta(days=n % 20)), seconds=900 * (1 + n % 8),
                 projectId=FakeClockify.PROJECT)  # fmt: skip
    serve_forever(fake, args.port, f"api key {fake.api_key}, workspace {fake.workspace_id}")


if __name__ == "__main__":
    main()
