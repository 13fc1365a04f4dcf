"""Clockify adapter: recorded responses, the duration parser, then the local fake."""

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
from connectors.sources import clockify
from connectors.sources.clockify import ClockifySource, parse_duration
from connectors.sources.records import RecordError
from sync.model import TimeEntry
from sync.ports import ConnectorError, CredentialsRejected, DateWindow, FetchRequest, Page
from sync.settings import ClockifySettings, Secret
from tests.fakes.base import FakeClock
from tests.fakes.clockify_server import USER_1, FakeClockify
from tests.support import ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "clockify"
WS = "64a687e29ae1f428e7ebe303"
BASE = f"https://api.clockify.me/api/v1/workspaces/{WS}"
JANE, JOHN = "5a0ab5acb07987125438b60f", "5a0ab5acb07987125438b610"
KEY = "ck-YzQ2ZjM4MzktMmE0Ni00Yjk"
NOW = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
UTC = dt.UTC


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def source(clock: FakeClock | None = None, **overrides: Any) -> ClockifySource:
    values: dict[str, Any] = {
        "yaml_path": "sources[2]",
        "name": "clockify",
        "type": "clockify",
        "api_key": Secret(KEY),
        "workspace_id": WS,
        "lookback_days": 30,
    }
    config = ClockifySettings(**(values | overrides))
    clock = clock or FakeClock()
    http = clockify.http_client(
        config, sleep=clock.sleep, clock=clock, jitter=lambda: 0.0, retry=RetryPolicy(attempts=3)
    )
    return ClockifySource(config, http=http)


def fetch(
    src: ClockifySource, cursor: str | None = None, window: DateWindow | None = None
) -> list[Page]:
    return list(src.fetch(FetchRequest(cursor=cursor, window=window, now=NOW)))


def paged(**params: str) -> list[Any]:
    return [matchers.query_param_matcher({"page": "1", "page-size": "5000", **params})]


ENTRIES_QUERY = {"start": "2026-10-02T00:00:00Z", "end": "2026-11-04T00:00:00Z"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT1H30M", 5400), ("PT45S", 45), ("PT2H0M5S", 7205), ("P1DT2H", 93600), ("PT0S", 0),
     ("P2D", 172800), ("PT36H", 129600)],
)  # fmt: skip
def test_iso_durations_are_exact_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "P1DT", "1H", "PT1.5S", "P1Y", "P1M", "PT-1H", "pt1h", "PT1H ", None, 3600],
)
def test_garbage_durations_are_rejected(text: Any) -> None:
    with pytest.raises(RecordError):
        parse_duration(text)


@responses.activate(assert_all_requests_are_fired=True)
def test_first_run_reads_every_user_in_the_recent_window() -> None:
    responses.get(f"{BASE}/users", body=fixture("users.json"), match=paged())
    responses.get(f"{BASE}/user/{JANE}/time-entries", body=fixture("time_entries_jane.json"),
                  match=paged(**ENTRIES_QUERY))  # fmt: skip
    responses.get(f"{BASE}/projects", body=fixture("projects.json"), match=paged())
    responses.get(f"{BASE}/user/{JOHN}/time-entries", json=[], match=paged(**ENTRIES_QUERY))

    pages = fetch(source(max_hours=Decimal(48)))  # the 26-hour entry is within the limit

    window = DateWindow(dt.date(2026, 10, 3), dt.date(2026, 11, 2))
    assert [(p.snapshot, p.snapshot_complete, p.cursor, p.requests) for p in pages] == [
        (window, False, None, 3),
        (window, True, "2026-11-02", 1),
    ]
    running, review, long_one = pages[0].entries
    assert (running.running, running.seconds, running.stop, running.client_name) == (
        True, 0, None, "ACME Corp",
    )  # fmt: skip
    assert review == TimeEntry(
        source="clockify",
        external_id="6540a1b2c3d4e5f600000003",
        version=review.version,
        spent_date=dt.date(2026, 11, 2),
        seconds=5400,
        billable=True,
        start=dt.datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        stop=dt.datetime(2026, 11, 2, 10, 30, tzinfo=UTC),
        user_id=JANE,
        user_name="Jane Doe",
        client_id="5b6415a5b07987035750506a",
        client_name="ACME Corp",
        project_id="5b641568b07987035750505e",
        project_name="Website",
        task_id="5b715448b0798751107918ab",
        tags=("5e4117fe8c625f38930d57b7",),  # entries carry tag ids only
        description="Design review",
        rate=Decimal("95.5"),
        rate_currency="EUR",
    )
    assert len(review.version) == 20
    assert (long_one.seconds, long_one.project_id, long_one.rate, long_one.billable) == (
        93605, None, None, False,
    )  # fmt: skip
    [bad] = pages[0].invalid
    assert (bad.locator, bad.external_id, bad.spent_date, bad.reason) == (
        "page 1 item 4",
        "6540a1b2c3d4e5f600000001",
        dt.date(2026, 10, 29),
        "timeInterval.duration is not an ISO 8601 duration: '1 hour'",
    )
    assert responses.calls[0].request.headers["X-Api-Key"] == KEY


@responses.activate(assert_all_requests_are_fired=True)
def test_version_follows_content_that_matters() -> None:
    entries = json.loads(fixture("time_entries_jane.json"))[1:2]
    locked = json.loads(json.dumps(entries))
    locked[0]["isLocked"] = True
    edited = json.loads(json.dumps(entries))
    edited[0]["description"] = "Design review, round 2"
    for body in (entries, locked, edited):  # each run lists users and projects afresh
        responses.get(f"{BASE}/users", body=fixture("users.json"))
        responses.get(f"{BASE}/user/{JANE}/time-entries", json=body)
        responses.get(f"{BASE}/projects", body=fixture("projects.json"))
        responses.get(f"{BASE}/user/{JOHN}/time-entries", json=[])
    src = source()
    versions = [fetch(src, cursor="2026-11-02")[0].entries[0].version for _ in range(3)]
    # Locking changes nothing that is charged; a new description does.
    assert versions[0] == versions[1] != versions[2]


@responses.activate(assert_all_requests_are_fired=True)
def test_lookback_window_far_back_is_its_own_snapshot() -> None:
    recent = {"start": "2026-10-31T00:00:00Z", "end": "2026-11-04T00:00:00Z"}
    old = {"start": "2026-08-31T00:00:00Z", "end": "2026-09-12T00:00:00Z"}
    responses.get(f"{BASE}/users", body=fixture("users.json"))
    for query in (recent, old):
        for user in (JANE, JOHN):
            responses.get(f"{BASE}/user/{user}/time-entries", json=[], match=paged(**query))
    window = DateWindow(dt.date(2026, 9, 1), dt.date(2026, 9, 10))

    pages = fetch(source(), cursor="2026-11-02", window=window)

    assert [(p.snapshot, p.snapshot_complete, p.cursor, p.requests) for p in pages] == [
        (DateWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 2)), False, None, 2),
        (DateWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 2)), True, "2026-11-02", 1),
        (window, False, None, 1),
        (window, True, None, 1),
    ]


@responses.activate(assert_all_requests_are_fired=True)
def test_429_without_retry_after_backs_off() -> None:
    responses.get(f"{BASE}/users", status=429, json={"message": "Too many requests", "code": 429})
    responses.get(f"{BASE}/users", json=[])
    clock = FakeClock()
    pages = fetch(source(clock), cursor="2026-11-02")
    assert clock.sleeps == [1.0]
    assert [(p.snapshot_complete, p.requests) for p in pages] == [(True, 2)]


@responses.activate(assert_all_requests_are_fired=True)
def test_bad_key_names_the_setting() -> None:
    responses.get(
        f"{BASE}/users",
        status=401,
        json={"message": "Full authentication is required", "code": 1000},
    )
    with pytest.raises(CredentialsRejected) as err:
        fetch(source(), cursor="2026-11-02")
    assert str(err.value) == (
        "clockify: api_key rejected (401): check sources[2].api_key "
        "(Full authentication is required)"
    )


@responses.activate(assert_all_requests_are_fired=True)
def test_malformed_json_is_an_invalid_response() -> None:
    responses.get(f"{BASE}/users", json=[{"id": JANE, "name": "Jane"}])
    responses.get(f"{BASE}/user/{JANE}/time-entries", body='[{"id": "x", ')
    with pytest.raises(ConnectorError) as err:
        fetch(source(), cursor="2026-11-02")
    assert err.value.kind == "invalid_response"


@responses.activate(assert_all_requests_are_fired=True)
def test_key_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(f"{BASE}/users", status=400, json={"message": f"key {KEY} not valid here"})
    with pytest.raises(ConnectorError) as err:
        fetch(source(), cursor="2026-11-02")
    texts = [str(err.value), repr(err.value), caplog.text]
    assert "***" in texts[0] and all(KEY not in t for t in texts)


@responses.activate(assert_all_requests_are_fired=True)
def test_check_connection() -> None:
    responses.get(
        f"{BASE}/users",
        json=[{"id": JANE}],
        match=[matchers.query_param_matcher({"page": "1", "page-size": "1"})],
    )
    assert source().check_connection() == f"Clockify workspace {WS}: key accepted"


def test_against_the_fake_pages_and_finds_a_deletion() -> None:
    with FakeClockify(api_key=KEY, workspace_id=WS) as fake:
        start = dt.datetime(2026, 10, 5, 9, tzinfo=UTC)
        for n in range(5003):
            moment = start + dt.timedelta(days=n % 25, minutes=n % 400)
            fake.add(start=moment.strftime("%Y-%m-%dT%H:%M:%SZ"), seconds=900,
                     projectId=FakeClockify.PROJECT)  # fmt: skip
        fake.add(start="2026-11-01T09:00:00Z", seconds=None, userId=fake.users[1]["id"])
        src = source(base_url=fake.base_url)
        first = fetch(src)
        assert [(len(p.entries), p.snapshot_complete) for p in first] == [
            (5000, False), (3, False), (1, True),
        ]  # fmt: skip
        assert first[-1].entries[0].running is True
        assert fake.count("/projects") == 1

        doomed = first[0].entries[10].external_id
        fake.delete(doomed)
        window = DateWindow(dt.date(2026, 10, 1), dt.date(2026, 10, 31))
        second = fetch(src, cursor=first[-1].cursor, window=window)
        assert {p.snapshot for p in second} == {
            DateWindow(dt.date(2026, 10, 1), dt.date(2026, 11, 2))
        }
        assert [p.snapshot_complete for p in second] == [False, False, True]
        listed = {e.external_id for p in second for e in p.entries}
        assert len(listed) == 5003 and doomed not in listed
        assert all(e.user_id == USER_1 for p in second[:2] for e in p.entries)


@responses.activate
@pytest.mark.parametrize(
    ("timezone", "day"), [("Europe/Berlin", dt.date(2026, 11, 1)), ("UTC", dt.date(2026, 10, 31))]
)
def test_work_dates_are_days_in_the_configured_timezone(timezone: str, day: dt.date) -> None:
    """Issue 10: 23:30Z on 31 October is 1 November in Berlin, in November's statement."""
    records = json.loads(fixture("time_entries_jane.json"))
    late, broken = records[1], records[3]
    late["timeInterval"].update(start="2026-10-31T23:30:00Z", end="2026-11-01T01:00:00Z")
    broken["timeInterval"].update(start="2026-10-31T23:30:00Z", end="2026-11-01T00:30:00Z")
    responses.get(f"{BASE}/users", body=fixture("users.json"))
    responses.get(f"{BASE}/user/{JANE}/time-entries", json=[late, broken])
    responses.get(f"{BASE}/projects", body=fixture("projects.json"))
    responses.get(f"{BASE}/user/{JOHN}/time-entries", json=[])

    pages = fetch(source(timezone=timezone), cursor="2026-11-02")

    (entry,) = [e for p in pages for e in p.entries]
    (invalid,) = [i for p in pages for i in p.invalid]
    assert (entry.spent_date, entry.start) == (day, dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    assert invalid.spent_date == day


@responses.activate
def test_an_entry_over_max_hours_is_invalid_not_charged() -> None:
    """Issue 10: the recorded 26-hour entry is over the default 24 hours; 10000 hours too."""
    records = json.loads(fixture("time_entries_jane.json"))
    absurd = json.loads(json.dumps(records[1]))
    absurd["timeInterval"].update(duration="PT10000H")
    responses.get(f"{BASE}/users", body=fixture("users.json"))
    responses.get(f"{BASE}/user/{JANE}/time-entries", json=[records[2], absurd])
    responses.get(f"{BASE}/projects", body=fixture("projects.json"))
    responses.get(f"{BASE}/user/{JOHN}/time-entries", json=[])

    pages = fetch(source(), cursor="2026-11-02")

    assert [e for p in pages for e in p.entries] == []
    assert [(i.external_id, i.reason) for p in pages for i in p.invalid] == [
        (
            "6540a1b2c3d4e5f600000002",
            "26.00 hours is more than sources[2].max_hours (24): not charged",
        ),
        (
            "6540a1b2c3d4e5f600000003",
            "10000.00 hours is more than sources[2].max_hours (24): not charged",
        ),
    ]
