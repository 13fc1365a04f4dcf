"""The engine and the ledger on a real database: the delta rule, deletions, the guard, I6."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from sync.books import StaleDecision, decide, ensure_books, topup
from sync.engine import SyncEngine
from sync.ledger import Ledger, balances, budget_balance, schema
from sync.model import EntryStatus, InvalidRecord
from sync.ports import Page
from sync.rules import Pricer
from sync.settings import Rounding
from sync.views.reports import entry_rows
from sync.views.status_page import load_status, render_status
from tests.support import NOW, ScriptedSource, entry, money_customer, settings_for


def make(db_url: str, **customer_args: object) -> tuple[Ledger, Pricer, SyncEngine]:
    customer = money_customer(**customer_args)  # type: ignore[arg-type]
    settings = settings_for(db_url, customer)
    ledger = Ledger(db_url)
    ledger.upgrade()
    pricer = Pricer(settings.customers)
    ensure_books(ledger, settings, pricer)
    return ledger, pricer, SyncEngine(ledger, pricer, clock=lambda: NOW)


def balance(ledger: Ledger) -> int:
    with ledger.read() as conn:
        return budget_balance(conn, "acme", "retainer")


def entry_debits(ledger: Ledger) -> dict[str, int]:
    """Debits per external id, straight from postings."""
    e, p = schema.entries, schema.postings
    with ledger.read() as conn:
        rows = conn.execute(
            select(e.c.external_id, func.sum(p.c.amount_minor))
            .join(p, p.c.entry_id == e.c.id)
            .group_by(e.c.external_id)
        ).all()
    return {ext: -int(total) for ext, total in rows if total}


def test_opening_balance_is_posted_once(db_url: str) -> None:
    ledger, pricer, _ = make(db_url)
    settings = settings_for(db_url, money_customer())
    ensure_books(ledger, settings, pricer)
    assert balance(ledger) == 100000
    with ledger.read() as conn:
        parts = balances(conn)[("acme", "retainer")]
    assert (parts.opening, parts.credited, parts.debited) == (100000, 0, 0)


def test_sync_posts_entries_and_rerun_is_harmless(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source = ScriptedSource()
    source.put(entry("1", hours="1.5"))
    source.put(entry("2", hours="2"))
    source.put(entry("3", hours="1", tags=("internal",)))
    first = engine.sync(source, settings_for(db_url).sources[0], full=True)
    assert (first.new, first.deducted, first.excluded, first.outcome) == (3, 2, 1, "ok")
    assert balance(ledger) == 100000 - 15000 - 20000
    second = engine.sync(source, settings_for(db_url).sources[0], full=True)
    assert (second.new, second.changed, second.unchanged, second.postings) == (0, 0, 3, 0)
    assert balance(ledger) == 65000
    assert entry_debits(ledger) == {"1": 15000, "2": 20000}


def test_edit_posts_the_difference_and_delete_reverses(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1"))
    source.put(entry("2", hours="1"))
    engine.sync(source, source_settings, full=True)
    source.put(entry("1", hours="2.5", version="v2"))
    source.remove("2")
    summary = engine.sync(source, source_settings, full=True)
    assert (summary.changed, summary.deleted) == (1, 1)
    assert entry_debits(ledger) == {"1": 25000}
    assert balance(ledger) == 75000
    with ledger.read() as conn:
        reasons = [r.reason for r in conn.execute(select(schema.postings).order_by("id"))]
    assert "it cost 100.00 before" in reasons[-2] or "it cost 100.00 before" in reasons[-1]
    assert any("now deleted" in r for r in reasons)


def test_entry_postings_store_their_role_and_what_a_client_reads(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1"))
    source.put(entry("2", hours="1"))
    engine.sync(source, source_settings, full=True)
    source.put(entry("1", hours="2.5", version="v2"))
    source.remove("2")
    engine.sync(source, source_settings, full=True)
    p, e = schema.postings, schema.entries
    with ledger.read() as conn:
        rows = conn.execute(
            select(e.c.external_id, p.c.entry_role, p.c.explanation, p.c.reason)
            .join(e, p.c.entry_id == e.c.id)
            .order_by(p.c.id)
        ).all()
    assert [(r.external_id, r.entry_role) for r in rows] == [
        ("1", "charge"),
        ("2", "charge"),
        ("1", "correction"),
        ("2", "reversal"),
    ]
    # What statements showed before the column: the reason without label and YAML paths.
    label = re.compile(r"^.*? \(\d{4}-\d{2}-\d{2}\) v\S*: ")
    yaml_path = re.compile(r"\s*\((?:customers|sources|invoicing)\[[^)]*\)")
    for r in rows:
        assert r.explanation == yaml_path.sub("", label.sub("", r.reason, count=1)).strip()
    assert rows[0].explanation.endswith("1.00 h x EUR 100.00 = EUR 100.00")
    assert rows[2].explanation.endswith("= EUR 250.00; it cost 100.00 before")
    assert rows[3].explanation == "now deleted: deleted in source; it cost 100.00 before"


def test_the_deletion_guard_refuses_a_mass_reversal_until_the_operator_accepts_it(
    db_url: str,
) -> None:
    ledger, _, engine = make(db_url, opening="10000.00")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource(page_size=50)
    for i in range(30):
        source.put(entry(f"e{i}", hours="1", day=1 + i % 20))
    engine.sync(source, source_settings, full=True)
    before = balance(ledger)
    source.entries = {k: v for k, v in source.entries.items() if k in ("e0", "e1")}
    refused = engine.sync(source, source_settings, full=True)
    assert refused.outcome == "partial"
    assert "refusing to reverse 28 entries" in refused.warnings[0]
    assert "--accept-deletions" in refused.warnings[0]
    assert balance(ledger) == before

    summary = engine.sync(source, source_settings, full=True, accept_deletions=True)
    assert (summary.outcome, summary.deleted, summary.warnings) == ("ok", 28, [])
    assert balance(ledger) == before + 28 * 10000
    assert set(entry_debits(ledger)) == {"e0", "e1"}
    p = schema.postings
    with ledger.read() as conn:
        reasons = conn.scalars(select(p.c.reason).where(p.c.entry_role == "reversal")).all()
    assert len(reasons) == 28
    accepted = "deleted at the source, mass deletion accepted by the operator on 2026-11-26"
    assert all(accepted in r for r in reasons), reasons[0]


def test_accepting_deletions_marks_only_what_the_guard_would_refuse(db_url: str) -> None:
    ledger, _, engine = make(db_url, opening="10000.00")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    for i in range(5):
        source.put(entry(f"e{i}", hours="1"))
    engine.sync(source, source_settings, full=True)
    del source.entries["e0"]
    summary = engine.sync(source, source_settings, full=True, accept_deletions=True)
    assert summary.deleted == 1
    p = schema.postings
    with ledger.read() as conn:
        reasons = conn.scalars(select(p.c.reason).where(p.c.entry_role == "reversal")).all()
    assert len(reasons) == 1 and "accepted by the operator" not in reasons[0]


def test_failed_page_keeps_cursor_and_committed_pages(db_url: str) -> None:
    ledger, _, engine = make(db_url, opening="10000.00")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource(page_size=2, fail_after_pages=1)
    for i in range(5):
        source.put(entry(f"e{i}", hours="1"))
    summary = engine.sync(source, source_settings, full=True)
    assert summary.outcome == "failed"
    assert "server error on page 2" in (summary.error or "")
    with ledger.read() as conn:
        cursor = conn.execute(select(schema.source_state.c.cursor)).scalar_one()
        stored = conn.execute(select(func.count()).select_from(schema.entries)).scalar_one()
        reconciled = conn.execute(select(schema.source_state.c.last_reconciled_at)).scalar_one()
    assert (cursor, stored, reconciled) == ("page-1", 2, None)
    assert balance(ledger) == 1000000 - 20000
    source.fail_after_pages = None
    engine.sync(source, source_settings, full=True)
    assert balance(ledger) == 1000000 - 50000


def test_invalid_record_never_deletes_what_was_there(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]

    class Flaky(ScriptedSource):
        broken: bool = False

        def fetch(self, request):  # type: ignore[no-untyped-def]
            for page in super().fetch(request):
                if self.broken:
                    yield Page(
                        entries=[e for e in page.entries if e.external_id != "2"],
                        invalid=[
                            InvalidRecord(
                                source="tracker",
                                locator="page 1 item 2",
                                reason="hours: 'x'",
                                raw={"id": "2", "hours": "x"},
                                external_id="2",
                                spent_date=dt.date(2026, 11, 10),
                            )
                        ]
                        if page.snapshot_complete
                        else [],
                        cursor=page.cursor,
                        snapshot=page.snapshot,
                        snapshot_complete=page.snapshot_complete,
                    )
                else:
                    yield page

    source = Flaky()
    source.put(entry("1"))
    source.put(entry("2"))
    engine.sync(source, source_settings, full=True)
    source.broken = True
    summary = engine.sync(source, source_settings, full=True)
    assert (summary.invalid, summary.deleted, summary.outcome) == (1, 0, "partial")
    assert entry_debits(ledger) == {"1": 10000, "2": 10000}


def test_running_entry_is_not_deducted_until_stopped(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="0.5", running=True))
    summary = engine.sync(source, source_settings, full=True)
    assert summary.running == 1
    assert entry_debits(ledger) == {}
    source.put(entry("1", hours="0.75", version="v2"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {"1": 7500}


def test_review_holds_until_approved_and_edit_needs_new_approval(db_url: str) -> None:
    ledger, pricer, engine = make(db_url, approval="review")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="2"))
    summary = engine.sync(source, source_settings, full=True)
    assert summary.pending == 1
    assert entry_debits(ledger) == {}
    with ledger.read() as conn:
        entry_id = conn.execute(select(schema.entries.c.id)).scalar_one()
    [decided] = decide(ledger, pricer, [entry_id], "approved")
    assert (decided.status, decided.amount) == ("deducted", "200.00")
    assert entry_debits(ledger) == {"1": 20000}
    source.put(entry("1", hours="3", version="v2"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {}
    decide(ledger, pricer, [entry_id], "excluded")
    source.put(entry("1", hours="4", version="v3"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {}


def test_unpriced_work_is_counted_partial_once_and_charged_when_priced(db_url: str) -> None:
    customer = money_customer()
    customer = dataclasses.replace(
        customer,
        budgets=(dataclasses.replace(customer.budgets[0], rate=None, rate_from_source=True),),
    )
    settings = settings_for(db_url, customer)
    ledger = Ledger(db_url)
    ledger.upgrade()
    pricer = Pricer(settings.customers)
    ensure_books(ledger, settings, pricer)
    engine = SyncEngine(ledger, pricer, clock=lambda: NOW)
    source_settings = settings.sources[0]
    source = ScriptedSource()
    priced = entry("1", hours="1")
    source.put(dataclasses.replace(priced, rate=Decimal("80.00"), rate_currency="EUR"))
    source.put(entry("2", hours="2"))
    source.put(dataclasses.replace(entry("3"), rate=Decimal("90"), rate_currency="USD"))
    first = engine.sync(source, source_settings, full=True)
    assert (first.deducted, first.unpriced, first.outcome) == (1, 2, "partial")
    assert entry_debits(ledger) == {"1": 8000}
    with ledger.read() as conn:
        listed = entry_rows(conn, status=EntryStatus.UNPRICED)
    assert {(r.external_id, r.reason) for r in listed} == {
        ("2", "no billable rate in source"),
        ("3", "source rate is in USD, customer acme is billed in EUR"),
    }
    with ledger.read() as conn:
        page = render_status(load_status(conn, settings, NOW), csrf="t")
    assert "Unpriced work: 2" in page and "source rate is in USD" in page
    again = engine.sync(source, source_settings, full=True)
    assert (again.unpriced, again.outcome) == (0, "ok")
    source.put(dataclasses.replace(entry("2", hours="2", version="v2"), rate=Decimal("50")))
    third = engine.sync(source, source_settings, full=True)
    assert (third.deducted, third.unpriced, third.outcome) == (1, 0, "ok")
    assert entry_debits(ledger) == {"1": 8000, "2": 10000}


def _only_id(ledger: Ledger) -> int:
    with ledger.read() as conn:
        return int(conn.execute(select(schema.entries.c.id)).scalar_one())


def test_a_decision_keeps_across_edits_that_keep_the_figures_and_says_what_changed(
    db_url: str,
) -> None:
    """Issue 10, review churn: a description edit keeps an approval; new figures send the
    entry back to review with what was approved and what changed."""
    ledger, pricer, engine = make(db_url, approval="review")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1.25"))
    engine.sync(source, source_settings, full=True)
    entry_id = _only_id(ledger)
    [decided] = decide(ledger, pricer, [entry_id], "approved")
    assert (decided.status, decided.figures) == (
        "deducted",
        "acme/retainer 1.25 h x EUR 100.00 = EUR 125.00",
    )
    renamed = dataclasses.replace(entry("1", hours="1.25", version="v2"), description="typo")
    source.put(renamed)
    summary = engine.sync(source, source_settings, full=True)
    assert (summary.changed, summary.deducted, summary.postings) == (1, 1, 0)
    assert entry_debits(ledger) == {"1": 12500}
    source.put(entry("1", hours="9", version="v3"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {}
    with ledger.read() as conn:
        (row,) = entry_rows(conn, status=EntryStatus.PENDING)
    assert row.reason == (
        "approved before at acme/retainer 1.25 h x EUR 100.00 = EUR 125.00;"
        " now acme/retainer 9.00 h x EUR 100.00 = EUR 900.00: review again"
    )


def test_an_entry_under_its_former_id_is_carried_over_with_its_decision(db_url: str) -> None:
    """Issue 10, CSV identities: rows without ids used to include the description in their id.
    The first sync after the upgrade renames the stored entry (it is not reversed and charged
    again, and its approval stays): the balance does not move."""
    ledger, pricer, engine = make(db_url, approval="review")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("old", hours="1.25"))
    engine.sync(source, source_settings, full=True)
    decide(ledger, pricer, [_only_id(ledger)], "approved")
    assert balance(ledger) == 100000 - 12500
    source.remove("old")
    source.put(dataclasses.replace(entry("new", hours="1.25"), former_id="old"))
    summary = engine.sync(source, source_settings, full=True)
    assert (summary.new, summary.deleted, summary.unchanged, summary.postings) == (0, 0, 1, 0)
    assert entry_debits(ledger) == {"new": 12500}
    assert balance(ledger) == 100000 - 12500
    # An id nobody stored before is simply new.
    source.put(dataclasses.replace(entry("other", hours="1"), former_id="unknown"))
    assert engine.sync(source, source_settings, full=True).new == 1


def test_a_stale_version_is_refused_with_the_new_figures(db_url: str) -> None:
    ledger, pricer, engine = make(db_url, approval="review")
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1.25"))
    engine.sync(source, source_settings, full=True)
    entry_id = _only_id(ledger)
    with ledger.read() as conn:
        (shown,) = entry_rows(conn)
    assert shown.priced_version
    source.put(entry("1", hours="9", version="v2"))
    engine.sync(source, source_settings, full=True)
    with pytest.raises(StaleDecision, match=r"9\.00 h x EUR 100\.00 = EUR 900\.00"):
        decide(ledger, pricer, [entry_id], "approved", versions={entry_id: shown.priced_version})
    assert entry_debits(ledger) == {}
    with ledger.read() as conn:
        (now,) = entry_rows(conn)
    assert now.priced_version != shown.priced_version
    decide(ledger, pricer, [entry_id], "approved", versions={entry_id: str(now.priced_version)})
    assert entry_debits(ledger) == {"1": 90000}


def test_switching_to_review_holds_only_new_or_changed_work(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1"))
    source.put(entry("2", hours="2"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {"1": 10000, "2": 20000}
    settings = settings_for(db_url, money_customer(approval="review"))
    pricer = Pricer(settings.customers)
    ensure_books(ledger, settings, pricer)
    assert entry_debits(ledger) == {"1": 10000, "2": 20000}  # nothing charged is reversed
    engine = SyncEngine(ledger, pricer, clock=lambda: NOW)
    source.put(entry("2", hours="3", version="v2"))
    source.put(entry("3", hours="1"))
    summary = engine.sync(source, source_settings, full=True)
    assert summary.pending == 2
    assert entry_debits(ledger) == {"1": 10000}


def test_an_exclusion_is_flagged_when_the_figures_change(db_url: str) -> None:
    ledger, pricer, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1"))
    engine.sync(source, source_settings, full=True)
    decide(ledger, pricer, [_only_id(ledger)], "excluded")
    source.put(dataclasses.replace(entry("1", version="v2"), description="renamed"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {}
    with ledger.read() as conn:
        assert [r.status for r in entry_rows(conn)] == ["excluded"]
    source.put(entry("1", hours="5", version="v3"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {}  # held, not charged, and not silently excluded
    with ledger.read() as conn:
        (row,) = entry_rows(conn)
    assert row.status == "pending" and str(row.reason).startswith("excluded before at")


def test_config_change_revalues_every_entry(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source_settings = settings_for(db_url).sources[0]
    source = ScriptedSource()
    source.put(entry("1", hours="1.1"))
    engine.sync(source, source_settings, full=True)
    assert entry_debits(ledger) == {"1": 11000}
    changed = money_customer(rate="120.00", rounding=Rounding(30, "up"))
    settings = settings_for(db_url, changed)
    revalued = ensure_books(ledger, settings, Pricer(settings.customers))
    assert revalued == 1
    assert entry_debits(ledger) == {"1": 18000}
    assert ensure_books(ledger, settings, Pricer(settings.customers)) == 0


def test_opening_change_and_topup_are_postings(db_url: str) -> None:
    ledger, pricer, _ = make(db_url)
    customer = money_customer(opening="1500.00")
    ensure_books(ledger, settings_for(db_url, customer), pricer)
    topup(ledger, customer, customer.budgets[0], __import__("decimal").Decimal("250.50"), "wire")
    with ledger.read() as conn:
        parts = balances(conn)[("acme", "retainer")]
        kinds = [r.kind for r in conn.execute(select(schema.postings).order_by("id"))]
    assert (parts.opening, parts.credited, parts.balance) == (150000, 25050, 175050)
    assert kinds == ["opening", "opening", "topup"]


def test_second_engine_is_refused_while_lease_held(db_url: str) -> None:
    ledger, _pricer, engine = make(db_url)
    assert ledger.acquire_lease("source:tracker", "other-host:1", dt.timedelta(minutes=5)) is None
    summary = engine.sync(ScriptedSource(), settings_for(db_url).sources[0])
    assert summary.outcome == "busy"
    assert "other-host:1" in (summary.error or "")


def test_dry_run_writes_nothing(db_url: str) -> None:
    ledger, _, engine = make(db_url)
    source = ScriptedSource()
    source.put(entry("1", hours="2"))
    with ledger.dry_run():
        summary = engine.sync(source, settings_for(db_url).sources[0], full=True)
        assert summary.deducted == 1
    assert balance(ledger) == 100000
    assert entry_debits(ledger) == {}


@pytest.mark.parametrize("hours", ["0", "0.25"])
def test_small_entries(db_url: str, hours: str) -> None:
    ledger, _, engine = make(db_url, rounding=Rounding(15, "up"))
    source = ScriptedSource()
    source.put(entry("1", hours=hours))
    engine.sync(source, settings_for(db_url).sources[0], full=True)
    expected = {"0": {}, "0.25": {"1": 2500}}[hours]
    assert entry_debits(ledger) == expected


def test_replicas_preparing_books_together_post_one_opening(db_url: str) -> None:
    import threading

    settings = settings_for(db_url, money_customer())
    Ledger(db_url).upgrade()
    errors: list[BaseException] = []

    def prepare() -> None:
        try:
            ledger = Ledger(db_url)
            ensure_books(ledger, settings, Pricer(settings.customers))
            ledger.dispose()
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ledger = Ledger(db_url)
    with ledger.read() as conn:
        openings = conn.execute(
            select(func.count()).where(schema.postings.c.kind == "opening")
        ).scalar_one()
    assert openings == 1
    assert balance(ledger) == 100000


def _schema_of(url: str) -> tuple[list[object], str, dict[str, str]]:
    """What Alembic finds different from `schema.metadata`, the stamped revision, and every
    index's full definition (partial-index conditions included).
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        options = {"compare_type": True, "compare_server_default": True}
        differences = compare_metadata(
            MigrationContext.configure(conn, opts=options), schema.metadata
        )
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        if engine.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        else:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        indexes = {str(name): str(sql) for name, sql in conn.execute(text(query))}
    engine.dispose()
    return differences, version, indexes


def test_migrations_and_a_new_database_build_the_same_schema(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from sync.ledger import SCHEMA_HEAD
    from tests.conftest import reset_postgres

    cfg = Config()
    cfg.set_main_option("script_location", "sync.ledger:migrations")
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD
    # Every migration in turn, as an installation upgrading release by release gets them.
    engine = create_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    migrated = _schema_of(db_url)
    # An empty database: `Ledger.upgrade` creates the tables at once and stamps the head.
    if db_url.startswith("sqlite"):
        db_url = db_url.replace(".db", "-new.db")
    else:
        reset_postgres(db_url)
    Ledger(db_url).upgrade()
    created = _schema_of(db_url)
    assert migrated[:2] == ([], SCHEMA_HEAD)
    assert created == migrated
    assert "ix_entries_pending" in created[2] and "pending" in created[2]["ix_entries_pending"]


def test_rows_inserted_through_the_driver_store_what_sqlalchemy_stores(db_url: str) -> None:
    """The hot path bypasses SQLAlchemy's type handling (and, on SQLite, relies on the driver
    adapters of `sync.ledger.register_sqlite_adapters`): dates, aware datetimes, booleans and
    NULLs must be stored exactly as SQLAlchemy would store them.
    """
    from sqlalchemy import text

    from sync.ledger import insert_values

    ledger = Ledger(db_url)
    ledger.upgrade()
    paris = dt.timezone(dt.timedelta(hours=1))
    values = {
        "source": "s",
        "version": "1",
        "spent_date": dt.date(2026, 3, 2),
        "seconds": 5400,
        "billable": False,
        "start_at": dt.datetime(2026, 3, 2, 9, 30, 15, 250, tzinfo=paris),
        "stop_at": None,
        "running": True,
        "deleted": False,
        "user_id": None,
        "tags": "[]",
        "description": "",
        "raw": "{}",
        "status": "deducted",
        "amount_minor": 0,
        "first_seen_at": dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC),
    }
    E = schema.entries
    with ledger.begin() as conn:
        conn.execute(E.insert().values(external_id="through-sqlalchemy", **values))
        names = ["external_id", *values]
        insert_values(conn, E, names, [("through-driver", *values.values())])
    with ledger.read() as conn:
        typed = conn.execute(select(E).order_by(E.c.external_id)).all()
        stored = conn.execute(
            text(
                "SELECT spent_date, billable, start_at, stop_at, running, user_id, updated_at"
                " FROM entries ORDER BY external_id"
            )
        ).all()
    ledger.dispose()
    driver, orm = ({**row._mapping} for row in typed)
    for row in (driver, orm):
        del row["id"], row["external_id"]
    assert driver == orm
    assert driver["start_at"] == values["start_at"] and driver["billable"] is False
    assert stored[0] == stored[1]  # the very same text, numbers and NULLs in the file
