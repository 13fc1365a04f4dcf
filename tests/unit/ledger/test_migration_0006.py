"""Revision 0006: decisions keep their figures; existing entries get `priced` on the next run.

An installation upgraded from 0005 must not reverse work it charged under `approval: auto` when
the budget is switched to `review` afterwards: the migration forgets the pricing fingerprint so
the next `ensure_books` re-values every entry once (at unchanged amounts) and records what each
is charged at.
"""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, select

from sync.books import ensure_books, pricing_fingerprint
from sync.ledger import Ledger, schema
from sync.rules import Pricer
from tests.support import money_customer, settings_for

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def test_work_charged_before_the_upgrade_stays_charged_when_review_is_switched_on(
    db_url: str,
) -> None:
    auto = settings_for(db_url, money_customer())
    cfg = Config()
    cfg.set_main_option("script_location", "sync.ledger:migrations")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(
            schema.entries.insert().values(
                id=1,
                source="tracker",
                external_id="e1",
                version="v1",
                spent_date=NOW.date(),
                seconds=3600,
                billable=True,
                client_name="ACME Corp",
                raw="{}",
                status="deducted",
                customer_id="acme",
                budget_id="retainer",
                unit="EUR",
                amount_minor=10000,
                first_seen_at=NOW,
                updated_at=NOW,
            )
        )
        conn.execute(
            schema.postings.insert().values(
                key="entry:1:acme:retainer:1",
                customer_id="acme",
                budget_id="retainer",
                kind="entry",
                amount_minor=-10000,
                unit="EUR",
                entry_id=1,
                recorded_at=NOW,
                reason="tracker:e1 (2026-11-20) vv1: 1.00 h x EUR 100.00 = EUR 100.00",
            )
        )
        conn.execute(
            schema.meta.insert().values(key="pricing_fingerprint", value=pricing_fingerprint(auto))
        )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()

    ledger = Ledger(db_url)
    assert ensure_books(ledger, auto, Pricer(auto.customers)) == 1  # the one re-valuation
    review = settings_for(db_url, money_customer(approval="review"))
    ensure_books(ledger, review, Pricer(review.customers))
    e, p = schema.entries, schema.postings
    with ledger.read() as conn:
        status = conn.execute(select(e.c.status)).scalar_one()
        debits = conn.execute(select(func.sum(p.c.amount_minor)).where(p.c.entry_id == 1))
        total = debits.scalar_one()
    ledger.dispose()
    assert (status, total) == ("deducted", -10000)
