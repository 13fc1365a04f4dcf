"""The operator's status page: balances with their burn-down, the last sync of each source,
entries waiting for review (with approve and exclude buttons), unpriced work, open and failed
refills.

Everything shown is read from the ledger when the page is asked for (the same views the CLI
prints), so the page and `prepaid balance` can never disagree. Texts that came from outside
(descriptions, connector errors) are escaped; nothing here ever holds a secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from sync.model import HOUR_UNIT, EntryStatus, RefillStatus, RunOutcome, to_minor
from sync.rules import budget_unit
from sync.settings import Settings, SourceSettings
from sync.views.chart import BalancePoint, balance_chart_svg
from sync.views.page_layout import cell, layout, table
from sync.views.reports import (
    BalanceRow,
    EntryRow,
    LastRun,
    RefillSummary,
    balance_points,
    balance_rows,
    entry_rows,
    last_runs,
    refill_rows,
)

BURN_DOWN_DAYS = 90
PENDING_LIMIT = 200


@dataclass(frozen=True, slots=True)
class StatusData:
    """What the status page shows, read in one snapshot."""

    generated_at: dt.datetime
    timezone: str
    balances: Sequence[BalanceRow]
    charts: Mapping[tuple[str, str], str]
    sources: Sequence[SourceSettings]
    runs: Mapping[str, LastRun]
    pending: Sequence[EntryRow]
    # Work with no usable price: not charged until a version brings one (first PENDING_LIMIT).
    unpriced: Sequence[EntryRow]
    refills: Sequence[RefillSummary]


def load_status(conn: Connection, settings: Settings, now: dt.datetime) -> StatusData:
    """Read everything the page needs; charts cover the last `BURN_DOWN_DAYS` days."""
    return StatusData(
        generated_at=now,
        timezone=settings.timezone,
        balances=balance_rows(conn, settings),
        charts=_charts(conn, settings, now),
        sources=settings.sources,
        runs=last_runs(conn),
        pending=entry_rows(conn, status=EntryStatus.PENDING, limit=PENDING_LIMIT),
        unpriced=entry_rows(conn, status=EntryStatus.UNPRICED, limit=PENDING_LIMIT),
        refills=refill_rows(conn, open_only=True),
    )


def _charts(conn: Connection, settings: Settings, now: dt.datetime) -> dict[tuple[str, str], str]:
    """Every configured budget's burn-down as SVG, from one query for all of them."""
    tz = ZoneInfo(settings.timezone)
    start = now.astimezone(tz).date() - dt.timedelta(days=BURN_DOWN_DAYS)
    since = dt.datetime.combine(start, dt.time(), tzinfo=tz)
    history = balance_points(conn, since)
    charts: dict[tuple[str, str], str] = {}
    for customer in settings.customers:
        for budget in customer.budgets:
            unit = budget_unit(customer, budget)
            points = history.get((customer.id, budget.id, unit), [BalancePoint(since, 0)])
            threshold = None if budget.refill is None else to_minor(budget.refill.below, unit)
            charts[(customer.id, budget.id)] = balance_chart_svg(
                points,
                unit=unit,
                unit_label="hours" if unit == HOUR_UNIT else unit,
                title=f"{customer.name} {budget.id}: balance over time",
                end=max(now, points[-1].at),
                tz=tz,
                threshold_minor=threshold,
            )
    return charts


def render_status(data: StatusData, *, csrf: str, notice: str | None = None) -> str:
    """The whole page; `csrf` goes into every form."""
    tz = ZoneInfo(data.timezone)
    parts = [
        "<h1>prepaid-sync</h1>",
        f'<p class="muted">as of {escape(_local(data.generated_at, tz))}'
        f" ({escape(data.timezone)})</p>",
    ]
    if notice:
        parts.append(f'<section class="notice">{escape(notice)}</section>')
    parts.append(_balances(data))
    parts.append(_sources(data, tz))
    parts.append(_pending(data, csrf))
    if data.unpriced:
        parts.append(_unpriced(data))
    parts.append(_refills(data, tz))
    return layout("prepaid-sync status", "".join(parts))


def _balances(data: StatusData) -> str:
    rows = []
    for r in data.balances:
        unit = r.unit_label
        refill = r.open_refill
        refill_text = "" if refill is None else f"{refill.status} {refill.amount} {refill.unit}"
        statement = f"/statements/{quote(r.customer, safe='')}"
        rows.append(
            "<tr>"
            + cell(r.customer_name)
            + cell(r.budget)
            + cell(f"{r.balance} {unit}", num=True)
            + cell(f"{r.pending} {unit}", num=True)
            + cell(None if r.below is None else f"{r.below} {unit}", num=True)
            + cell(refill_text)
            + f'<td><a href="{escape(statement)}">statement</a></td>'
            + "</tr>"
        )
    headers = ["Customer", "Budget", "Balance", "Pending review", "Refill below"]
    headers += ["Open refill", ""]
    charts = "".join(
        f"<h3>{escape(customer)} / {escape(budget)}</h3>{svg}"
        for (customer, budget), svg in data.charts.items()
    )
    return (
        '<section id="balances"><h2>Balances</h2>'
        + table(headers, rows, numeric=("Balance", "Pending review", "Refill below"))
        + f"<h2>Burn-down (last {BURN_DOWN_DAYS} days)</h2>{charts}</section>"
    )


def _sources(data: StatusData, tz: ZoneInfo) -> str:
    rows = []
    for source in data.sources:
        run = data.runs.get(source.name)
        if run is None:
            rows.append(
                "<tr>"
                + cell(source.name)
                + cell(source.type)
                + cell(source.schedule)
                + '<td class="muted">never</td><td></td><td></td><td></td></tr>'
            )
            continue
        outcome = run.outcome
        css = "ok" if outcome == RunOutcome.OK else "bad" if outcome == RunOutcome.FAILED else ""
        counts = run.counts
        summary = ", ".join(
            f"{k} {counts[k]}" for k in ("fetched", "new", "changed", "deleted") if k in counts
        )
        finished = run.finished_at or run.started_at
        rows.append(
            "<tr>"
            + cell(source.name)
            + cell(source.type)
            + cell(source.schedule)
            + cell(_local(finished, tz))
            + f'<td class="{css}">{escape(outcome)}</td>'
            + cell(summary)
            + cell(run.error)
            + "</tr>"
        )
    headers = ["Source", "Type", "Schedule", f"Last run ({data.timezone})", "Outcome", "Counts"]
    headers.append("Error")
    return '<section id="sources"><h2>Last sync</h2>' + table(headers, rows) + "</section>"


def _unpriced(data: StatusData) -> str:
    """Work that is not charged because its source gave no usable rate: shown until a version
    with a price arrives, however old the run that found it."""
    rows = [
        f'<tr id="unpriced-{r.id}">'
        + cell(r.date)
        + cell(f"{r.customer} / {r.budget}")
        + cell(r.hours, num=True)
        + cell(r.reason)
        + "</tr>"
        for r in data.unpriced
    ]
    more = " (the first shown)" if len(data.unpriced) >= PENDING_LIMIT else ""
    return (
        f'<section id="unpriced"><h2>Unpriced work: {len(data.unpriced)}{more}</h2>'
        + table(["Date", "Budget", "Hours", "Why"], rows, numeric=("Hours",))
        + '<p class="muted">not charged until the source gives a rate in the customer\'s'
        " currency; see `prepaid entries --status unpriced`</p></section>"
    )


def _pending(data: StatusData, csrf: str) -> str:
    if not data.pending:
        return (
            '<section id="review"><h2>Waiting for review</h2>'
            '<p class="muted">nothing to review</p></section>'
        )
    token = f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    rows = []
    for r in data.pending:
        entry_id = r.id
        # Each button names the figures shown next to it, so it decides on nothing else.
        fields = token + (
            f'<input type="hidden" name="version" value="{escape(r.priced_version or "")}">'
        )
        buttons = (
            f'<form class="inline" method="post" action="/entries/{entry_id}/approve">{fields}'
            '<button class="approve" type="submit">Approve</button></form> '
            f'<form class="inline" method="post" action="/entries/{entry_id}/exclude">{fields}'
            '<button class="exclude" type="submit">Exclude</button></form>'
        )
        task = " / ".join(x for x in (r.project, r.task) if x)
        rows.append(
            f'<tr id="entry-{entry_id}">'
            + cell(r.date)
            + cell(f"{r.customer} / {r.budget}")
            + cell(r.user)
            + cell(task)
            + cell(r.description)
            + cell(r.hours, num=True)
            + cell(_with_unit(r.amount, r.unit), num=True)
            + cell(r.reason)
            + f"<td>{buttons}</td></tr>"
        )
    # "Why" says why the entry waits: a budget that reviews everything, or a decision made on
    # other figures ("approved before at ...; now ...: review again").
    headers = ["Date", "Budget", "Person", "Task", "Description", "Hours", "Amount", "Why", ""]
    more = ""
    if len(data.pending) >= PENDING_LIMIT:
        more = (
            f'<p class="muted">showing the first {PENDING_LIMIT};'
            " see `prepaid entries --status pending`</p>"
        )
    return (
        '<section id="review"><h2>Waiting for review</h2>'
        + table(headers, rows, numeric=("Hours", "Amount"))
        + more
        + "</section>"
    )


def _refills(data: StatusData, tz: ZoneInfo) -> str:
    if not data.refills:
        return (
            '<section id="refills"><h2>Open refills</h2>'
            '<p class="muted">no open refills</p></section>'
        )
    rows = []
    for r in data.refills:
        css = "bad" if r.status == RefillStatus.FAILED else ""
        rows.append(
            "<tr>"
            + cell(r.id)
            + cell(f"{r.customer} / {r.budget}")
            + cell(f"{r.amount} {r.unit}", num=True)
            + f'<td class="{css}">{escape(str(r.status))}</td>'
            + cell(r.invoice)
            + cell(_local(r.created_at, tz))
            + cell(r.error or r.payment_error)
            + "</tr>"
        )
    headers = ["Refill", "Budget", "Amount", "Status", "Invoice", f"Raised ({data.timezone})"]
    headers.append("Problem")
    return (
        '<section id="refills"><h2>Open refills</h2>'
        + table(headers, rows, numeric=("Amount",))
        + "</section>"
    )


def _with_unit(amount: object, unit: str | None) -> str | None:
    """An amount with its unit ("hours" for hours budgets), so no figure stands unlabelled."""
    if amount is None:
        return None
    return f"{amount} {'hours' if unit == HOUR_UNIT else unit}"


def _local(moment: dt.datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
