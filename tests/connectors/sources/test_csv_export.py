"""CsvSource: each export format into exact entries, stable identities, snapshot pages."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.sources.csv_export import PAGE_SIZE, CsvSource
from sync.model import TimeEntry
from sync.ports import ConnectorError, DateWindow, FetchRequest, Page, TimeSource
from sync.settings import CsvSettings
from tests.support import ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "csv"
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
UTC = dt.UTC
GENERIC_HEADER = "date,hours,user,client,project,task,billable,description\n"


def make_source(path: Path, fmt: str = "generic", **settings: Any) -> CsvSource:
    return CsvSource(
        CsvSettings(
            yaml_path="sources[1]", name="exports", type="csv", file=path, format=fmt, **settings
        )
    )


def fetch(
    path: Path,
    fmt: str = "generic",
    cursor: str | None = None,
    window: DateWindow | None = None,
    **settings: Any,
) -> list[Page]:
    return list(make_source(path, fmt, **settings).fetch(FetchRequest(cursor, window, NOW)))


def entries_of(pages: list[Page]) -> list[TimeEntry]:
    return [entry for page in pages for entry in page.entries]


def without_identity(entry: TimeEntry) -> TimeEntry:
    """The entry with its derived id and version blanked: those are checked on their own."""
    return replace(entry, external_id="", version="")


def expected(**fields: Any) -> TimeEntry:
    """An entry of the fixtures' source and client, id and version blank (see above)."""
    return TimeEntry(
        source="exports", external_id="", version="", client_name="ACME Corp", **fields
    )


def identity_hash(*parts: str) -> str:
    """The documented identity: date, user, client, project, task, start (issue 10: the
    description is edited like the hours, so it is not part of it)."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_csv_source_satisfies_the_time_source_protocol() -> None:
    source: TimeSource = make_source(FIXTURES / "generic.csv")
    assert source.name == "exports"


# --- formats --------------------------------------------------------------------------------


def test_generic_rows_become_exact_entries() -> None:
    pages = fetch(FIXTURES / "generic.csv")
    entries = entries_of(pages)
    assert [without_identity(e) for e in entries] == [
        expected(
            spent_date=dt.date(2026, 3, 2),
            seconds=5400,
            user_name="Ada Lovelace",
            project_name="Website",
            task_name="Design",
            tags=("design", "urgent"),
            description="Homepage mockups",
        ),
        expected(
            spent_date=dt.date(2026, 3, 2),
            seconds=8100,  # from start/end, the +01:00 offset honoured
            start=dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            stop=dt.datetime(2026, 3, 2, 10, 15, tzinfo=UTC),
            user_name="Grace Hopper",
            project_name="Website",
            task_name="Development",
            description="API work",
        ),
        expected(
            spent_date=dt.date(2026, 3, 3),
            seconds=2700,  # "0:45" wins over start/end
            billable=False,
            start=dt.datetime(2026, 3, 3, 9, 30, tzinfo=UTC),
            stop=dt.datetime(2026, 3, 3, 10, 15, tzinfo=UTC),
            user_name="Ada Lovelace",
            project_name="Support",
            tags=("internal",),
            description="Standup",
        ),
    ]
    assert entries[0].external_id == identity_hash(
        "2026-03-02", "Ada Lovelace", "ACME Corp", "Website", "Design", ""
    )
    assert entries[1].external_id == identity_hash(
        "2026-03-02",
        "Grace Hopper",
        "ACME Corp",
        "Website",
        "Development",
        "2026-03-02T08:00:00+00:00",
    )
    assert entries[0].raw["invoice_ref"] == "X-1"  # extra columns kept for audit, not parsed
    assert [len(e.version) for e in entries] == [16, 16, 16]
    assert len({e.version for e in entries}) == 3


def test_generic_id_and_updated_at_columns_are_used_when_present() -> None:
    first, second = entries_of(fetch(FIXTURES / "generic_ids.csv", date_order="mdy"))
    assert first == TimeEntry(
        source="exports",
        external_id="1001",
        version=first.version,
        spent_date=dt.date(2026, 3, 2),
        seconds=8100,
        user_name="Ada",
        client_id="c-1",
        client_name="ACME Corp",
        project_id="p-9",
        project_name="Website",
        task_name="Dev",
        description="Build",
        rate=Decimal("95.00"),
        rate_currency="EUR",
    )
    assert second.external_id == "1002"
    assert second.spent_date == dt.date(2026, 3, 4)  # 03/04/2026 is month first
    assert (second.seconds, second.billable, second.rate) == (1800, False, None)
    assert [len(first.version), len(second.version)] == [16, 16]  # hashes of what rows say


def test_an_edit_under_an_unchanged_updated_at_is_a_new_version(tmp_path: Path) -> None:
    """Issue 10 item 2: the file says 1 h where it said 0.05 h, updated_at untouched."""
    header = "id,updated_at,date,hours,client\n"
    before = fetch(write(tmp_path / "a.csv", header + "7,2026-03-02T10:00:00Z,2026-03-02,0.05,A\n"))
    edited = fetch(write(tmp_path / "a.csv", header + "7,2026-03-02T10:00:00Z,2026-03-02,1,A\n"))
    touched = fetch(
        write(tmp_path / "a.csv", header + "7,2026-03-09T08:00:00Z,2026-03-02,0.05,A\n")
    )
    (old,), (new,), (same,) = (entries_of(pages) for pages in (before, edited, touched))
    assert (old.external_id, new.external_id, new.seconds) == ("7", "7", 3600)
    assert new.version != old.version == same.version


def test_harvest_detailed_time_report() -> None:
    entries = entries_of(fetch(FIXTURES / "harvest.csv", "harvest"))
    assert [without_identity(e) for e in entries] == [
        expected(
            spent_date=dt.date(2026, 3, 2),
            seconds=5400,
            user_name="Ada Lovelace",
            project_name="Website",
            task_name="Design",
            description="Homepage, v2",
            rate=Decimal("95.00"),
            rate_currency="EUR",
        ),
        expected(
            spent_date=dt.date(2026, 3, 3),
            seconds=1188,  # 0.33 h exactly, not the rounded 0.5
            billable=False,
            user_name="Grace Hopper",
            project_name="Website",
            task_name="Meetings",
            description="Weekly call",
            rate=Decimal("0"),
            rate_currency="EUR",
        ),
    ]


def test_toggl_detailed_report() -> None:
    entries = entries_of(fetch(FIXTURES / "toggl.csv", "toggl"))
    assert [without_identity(e) for e in entries] == [
        expected(
            spent_date=dt.date(2026, 3, 2),
            seconds=5400,
            start=dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
            stop=dt.datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
            user_name="Ada Lovelace",
            project_name="Website",
            tags=("design", "urgent"),
            description="Homepage mockups",
        ),
        expected(
            spent_date=dt.date(2026, 3, 2),  # the start's date, though it ends the next day
            seconds=4500,
            billable=False,
            start=dt.datetime(2026, 3, 2, 23, 30, tzinfo=UTC),
            stop=dt.datetime(2026, 3, 3, 0, 45, tzinfo=UTC),
            user_name="Grace Hopper",
            project_name="Website",
            task_name="Ops",
            description="Night deploy",
        ),
    ]


def test_clockify_detailed_report_with_us_dates_and_12_hour_times() -> None:
    entries = entries_of(fetch(FIXTURES / "clockify.csv", "clockify"))
    assert [without_identity(e) for e in entries] == [
        expected(
            spent_date=dt.date(2026, 3, 6),
            seconds=7230,  # Duration (h) 02:00:30, exact; the decimal 2.01 would say 7236
            start=dt.datetime(2026, 3, 6, 10, 0, tzinfo=UTC),
            stop=dt.datetime(2026, 3, 6, 12, 0, 30, tzinfo=UTC),
            user_name="Ada Lovelace",
            project_name="Website",
            tags=("dev",),
            description="Push notifications",
            rate=Decimal("150.00"),
            rate_currency="USD",
        ),
        expected(
            spent_date=dt.date(2026, 3, 13),
            seconds=1800,
            billable=False,
            start=dt.datetime(2026, 3, 13, 13, 15, tzinfo=UTC),
            stop=dt.datetime(2026, 3, 13, 13, 45, tzinfo=UTC),
            user_name="Grace Hopper",
            project_name="Website",
            task_name="QA",
            tags=("dev", "qa"),
            description="Bug triage",
            rate=Decimal("0.00"),
            rate_currency="USD",
        ),
    ]


def test_a_file_whose_slash_dates_prove_day_first_is_read_day_first(tmp_path: Path) -> None:
    header = "Project,Client,Description,Start Date,Start Time,Duration (h)\n"
    path = write(tmp_path / "c.csv", header + "W,A,x,02/03/2026,09:00,01:00:00\n")
    with path.open("a") as stream:
        stream.write("W,A,y,13/03/2026,09:00,01:00:00\n")
    pages = fetch(path, "clockify")
    assert [e.spent_date for e in entries_of(pages)] == [dt.date(2026, 3, 2), dt.date(2026, 3, 13)]
    assert pages[-1].snapshot == DateWindow(dt.date(2026, 3, 2), dt.date(2026, 3, 13))


# --- date order -----------------------------------------------------------------------------

DAY_FIRST_HEADER = "date,hours,client,description\n"


def test_a_proven_day_first_order_is_remembered_for_the_next_export(tmp_path: Path) -> None:
    """Issue 10 item 1: 15/03 proves day first; the next export's 01/11 and 07/11 are then
    November, never January and July (which would "cover" March and delete its work)."""
    march = write(tmp_path / "a.csv", DAY_FIRST_HEADER + "15/03/2026,12,ACME Corp,x\n")
    pages = fetch(march)
    assert [e.spent_date for e in entries_of(pages)] == [dt.date(2026, 3, 15)]
    cursor = pages[-1].cursor
    assert cursor is not None and cursor.endswith(" dmy")
    later = DAY_FIRST_HEADER + "01/11/2026,2,ACME Corp,y\n07/11/2026,2,ACME Corp,z\n"
    november = write(tmp_path / "a.csv", later)
    pages = fetch(november, cursor=cursor)
    assert [e.spent_date for e in entries_of(pages)] == [dt.date(2026, 11, 1), dt.date(2026, 11, 7)]
    assert pages[-1].snapshot == DateWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 7))
    assert pages[-1].cursor is not None and pages[-1].cursor.endswith(" dmy")


def test_an_unproven_ambiguous_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    text = DAY_FIRST_HEADER + "2026-11-02,1,A,iso\n01/11/2026,2,A,y\n07/11/2026,2,A,z\n"
    path = write(tmp_path / "b.csv", text)
    with pytest.raises(ConnectorError, match=r"01/11/2026 \(line 3\).*sources\[1\]\.date_order"):
        fetch(path)
    with pytest.raises(ConnectorError, match="date_order"):
        make_source(path).check_connection()
    # The same file is read when the operator says the order.
    days = [e.spent_date for e in entries_of(fetch(path, date_order="dmy"))]
    assert days == [dt.date(2026, 11, 2), dt.date(2026, 11, 1), dt.date(2026, 11, 7)]
    days = [e.spent_date for e in entries_of(fetch(path, date_order="mdy"))]
    assert days == [dt.date(2026, 11, 2), dt.date(2026, 1, 11), dt.date(2026, 7, 11)]


def test_unambiguous_dates_need_no_proof(tmp_path: Path) -> None:
    text = DAY_FIRST_HEADER + "2026-11-02,1,A,iso\n05/05/2026,2,A,same\n2026/11/09,1,A,ymd\n"
    pages = fetch(write(tmp_path / "c.csv", text))
    days = [e.spent_date for e in entries_of(pages)]
    assert days == [dt.date(2026, 11, 2), dt.date(2026, 5, 5), dt.date(2026, 11, 9)]
    assert pages[-1].cursor is not None and " " not in pages[-1].cursor  # nothing proven


def test_dates_that_contradict_each_other_refuse_the_file(tmp_path: Path) -> None:
    text = DAY_FIRST_HEADER + "15/03/2026,1,A,x\n03/16/2026,1,A,y\n"
    with pytest.raises(ConnectorError, match=r"15/03/2026 \(line 2\) is day first but 03/16"):
        fetch(write(tmp_path / "d.csv", text))


def test_a_file_contradicting_the_sources_proven_order_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", DAY_FIRST_HEADER + "03/16/2026,1,A,y\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ConnectorError, match="earlier files of this source were day first"):
        fetch(path, cursor="0" * 64 + " dmy")
    # An old cursor (a bare digest) proved nothing; the file proves month first.
    pages = fetch(path, cursor="0" * 64)
    assert pages[-1].cursor == f"{digest} mdy"


def test_an_explicit_order_reads_every_date_that_way_and_rejects_the_rest(tmp_path: Path) -> None:
    text = DAY_FIRST_HEADER + "03/04/2026,1,A,x\n03/16/2026,1,A,y\n2026-03-05,1,A,z\n"
    (page,) = fetch(write(tmp_path / "f.csv", text), date_order="dmy")
    assert [e.spent_date for e in page.entries] == [dt.date(2026, 4, 3), dt.date(2026, 3, 5)]
    assert [r.reason for r in page.invalid] == [
        "date '03/16/2026' is not a date (YYYY-MM-DD, or D/M/YYYY as date_order says)"
    ]
    (page,) = fetch(write(tmp_path / "g.csv", text), date_order="ymd")
    assert [e.spent_date for e in page.entries] == [dt.date(2026, 3, 5)]
    assert len(page.invalid) == 2
    with pytest.raises(ConnectorError, match=r"sources\[1\]\.date_order: unknown"):
        make_source(tmp_path / "g.csv", date_order="dym")


def test_generic_without_date_column_takes_the_starts_day_in_the_configured_zone(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "g.csv",
        "start,end,client\n2026-03-02T23:30:00-05:00,2026-03-03T00:30:00-05:00,ACME Corp\n",
    )
    (entry,) = entries_of(fetch(path, timezone="America/New_York"))
    assert entry.spent_date == dt.date(2026, 3, 2)  # 23:30 in New York
    assert entry.start == dt.datetime(2026, 3, 3, 4, 30, tzinfo=UTC)
    assert entry.seconds == 3600
    (entry,) = entries_of(fetch(path, timezone="Europe/Berlin"))
    assert entry.spent_date == dt.date(2026, 3, 3)  # 05:30 in Berlin, whatever the offset says


@pytest.mark.parametrize(
    ("timezone", "day"), [("Europe/Berlin", dt.date(2026, 12, 1)), ("UTC", dt.date(2026, 11, 30))]
)
def test_one_instant_is_one_work_day_whatever_offset_it_is_written_with(
    tmp_path: Path, timezone: str, day: dt.date
) -> None:
    path = write(
        tmp_path / "g.csv",
        "id,start,hours,client\n"
        "a,2026-11-30T23:30:00Z,1,ACME Corp\n"
        "b,2026-12-01T00:30:00+01:00,1,ACME Corp\n",
    )
    pages = fetch(path, timezone=timezone)
    assert [(e.external_id, e.spent_date) for e in entries_of(pages)] == [("a", day), ("b", day)]


# --- identity and versions ------------------------------------------------------------------


ROWS = [
    "2026-03-02,1.5,Ada,ACME Corp,Website,Dev,true,Build\n",
    "2026-03-02,2,Grace,ACME Corp,Website,Dev,true,Review\n",
    "2026-03-03,0.5,Ada,ACME Corp,Website,Ops,false,Deploy\n",
]


def ids_and_versions(path: Path) -> dict[str, str]:
    return {e.external_id: e.version for e in entries_of(fetch(path))}


def test_identity_and_version_survive_a_reordered_re_export(tmp_path: Path) -> None:
    before = ids_and_versions(write(tmp_path / "a.csv", GENERIC_HEADER + "".join(ROWS)))
    reordered_columns = "description,billable,task,project,client,user,hours,date\n" + "".join(
        ",".join(reversed(row.rstrip("\n").split(","))) + "\n" for row in reversed(ROWS)
    )
    after = ids_and_versions(write(tmp_path / "b.csv", reordered_columns))
    assert after == before
    assert len(before) == 3


def test_edited_hours_keep_the_id_and_change_the_version(tmp_path: Path) -> None:
    before = entries_of(fetch(write(tmp_path / "a.csv", GENERIC_HEADER + "".join(ROWS))))
    edited = [ROWS[0].replace(",1.5,", ",1.75,"), *ROWS[1:]]
    after = entries_of(fetch(write(tmp_path / "b.csv", GENERIC_HEADER + "".join(edited))))
    assert [e.external_id for e in after] == [e.external_id for e in before]
    assert after[0].version != before[0].version
    assert after[0].seconds == 6300
    assert [e.version for e in after[1:]] == [e.version for e in before[1:]]


def test_identical_rows_get_distinct_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", GENERIC_HEADER + ROWS[0] * 3)
    ids = [e.external_id for e in entries_of(fetch(path))]
    base = identity_hash("2026-03-02", "Ada", "ACME Corp", "Website", "Dev", "")
    assert ids == [base, f"{base}#2", f"{base}#3"]


def test_a_repeated_id_makes_every_line_of_it_invalid(tmp_path: Path) -> None:
    """Issue 10 (duplicate ids): the first row was charged and the second ignored; now both
    are listed, with their lines, until the file is fixed (the entry keeps its last version)."""
    text = "id,date,hours\n7,2026-03-02,1\n8,2026-03-02,1\n7,2026-03-03,2\n"
    (page,) = fetch(write(tmp_path / "ids.csv", text))
    assert [e.external_id for e in page.entries] == ["8"]
    reason = "id '7' appears on lines 2 and 4: keep one row per id"
    assert [(r.locator, r.reason, r.external_id, r.spent_date) for r in page.invalid] == [
        ("ids.csv line 2", reason, "7", dt.date(2026, 3, 2)),
        ("ids.csv line 4", reason, "7", dt.date(2026, 3, 3)),
    ]


def test_a_repeated_id_across_pages_is_found_before_the_first_page(tmp_path: Path) -> None:
    rows = "".join(f"{n},2026-03-02,1\n" for n in range(PAGE_SIZE + 10))
    text = "id,date,hours\n" + rows + "3,2026-03-04,1\n"
    pages = fetch(write(tmp_path / "ids.csv", text))
    invalid = [r for page in pages for r in page.invalid]
    assert [(r.locator, r.external_id) for r in invalid] == [
        ("ids.csv line 5", "3"),
        (f"ids.csv line {PAGE_SIZE + 12}", "3"),
    ]
    assert "3" not in {e.external_id for e in entries_of(pages)}


# --- invalid rows ---------------------------------------------------------------------------


def test_bad_rows_become_invalid_records_and_the_rest_goes_on() -> None:
    (page,) = fetch(FIXTURES / "invalid.csv")
    assert [(e.description, e.seconds) for e in page.entries] == [
        ("Good one", 5400),
        ("Multi\nline note", 7200),
        ("Last good", 900),
    ]
    day3, day4 = dt.date(2026, 3, 3), dt.date(2026, 3, 4)
    not_a_date = "date '2026-02-30' is not a date (YYYY-MM-DD, M/D/YYYY or D.M.YYYY)"
    assert [(r.locator, r.reason, r.spent_date) for r in page.invalid] == [
        ("invalid.csv line 3", not_a_date, None),
        ("invalid.csv line 4", "hours 'abc' is not a number", day3),
        ("invalid.csv line 5", "hours '-2' is negative", day3),
        ("invalid.csv line 6", "date is empty", None),
        ("invalid.csv line 7", "no duration: hours empty", day4),
        ("invalid.csv line 8", "billable 'maybe' is not true/false, yes/no or 1/0", day4),
        ("invalid.csv line 11", "row has 9 cells but the header has 8", dt.date(2026, 3, 5)),
    ]  # fmt: skip
    bad_hours = page.invalid[1]
    assert bad_hours.source == "exports"
    assert bad_hours.raw == {
        "date": "2026-03-03",
        "hours": "abc",
        "user": "Ada",
        "client": "ACME Corp",
        "project": "Website",
        "task": "Dev",
        "billable": "true",
        "description": "Bad hours",
    }
    # An invalid edit keeps the identity of the row, so it never reads as a deletion.
    assert bad_hours.external_id == identity_hash(
        "2026-03-03", "Ada", "ACME Corp", "Website", "Dev", ""
    )
    assert page.invalid[0].external_id is None
    assert page.invalid[6].raw["(cells beyond the header)"] == [" comma"]
    assert page.snapshot == DateWindow(dt.date(2026, 3, 2), dt.date(2026, 3, 6))
    assert page.snapshot_complete is True


def test_absurd_durations_are_invalid_records_with_a_reason(tmp_path: Path) -> None:
    """Issue 10 item 3: 10000 hours and 1e3 hours were charged (1,000,000 EUR at once)."""
    rows = [
        "2026-03-02,10000,Ada,A,W,D,true,ten thousand\n",
        "2026-03-02,1e3,Ada,A,W,D,true,exponent\n",
        "2026-03-02,-1,Ada,A,W,D,true,negative\n",
        "2026-03-02,25:00,Ada,A,W,D,true,a day and an hour\n",
        "2026-03-02,24,Ada,A,W,D,true,a full day\n",
    ]
    (page,) = fetch(write(tmp_path / "big.csv", GENERIC_HEADER + "".join(rows)))
    assert [e.description for e in page.entries] == ["a full day"]
    over = "hours is more than sources[1].max_hours (24): not charged"
    assert [(r.locator, r.reason) for r in page.invalid] == [
        ("big.csv line 2", f"10000.00 {over}"),
        ("big.csv line 3", "hours '1e3' is in exponent notation: write the plain number"),
        ("big.csv line 4", "hours '-1' is negative"),
        ("big.csv line 5", f"25.00 {over}"),
    ]
    assert {r.spent_date for r in page.invalid} == {dt.date(2026, 3, 2)}
    assert all(r.external_id for r in page.invalid)  # the entry keeps its last good version
    (page,) = fetch(write(tmp_path / "big.csv", GENERIC_HEADER + rows[3]), max_hours=Decimal(48))
    assert [e.seconds for e in page.entries] == [90000]


def test_start_and_end_a_week_apart_are_over_the_cap(tmp_path: Path) -> None:
    text = "start,end,client\n2026-03-02T09:00:00Z,2026-03-09T09:00:00Z,A\n"
    (page,) = fetch(write(tmp_path / "week.csv", text))
    assert page.entries == ()
    assert [r.reason for r in page.invalid] == [
        "168.00 hours is more than sources[1].max_hours (24): not charged"
    ]


def test_a_file_without_valid_rows_is_never_a_snapshot(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", GENERIC_HEADER + "2026-03-02,x,Ada,A,W,D,true,n\n")
    (page,) = fetch(path)
    assert page.entries == ()
    assert [r.reason for r in page.invalid] == ["hours 'x' is not a number"]
    assert (page.snapshot, page.snapshot_complete) == (None, False)
    assert page.cursor == hashlib.sha256(path.read_bytes()).hexdigest()


# --- cursor and pages -----------------------------------------------------------------------


def test_an_unchanged_file_yields_no_page_and_a_window_forces_a_re_read() -> None:
    path = FIXTURES / "generic.csv"
    cursor = fetch(path)[-1].cursor
    assert cursor == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fetch(path, cursor=cursor) == []
    window = DateWindow(dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    (page,) = fetch(path, cursor=cursor, window=window)
    assert (len(page.entries), page.cursor, page.snapshot_complete) == (3, cursor, True)


def generated_rows(count: int) -> str:
    return "".join(
        f"2026-03-{1 + i % 28:02d},0.25,user{i % 5},ACME Corp,Website,Dev,true,item {i}\n"
        for i in range(count)
    )


def test_pages_carry_the_snapshot_and_only_the_last_completes_it(tmp_path: Path) -> None:
    rows = 2 * PAGE_SIZE + 500
    path = write(tmp_path / "big.csv", GENERIC_HEADER + generated_rows(rows))
    pages = fetch(path)
    window = DateWindow(dt.date(2026, 3, 1), dt.date(2026, 3, 28))
    assert [len(p.entries) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 500]
    assert [p.snapshot for p in pages] == [window, window, window]
    assert [p.snapshot_complete for p in pages] == [False, False, True]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.cursor for p in pages] == [None, None, digest]
    assert len({e.external_id for p in pages for e in p.entries}) == rows


def test_a_snapshot_covers_the_clients_the_file_names_by_default(tmp_path: Path) -> None:
    """Issue 10 (filtered exports): an export of one client says nothing about the others."""
    text = GENERIC_HEADER + ROWS[0] + "2026-03-03,1,Ada,,Website,Dev,true,No client\n"
    path = write(tmp_path / "acme.csv", text)
    (page,) = fetch(path)
    assert (page.snapshot, page.snapshot_clients) == (
        DateWindow(dt.date(2026, 3, 2), dt.date(2026, 3, 3)),
        frozenset({"ACME Corp", ""}),
    )
    (page,) = fetch(path, snapshot="dates")
    assert (page.snapshot is not None, page.snapshot_clients) == (True, None)
    (page,) = fetch(path, snapshot="none")
    assert (page.snapshot, page.snapshot_complete, len(page.entries)) == (None, False, 2)
    assert page.cursor is not None
    no_client_column = write(tmp_path / "plain.csv", "date,hours\n2026-03-02,1\n")
    (page,) = fetch(no_client_column)
    assert (page.snapshot is not None, page.snapshot_clients) == (True, None)
    with pytest.raises(ConnectorError, match=r"sources\[1\]\.snapshot: unknown"):
        make_source(path, snapshot="clients")


def test_invalid_records_ride_on_the_page_where_they_occur(tmp_path: Path) -> None:
    rows = generated_rows(2 * PAGE_SIZE).splitlines(keepends=True)
    rows.insert(10, "2026-03-02,oops,Ada,A,W,D,true,early\n")  # line 12: on the first page
    rows.append("2026-03-02,oops,Ada,A,W,D,true,late\n")  # after the last entry: last page
    pages = fetch(write(tmp_path / "mixed.csv", GENERIC_HEADER + "".join(rows)))
    assert [len(p.entries) for p in pages] == [PAGE_SIZE, PAGE_SIZE]
    assert [[r.locator for r in p.invalid] for p in pages] == [
        ["mixed.csv line 12"],
        [f"mixed.csv line {2 * PAGE_SIZE + 3}"],
    ]
    assert [p.snapshot_complete for p in pages] == [False, True]


def test_a_file_changed_while_being_read_fails_before_the_last_page(tmp_path: Path) -> None:
    path = write(tmp_path / "live.csv", GENERIC_HEADER + generated_rows(PAGE_SIZE + 500))
    pages = make_source(path).fetch(FetchRequest(None, None, NOW))
    first = next(pages)
    assert first.cursor is None and not first.snapshot_complete
    with path.open("a") as stream:
        stream.write("2026-03-09,1,Ada,A,W,D,true,appended\n")
    with pytest.raises(ConnectorError, match="changed while being read"):
        list(pages)


def test_a_hundred_thousand_rows_stream_in_pages(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.csv", GENERIC_HEADER + generated_rows(100_000))
    count = pages = largest = 0
    for page in make_source(path).fetch(FetchRequest(None, None, NOW)):
        count, pages = count + len(page.entries), pages + 1
        largest = max(largest, len(page.entries))
    assert (count, pages, largest) == (100_000, -(-100_000 // PAGE_SIZE), PAGE_SIZE)


# --- file encodings and separators ----------------------------------------------------------


def test_bom_and_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + GENERIC_HEADER + ROWS[0] + ROWS[1]).replace("\n", "\r\n").encode())
    pages = fetch(path)
    entries = entries_of(pages)
    assert [(e.spent_date, e.seconds, e.description) for e in entries] == [
        (dt.date(2026, 3, 2), 5400, "Build"),
        (dt.date(2026, 3, 2), 7200, "Review"),
    ]
    assert "date" in entries[0].raw  # the BOM is not part of the first header
    assert pages[-1].invalid == ()


def test_semicolon_separated_file_with_decimal_commas_and_dotted_dates(tmp_path: Path) -> None:
    path = write(tmp_path / "eu.csv", "date;hours;client\n02.03.2026;1,5;ACME Corp\n")
    (entry,) = entries_of(fetch(path, date_order="dmy"))
    assert (entry.spent_date, entry.seconds, entry.client_name) == (
        dt.date(2026, 3, 2),
        5400,
        "ACME Corp",
    )


def test_text_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(GENERIC_HEADER.encode() + "2026-03-02,1,Zoë,A,W,D,true,x\n".encode("latin-1"))
    with pytest.raises(ConnectorError, match="is not utf-8 text"):
        fetch(path)


def test_a_windows_1252_export_is_read_with_its_encoding(tmp_path: Path) -> None:
    """Issue 10 (encodings): European Excel saves CSV as Windows-1252; the refusal names the
    setting and the line of the bad byte, not where the text layer happened to be."""
    rows = "".join(f"2026-03-02,1,Ada,A,W,D,true,row {n}\n" for n in range(2000))
    text = GENERIC_HEADER + rows + "2026-03-03,1,Zoë,Café,W,D,true,€ 5\n"
    path = tmp_path / "excel.csv"
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(ConnectorError) as refused:
        fetch(path)
    assert "excel.csv line 2002 is not utf-8 text" in str(refused.value)
    assert "set sources[1].encoding" in str(refused.value)
    entries = entries_of(fetch(path, encoding="cp1252"))
    last = entries[-1]
    assert (last.user_name, last.client_name, last.description) == ("Zoë", "Café", "€ 5")
    with pytest.raises(ConnectorError, match=r"sources\[1\]\.encoding: unknown"):
        make_source(path, encoding="klingon")


# --- check_connection and configuration errors ----------------------------------------------


def test_check_connection_counts_rows_and_invalid_rows() -> None:
    generic = make_source(FIXTURES / "generic.csv")
    assert generic.check_connection() == f"{FIXTURES / 'generic.csv'}: 3 rows, generic format"
    invalid = make_source(FIXTURES / "invalid.csv")
    expected = f"{FIXTURES / 'invalid.csv'}: 10 rows (7 invalid), generic format"
    assert invalid.check_connection() == expected


def test_a_missing_file_is_a_connector_error(tmp_path: Path) -> None:
    source = make_source(tmp_path / "nope.csv")
    expected = f"file {tmp_path / 'nope.csv'} not found (check sources[1].path)"
    with pytest.raises(ConnectorError) as raised:
        list(source.fetch(FetchRequest(None, None, NOW)))
    assert str(raised.value) == expected
    with pytest.raises(ConnectorError, match="not found"):
        source.check_connection()


def test_an_export_of_another_tracker_names_the_format_to_set() -> None:
    source = make_source(FIXTURES / "harvest.csv", "generic")
    with pytest.raises(ConnectorError) as raised:
        source.check_connection()
    expected = (
        "harvest.csv: the header is a harvest export's, not generic "
        "(set sources[1].format: harvest)"
    )
    assert str(raised.value) == expected


def test_a_header_without_required_columns_says_which(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "User,Start date,Description\nAda,2026-03-02,x\n")
    with pytest.raises(ConnectorError) as raised:
        make_source(path, "toggl").check_connection()
    expected = (
        "t.csv: header not recognised as a toggl export: missing duration or start time+end time "
        "(check sources[1].format)"
    )
    assert str(raised.value) == expected


def test_an_empty_file_and_an_unknown_format_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="is empty"):
        make_source(write(tmp_path / "e.csv", "\n\n")).check_connection()
    with pytest.raises(ConnectorError, match="unknown CSV format 'excel'"):
        make_source(tmp_path / "e.csv", "excel")


# --- folders and globs (issue 10, filtered exports) ------------------------------------------

NOV_HEADER = "date,hours,client,description\n"


def folder_of(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        write(folder / f"{name}.csv", NOV_HEADER + text)
    return folder


def test_a_folder_is_read_in_name_order_each_file_a_snapshot_of_its_scope(
    tmp_path: Path,
) -> None:
    folder = folder_of(
        tmp_path,
        b_november="2026-11-02,2,ACME Corp,n\n",
        a_october="2026-10-05,1,ACME Corp,o\n2026-10-06,1,Globex,g\n",
    )
    write(folder / "notes.txt", "not an export\n")
    pages = fetch(folder)
    assert [e.description for e in entries_of(pages)] == ["o", "g", "n"]
    october = DateWindow(dt.date(2026, 10, 5), dt.date(2026, 10, 6))
    november = DateWindow(dt.date(2026, 11, 2), dt.date(2026, 11, 2))
    # Scopes are diffed once every file is applied: the last file's page, then the others'.
    assert [(p.snapshot, p.snapshot_complete, p.snapshot_clients) for p in pages] == [
        (october, False, frozenset({"ACME Corp", "Globex"})),
        (november, True, frozenset({"ACME Corp"})),
        (october, True, frozenset({"ACME Corp", "Globex"})),
    ]
    assert [p.cursor is not None for p in pages] == [False, False, True]
    assert make_source(folder).check_connection() == f"{folder} (2 files): 3 rows, generic format"


def test_a_later_file_decides_the_rows_of_its_scope(tmp_path: Path) -> None:
    """A re-saved export (a later name) replaces the earlier one for its dates and clients:
    a row deleted since is not kept alive by the older file, and an edited row is read once.
    """
    folder = folder_of(
        tmp_path,
        export_1="2026-10-30,1,ACME Corp,kept\n2026-11-02,1,ACME Corp,deleted\n"
        "2026-11-03,1,ACME Corp,edited\n2026-11-03,1,Globex,other client\n",
        export_2="2026-11-01,1,ACME Corp,early\n2026-11-03,4,ACME Corp,edited\n"
        "2026-11-04,1,ACME Corp,new\n",
    )
    entries = entries_of(fetch(folder))
    assert [(e.description, e.seconds) for e in entries] == [
        ("kept", 3600),
        ("other client", 3600),
        ("early", 3600),
        ("edited", 4 * 3600),
        ("new", 3600),
    ]


def test_an_unchanged_set_is_not_read_and_any_change_re_reads_it(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, a="2026-11-01,1,ACME Corp,x\n", b="2026-11-02,1,ACME Corp,y\n")
    cursor = fetch(folder)[-1].cursor
    assert fetch(folder, cursor=cursor) == []
    write(folder / "b.csv", NOV_HEADER + "2026-11-02,2,ACME Corp,y\n")
    pages = fetch(folder, cursor=cursor)
    assert [e.seconds for e in entries_of(pages)] == [3600, 7200]
    changed = pages[-1].cursor
    assert changed not in (None, cursor)
    (folder / "a.csv").rename(folder / "c.csv")  # a rename changes the order: read again
    assert fetch(folder, cursor=changed) != []


def test_a_file_that_disappears_covers_nothing(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, a="2026-10-01,1,ACME Corp,x\n", b="2026-11-02,1,ACME Corp,y\n")
    (folder / "a.csv").unlink()
    pages = fetch(folder)
    assert [p.snapshot for p in pages if p.snapshot_complete] == [
        DateWindow(dt.date(2026, 11, 2), dt.date(2026, 11, 2))
    ]


def test_a_glob_names_the_files_and_an_empty_one_is_a_clear_error(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, **{"2026-10": "2026-10-01,1,A,x\n", "old": "2026-09-01,1,A,o\n"})
    pages = fetch(folder / "2026-*.csv")
    assert [e.description for e in entries_of(pages)] == ["x"]
    with pytest.raises(ConnectorError) as raised:
        fetch(folder / "2027-*.csv")
    assert str(raised.value) == (
        f"no file matches {folder / '2027-*.csv'} (sources[1].path): nothing read, nothing reversed"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConnectorError, match=r"has no \.csv file \(sources\[1\]\.path\)"):
        fetch(empty)


def test_the_date_order_one_file_proves_holds_for_the_sources_other_files(
    tmp_path: Path,
) -> None:
    folder = folder_of(tmp_path, a="01/11/2026,1,A,x\n07/11/2026,1,A,y\n", b="15/03/2026,1,A,z\n")
    pages = fetch(folder)
    assert [e.spent_date for e in entries_of(pages)] == [
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 7),
        dt.date(2026, 3, 15),
    ]
    assert pages[-1].cursor is not None and pages[-1].cursor.endswith(" dmy")
    write(folder / "c.csv", NOV_HEADER + "03/16/2026,1,A,w\n")
    with pytest.raises(ConnectorError, match=r"b\.csv: 15/03/2026 \(line 2\) is day first but c"):
        fetch(folder)


# --- identity without an id column (issue 10, filtered exports) ------------------------------


def test_an_edited_description_keeps_the_id_and_changes_the_version(tmp_path: Path) -> None:
    """A person edits the hours and the description, not the date, person, client, project,
    task or start: such an edit is a new version of the same entry, not a delete and an add."""
    before = entries_of(fetch(write(tmp_path / "a.csv", GENERIC_HEADER + "".join(ROWS))))
    edited = [ROWS[0].replace(",Build\n", ",Build the API\n").replace(",1.5,", ",2,"), *ROWS[1:]]
    after = entries_of(fetch(write(tmp_path / "b.csv", GENERIC_HEADER + "".join(edited))))
    assert [e.external_id for e in after] == [e.external_id for e in before]
    assert (after[0].description, after[0].seconds) == ("Build the API", 7200)
    assert after[0].version != before[0].version


def test_rows_of_the_same_work_are_told_apart_by_their_order(tmp_path: Path) -> None:
    """Two rows of one person, day, project and task without a start are two entries, never
    merged: the first keeps the identity, the next is "#2"."""
    second = ROWS[0].replace(",1.5,", ",0.5,").replace(",Build\n", ",Fix\n")
    pages = fetch(write(tmp_path / "same.csv", GENERIC_HEADER + ROWS[0] + second))
    base = identity_hash("2026-03-02", "Ada", "ACME Corp", "Website", "Dev", "")
    assert [(e.external_id, e.seconds) for e in entries_of(pages)] == [
        (base, 5400),
        (f"{base}#2", 1800),
    ]
    assert [r for page in pages for r in page.invalid] == []


def test_entries_name_the_id_the_previous_release_gave_them(tmp_path: Path) -> None:
    """The ledger carries an entry stored under its old id (with the description) over to
    the new one, so the upgrade neither reverses nor charges anything."""
    text = GENERIC_HEADER + ROWS[0] + ROWS[0] + "2026-03-04,1,Ada,ACME Corp,Website,Dev,true,x\n"
    entries = entries_of(fetch(write(tmp_path / "old.csv", text)))
    old = identity_hash("2026-03-02", "Ada", "ACME Corp", "Website", "Dev", "Build", "")
    assert [e.former_id for e in entries] == [
        old,
        f"{old}#2",
        identity_hash("2026-03-04", "Ada", "ACME Corp", "Website", "Dev", "x", ""),
    ]
    with_ids = entries_of(fetch(write(tmp_path / "ids.csv", "id,date,hours\n7,2026-03-02,1\n")))
    assert [(e.external_id, e.former_id) for e in with_ids] == [("7", None)]
