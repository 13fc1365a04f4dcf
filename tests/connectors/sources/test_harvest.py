"""Harvest adapter: recorded responses (`responses`) and one run against the local fake."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.http import RetryPolicy
from connectors.sources import harvest
from connectors.sources.harvest import HarvestSource
from connectors.sources.records import content_version
from sync.model import InvalidRecord, TimeEntry
from sync.ports import (
    ConnectorError,
    CredentialsRejected,
    DateWindow,
    FetchRequest,
    Page,
    TemporaryFailure,
)
from sync.settings import HarvestSettings, Secret
from tests.fakes.base import FakeClock
from tests.fakes.harvest_server import FakeHarvest
from tests.support import ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "harvest"
BASE = "https://api.harvestapp.com/v2"
TOKEN = "hv-pat-0123456789abcdef"
NOW = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
UA = "Acme Agency (ops@acme.example)"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def settings(**overrides: Any) -> HarvestSettings:
    values: dict[str, Any] = {
        "yaml_path": "sources[0]",
        "name": "harvest",
        "type": "harvest",
        "account_id": "123456",
        "token": Secret(TOKEN),
        "user_agent": UA,
        "lookback_days": 30,
    }
    return HarvestSettings(**(values | overrides))


def source(clock: FakeClock | None = None, **overrides: Any) -> HarvestSource:
    clock = clock or FakeClock()
    config = settings(**overrides)
    http = harvest.http_client(
        config, sleep=clock.sleep, clock=clock, jitter=lambda: 0.0, retry=RetryPolicy(attempts=3)
    )
    return HarvestSource(config, http=http)


def query(**params: str) -> list[Any]:
    return [matchers.query_param_matcher(params)]


def fetch(
    src: HarvestSource, cursor: str | None = None, window: DateWindow | None = None
) -> list[Page]:
    return list(src.fetch(FetchRequest(cursor=cursor, window=window, now=NOW)))


FIRST_QUERY = {"per_page": "2000", "updated_since": "2026-10-03T18:00:00Z"}
PAGE2_QUERY = {
    "cursor": "eyJhZnRlciI6eyJpZCI6NjM2NzA4NzIzfX0",
    "per_page": "2000",
    "updated_since": "2026-10-03T18:00:00Z",
}


@responses.activate(assert_all_requests_are_fired=True)
def test_first_run_reads_the_lookback_period_following_links_next() -> None:
    responses.get(
        f"{BASE}/time_entries", body=fixture("time_entries_page1.json"), match=query(**FIRST_QUERY)
    )
    responses.get(
        f"{BASE}/time_entries", body=fixture("time_entries_page2.json"), match=query(**PAGE2_QUERY)
    )

    pages = fetch(source())

    assert [[e.external_id for e in p.entries] for p in pages] == [
        ["636709355", "636708723"],
        ["636708100"],
    ]
    # The running max of updated_at rides on each page; it never goes back.
    assert [p.cursor for p in pages] == ["2026-11-02T16:30:00Z", "2026-11-02T16:30:00Z"]
    assert [p.requests for p in pages] == [1, 1]
    assert all(p.snapshot is None and not p.snapshot_complete for p in pages)
    first = pages[0].entries[0]
    assert first == TimeEntry(
        source="harvest",
        external_id="636709355",
        version=content_version(first),  # what it says; its updated_at is only the cursor
        spent_date=dt.date(2026, 11, 2),
        seconds=7596,  # 2.11 h exactly
        billable=True,
        user_id="1782959",
        user_name="Kim Allen",
        client_id="5735776",
        client_name="123 Industries",
        project_id="14307913",
        project_name="Marketing Website",
        task_id="8083365",
        task_name="Graphic Design",
        description="Homepage layout",
        rate=Decimal("100.0"),
        rate_currency="EUR",
    )
    assert first.raw["hours"] == Decimal("2.11")
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Harvest-Account-Id"] == "123456"
    assert sent.headers["User-Agent"] == UA


@responses.activate(assert_all_requests_are_fired=True)
def test_running_timer_and_unbillable_locked_entry() -> None:
    responses.get(f"{BASE}/time_entries", body=fixture("time_entries_page1.json"))
    responses.get(
        f"{BASE}/time_entries", body=fixture("time_entries_page2.json"), match=query(**PAGE2_QUERY)
    )
    pages = fetch(source())
    running = pages[0].entries[1]
    assert running.running is True
    assert running.seconds == 1800
    # Only the running segment exists (hours_without_timer 0): its start is exact.
    assert running.start == dt.datetime(2026, 11, 2, 16, 30, tzinfo=dt.UTC)
    assert running.stop is None
    old = pages[1].entries[0]
    assert (old.billable, old.rate, old.rate_currency, old.description) == (False, None, "USD", "")
    assert old.start is None and old.running is False


@responses.activate(assert_all_requests_are_fired=True)
def test_incremental_run_overlaps_the_cursor_and_never_moves_it_back() -> None:
    body = json.loads(fixture("time_entries_page2.json"))
    body["links"]["previous"] = None
    responses.get(
        f"{BASE}/time_entries",
        json=body,
        match=query(per_page="2000", updated_since="2026-11-02T09:55:00Z"),
    )
    pages = fetch(source(), cursor="2026-11-02T10:00:00Z")
    # The only entry (updated 2026-11-01) is older than the stored cursor: it stays.
    assert [p.cursor for p in pages] == ["2026-11-02T10:00:00Z"]


@responses.activate(assert_all_requests_are_fired=True)
def test_an_edit_shows_up_as_a_new_version() -> None:
    page = json.loads(fixture("time_entries_page2.json"))
    page["links"]["previous"] = None
    edited = json.loads(json.dumps(page))
    edited["time_entries"][0].update(hours=1.5, updated_at="2026-11-02T12:00:00Z")
    responses.get(f"{BASE}/time_entries", json=page)
    responses.get(f"{BASE}/time_entries", json=edited)
    src = source()
    before = fetch(src, cursor="2026-11-01T00:00:00Z")[0].entries[0]
    after = fetch(src, cursor="2026-11-01T08:00:00Z")[0]
    assert before.external_id == after.entries[0].external_id == "636708100"
    assert (before.version, before.seconds) == (content_version(before), 3600)
    assert after.entries[0].seconds == 5400
    assert after.entries[0].version not in ("", before.version)
    assert after.cursor == "2026-11-02T12:00:00Z"


@responses.activate(assert_all_requests_are_fired=True)
def test_an_edit_under_an_unchanged_updated_at_is_a_new_version() -> None:
    """Issue 10 item 2: two versions with one updated_at (a page boundary, an edit within the
    stamp's second) are two versions; a record that only changed its stamp keeps its version."""
    page = json.loads(fixture("time_entries_page2.json"))
    page["links"]["previous"] = None
    edited = json.loads(json.dumps(page))
    edited["time_entries"][0].update(hours=1.5)  # updated_at as it was
    touched = json.loads(json.dumps(page))
    touched["time_entries"][0].update(updated_at="2026-11-03T09:00:00Z")
    for answer in (page, edited, touched):
        responses.get(f"{BASE}/time_entries", json=answer)
    src = source()
    before, after, again = (
        fetch(src, cursor="2026-11-01T00:00:00Z")[0].entries[0] for _ in range(3)
    )
    assert after.seconds == 5400 and after.version != before.version
    assert again.version == before.version


@responses.activate(assert_all_requests_are_fired=True)
def test_lookback_window_is_a_snapshot_listed_by_spent_date() -> None:
    empty = {
        "time_entries": [], "per_page": 2000, "total_pages": 1, "total_entries": 0,
        "next_page": None, "previous_page": None, "page": None,
        "links": {"first": f"{BASE}/time_entries", "next": None, "previous": None, "last": None},
    }  # fmt: skip
    window_query = {"from": "2026-10-01", "per_page": "2000", "to": "2026-11-02"}
    responses.get(
        f"{BASE}/time_entries",
        json=empty,
        match=query(per_page="2000", updated_since="2026-11-02T09:55:00Z"),
    )
    responses.get(
        f"{BASE}/time_entries", body=fixture("window_page1.json"), match=query(**window_query)
    )
    responses.get(
        f"{BASE}/time_entries",
        body=fixture("window_page2.json"),
        match=query(cursor="eyJhZnRlciI6eyJpZCI6NjM2NzA5MzU1fX0", **window_query),
    )
    window = DateWindow(dt.date(2026, 10, 1), dt.date(2026, 11, 2))

    pages = fetch(source(), cursor="2026-11-02T10:00:00Z", window=window)

    assert [(p.snapshot, p.snapshot_complete, p.cursor, p.requests) for p in pages] == [
        (None, False, "2026-11-02T10:00:00Z", 1),
        (window, False, None, 1),
        (window, True, None, 1),
    ]
    # 636708723 was listed before and is gone: the engine finds it missing from the snapshot.
    assert [e.external_id for p in pages for e in p.entries] == ["636709355", "636708100"]


@responses.activate(assert_all_requests_are_fired=True)
def test_429_then_success_honours_retry_after() -> None:
    responses.get(f"{BASE}/time_entries", status=429, headers={"Retry-After": "15"})
    responses.get(f"{BASE}/time_entries", body=fixture("time_entries_bad_record.json"))
    clock = FakeClock()
    pages = fetch(source(clock), cursor="2026-11-02T10:00:00Z")
    assert clock.sleeps == [15.0]
    assert pages[0].requests == 2


@responses.activate(assert_all_requests_are_fired=True)
def test_5xx_until_retries_run_out_is_a_temporary_failure() -> None:
    for _ in range(3):
        responses.get(f"{BASE}/time_entries", status=503)
    clock = FakeClock()
    with pytest.raises(TemporaryFailure):
        fetch(source(clock))
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "invalid_token", "error_description": "The access token is invalid"}),
        (403, {"error": "forbidden", "error_description": "Account not found"}),
    ],
)
@responses.activate(assert_all_requests_are_fired=True)
def test_rejected_credentials_name_the_setting(status: int, body: dict[str, str]) -> None:
    responses.get(f"{BASE}/time_entries", status=status, json=body)
    with pytest.raises(CredentialsRejected) as err:
        fetch(source())
    assert str(err.value) == (
        f"harvest: token rejected ({status}): check sources[0].token ({body['error_description']})"
    )


@responses.activate(assert_all_requests_are_fired=True)
def test_malformed_json_page_is_an_invalid_response() -> None:
    responses.get(f"{BASE}/time_entries", body='{"time_entries": [{"id": 1,')
    with pytest.raises(ConnectorError) as err:
        fetch(source())
    assert err.value.kind == "invalid_response"
    assert str(err.value).startswith("harvest: GET /v2/time_entries returned malformed JSON")


@responses.activate(assert_all_requests_are_fired=True)
def test_envelope_without_a_list_is_an_invalid_response() -> None:
    responses.get(f"{BASE}/time_entries", json={"time_entries": "nope", "links": {"next": None}})
    with pytest.raises(ConnectorError) as err:
        fetch(source())
    assert err.value.kind == "invalid_response"


@responses.activate(assert_all_requests_are_fired=True)
def test_malformed_records_become_invalid_and_the_rest_goes_on() -> None:
    responses.get(f"{BASE}/time_entries", body=fixture("time_entries_bad_record.json"))
    [page] = fetch(source(), cursor="2026-11-02T10:00:00Z")
    assert [e.external_id for e in page.entries] == ["636709400", "636709402"]
    assert page.entries[1].client_id is None and page.entries[1].rate_currency is None
    assert [(i.locator, i.external_id, i.spent_date, i.reason) for i in page.invalid] == [
        ("page 1 item 2", "636709401", dt.date(2026, 11, 2), "hours must be a number, not 'lots'"),
        ("page 1 item 3", None, None, "id is missing"),
        ("page 1 item 4", None, None, "not an object: 'not an entry'"),
    ]
    assert all(isinstance(i, InvalidRecord) and i.source == "harvest" for i in page.invalid)
    # The cursor covers valid entries only.
    assert page.cursor == "2026-11-02T11:10:00Z"


@responses.activate(assert_all_requests_are_fired=True)
def test_token_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(f"{BASE}/time_entries", status=500, body=f"upstream echoed Bearer {TOKEN}")
    responses.get(f"{BASE}/time_entries", status=500, body=f"upstream echoed Bearer {TOKEN}")
    responses.get(f"{BASE}/time_entries", status=500, body=f"upstream echoed Bearer {TOKEN}")
    responses.get(f"{BASE}/users/me", status=401, json={"error_description": f"bad {TOKEN}"})
    src = source()
    errors = []
    for call in (lambda: fetch(src), src.check_connection):
        with pytest.raises(ConnectorError) as err:
            call()
        errors += [str(err.value), repr(err.value)]
    assert "***" in errors[0]
    assert caplog.text and all(TOKEN not in text for text in [*errors, caplog.text, repr(src)])


@responses.activate(assert_all_requests_are_fired=True)
def test_check_connection_makes_one_request() -> None:
    responses.get(f"{BASE}/users/me", body=fixture("users_me.json"))
    src = source()
    assert src.check_connection() == "Harvest account 123456, signed in as Kim Allen"
    assert src.http.requests_made == 1


def test_against_the_fake_pages_and_finds_a_deletion() -> None:
    with FakeHarvest(token=TOKEN) as fake:
        for n in range(4500):
            fake.add(spent_date=(dt.date(2026, 10, 1) + dt.timedelta(days=n % 30)).isoformat())
        doomed = fake.add(spent_date="2026-10-15", hours="3.0")["id"]
        src = source(base_url=fake.base_url)
        first = fetch(src)
        assert [len(p.entries) for p in first] == [2000, 2000, 501]
        assert first[-1].cursor == "2026-11-02T10:15:01Z"
        assert fake.count("/v2/time_entries") == 3

        fake.advance(3600)
        fake.delete(doomed)
        fake.edit(fake.add(spent_date="2026-10-20")["id"], hours="0.5")
        window = DateWindow(dt.date(2026, 10, 1), dt.date(2026, 10, 31))
        second = fetch(src, cursor=first[-1].cursor, window=window)

        changed = [e for p in second if p.snapshot is None for e in p.entries]
        # The 5-minute overlap re-reads the 300 entries updated just before the cursor
        # (same versions, so the engine skips them) and finds the one edited since.
        assert len(changed) == 301
        fresh = [e for e in changed if e.raw["updated_at"] > first[-1].cursor]
        assert [(e.seconds, e.spent_date, e.raw["updated_at"]) for e in fresh] == [
            (1800, dt.date(2026, 10, 20), "2026-11-02T11:15:03Z")
        ]
        snapshot = [p for p in second if p.snapshot == window]
        assert [p.snapshot_complete for p in snapshot] == [False, False, True]
        listed = {e.external_id for p in snapshot for e in p.entries}
        assert len(listed) == 4501 and str(doomed) not in listed


@responses.activate(assert_all_requests_are_fired=True)
def test_an_entry_over_max_hours_is_invalid_not_charged() -> None:
    """Issue 10: 10000 hours typed for 1 is listed as invalid with the reason, not deducted."""
    page = json.loads(fixture("time_entries_page2.json"))
    page["links"]["previous"] = None
    page["time_entries"][0].update(hours=10000)
    responses.get(f"{BASE}/time_entries", json=page)

    (result,) = fetch(source(max_hours=Decimal("12.5")), cursor="2026-11-01T00:00:00Z")

    assert "636708100" not in [e.external_id for e in result.entries]
    assert [(i.external_id, i.spent_date, i.reason) for i in result.invalid] == [
        (
            "636708100",
            dt.date.fromisoformat(page["time_entries"][0]["spent_date"]),
            "10000.00 hours is more than sources[0].max_hours (12.5): not charged",
        )
    ]
