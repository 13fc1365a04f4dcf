"""The `postings` table: the append-only ledger, and every balance, which is a sum over it.

Postings are only ever inserted, each under a unique key, so a replayed write is a no-op (the
database refuses the double); a balance is always a sum over postings, never a stored number
(I2). A `Posting` is built here and nowhere else: `posting_row` for postings that belong to no
entry (opening, top-up, refill credit), `entry_posting` for the delta rule's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from sqlalchemy import Connection, func, select

from sync.ledger import schema
from sync.ledger.database import insert_values
from sync.model import PostingKind

P = schema.postings


# Which posting of an entry on a budget a posting is (stored in `entry_role`): "charge" is the
# first, which charges the work; "correction" a later one that changes what the entry costs
# there (a new version, a re-valuation, a review decision); "reversal" a later one that takes
# all of it back (deleted, excluded, moved to another budget). A Literal rather than a StrEnum:
# plain strings bind to the driver at once, and a sync writes one per entry.
EntryRole = Literal["charge", "correction", "reversal"]
CHARGE: EntryRole = "charge"


class Posting(NamedTuple):
    """One row of `postings`, fields in column order (a tuple: a sync writes thousands, and
    `insert_values` hands them to the driver as they are).

    `amount_minor` > 0 credits the budget, < 0 debits it, in minor units of `unit`.
    `entry_id`, `entry_version` and `rule` are set for postings of an entry, `refill_id` for a
    refill's; `work_date` is when the work happened, `recorded_at` when the posting was made.
    `reason` is for the operator; an entry's postings also carry `explanation`, the same for a
    client (no tracker ids, no YAML paths), and their `entry_role`.
    """

    key: str
    customer_id: str
    budget_id: str
    kind: str
    amount_minor: int
    unit: str
    entry_id: int | None
    entry_version: str | None
    rule: str | None
    refill_id: str | None
    work_date: dt.date | None
    recorded_at: dt.datetime
    run_id: int | None
    reason: str
    note: str | None
    explanation: str | None
    entry_role: EntryRole | None


def posting_row(
    *,
    key: str,
    customer: str,
    budget: str,
    kind: str,
    amount: int,
    unit: str,
    now: dt.datetime,
    reason: str,
    note: str | None = None,
    refill_id: str | None = None,
) -> Posting:
    """A posting that belongs to no entry (opening, top-up, refill credit)."""
    return Posting(
        key=key,
        customer_id=customer,
        budget_id=budget,
        kind=kind,
        amount_minor=amount,
        unit=unit,
        entry_id=None,
        entry_version=None,
        rule=None,
        refill_id=refill_id,
        work_date=now.date(),
        recorded_at=now,
        run_id=None,
        reason=reason,
        note=note,
        explanation=None,
        entry_role=None,
    )


def entry_posting(
    *,
    entry_id: int,
    number: int,
    customer: str,
    budget: str,
    amount: int,
    unit: str,
    version: str,
    rule: str | None,
    work_date: dt.date,
    now: dt.datetime,
    run_id: int | None,
    reason: str,
    explanation: str,
    total: int,
) -> Posting:
    """The `number`-th posting of an entry on a budget (the delta rule's), which brings what
    the entry's postings there add up to to `total`: a debit is a charge, a credit gives some
    or all of an earlier charge back."""
    role: EntryRole
    if number == 1 and amount < 0:
        role = "charge"
    elif total == 0:
        role = "reversal"
    else:
        role = "correction"
    return Posting(
        f"entry:{entry_id}:{customer}:{budget}:{number}",
        customer,
        budget,
        PostingKind.ENTRY if amount < 0 else PostingKind.REVERSAL,
        amount,
        unit,
        entry_id,
        version,
        rule,
        None,
        work_date,
        now,
        run_id,
        reason,
        None,
        explanation,
        role,
    )


def insert_postings(conn: Connection, postings: Sequence[Posting]) -> None:
    """Append postings. Keys are unique: a key that already exists means the same write
    happened before, and the database refuses a double."""
    insert_values(conn, P, Posting._fields, postings)


def posting_count(conn: Connection, key_prefix: str) -> int:
    """How many postings have keys starting with `key_prefix` (to number the next one)."""
    return int(
        conn.execute(
            select(func.count()).where(P.c.key.startswith(key_prefix, autoescape=True))
        ).scalar_one()
    )


def posting_by_key(conn: Connection, key: str) -> Posting | None:
    """The posting written under `key`, or None."""
    row = conn.execute(select(*(P.c[name] for name in Posting._fields)).where(P.c.key == key))
    found = row.first()
    return None if found is None else Posting._make(found)


def posting_exists(conn: Connection, key: str) -> bool:
    """True when a posting with this key was already written."""
    return conn.execute(select(P.c.id).where(P.c.key == key)).first() is not None


class BudgetKey(NamedTuple):
    """Where an entry's postings went: a customer's budget, in the unit they were written in."""

    customer_id: str
    budget_id: str
    unit: str


class Posted(NamedTuple):
    """What an entry's postings on one budget add up to, and how many there are."""

    total: int
    postings: int


def posted_by_entry(
    conn: Connection, entry_ids: Sequence[int]
) -> dict[int, dict[BudgetKey, Posted]]:
    """What each entry already costs, per budget it was posted to (`entry_ids` is one chunk:
    a few hundred at most, as an IN list)."""
    found: dict[int, dict[BudgetKey, Posted]] = {}
    if not entry_ids:
        return found
    stmt = (
        select(P.c.entry_id, P.c.customer_id, P.c.budget_id, P.c.unit)
        .add_columns(func.sum(P.c.amount_minor), func.count())
        .where(P.c.entry_id.in_(entry_ids))
        .group_by(P.c.entry_id, P.c.customer_id, P.c.budget_id, P.c.unit)
    )
    for entry_id, cust, budget, unit, total, count in conn.execute(stmt):
        found.setdefault(int(entry_id), {})[BudgetKey(cust, budget, unit)] = Posted(
            int(total), int(count)
        )
    return found


def opening_amounts(conn: Connection, customer_id: str, budget_id: str) -> list[int]:
    """The amounts of a budget's opening postings, oldest first."""
    rows = conn.execute(
        select(P.c.amount_minor)
        .where(
            (P.c.customer_id == customer_id)
            & (P.c.budget_id == budget_id)
            & (P.c.kind == PostingKind.OPENING)
        )
        .order_by(P.c.id)
    )
    return [int(row[0]) for row in rows]


@dataclass(frozen=True, slots=True)
class BalanceParts:
    """A budget's balance split the way reports show it; all in the budget's minor unit."""

    unit: str
    opening: int = 0
    credited: int = 0
    debited: int = 0

    @property
    def balance(self) -> int:
        """Opening + credits - debits (I2)."""
        return self.opening + self.credited - self.debited


_CREDIT_KINDS = (PostingKind.TOPUP, PostingKind.REFILL_CREDIT)


def balances(
    conn: Connection, customer_id: str | None = None
) -> dict[tuple[str, str], BalanceParts]:
    """Every budget's balance by (customer, budget), recomputed from postings (I2)."""
    stmt = select(P.c.customer_id, P.c.budget_id, P.c.unit, P.c.kind).add_columns(
        func.sum(P.c.amount_minor)
    )
    if customer_id is not None:
        stmt = stmt.where(P.c.customer_id == customer_id)
    stmt = stmt.group_by(P.c.customer_id, P.c.budget_id, P.c.unit, P.c.kind)
    parts: dict[tuple[str, str], BalanceParts] = {}
    for cust, budget, unit, kind, total in conn.execute(stmt):
        acc = parts.get((cust, budget)) or BalanceParts(unit)
        amount = int(total or 0)
        if kind == PostingKind.OPENING:
            acc = BalanceParts(acc.unit, acc.opening + amount, acc.credited, acc.debited)
        elif kind in _CREDIT_KINDS:
            acc = BalanceParts(acc.unit, acc.opening, acc.credited + amount, acc.debited)
        else:
            acc = BalanceParts(acc.unit, acc.opening, acc.credited, acc.debited - amount)
        parts[(cust, budget)] = acc
    return parts


def budget_balance(conn: Connection, customer_id: str, budget_id: str) -> int:
    """One budget's balance in minor units, from postings."""
    total = conn.execute(
        select(func.coalesce(func.sum(P.c.amount_minor), 0)).where(
            (P.c.customer_id == customer_id) & (P.c.budget_id == budget_id)
        )
    ).scalar_one()
    return int(total)


def stray_units(conn: Connection, customer_id: str, budget_id: str, unit: str) -> set[str]:
    """Units other than `unit` that a budget's postings were written in (a unit or currency
    change in the config); an index seek, whatever the size of the ledger."""
    rows = conn.execute(
        select(P.c.unit)
        .where((P.c.customer_id == customer_id) & (P.c.budget_id == budget_id) & (P.c.unit != unit))
        .distinct()
    )
    return {str(row[0]) for row in rows}
