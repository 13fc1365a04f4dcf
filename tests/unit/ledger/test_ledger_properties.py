"""Property: any sequence of adds, edits, deletions, re-syncs and failed syncs leaves each
entry's debits equal to the value of its latest version (I1) and each balance equal to a
from-scratch recomputation (I2)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from sync.books import ensure_books
from sync.engine import SyncEngine
from sync.ledger import Ledger, balances, schema
from sync.model import from_minor
from sync.rules import Pricer
from sync.settings import Rounding
from sync.views.reports import balance_rows
from tests.support import NOW, ScriptedSource, entry, money_customer, settings_for

IDS = st.sampled_from([f"e{i}" for i in range(4)])
HOURS = st.sampled_from(["0", "0.1", "0.25", "1", "1.33", "2.5", "7.75"])

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), IDS, HOURS, st.booleans(), st.booleans(), st.integers(1, 25)),
        st.tuples(st.just("delete"), IDS),
        st.tuples(st.just("sync"), st.booleans()),
        st.tuples(st.just("failing_sync"), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
@example(
    ops=[("put", "e0", "1", True, False, 3), ("sync", True), ("delete", "e0"), ("sync", False)]
)
@example(
    ops=[("put", "e0", "1", True, False, 3), ("sync", True), ("put", "e0", "1", True, True, 3)]
)
@example(ops=[("put", "e1", "2.5", True, False, 3), ("failing_sync", 0), ("delete", "e1")])
def test_ledger_equals_recomputation(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        customer = money_customer(
            rate="97.50", opening="500.00", below=None, rounding=Rounding(15, "nearest")
        )
        config = settings_for(url, customer)
        ledger = Ledger(url)
        ledger.upgrade()
        pricer = Pricer(config.customers)
        ensure_books(ledger, config, pricer)
        engine = SyncEngine(ledger, pricer, clock=lambda: NOW)
        source = ScriptedSource(page_size=3)
        versions: dict[str, int] = {}
        for op in ops:
            if op[0] == "put":
                _, ext, hours, billable, internal, day = op
                versions[str(ext)] = versions.get(str(ext), 0) + 1
                source.put(
                    entry(
                        str(ext),
                        hours=str(hours),
                        billable=bool(billable),
                        tags=("internal",) if internal else (),
                        day=int(day),
                        version=f"v{versions[str(ext)]}",
                    )
                )
            elif op[0] == "delete" and op[1] in source.entries:
                source.remove(str(op[1]))
            elif op[0] == "sync":
                engine.sync(source, config.sources[0], full=bool(op[1]))
            elif op[0] == "failing_sync":
                source.fail_after_pages = int(op[1])
                engine.sync(source, config.sources[0], full=True)
                source.fail_after_pages = None
        engine.sync(source, config.sources[0], full=True)

        expected = {ext: pricer.assess(e).amount_minor for ext, e in source.entries.items()}
        e, p = schema.entries, schema.postings
        with ledger.read() as conn:
            debits = {
                ext: -int(total)
                for ext, total in conn.execute(
                    select(e.c.external_id, func.sum(p.c.amount_minor))
                    .join(p, p.c.entry_id == e.c.id)
                    .group_by(e.c.external_id)
                )
            }
            all_postings = int(
                conn.execute(select(func.coalesce(func.sum(p.c.amount_minor), 0))).scalar_one()
            )
            parts = balances(conn)[("acme", "retainer")]
            shown = balance_rows(conn, config)[0]
        assert {k: v for k, v in debits.items() if v} == {k: v for k, v in expected.items() if v}
        assert parts.balance == all_postings == 50000 - sum(expected.values())
        assert shown.balance == from_minor(parts.balance, "EUR")
        ledger.dispose()
