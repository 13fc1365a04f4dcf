"""The `prepaid` commands behind `sync.cli.parser`: each takes the parsed arguments and
the settings and returns an exit code; results go to stdout, problems to stderr.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import sys
import time
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sync.app import NO_SYNC_YET, App, Books, SyncOutcome
from sync.books import Decided, StaleDecision, TopUpRecorded, decide, ensure_books, topup
from sync.cli.output import (
    LEDGER_FIELDS,
    balance_json,
    entry_json,
    invalid_json,
    ledger_json,
    unit_text,
)
from sync.config.values import Invalid, as_amount
from sync.model import (
    EntryStatus,
    format_amount,
    minor_digits,
    parse_decimal,
    shown_amount,
    to_minor,
)
from sync.ports import ConnectorError, InvoiceSink, TimeSource
from sync.refill import RefillReport
from sync.rules import budget_unit, unreachable_budgets
from sync.settings import Budget, Customer, Settings
from sync.shortfall import setting_warnings
from sync.tax import tax_warnings
from sync.views.reports import (
    BalanceRow,
    EntryRow,
    InvalidRow,
    RefillSummary,
    balance_rows,
    entry_rows,
    invalid_rows,
    ledger_rows,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

log = logging.getLogger("prepaid")


class UsageError(Exception):
    """Bad usage on the command line: one line, exit 2."""


def print_error(text: str) -> None:
    print(text, file=sys.stderr)


def _out(text: str) -> None:
    print(text)


# --- commands -----------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid sync`."""
    if args.source and settings.source(args.source) is None:
        names = ", ".join(s.name for s in settings.sources)
        raise UsageError(f"unknown source {args.source!r}; configured: {names}")
    if args.since is not None:
        _check_since(args.since, args.source, settings)
    if args.accept_deletions and not args.full:
        raise UsageError(
            "--accept-deletions confirms what a complete re-read found deleted: use it with"
            " --full (prepaid sync --full --accept-deletions), after checking the tracker"
        )
    app = App(settings)
    with _progress() as progress:
        outcome = app.sync(
            source=args.source,
            since=args.since,
            full=args.full,
            dry_run=args.dry_run,
            progress=progress,
            accept_deletions=args.accept_deletions,
        )
        if args.wait:
            outcome = _wait_for_busy(app, args, outcome, progress)
    if args.format == "json":
        _out(json.dumps(_sync_json(outcome, args.dry_run), indent=2))
    else:
        _print_sync(outcome, args.dry_run)
    if outcome.runs and all(r.outcome == "failed" for r in outcome.runs):
        return EXIT_FAILED  # no source could be read: nothing was done
    # A source another run is syncing right now (a cron overlap) is not a failure: that run
    # does the work, so this one skips it and says so, without paging anyone.
    troubled = [r for r in outcome.runs if r.outcome not in ("ok", "busy")]
    return EXIT_PARTIAL if troubled or outcome.refills.partial else EXIT_OK


BUSY_POLL_SECONDS = 2.0


def _wait_for_busy(
    app: App,
    args: argparse.Namespace,
    outcome: SyncOutcome,
    progress: Callable[[str, int], None] | None,
) -> SyncOutcome:
    """`sync --wait`: sync each source another run held once it is free, for up to
    `args.wait` seconds; a source still held then is skipped as without `--wait`."""
    deadline = time.monotonic() + args.wait
    runs = {r.source: r for r in outcome.runs}
    busy = [name for name, r in runs.items() if r.outcome == "busy"]
    while busy and time.monotonic() < deadline:
        time.sleep(min(BUSY_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        for name in busy:
            again = app.sync(
                source=name,
                since=args.since,
                full=args.full,
                dry_run=args.dry_run,
                progress=progress,
                accept_deletions=args.accept_deletions,
            )
            runs[name] = again.runs[0]
            outcome.refills = again.refills
        busy = [name for name, r in runs.items() if r.outcome == "busy"]
    for name in busy:
        runs[name].error = f"{runs[name].error} (waited {args.wait} s)"
    outcome.runs = list(runs.values())
    return outcome


def _check_since(since: dt.date, source: str | None, settings: Settings) -> None:
    """A future `--since` reads nothing and is surely a typo (exit 2); on a CSV file it means
    nothing, since a file is read whole whatever dates it covers, and the operator is told."""
    today = dt.datetime.now(zoneinfo.ZoneInfo(settings.timezone)).date()
    if since > today:
        raise UsageError(
            f"--since {since} is in the future (today is {today} in {settings.timezone}):"
            " nothing could be read; give a date in the past"
        )
    for s in settings.sources:
        if s.type == "csv" and source in (None, s.name):
            print_error(
                f"note: --since does not apply to {s.name}: a CSV file is read whole, and it"
                " decides which dates it covers"
            )


def _sync_json(outcome: SyncOutcome, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "revalued": outcome.revalued,
        "sources": [
            {
                "source": r.source,
                "outcome": r.outcome,
                "error": r.error,
                "warnings": r.warnings,
                **r.counts(),
            }
            for r in outcome.runs
        ],
        "refills": _refill_json(outcome.refills),
    }


def _refill_json(report: RefillReport) -> dict[str, list[str]]:
    return {
        "raised": report.raised,
        "issued": report.issued,
        "credited": report.credited,
        "voided": report.voided,
        "failed": report.failed,
        "errors": report.errors,
        "guarded": report.guarded,
        "would_raise": report.would_raise,
        "paid_in_part": report.paid_in_part,
        "below_threshold": report.below_threshold,
    }


def _print_sync(outcome: SyncOutcome, dry_run: bool) -> None:
    prefix = "[dry run] " if dry_run else ""
    if outcome.revalued:
        _out(f"{prefix}config changed: re-valued {outcome.revalued} entries")
    for r in outcome.runs:
        if r.outcome == "busy":
            _out(f"{prefix}{r.source}: {r.error}")
            continue
        line = (
            f"{prefix}{r.source}: fetched {r.fetched}, new {r.new}, changed {r.changed},"
            f" deleted {r.deleted}, deducted {r.deducted}, pending {r.pending},"
            f" excluded {r.excluded}, unpriced {r.unpriced}, unrouted {r.unrouted},"
            f" invalid {r.invalid}"
        )
        if r.running:
            line += f", running {r.running}"
        if r.requests:
            line += f"; {r.requests} requests"
        _out(line)
        if r.error:
            _out(f"  {r.outcome}: {r.error}")
        for warning in r.warnings:
            _out(f"  warning: {warning}")
        if r.invalid:
            _out(f"  see: prepaid entries --status invalid --source {r.source}")
        if r.unpriced:
            _out(f"  see: prepaid entries --status unpriced --source {r.source}")
    _print_refills(outcome.refills, prefix)


def _print_refills(report: RefillReport, prefix: str = "") -> None:
    lines = [f"refill raised: {x}" for x in report.raised]
    lines += [f"refill issued: {x}" for x in report.issued]
    lines += [f"refill credited: {x}" for x in report.credited]
    lines += [f"refill voided: {x}" for x in report.voided]
    lines += [f"refill paid in part: {x}" for x in report.paid_in_part]
    lines += [f"refill would be raised: {x}" for x in report.would_raise]
    lines += [f"refill failed: {x} (fix it, then: prepaid refill retry ID)" for x in report.failed]
    lines += [f"refill error: {x}" for x in report.errors]
    lines += [f"refill guard: {x}" for x in report.guarded]
    lines += [f"refill below threshold: {x}" for x in report.below_threshold]
    if not lines:
        lines = ["refills: nothing to do"]
    for line in lines:
        _out(prefix + line)


def cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid balance`: the books as they stand, and, when the config changed since the
    last sync, what each balance will be once the next sync has re-valued (nothing written)."""
    _check_customer(settings, args.customer)
    app = App(settings)
    with app.reading() as books:
        rows = [] if books is None else balance_rows(books.conn, settings, args.customer)
    pending = say_pending(books)
    after = [_after_next_sync(settings, books, r) for r in rows]
    if args.format == "json":
        items = [
            {**balance_json(r), "after_next_sync": str(a)} for r, a in zip(rows, after, strict=True)
        ]
        _out(json.dumps(items, indent=2))
        return EXIT_OK
    table = [
        [
            r.customer,
            r.budget,
            r.unit_label,
            r.balance,
            *([a] if pending else []),
            r.opening,
            r.credited,
            r.debited,
            r.pending,
            _refill_cell(r.open_refill, r.unit_label),
        ]
        for r, a in zip(rows, after, strict=True)
    ]
    _table(
        [
            "customer",
            "budget",
            "unit",
            "balance",
            *(["after next sync"] if pending else []),
            "opening",
            "credited",
            "debited",
            "pending review",
            "open refill",
        ],
        table,
    )
    for r in rows:
        refill = r.open_refill
        if refill and refill.error:
            _out(f"refill {refill.id} {refill.status}: {refill.error}")
    return EXIT_OK


def say_pending(books: Books | None) -> bool:
    """Tell (on stderr) that no sync has run yet, or what the next sync will re-value; True
    when the books differ from what the config says they will be."""
    if books is None:
        print_error(NO_SYNC_YET)
        return False
    note = books.pending_note()
    if note is not None:
        print_error(note)
    return note is not None


def _after_next_sync(settings: Settings, books: Books | None, row: BalanceRow) -> Decimal:
    """A budget's balance once the next sync has brought the books in line with the config."""
    delta = 0 if books is None else books.preview.deltas.get((row.customer, row.budget), 0)
    if not delta:
        return row.balance
    customer = settings.customer(row.customer)
    assert customer is not None  # the rows are built from the configured customers
    budget = next(b for b in customer.budgets if b.id == row.budget)
    return shown_amount(row.balance_minor + delta, budget_unit(customer, budget))


def _refill_cell(refill: RefillSummary | None, unit: str) -> str:
    if refill is None:
        return ""
    tax = " incl. tax" if refill.invoice_total != refill.invoice_amount else ""
    paid = (
        f" ({refill.amount_paid} of {refill.invoice_total} paid{tax})" if refill.partly_paid else ""
    )
    return f"{refill.id} {refill.status} {refill.amount} {unit}{paid}"


def cmd_entries(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid entries`."""
    _check_customer(settings, args.customer)
    app = App(settings)
    invalid: list[InvalidRow] = []
    rows: list[EntryRow] = []
    with app.reading() as books:
        if books is None:
            pass
        elif args.status == EntryStatus.INVALID:
            invalid = invalid_rows(books.conn, source=args.source, limit=args.limit)
        else:
            rows = entry_rows(
                books.conn,
                customer_id=args.customer,
                status=args.status,
                source=args.source,
                limit=args.limit,
            )
    say_pending(books)
    if args.format == "json":
        items = [entry_json(r) for r in rows] + [invalid_json(r) for r in invalid]
        _out(json.dumps(items, indent=2, default=str))
        return EXIT_OK
    headers = ["id", "version", "date", "source", "customer", "budget", "status", "hours"]
    _table(
        [*headers, "amount", "unit", "reason"],
        [_entry_cells(r) for r in rows]
        + [
            [r.id, None, r.date, r.source, None, None, EntryStatus.INVALID, *[None] * 3, r.reason]
            for r in invalid
        ],
    )
    return EXIT_OK


def _entry_cells(r: EntryRow) -> list[Any]:
    """One row of the `entries` table; `version` names the priced figures a decision takes."""
    where = [r.id, r.priced_version, r.date, r.source, r.customer, r.budget]
    return [*where, r.status, r.hours, r.amount, unit_text(r.unit), r.reason]


def entry_target(text: str) -> tuple[int, str | None]:
    """`ID` or `ID@VERSION` as `entries approve|exclude` take them (argparse type)."""
    number, at, version = text.partition("@")
    if not number.strip().isdigit() or (at and not version.strip()):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give an entry id, or ID@VERSION as `prepaid entries` shows them"
        )
    return int(number), version.strip() if at else None


def cmd_decide(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid entries approve|exclude ID[@VERSION]...`.

    With @VERSION the decision is made on the figures that version names and refused when the
    entry no longer has them; a bare ID decides on the current figures, which are printed.
    """
    app = App(settings)
    app.prepare()
    targets: list[tuple[int, str | None]] = args.ids
    ids = [entry_id for entry_id, _ in targets]
    versions = {entry_id: version for entry_id, version in targets if version is not None}
    try:
        results = decide(app.ledger, app.pricer, ids, args.decision, versions=versions)
    except KeyError as exc:
        raise UsageError(f"no entry with id {exc.args[0]}: see `prepaid entries`") from None
    except StaleDecision as exc:
        raise UsageError(f"{exc}; nothing was {args.decision}") from None
    if args.format == "json":
        _out(
            json.dumps(
                [
                    {
                        "id": r.entry_id,
                        "status": r.status,
                        "amount": r.amount,
                        "version": r.version,
                        "figures": r.figures,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        _print_decided(results)
    not_done = _not_approved(results) if args.decision == "approved" else []
    for line in not_done:
        print_error(line)
    return EXIT_PARTIAL if not_done else EXIT_OK


def _print_decided(results: list[Decided]) -> None:
    for r in results:
        figures = f": {r.figures} (version {r.version})" if r.figures else ""
        _out(f"entry {r.entry_id}: {r.status}{figures}")


# Why an approval changes nothing, by the status the entry keeps; see `prepaid entries`.
_CANNOT_APPROVE: dict[str, str] = {
    EntryStatus.UNROUTED: "no budget takes it (add a match rule for its client or project)",
    EntryStatus.EXCLUDED: "its budget's rules exclude it (non-billable, or an exclude rule)",
    EntryStatus.UNPRICED: "its source gives no rate in the customer's currency; it is charged"
    " once a version with one is synced",
    EntryStatus.RUNNING: "its timer is still running; it is valued once stopped",
    EntryStatus.INVALID: "the record could not be read; fix it at the source",
    EntryStatus.DELETED: "it was deleted at the source",
}


def _not_approved(results: list[Decided]) -> list[str]:
    """A line per entry an approval did not deduct, saying why (exit 3): only an entry waiting
    for review can be approved, and nothing else may look approved when it is not."""
    lines = []
    for r in results:
        if r.status == EntryStatus.DEDUCTED:
            continue
        why = _CANNOT_APPROVE.get(r.status, f"it is {r.status}")
        lines.append(f"entry {r.entry_id}: not approved, nothing deducted: {why}")
    return lines


def cmd_topup(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid topup CUSTOMER[/BUDGET] AMOUNT`."""
    customer_id, _, budget_id = args.target.partition("/")
    customer = settings.customer(customer_id)
    if customer is None:
        raise UsageError(
            f"unknown customer {customer_id!r}; configured: "
            + ", ".join(c.id for c in settings.customers)
        )
    if budget_id:
        budget = next((b for b in customer.budgets if b.id == budget_id), None)
        if budget is None:
            raise UsageError(
                f"customer {customer_id} has no budget {budget_id!r}; budgets: "
                + ", ".join(b.id for b in customer.budgets)
            )
    elif len(customer.budgets) == 1:
        budget = customer.budgets[0]
    else:
        raise UsageError(
            f"customer {customer_id} has several budgets; name one: "
            + ", ".join(f"{customer_id}/{b.id}" for b in customer.budgets)
        )
    amount = _typed_amount(args.amount, customer, budget)
    ref = _ref(args.ref)
    app = App(settings)
    app.prepare()
    try:
        row = topup(app.ledger, customer, budget, amount, args.note, ref=ref)
    except TopUpRecorded as exc:
        return _topup_seen(
            exc, customer.id, budget.id, to_minor(amount, budget_unit(customer, budget))
        )
    _out(f"{customer.id}/{budget.id}: {row.reason}")
    return EXIT_OK


def _typed_amount(text: str, customer: Customer, budget: Budget) -> Decimal:
    """An amount typed for `budget`, read by the config's own rule for amounts: positive, plain
    digits, below the limit, and no more decimals than the unit has (the currency's minor
    unit; two for hours, which are kept in whole seconds), so nothing typed is rounded."""
    try:
        parse_decimal(text)
    except ValueError:
        raise UsageError(f"amount {text!r} is not a number: write it like 500.00") from None
    if budget.unit == "hours":
        places, label = 2, "hours"
    else:
        places, label = minor_digits(customer.currency), customer.currency
    try:
        return as_amount(places, label, positive=True)(text)
    except Invalid as exc:
        raise UsageError(f"amount {text} {exc.message(None)}; nothing recorded") from None


def _ref(text: str | None) -> str | None:
    if text is None:
        return None
    ref = text.strip()
    if not ref or len(ref) > 200 or not ref.isprintable():
        raise UsageError("--ref must be 1 to 200 printable characters, e.g. a bank reference")
    return ref


def _topup_seen(exc: TopUpRecorded, customer_id: str, budget_id: str, minor: int) -> int:
    """A rerun of the same top-up is done already (exit 0); the same reference for other
    money is a mistake that must not pass silently (exit 2)."""
    earlier = exc.earlier
    when = earlier.recorded_at.date().isoformat()
    shown = (
        f"{format_amount(earlier.amount_minor, earlier.unit)}"
        f" to {earlier.customer_id}/{earlier.budget_id} on {when}"
    )
    if (earlier.customer_id, earlier.budget_id, earlier.amount_minor) == (
        customer_id,
        budget_id,
        minor,
    ):
        _out(
            f"{customer_id}/{budget_id}: top-up ref {exc.ref} already recorded ({shown});"
            " nothing new recorded"
        )
        return EXIT_OK
    raise UsageError(
        f"--ref {exc.ref!r} already recorded a top-up of {shown}; this top-up was not"
        " recorded: check the reference, or use another one"
    )


def cmd_refill(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid refill [--dry-run]`."""
    app = App(settings)
    if args.dry_run:
        app.ledger.upgrade()
        with app.ledger.dry_run():
            ensure_books(app.ledger, settings, app.pricer)
            report = app.refills().run(dry_run=True)
    else:
        app.prepare()
        report = app.refills().run()
    if args.format == "json":
        _out(json.dumps(_refill_json(report), indent=2))
    else:
        _print_refills(report, "[dry run] " if args.dry_run else "")
    return EXIT_PARTIAL if report.partial else EXIT_OK


def cmd_refill_paid(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid refill paid ID`."""
    app = App(settings)
    app.prepare()
    report = app.refills().mark_paid(args.refill_id)
    _print_refills(report)
    return EXIT_OK


def cmd_refill_retry(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid refill retry ID`."""
    app = App(settings)
    app.prepare()
    report = app.refills().retry(args.refill_id)
    _print_refills(report)
    return EXIT_PARTIAL if report.partial else EXIT_OK


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid ledger`."""
    _check_customer(settings, args.customer)
    app = App(settings)
    with app.reading() as books:
        rows = [] if books is None else ledger_rows(books.conn, customer_id=args.customer)
    say_pending(books)
    if args.format == "json":
        _out(json.dumps([ledger_json(r) for r in rows], indent=2))
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LEDGER_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(ledger_json(r) for r in rows)
        sys.stdout.write(buffer.getvalue())
    else:
        tz = zoneinfo.ZoneInfo(settings.timezone)
        _table(
            [
                "id",
                f"recorded ({settings.timezone})",
                "customer",
                "budget",
                "kind",
                "amount",
                "balance",
                "unit",
                "reason",
            ],
            [
                [
                    r.id,
                    r.recorded_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                    r.customer,
                    r.budget,
                    r.kind,
                    r.amount,
                    r.balance_after,
                    unit_text(r.unit),
                    r.reason,
                ]
                for r in rows
            ],
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid check [--connections]`."""
    _out(
        f"{settings.config_path}: valid ({len(settings.sources)} sources, "
        f"{len(settings.invoicing)} sinks, {len(settings.customers)} customers)"
    )
    # Legal settings that do not do what they seem to: said, but not an error (exit unchanged).
    warnings = setting_warnings(settings) + tax_warnings(settings) + _server_warnings(settings)
    for warning in warnings + unreachable_budgets(settings.customers):
        _out(f"warning: {warning}")
    if not args.connections:
        return EXIT_OK
    app = App(settings)
    failures = 0
    if app.ledger.ping():
        # The OAuth sinks keep their rotated refresh tokens in the database: a token used
        # here and then dropped would lock the next sync out, so a new database gets its
        # schema first (what `sync` and `serve` would do on their first start anyway).
        app.ledger.upgrade()
        _out("database: ok")
    else:
        _out("database: cannot connect")
        failures += 1
    for source in settings.sources:
        failures += _try(f"source {source.name}", app.source, source.name)
    for sink in settings.invoicing:
        failures += _try(f"sink {sink.name}", app.sinks.__getitem__, sink.name)
    return EXIT_PARTIAL if failures else EXIT_OK


def _server_warnings(settings: Settings) -> list[str]:
    """An unset `${VAR}` under `server` stops only `serve` (every other command runs without
    it), so `check` says so instead of passing silently or failing every command."""
    warnings = []
    for where, problem in settings.server.unresolved:
        what, _, hint = problem.partition("; ")
        warning = f"{where}: {what}: `prepaid serve` will refuse to start"
        warnings.append(f"{warning} ({hint})" if hint else warning)
    return warnings


def _try(label: str, adapter: Callable[[str], TimeSource | InvoiceSink], name: str) -> int:
    try:
        _out(f"{label}: ok ({adapter(name).check_connection()})")
        return 0
    except ConnectorError as exc:
        _out(f"{label}: FAILED: {exc}")
        return 1
    except Exception as exc:  # one connection's trouble must not hide the others' results
        log.debug("checking %s", label, exc_info=True)
        _out(f"{label}: FAILED: {type(exc).__name__}: {exc}")
        return 1


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid db upgrade`."""
    App(settings).ledger.upgrade()
    _out("database is up to date")
    return EXIT_OK


# --- output helpers -----------------------------------------------------------------------


def _check_customer(settings: Settings, customer_id: str | None) -> None:
    if customer_id is not None and settings.customer(customer_id) is None:
        raise UsageError(
            f"unknown customer {customer_id!r}; configured: "
            + ", ".join(c.id for c in settings.customers)
        )


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    """A table: boxed by rich on a terminal, plain tab-separated text otherwise."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        return
    _out("\t".join(headers))
    for row in rows:
        _out("\t".join("" if v is None else str(v) for v in row))


class _progress:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""

    def __enter__(self) -> Callable[[str, int], None] | None:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            transient=True,
            console=Console(stderr=True),
        )
        self._bar.start()
        self._tasks: dict[str, Any] = {}
        self._counts: dict[str, int] = {}

        def tick(source: str, n: int) -> None:
            if source not in self._tasks:
                self._tasks[source] = self._bar.add_task(source)
                self._counts[source] = 0
            self._counts[source] += n
            self._bar.update(
                self._tasks[source], description=f"{source}: {self._counts[source]} records"
            )

        return tick

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "_bar"):
            self._bar.stop()
