"""Toggl adapter: Reports v3 (workspace) and v9 (me) against recorded responses, then the fake."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.http import RetryPolicy
from connectors.sources import toggl
from connectors.sources.records import content_version
from connectors.sources.toggl import TogglSource
from sync.model import TimeEntry
from sync.ports import (
    ConnectorError,
    CredentialsRejected,
    DateWindow,
    FetchRequest,
    Page,
    QuotaExhausted,
)
from sync.settings import Secret, TogglSettings
from tests.fakes.base import FakeClock
from tests.fakes.toggl_server import FakeToggl
from tests.support import ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "toggl"
ROOT = "https://api.track.toggl.com"
REPORT = f"{ROOT}/reports/api/v3/workspace/3134975/search/time_entries"
PROJECTS = f"{ROOT}/api/v9/workspaces/3134975/projects"
CLIENTS = f"{ROOT}/api/v9/workspaces/3134975/clients"
ME = f"{ROOT}/api/v9/me/time_entries"
TOKEN = "1971800d4d82861d8f2c1651fea4d212"
NOW = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
UTC = dt.UTC


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def source(clock: FakeClock | None = None, **overrides: Any) -> TogglSource:
    values: dict[str, Any] = {
        "yaml_path": "sources[1]",
        "name": "toggl",
        "type": "toggl",
        "token": Secret(TOKEN),
        "workspace_id": "3134975",
        "lookback_days": 30,
    }
    config = TogglSettings(**(values | overrides))
    clock = clock or FakeClock()
    http = toggl.http_client(
        config, sleep=clock.sleep, clock=clock, jitter=lambda: 0.0, retry=RetryPolicy(attempts=3)
    )
    return TogglSource(config, http=http)


def fetch(
    src: TogglSource, cursor: str | None = None, window: DateWindow | None = None
) -> list[Page]:
    return list(src.fetch(FetchRequest(cursor=cursor, window=window, now=NOW)))


def report_body(start: str, end: str, **extra: Any) -> list[Any]:
    body = {"start_date": start, "end_date": end, "page_size": 1000, "order_by": "date",
            "order_dir": "asc", **extra}  # fmt: skip
    return [matchers.json_params_matcher(body)]


@responses.activate(assert_all_requests_are_fired=True)
def test_workspace_first_run_pages_the_report_and_resolves_projects_once() -> None:
    next_page = {"X-Next-ID": "4003", "X-Next-Row-Number": "3"}
    first_body = report_body("2026-10-02", "2026-11-03")
    second_body = report_body("2026-10-02", "2026-11-03", first_row_number=3)
    projects_query = [matchers.query_param_matcher({"page": "1", "per_page": "200"})]
    responses.post(REPORT, body=fixture("reports_page1.json"), headers=next_page, match=first_body)
    responses.post(REPORT, body=fixture("reports_page2.json"), match=second_body)
    responses.get(PROJECTS, body=fixture("projects_page1.json"), match=projects_query)
    responses.get(CLIENTS, body=fixture("clients.json"))

    pages = fetch(source(timezone="Europe/Berlin"))

    window = DateWindow(dt.date(2026, 10, 3), dt.date(2026, 11, 2))
    assert [(p.snapshot, p.snapshot_complete, p.cursor, p.requests) for p in pages] == [
        (window, False, None, 3),
        (window, True, "2026-11-02", 1),
    ]
    entries = [e for p in pages for e in p.entries]
    assert [e.external_id for e in entries] == ["4001", "4002", "4003", "4004"]
    assert entries[0] == TimeEntry(
        source="toggl",
        external_id="4001",
        version=content_version(entries[0]),
        spent_date=dt.date(2026, 11, 2),
        seconds=3600,
        billable=True,
        start=dt.datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        stop=dt.datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        user_id="6234512",
        user_name="Jane Doe",
        client_id="61243453",
        client_name="ACME Corp",
        project_id="202793181",
        project_name="Website",
        tags=("13354221",),  # reports carry tag ids only
        description="Homepage layout",
        rate=Decimal("95"),
        rate_currency="EUR",
    )
    # 00:30 in Berlin (the configured zone) is 2 November there, though UTC says 1 November.
    assert (entries[1].spent_date, entries[1].start) == (
        dt.date(2026, 11, 2),
        dt.datetime(2026, 11, 1, 23, 30, tzinfo=UTC),
    )
    assert (entries[2].project_id, entries[2].client_id, entries[2].rate) == (None, None, None)
    assert (entries[3].project_name, entries[3].client_id, entries[3].task_id) == (
        "Internal",
        None,
        "88001",
    )
    auth = responses.calls[0].request.headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(f"{TOKEN}:api_token".encode()).decode()


@responses.activate(assert_all_requests_are_fired=True)
def test_no_change_run_costs_one_request() -> None:
    body = '[{"user_id": 1, "username": "A", "project_id": null, "task_id": null, "billable": true,'
    body += ' "description": "x", "tag_ids": [], "hourly_rate_in_cents": null, "currency": "EUR",'
    body += ' "time_entries": [{"id": 9, "seconds": 60, "start": "2026-11-02T08:00:00+00:00",'
    body += ' "stop": "2026-11-02T08:01:00+00:00", "at": "2026-11-02T08:01:00+00:00"}]}]'
    responses.post(REPORT, body=body, match=report_body("2026-10-31", "2026-11-03"))
    src = source()
    pages = fetch(src, cursor="2026-11-02")
    assert src.http.requests_made == 1
    assert [(p.snapshot, p.snapshot_complete, p.cursor) for p in pages] == [
        (DateWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 2)), True, "2026-11-02")
    ]


@responses.activate(assert_all_requests_are_fired=True)
def test_lookback_window_apart_from_the_recent_one_is_a_second_snapshot() -> None:
    responses.post(REPORT, json=[], match=report_body("2026-10-31", "2026-11-03"))
    responses.post(
        REPORT, body=fixture("reports_page2.json"), match=report_body("2026-09-30", "2026-10-11")
    )
    responses.get(PROJECTS, body=fixture("projects_page1.json"))
    window = DateWindow(dt.date(2026, 10, 1), dt.date(2026, 10, 10))

    pages = fetch(source(), cursor="2026-11-02", window=window)

    recent = DateWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    # An empty recent window is still a complete snapshot: anything in it was deleted.
    assert [(p.snapshot, p.snapshot_complete, p.cursor, len(p.entries)) for p in pages] == [
        (recent, True, "2026-11-02", 0),
        (window, True, None, 1),
    ]
    # Project "Internal" has no client, so the clients list is never asked for.
    assert pages[1].requests == 2


@responses.activate(assert_all_requests_are_fired=True)
def test_malformed_report_entries_become_invalid_records() -> None:
    responses.post(REPORT, body=fixture("reports_bad_rows.json"))
    [page] = fetch(source(), cursor="2026-11-02")
    assert [e.external_id for e in page.entries] == ["4101", "4104"]
    assert [(i.locator, i.external_id, i.spent_date, i.reason) for i in page.invalid] == [
        ("page 1 row 1 entry 2", "4102", dt.date(2026, 11, 1),
         "seconds must be a number, not 'ten minutes'"),
        ("page 1 row 2 entry 1", "4103", dt.date(2026, 11, 1),
         "start has no time zone: '2026-11-01T11:00:00'"),
    ]  # fmt: skip


@responses.activate(assert_all_requests_are_fired=True)
def test_report_that_is_not_a_list_is_an_invalid_response() -> None:
    responses.post(REPORT, body="<html>maintenance</html>")
    with pytest.raises(ConnectorError) as err:
        fetch(source(), cursor="2026-11-02")
    assert err.value.kind == "invalid_response"


@responses.activate(assert_all_requests_are_fired=True)
def test_quota_exhausted_for_long_raises_with_the_reset_time() -> None:
    headers = {"X-Toggl-Quota-Remaining": "0", "X-Toggl-Quota-Resets-In": "1800"}
    responses.post(REPORT, status=402, json="You have hit your hourly limit", headers=headers)
    clock = FakeClock()
    with pytest.raises(QuotaExhausted) as err:
        fetch(source(clock), cursor="2026-11-02")
    assert err.value.resets_in == 1800
    assert str(err.value) == (
        "toggl: POST /reports/api/v3/workspace/3134975/search/time_entries: "
        "quota exhausted (402), resets in 1800 s"
    )
    assert clock.sleeps == []


@responses.activate(assert_all_requests_are_fired=True)
def test_quota_resetting_soon_is_waited_out_once() -> None:
    headers = {"X-Toggl-Quota-Remaining": "0", "X-Toggl-Quota-Resets-In": "20"}
    responses.post(REPORT, status=402, headers=headers)
    responses.post(REPORT, json=[])
    clock = FakeClock()
    pages = fetch(source(clock), cursor="2026-11-02")
    assert clock.sleeps == [20.0]
    assert pages[0].requests == 2


@responses.activate(assert_all_requests_are_fired=True)
def test_429_honours_retry_after() -> None:
    responses.post(REPORT, status=429, headers={"Retry-After": "3"})
    responses.post(REPORT, json=[])
    clock = FakeClock()
    fetch(source(clock), cursor="2026-11-02")
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize("status", [401, 403])
@responses.activate(assert_all_requests_are_fired=True)
def test_bad_token_names_the_setting(status: int) -> None:
    responses.post(REPORT, status=status, json="Incorrect username and/or password")
    with pytest.raises(CredentialsRejected) as err:
        fetch(source(), cursor="2026-11-02")
    assert str(err.value) == (
        f"toggl: token rejected ({status}): check sources[1].token "
        "(Incorrect username and/or password)"
    )


def test_workspace_scope_without_workspace_id_names_the_setting() -> None:
    with pytest.raises(ConnectorError) as err:
        fetch(source(workspace_id=None), cursor="2026-11-02")
    assert str(err.value) == "toggl: scope workspace needs sources[1].workspace_id"


@responses.activate
def test_an_edit_under_an_unchanged_at_stamp_is_a_new_version() -> None:
    """Issue 10 item 2: the version follows what the entry says, `at` is only the cursor."""
    records = json.loads(fixture("me_since.json"))
    edited = json.loads(json.dumps(records))
    edited[1].update(duration=7200, stop="2026-11-02T11:00:00+00:00")  # `at` unchanged
    for answer in (records, edited, records):
        responses.get(ME, json=answer)
    responses.get(PROJECTS, body=fixture("projects_page1.json"))
    responses.get(CLIENTS, body=fixture("clients.json"))
    src = source(scope="me")
    before, after, again = (fetch(src, cursor="1793613600")[0].entries[1] for _ in range(3))
    assert (before.seconds, after.seconds) == (5400, 7200)
    assert after.version != before.version == again.version


@responses.activate(assert_all_requests_are_fired=True)
def test_me_scope_reads_changes_since_the_cursor_with_deletions_and_timers() -> None:
    responses.get(
        ME,
        body=fixture("me_since.json"),
        match=[matchers.query_param_matcher({"since": "1793613300"})],
    )
    responses.get(PROJECTS, body=fixture("projects_page1.json"))
    responses.get(CLIENTS, body=fixture("clients.json"))

    [page] = fetch(source(scope="me"), cursor="1793613600")

    assert (page.cursor, page.snapshot, page.requests) == ("1793635201", None, 3)
    running, done, deleted = page.entries
    assert (running.running, running.seconds, running.stop, running.tags) == (
        True,
        0,
        None,
        ("client",),
    )
    assert done == TimeEntry(
        source="toggl",
        external_id="4202",
        version=content_version(done),
        spent_date=dt.date(2026, 11, 2),
        seconds=5400,
        billable=True,
        start=dt.datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        stop=dt.datetime(2026, 11, 2, 10, 30, tzinfo=UTC),
        user_id="6234512",
        client_id="61243453",
        client_name="ACME Corp",
        project_id="202793181",
        project_name="Website",
        tags=("client", "design"),
        description="Design review",
    )
    assert (deleted.external_id, deleted.deleted, deleted.tags) == ("4203", True, ())


@responses.activate(assert_all_requests_are_fired=True)
def test_me_scope_first_run_and_window_clamped_to_what_v9_serves() -> None:
    responses.get(ME, json=[], match=[matchers.query_param_matcher({"since": "1791050400"})])
    responses.get(
        ME,
        json=[],
        match=[
            matchers.query_param_matcher({"start_date": "2026-08-05", "end_date": "2026-11-04"})
        ],
    )
    window = DateWindow(dt.date(2026, 7, 1), dt.date(2026, 11, 2))
    pages = fetch(source(scope="me"), window=window)
    assert [(p.cursor, p.snapshot, p.snapshot_complete, p.requests) for p in pages] == [
        (None, None, False, 1),
        (None, DateWindow(dt.date(2026, 8, 6), dt.date(2026, 11, 2)), True, 1),
    ]


@responses.activate(assert_all_requests_are_fired=True)
def test_token_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    encoded = base64.b64encode(f"{TOKEN}:api_token".encode()).decode()
    responses.post(REPORT, status=400, json=f"bad request from {TOKEN} / {encoded}")
    with pytest.raises(ConnectorError) as err:
        fetch(source(), cursor="2026-11-02")
    texts = [str(err.value), repr(err.value), caplog.text]
    assert "***" in texts[0]
    assert all(TOKEN not in t and encoded not in t for t in texts)


@responses.activate(assert_all_requests_are_fired=True)
def test_check_connection() -> None:
    responses.get(CLIENTS, body=fixture("clients.json"))
    assert source().check_connection() == "Toggl Track workspace 3134975: 1 clients"


def test_base_url_may_name_an_api_path() -> None:
    assert source(base_url=f"{ROOT}/api/v9/").http.base_url == ROOT


def test_against_the_fake_workspace_pages_and_finds_a_deletion() -> None:
    with FakeToggl(token=TOKEN) as fake:
        ids = []
        for n in range(1100):
            day = dt.datetime(2026, 10, 5, 9, tzinfo=UTC) + dt.timedelta(days=n % 28)
            entry = fake.add(start=day.isoformat(), seconds=600, description=f"task {n}",
                             project_id=FakeToggl.PROJECT)  # fmt: skip
            ids.append(str(entry["id"]))
        src = source(base_url=fake.origin)
        first = fetch(src)
        assert [len(p.entries) for p in first] == [1000, 100]
        assert first[0].entries[0].client_name == "ACME Corp"
        assert (
            fake.count("search/time_entries"),
            fake.count("/projects"),
            fake.count("/clients"),
        ) == (2, 1, 1)

        fake.delete(int(ids[7]))
        window = DateWindow(dt.date(2026, 10, 1), dt.date(2026, 10, 31))
        second = fetch(src, cursor=first[-1].cursor, window=window)
        merged = DateWindow(dt.date(2026, 10, 1), dt.date(2026, 11, 2))
        assert [(p.snapshot, p.snapshot_complete, p.cursor) for p in second] == [
            (merged, False, None),
            (merged, True, "2026-11-02"),
        ]
        listed = [e.external_id for p in second for e in p.entries]
        assert sorted(listed) == sorted(ids[:7] + ids[8:])


def test_against_the_fake_me_scope_sees_deletions_and_quota() -> None:
    with FakeToggl(token=TOKEN, quota=2) as fake:
        kept = fake.add(seconds=1800)
        gone = fake.add(seconds=900)
        src = source(scope="me", base_url=fake.origin)
        [page] = fetch(src)
        cursor = page.cursor
        fake.delete(gone["id"])
        [page] = fetch(src, cursor=cursor)
        assert {e.external_id: e.deleted for e in page.entries} == {
            str(kept["id"]): False,
            str(gone["id"]): True,
        }
        with pytest.raises(QuotaExhausted) as err:
            fetch(src, cursor=page.cursor)
        assert err.value.resets_in == 1800


@responses.activate
@pytest.mark.parametrize(
    ("timezone", "day"), [("Europe/Berlin", dt.date(2026, 11, 1)), ("UTC", dt.date(2026, 10, 31))]
)
def test_work_dates_are_days_in_the_configured_timezone(timezone: str, day: dt.date) -> None:
    """Issue 10: 23:30Z on 31 October is 1 November in Berlin, in November's statement,
    whatever offset Toggl wrote the start with.
    """
    records = json.loads(fixture("me_since.json"))
    late = records[1] | {"start": "2026-10-31T23:30:00+00:00", "stop": "2026-11-01T01:00:00Z"}
    broken = late | {"id": 4299, "duration": "ninety minutes"}
    responses.get(ME, json=[late, broken])
    responses.get(PROJECTS, body=fixture("projects_page1.json"))
    responses.get(CLIENTS, body=fixture("clients.json"))

    (page,) = fetch(source(scope="me", timezone=timezone), cursor="1793613600")

    (entry,) = page.entries
    (invalid,) = page.invalid
    assert (entry.spent_date, entry.start) == (day, dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    assert (invalid.external_id, invalid.spent_date) == ("4299", day)


@responses.activate
def test_an_entry_over_max_hours_is_invalid_not_charged() -> None:
    """Issue 10: a 10000-hour entry is listed as invalid with the reason; a deletion of one
    still goes through."""
    records = json.loads(fixture("me_since.json"))
    absurd = records[1] | {"duration": 36_000_000}
    deleted = records[2] | {"duration": 36_000_000}
    responses.get(ME, json=[absurd, deleted])
    responses.get(PROJECTS, body=fixture("projects_page1.json"))
    responses.get(CLIENTS, body=fixture("clients.json"))

    (page,) = fetch(source(scope="me"), cursor="1793613600")

    assert [(e.external_id, e.deleted) for e in page.entries] == [("4203", True)]
    assert [(i.external_id, i.reason) for i in page.invalid] == [
        ("4202", "10000.00 hours is more than sources[1].max_hours (24): not charged")
    ]
