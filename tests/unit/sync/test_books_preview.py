"""`preview_books` says exactly what `ensure_books` then posts, and writes nothing itself."""

from __future__ import annotations

import pytest

from sync.books import ensure_books, preview_books
from sync.engine import SyncEngine
from sync.ledger import Ledger, balances, schema
from sync.rules import Pricer
from tests.support import NOW, ScriptedSource, entry, money_customer, settings_for


def _postings(ledger: Ledger) -> int:
    with ledger.read() as conn:
        return len(conn.execute(schema.postings.select()).all())


@pytest.mark.parametrize(
    ("rate", "opening", "entries", "openings", "delta"),
    [
        ("100.00", "1000.00", 0, 0, 0),  # nothing changed: nothing pending
        ("120.00", "1000.00", 3, 0, -9000),  # 4.5 h x 20.00 more, three entries
        ("100.00", "1500.00", 0, 1, 50000),
        ("80.00", "900.00", 3, 1, -10000 + 9000),
    ],
)
def test_preview_is_what_the_next_ensure_books_posts(
    sqlite_url: str, rate: str, opening: str, entries: int, openings: int, delta: int
) -> None:
    settings = settings_for(sqlite_url, money_customer())
    ledger = Ledger(sqlite_url)
    ledger.upgrade()
    ensure_books(ledger, settings, Pricer(settings.customers))
    source = ScriptedSource()
    for i, hours in enumerate(("1", "1.5", "2")):
        source.put(entry(f"e{i}", hours=hours))
    engine = SyncEngine(ledger, Pricer(settings.customers), clock=lambda: NOW)
    engine.sync(source, settings.sources[0], full=True)

    changed = settings_for(sqlite_url, money_customer(rate=rate, opening=opening))
    pricer = Pricer(changed.customers)
    count = _postings(ledger)
    with ledger.read() as conn:
        preview = preview_books(conn, changed, pricer)
        before = balances(conn)[("acme", "retainer")].balance
    assert _postings(ledger) == count  # the preview wrote nothing
    assert (preview.entries, preview.openings, preview.pending) == (
        entries,
        openings,
        bool(entries or openings),
    )
    assert preview.deltas.get(("acme", "retainer"), 0) == delta

    ensure_books(ledger, changed, pricer)
    with ledger.read() as conn:
        after = balances(conn)[("acme", "retainer")].balance
        assert not preview_books(conn, changed, pricer).pending
    assert after - before == delta
