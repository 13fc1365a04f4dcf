"""Keeping the books in step with the config and the operator.

`ensure_books` runs before any command that writes: it refuses a budget whose unit or currency
changed under existing postings, posts opening balances (and any later change to them as a
difference), and when the pricing config changed since the last run it re-values every stored
entry, so the ledger always equals "latest version under current routing" (I1). Commands that
only read never call it (they never write): `preview_books` computes, in their own read
transaction, what it would post, so they can say what the next sync will change. Top-ups and
review decisions are here too: each is one posting or one re-valuation, never an edit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Connection

from sync.delta import Assessed, decision_for, pending_postings, post_assessments
from sync.ledger import (
    Ledger,
    Posting,
    StoredEntry,
    entries_after,
    entries_by_id,
    get_meta,
    insert_postings,
    lock_books,
    opening_amounts,
    posting_by_key,
    posting_count,
    posting_row,
    record_decision,
    set_meta,
    stray_units,
    utcnow,
)
from sync.model import PostingKind, format_amount, to_minor
from sync.rules import Decision, Priced, Pricer, Ruling, budget_unit
from sync.settings import Budget, Customer, Settings


class BooksMismatch(Exception):
    """The config contradicts the ledger (a budget's unit or currency changed): exit 2."""


def pricing_fingerprint(settings: Settings) -> str:
    """A digest of everything that decides what an entry costs (customers, rules, budgets)."""
    return hashlib.sha256(repr(settings.customers).encode()).hexdigest()


def ensure_books(ledger: Ledger, settings: Settings, pricer: Pricer) -> int:
    """Bring openings and valuations in line with the config; return entries re-valued."""
    now = utcnow()
    with ledger.begin() as conn:
        lock_books(conn)
        _check_units(conn, settings)
        _post_openings(conn, settings, now)
        changed = get_meta(conn, "pricing_fingerprint") != pricing_fingerprint(settings)
    if not changed:
        return 0
    revalued = revalue_entries(ledger, pricer)
    with ledger.begin() as conn:
        set_meta(conn, "pricing_fingerprint", pricing_fingerprint(settings))
    return revalued


def _check_units(conn: Connection, settings: Settings) -> None:
    for customer in settings.customers:
        for budget in customer.budgets:
            wanted = budget_unit(customer, budget)
            stray = stray_units(conn, customer.id, budget.id, wanted)
            if stray:
                raise BooksMismatch(
                    f"{budget.yaml_path}: budget {customer.id}/{budget.id} has postings in"
                    f" {', '.join(sorted(stray))} but the config now says {wanted}; a budget"
                    " cannot change unit or currency: give the new one another id"
                )


def _post_openings(conn: Connection, settings: Settings, now: dt.datetime) -> None:
    insert_postings(conn, _opening_postings(conn, settings, now))


def _opening_postings(conn: Connection, settings: Settings, now: dt.datetime) -> list[Posting]:
    """The postings that bring each budget's opening balance to the config's (none when all
    agree); computed without writing, so `preview_books` tells what `ensure_books` posts."""
    postings = []
    for customer in settings.customers:
        for budget in customer.budgets:
            unit = budget_unit(customer, budget)
            wanted = to_minor(budget.opening_balance, unit)
            rows = opening_amounts(conn, customer.id, budget.id)
            current = sum(rows)
            if current == wanted and rows:
                continue
            if current == wanted and wanted == 0:
                continue
            reason = f"opening balance {format_amount(wanted, unit)} from {budget.yaml_path}"
            if rows:
                reason = (
                    f"opening balance changed in {budget.yaml_path}:"
                    f" {format_amount(current, unit)} -> {format_amount(wanted, unit)}"
                )
            postings.append(
                posting_row(
                    key=f"opening:{customer.id}:{budget.id}:{len(rows) + 1}",
                    customer=customer.id,
                    budget=budget.id,
                    kind=PostingKind.OPENING,
                    amount=wanted - current,
                    unit=unit,
                    now=now,
                    reason=reason,
                )
            )
    return postings


def revalue_entries(
    ledger: Ledger, pricer: Pricer, entry_ids: Sequence[int] | None = None, batch: int = 2000
) -> int:
    """Re-assess stored entries under the current rules and post the differences.

    In batches, each its own transaction; a crash half-way is harmless because the next call
    posts only what is still different.
    """
    done = 0
    last_id = 0
    while True:
        with ledger.begin() as conn:
            lock_books(conn)
            if entry_ids is None:
                rows = entries_after(conn, last_id, batch)
            else:
                found = entries_by_id(conn, entry_ids)
                rows = [found[entry_id] for entry_id in sorted(found)]
            if not rows:
                return done
            post_assessments(conn, _reassessed(pricer, rows), run_id=None, now=utcnow())
            done += len(rows)
            last_id = rows[-1].id
        if entry_ids is not None:
            return done


def _reassessed(pricer: Pricer, rows: Sequence[StoredEntry]) -> list[Assessed]:
    """Stored entries assessed under the current rules, each with the decision that still
    applies to it: one place, so a re-valuation and its preview cannot disagree."""
    items = []
    for row in rows:
        assessment = pricer.assess(row.entry, decision_for(row, row.entry.version))
        items.append(Assessed(row.id, row.entry, assessment))
    return items


@dataclass(frozen=True, slots=True)
class BooksPreview:
    """What `ensure_books` would post now, computed without writing (see `preview_books`).

    `entries` are the stored entries whose postings would change; `openings` the budgets whose
    opening balance would be posted or corrected; `deltas` the change each (customer, budget)
    balance would see, in minor units (budgets that would not change are absent).
    """

    entries: int = 0
    openings: int = 0
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        """True when the next sync would post something to bring the books in line."""
        return bool(self.entries or self.openings)


def preview_books(
    conn: Connection, settings: Settings, pricer: Pricer, batch: int = 2000
) -> BooksPreview:
    """What the next `ensure_books` (the next `sync` or `serve` start) would post, computed
    on `conn`, a read transaction, and nothing written: the read commands show the books as
    they are, and say what will change and what the balances will then be.

    Raises `BooksMismatch` as `ensure_books` does: a unit change is not something to preview.
    """
    _check_units(conn, settings)
    now = utcnow()
    openings = _opening_postings(conn, settings, now)
    postings = list(openings)
    if get_meta(conn, "pricing_fingerprint") != pricing_fingerprint(settings):
        last_id = 0
        while rows := entries_after(conn, last_id, batch):
            items = _reassessed(pricer, rows)
            postings += pending_postings(conn, items, run_id=None, now=now)
            last_id = rows[-1].id
    deltas: dict[tuple[str, str], int] = {}
    for p in postings:
        key = (p.customer_id, p.budget_id)
        deltas[key] = deltas.get(key, 0) + p.amount_minor
    return BooksPreview(
        entries=len({p.entry_id for p in postings if p.entry_id is not None}),
        openings=len(openings),
        deltas={k: v for k, v in deltas.items() if v},
    )


@dataclass(frozen=True, slots=True)
class Decided:
    """The outcome of a review decision on one entry: its status now, what it costs (`amount`,
    None without a budget), and the priced figures the decision was made on (`figures` as the
    operator reads them, `version` their name; None when the entry could not be priced)."""

    entry_id: int
    status: str
    amount: str | None
    figures: str | None = None
    version: str | None = None
    reason: str | None = None


class StaleDecision(Exception):
    """A decision named figures (a priced version) the entry no longer has: it is refused,
    nothing is written, and the message gives the new figures to decide on (I4a)."""

    def __init__(self, entry_id: int, named: str, now: Priced | None) -> None:
        if now is None:
            text = f"entry {entry_id} changed since version {named}: it cannot be priced now"
        else:
            text = (
                f"entry {entry_id} changed since version {named}: it is now version"
                f" {now.version}, {now.shown()}; decide on {entry_id}@{now.version}"
            )
        super().__init__(text)
        self.entry_id, self.named, self.now = entry_id, named, now


def decide(
    ledger: Ledger,
    pricer: Pricer,
    entry_ids: Sequence[int],
    decision: str,
    *,
    versions: Mapping[int, str] | None = None,
) -> list[Decided]:
    """Approve or exclude entries (the review step) and post the difference at once.

    The decision is recorded with the budget and priced figures it is made on, so it stops
    applying when they change (I4a). `versions` names, per entry id, the priced version the
    operator saw (`entries approve ID@VERSION`, the status page's form): when the entry's
    figures are no longer those, `StaleDecision` is raised and nothing is changed. Raises
    KeyError naming the first id that does not exist; nothing is changed then either.
    """
    now = utcnow()
    wanted = Decision(decision)
    versions = versions or {}
    with ledger.begin() as conn:
        lock_books(conn)
        found = entries_by_id(conn, entry_ids)
        missing = [i for i in entry_ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        results = []
        items = []
        for entry_id in entry_ids:
            stored = found[entry_id]
            entry = stored.entry
            ruling = decision_for(stored, entry.version) or Ruling()
            priced = pricer.assess(entry, Ruling(charged=ruling.charged)).priced
            named = versions.get(entry_id)
            if named is not None and (priced is None or priced.version != named):
                raise StaleDecision(entry_id, named, priced)
            record_decision(conn, entry_id, wanted, entry.version, priced, now)
            assessment = pricer.assess(entry, Ruling(wanted, priced, ruling.charged))
            items.append(Assessed(entry_id, entry, assessment))
            amount = (
                format_amount(
                    assessment.amount_minor or assessment.pending_amount_minor, assessment.unit
                )
                if assessment.unit
                else None
            )
            results.append(
                Decided(
                    entry_id,
                    assessment.status,
                    amount,
                    priced.shown() if priced else None,
                    priced.version if priced else None,
                    assessment.reason,
                )
            )
        post_assessments(conn, items, run_id=None, now=now)
    return results


class TopUpRecorded(Exception):
    """A top-up with this `--ref` was recorded before; nothing new is written.

    Carries the earlier posting, so the caller can say what it was and tell a harmless rerun
    (same budget and amount) from a reference used for other money.
    """

    def __init__(self, ref: str, earlier: Posting) -> None:
        super().__init__(f"top-up {ref!r} was already recorded")
        self.ref, self.earlier = ref, earlier


def topup_key(ref: str) -> str:
    """The posting key of a top-up with an operator's reference: one per reference, whatever
    the budget, since a bank transfer's reference names one payment."""
    return f"topup-ref:{ref}"


def topup(
    ledger: Ledger,
    customer: Customer,
    budget: Budget,
    amount: Decimal,
    note: str | None,
    *,
    ref: str | None = None,
    now: dt.datetime | None = None,
) -> Posting:
    """Record a one-off prepayment as a credit posting; returns the posting written.

    With `ref` the top-up is idempotent: its key is built from the reference, and a second
    call raises `TopUpRecorded` with the earlier posting instead of crediting twice.
    """
    now = now or utcnow()
    unit = budget_unit(customer, budget)
    minor = to_minor(amount, unit)
    with ledger.begin() as conn:
        lock_books(conn)
        if ref is not None:
            key = topup_key(ref)
            earlier = posting_by_key(conn, key)
            if earlier is not None:
                raise TopUpRecorded(ref, earlier)
        else:
            prefix = f"topup:{customer.id}:{budget.id}:"
            key = f"{prefix}{posting_count(conn, prefix) + 1}"
        reason = f"top-up of {format_amount(minor, unit)} recorded by the operator"
        if ref is not None:
            reason += f" (ref {ref})"
        posting = posting_row(
            key=key,
            customer=customer.id,
            budget=budget.id,
            kind=PostingKind.TOPUP,
            amount=minor,
            unit=unit,
            now=now,
            reason=reason,
            note=note,
        )
        insert_postings(conn, [posting])
    return posting
