"""A fake Harvest API v2 (`GET /v2/time_entries`, `/v2/users/me`), shaped as api-facts says.

Auth: `Authorization: Bearer <token>` and `Harvest-Account-Id` (401 / 403 otherwise), and a
`User-Agent` (400 without). Listing filters: `updated_since`, `from`/`to` on spent_date
(inclusive), `is_running`, `user_id`, `client_id`, `project_id`, `task_id`; `per_page` 1..2000
(422 otherwise). Paging is by cursor: `links.next` carries `cursor=` and `page`/`next_page`
are null. A listing is computed once when its first page is asked for, and its pages are cut
from that frozen result, so a 200,000-entry benchmark costs one sort, not one per page; each
entry's JSON is serialised once and reused until the entry changes. Deleted entries vanish
without a trace, as in Harvest.

    with FakeHarvest() as fake:
        e = fake.add(spent_date="2026-11-02", hours="1.5")
        fake.edit(e["id"], hours="2.0")      # bumps updated_at
        fake.delete(e["id"])
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
from collections import OrderedDict
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from tests.fakes.base import FakeRequest, FakeService, Reply, dumps, serve_forever

TOKEN = "harvest-fake-token-0001"
ACCOUNT_ID = "123456"
MAX_PER_PAGE = 2000


class FakeHarvest(FakeService):
    """An in-memory Harvest account; `entries` maps id -> the entry as Harvest returns it."""

    prefix = "/v2"

    def __init__(
        self,
        *,
        token: str = TOKEN,
        account_id: str = ACCOUNT_ID,
        start: dt.datetime = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC),
    ) -> None:
        super().__init__()
        self.token = token
        self.account_id = account_id
        self.entries: dict[int, dict[str, Any]] = {}
        self._json: dict[int, str] = {}
        self._ids = itertools.count(1_000_001)
        self._clock = start
        self._listings: OrderedDict[str, list[int]] = OrderedDict()
        self._listing_ids = itertools.count(1)

    # -- data -----------------------------------------------------------------------------------

    def tick(self) -> str:
        """The next updated_at: one second after the previous change (strictly increasing)."""
        self._clock += dt.timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def advance(self, seconds: float) -> None:
        """Let time pass on the fake's clock (beyond an adapter's overlap, say)."""
        with self.lock:
            self._clock += dt.timedelta(seconds=seconds)

    def add(self, **fields: Any) -> dict[str, Any]:
        """Create an entry (Harvest's full shape); `fields` override the defaults."""
        with self.lock:
            entry_id = int(fields.pop("id", next(self._ids)))
            stamp = self.tick()
            hours = Decimal(str(fields.pop("hours", "1.0")))
            client = {"id": 5735776, "name": "ACME Corp", "currency": "EUR"}
            entry: dict[str, Any] = {
                "id": entry_id,
                "spent_date": "2026-11-02",
                "hours": hours,
                "hours_without_timer": hours,
                "rounded_hours": hours,
                "notes": "Work",
                "is_locked": False,
                "locked_reason": None,
                "is_closed": False,
                "is_billed": False,
                "timer_started_at": None,
                "started_time": None,
                "ended_time": None,
                "is_running": False,
                "billable": True,
                "budgeted": True,
                "billable_rate": Decimal("100.0"),
                "cost_rate": Decimal("50.0"),
                "created_at": stamp,
                "updated_at": stamp,
                "user": {"id": 1782959, "name": "Kim Allen"},
                "client": client,
                "project": {"id": 14307913, "name": "Marketing Website", "code": "MW"},
                "task": {"id": 8083365, "name": "Graphic Design"},
                "user_assignment": {"id": 125068553, "is_project_manager": True},
                "task_assignment": {"id": 155502709, "billable": True},
                "invoice": None,
                "external_reference": None,
            }
            entry.update(fields)
            entry["id"] = entry_id
            self.entries[entry_id] = entry
            self._json.pop(entry_id, None)
            return entry

    def add_many(self, count: int, *, start: dt.date = dt.date(2026, 1, 1)) -> None:
        """`count` entries spread over days from `start` (benchmarks)."""
        for n in range(count):
            self.add(spent_date=(start + dt.timedelta(days=n % 300)).isoformat(), hours="0.25")

    def edit(self, entry_id: int, **changes: Any) -> dict[str, Any]:
        """Change an entry as a user would: `updated_at` moves on."""
        with self.lock:
            entry = self.entries[entry_id]
            if "hours" in changes:
                changes["hours"] = Decimal(str(changes["hours"]))
            entry.update(changes, updated_at=self.tick())
            self._json.pop(entry_id, None)
            return entry

    def delete(self, entry_id: int) -> None:
        """Delete without a trace (Harvest keeps no tombstones)."""
        with self.lock:
            del self.entries[entry_id]
            self._json.pop(entry_id, None)

    # -- HTTP -----------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> Reply | None:
        if not request.headers.get("user-agent"):
            return Reply.json(400, {"error": "bad_request", "error_description": "User-Agent"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply.json(
                401,
                {
                    "error": "invalid_token",
                    "error_description": "The access token provided is expired, revoked, "
                    "malformed or invalid for other reasons.",
                },
            )
        if request.headers.get("harvest-account-id") != self.account_id:
            return Reply.json(403, {"error": "forbidden", "error_description": "Wrong account"})
        return None

    def handle(self, request: FakeRequest) -> Reply:
        if request.method == "GET" and request.path == "/v2/time_entries":
            return self._list(request)
        if request.method == "GET" and request.path == "/v2/users/me":
            return Reply.json(200, {"id": 1782959, "first_name": "Kim", "last_name": "Allen"})
        raise LookupError(request.path)

    def _list(self, request: FakeRequest) -> Reply:
        query = dict(request.query)
        try:
            per_page = int(query.pop("per_page", MAX_PER_PAGE))
        except ValueError:
            per_page = 0
        if not 1 <= per_page <= MAX_PER_PAGE:
            return Reply.json(422, {"message": "per_page must be between 1 and 2000"})
        cursor = query.pop("cursor", None)
        page = query.pop("page", None)
        if cursor is not None:
            listing_key, _, offset_text = cursor.partition(".")
            if listing_key not in self._listings:
                return Reply.json(422, {"message": "Invalid cursor"})
            ids, offset = self._listings[listing_key], int(offset_text)
        else:
            try:
                ids = self._filter(query)
            except ValueError as exc:
                return Reply.json(422, {"message": str(exc)})
            listing_key = str(next(self._listing_ids))
            self._listings[listing_key] = ids
            while len(self._listings) > 32:
                self._listings.popitem(last=False)
            offset = (int(page) - 1) * per_page if page else 0
        # Entries deleted since the listing froze are skipped, as a live service would.
        chunk = [i for i in ids[offset : offset + per_page] if i in self.entries]
        end = offset + per_page
        base = f"{self.base_url}/time_entries"
        params = {**query, "per_page": per_page}
        body = (
            '{"time_entries":['
            + ",".join(self._entry_json(i) for i in chunk)
            + "],"
            + dumps(
                {
                    "per_page": per_page,
                    "total_pages": max(1, math.ceil(len(ids) / per_page)),
                    "total_entries": len(ids),
                    "next_page": None,
                    "previous_page": None,
                    "page": None,
                    "links": {
                        "first": f"{base}?{urlencode(params)}",
                        "next": _link(base, params, listing_key, end) if end < len(ids) else None,
                        "previous": _link(base, params, listing_key, max(0, offset - per_page))
                        if offset
                        else None,
                        "last": None,
                    },
                }
            )[1:]
        )
        return Reply(200, body)

    def _filter(self, query: dict[str, str]) -> list[int]:
        # updated_at is always written `YYYY-MM-DDTHH:MM:SSZ` and spent_date `YYYY-MM-DD`, so
        # the filters compare text: no parsing per entry on 200,000-entry listings.
        since = _z(query["updated_since"]) if "updated_since" in query else None
        start = dt.date.fromisoformat(query["from"]).isoformat() if "from" in query else None
        end = dt.date.fromisoformat(query["to"]).isoformat() if "to" in query else None
        running = query.get("is_running")
        nested = {
            k: query[k] for k in ("user_id", "client_id", "project_id", "task_id") if k in query
        }
        found = []
        for entry in self.entries.values():
            if since is not None and entry["updated_at"] < since:
                continue
            day = entry["spent_date"]
            if (start is not None and day < start) or (end is not None and day > end):
                continue
            if running is not None and entry["is_running"] != (running == "true"):
                continue
            if any(str((entry.get(k[:-3]) or {}).get("id")) != v for k, v in nested.items()):
                continue
            found.append(entry)
        # Harvest lists newest work first.
        found.sort(key=lambda e: (e["spent_date"], e["id"]), reverse=True)
        return [e["id"] for e in found]

    def _entry_json(self, entry_id: int) -> str:
        text = self._json.get(entry_id)
        if text is None:
            text = self._json[entry_id] = dumps(self.entries[entry_id])
        return text


def _link(base: str, params: dict[str, Any], listing_key: str, offset: int) -> str:
    return f"{base}?{urlencode({**params, 'cursor': f'{listing_key}.{offset}'})}"


def _z(text: str) -> str:
    """Any ISO 8601 time as `YYYY-MM-DDTHH:MM:SSZ` in UTC (ValueError when unreadable)."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"updated_since needs a time zone: {text}")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    """`python -m tests.fakes.harvest_server --port 8001 --entries 1000`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--entries", type=int, default=100)
    args = parser.parse_args()
    fake = FakeHarvest()
    fake.add_many(args.entries)
    serve_forever(fake, args.port, f"token {fake.token}, account id {fake.account_id}")


if __name__ == "__main__":
    main()
