"""The delta rule: post what an entry should cost now minus what it already costs.

Everything that can change an entry's cost (a new version, a deletion, a review decision, a
config change) ends here, in `post_assessments`, inside the caller's transaction. Because the
amount posted is always a difference against the ledger itself, running it twice, or after a
crash, posts nothing the second time (I1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import Connection

from sync.ledger import (
    BudgetKey,
    Posted,
    Posting,
    StoredEntry,
    StoredVersion,
    chunks,
    entry_posting,
    insert_postings,
    posted_by_entry,
    update_assessments,
)
from sync.model import EntryStatus, TimeEntry, format_amount
from sync.rules import Assessment, Decision, Ruling

_NOTHING_POSTED = Posted(0, 0)


class Assessed(NamedTuple):
    """An entry (already stored, with its row id) and what it should cost now (a named tuple,
    as `Assessment` is: one is built for every entry a sync stores).
    """

    entry_id: int
    entry: TimeEntry
    assessment: Assessment
    new: bool = False  # just inserted: it has no postings yet


def decision_for(stored: StoredVersion | StoredEntry | None, version: str) -> Ruling | None:
    """What applies to `version` of an entry besides its budget's rules (see `Ruling`).

    A decision recorded with its figures goes to `Pricer.assess`, which applies it only while
    the entry's budget and priced figures are the ones it was made on (I4a). One recorded
    before figures were kept applies as it did: an exclusion sticks, an approval covers the
    version it was made on. `charged` is what the ledger charges the entry at now.
    """
    if stored is None:
        return None
    charged = stored.priced if stored.status == EntryStatus.DEDUCTED else None
    if stored.decision is None:
        return Ruling(charged=charged) if charged is not None else None
    decision = Decision(stored.decision)
    legacy_approval = stored.decided_on is None and decision == Decision.APPROVED
    if legacy_approval and stored.decision_version != version:
        return Ruling(charged=charged) if charged is not None else None
    return Ruling(decision, stored.decided_on, charged)


def post_assessments(
    conn: Connection,
    items: Iterable[Assessed],
    *,
    run_id: int | None,
    now: dt.datetime,
    update_entries: bool = True,
) -> int:
    """Post the difference between each entry's target cost and its postings; return how
    many postings were written. Also refreshes the entries' cached assessment columns.
    """
    items = list(items)
    if not items:
        return 0
    postings = pending_postings(conn, items, run_id=run_id, now=now)
    insert_postings(conn, postings)
    if update_entries:
        update_assessments(conn, [(item.entry_id, item.assessment) for item in items])
    return len(postings)


def pending_postings(
    conn: Connection,
    items: Sequence[Assessed],
    *,
    run_id: int | None,
    now: dt.datetime,
) -> list[Posting]:
    """The postings `post_assessments` writes for `items`, computed and not written: the
    read commands use it to say what the next sync will post, without posting it."""
    posted: dict[int, dict[BudgetKey, Posted]] = {}
    for part in chunks([item.entry_id for item in items if not item.new]):
        posted.update(posted_by_entry(conn, part))
    postings: list[Posting] = []
    for item in items:
        postings.extend(_deltas(item, posted.get(item.entry_id, {}), run_id=run_id, now=now))
    return postings


def _deltas(
    item: Assessed,
    posted: dict[BudgetKey, Posted],
    *,
    run_id: int | None,
    now: dt.datetime,
) -> list[Posting]:
    a, entry = item.assessment, item.entry
    target: BudgetKey | None = None
    if a.amount_minor and a.customer_id and a.budget_id and a.unit:
        target = BudgetKey(a.customer_id, a.budget_id, a.unit)
    if not posted:  # most entries: new, or never charged before
        if target is None:
            return []
        keys = [target]
    else:
        keys = sorted(set(posted) | ({target} if target is not None else set()))
    postings = []
    label = f"{entry.source}:{entry.external_id} ({entry.spent_date.isoformat()})"
    for key in keys:
        current, count = posted.get(key, _NOTHING_POSTED)
        wanted = -a.amount_minor if key == target else 0
        delta = wanted - current
        if delta == 0:
            continue
        cust, budget, unit = key
        if key == target:
            why, shown = a.explanation, _without_rule(a)
        elif a.customer_id and a.budget_id and (a.customer_id, a.budget_id) != (cust, budget):
            why = shown = f"moved to {a.customer_id}/{a.budget_id}"
        else:
            why = shown = f"now {a.status}" + (f": {a.reason}" if a.reason else "")
        if current:
            before = f"; it cost {format_amount(-current, unit)} before"
            why, shown = why + before, shown + before
        postings.append(
            entry_posting(
                entry_id=item.entry_id,
                number=count + 1,
                customer=cust,
                budget=budget,
                amount=delta,
                unit=unit,
                version=entry.version,
                rule=a.rule,
                work_date=entry.spent_date,
                now=now,
                run_id=run_id,
                reason=f"{label} v{entry.version}: {why}",
                explanation=shown,
                total=wanted,
            )
        )
    return postings


def _without_rule(a: Assessment) -> str:
    """The assessment's explanation as a client reads it: `Pricer.assess` ends it with the
    routing rule's YAML path in parentheses, which is the operator's business."""
    return a.explanation.removesuffix(f" ({a.rule})") if a.rule else a.explanation
