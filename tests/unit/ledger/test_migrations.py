"""Revision 0005 fills the columns statements read from what existing postings hold."""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select

from sync.ledger import Ledger, schema

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
RULE = "(customers[0].match[0])"


def posting(
    pid: int, key: str, amount: int, reason: str, entry: int | None = 1
) -> dict[str, object]:
    return {
        "id": pid,
        "key": key,
        "customer_id": "acme",
        "budget_id": "retainer",
        "kind": "entry" if amount < 0 else "reversal",
        "amount_minor": amount,
        "unit": "EUR",
        "entry_id": entry,
        "recorded_at": NOW,
        "reason": reason,
    }


def test_existing_postings_get_their_explanation_and_role(db_url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", "sync.ledger:migrations")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            schema.entries.insert().values(
                id=1,
                source="tracker",
                external_id="e1",
                version="v3",
                spent_date=NOW.date(),
                seconds=3600,
                billable=True,
                raw="{}",
                status="deleted",
                first_seen_at=NOW,
                updated_at=NOW,
            )
        )
        label = "tracker:e1 (2026-11-19) v1: "
        conn.execute(
            schema.postings.insert(),
            [
                posting(1, "entry:1:acme:retainer:1", -10000, f"{label}1.00 h = EUR 100.00 {RULE}"),
                posting(
                    2,
                    "entry:1:acme:retainer:2",
                    -5000,
                    f"{label}1.50 h = EUR 150.00 {RULE}; it cost 100.00 before",
                ),
                posting(3, "entry:1:acme:retainer:3", 15000, f"{label}now deleted: gone"),
                posting(4, "opening:acme:retainer:1", 100000, "opening balance", entry=None),
            ],
        )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    p = schema.postings
    ledger = Ledger(db_url)
    with ledger.read() as conn:
        rows = conn.execute(select(p.c.entry_role, p.c.explanation).order_by(p.c.id)).all()
    ledger.dispose()
    assert [tuple(r) for r in rows] == [
        ("charge", "1.00 h = EUR 100.00"),
        ("correction", "1.50 h = EUR 150.00; it cost 100.00 before"),
        ("reversal", "now deleted: gone"),
        (None, None),
    ]
