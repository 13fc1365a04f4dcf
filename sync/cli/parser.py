"""The `prepaid` command: the scriptable contract of design.md.

`main(argv) -> int` with named exit codes; results on stdout (a table, or JSON/CSV with
`--format`), logs and progress on stderr. A user never sees a traceback: every expected
failure is one line that says what to fix, and anything unexpected is one line plus a hint to
rerun with `--debug`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sync.app import SchemaBehind
from sync.books import BooksMismatch
from sync.cli.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    UsageError,
    cmd_balance,
    cmd_check,
    cmd_db_upgrade,
    cmd_decide,
    cmd_entries,
    cmd_ledger,
    cmd_refill,
    cmd_refill_paid,
    cmd_refill_retry,
    cmd_sync,
    cmd_topup,
    entry_target,
    print_error,
)
from sync.cli.logs import configure_logging
from sync.cli.serve import add_service_commands
from sync.config import ConfigErrors, load_config
from sync.ledger import StoreUnavailable
from sync.model import EntryStatus
from sync.ports import ConnectorError
from sync.redaction import Redactor
from sync.refill import RefillError
from sync.settings import Settings

log = logging.getLogger("prepaid")

# 128 + SIGPIPE: what a shell reports for `yes | head -1`, so `set -o pipefail` sees the same.
EXIT_PIPE_CLOSED = 141


def run() -> None:
    """The `prepaid` console script: `main` in a process tuned for bulk work."""
    tune_collector()
    sys.exit(main())


def tune_collector() -> None:
    """Make Python's cyclic garbage collector cheap for a sync.

    A sync allocates millions of short-lived objects and hardly any reference cycles; at
    CPython's default pace (a pass every 700 allocations, rescanning whatever survived) the
    collector spends a large share of a big sync finding nothing (the README has the figures).
    The start-up's long-lived objects (modules, table metadata) are frozen out of its passes,
    and a pass waits for 50,000 allocations. It still runs, so a long `serve` frees whatever
    cycles it makes.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `prepaid` command and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage or help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    redactor = Redactor()
    configure_logging(verbose=args.verbose, debug=args.debug, redactor=redactor)
    try:
        settings = _load(args.config)
        redactor.add(*_secret_values(settings))
        handler: Callable[[argparse.Namespace, Settings], int] = args.handler
        code = handler(args, settings)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except ConfigErrors as exc:
        for line in str(exc).splitlines():
            print_error(f"config error: {line}")
        return EXIT_USAGE
    except (UsageError, BooksMismatch, SchemaBehind) as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print_error(f"error: {exc}")
        return EXIT_FAILED
    except RefillError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except ConnectorError as exc:
        print_error(f"error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error("interrupted; committed work is kept and the next run finishes the rest")
        return EXIT_FAILED
    except OSError as exc:
        if args.debug:
            raise
        if exc.filename is None:
            return _unexpected(exc)
        print_error(f"error: {exc.filename}: {exc.strerror or exc}")  # a path the user gave
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        return _unexpected(exc)


def _unexpected(exc: Exception) -> int:
    """Anything no handler expected: one line, the traceback only in the debug log."""
    log.debug("unexpected error", exc_info=True)
    print_error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)")
    return EXIT_FAILED


def _stdout_closed() -> int:
    """The reader of our output went away (`prepaid entries | head -1`): stop quietly, as
    `cat` or `grep` do, with the shell's code for a process ended by SIGPIPE.

    Python's documented recipe (the "Note on SIGPIPE" in the `signal` docs): point stdout at
    /dev/null so the interpreter's final flush of the unwritten rest does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a file (tests capture it): there is no final flush to fail
    return EXIT_PIPE_CLOSED


def _load(config: str | None) -> Settings:
    path = config or os.environ.get("PREPAID_CONFIG") or "config.yaml"
    return load_config(path)


def _secret_values(settings: Settings) -> list[str]:
    """Every secret in the config, so the log filter can scrub it from any line."""
    from sync.settings import Secret

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Secret):
            if value.reveal():
                found.append(value.reveal())
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                walk(getattr(value, name))

    walk(settings)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with help text for every command."""
    parser = argparse.ArgumentParser(
        prog="prepaid",
        description="Deduct tracked time from prepaid budgets and refill them by invoice.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad usage or config, 3 partly done.",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $PREPAID_CONFIG or config.yaml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--debug", action="store_true", help="log everything, show tracebacks")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser(
        "sync",
        help="pull entries, post them, then run refills",
        description="Pull time entries from every source (or one), deduct them from their "
        "budgets, then raise refills and poll open ones.",
        epilog="example: prepaid sync --source harvest --since 2026-11-01",
    )
    p.add_argument("--source", metavar="NAME", help="only this source")
    p.add_argument("--since", metavar="DATE", type=_date, help="re-read entries from DATE")
    p.add_argument("--full", action="store_true", help="re-read the whole look-back window now")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    p.add_argument(
        "--accept-deletions",
        action="store_true",
        help="with --full: reverse the entries a complete re-read no longer returns even when"
        " the deletion guard finds them too many (a mass deletion you have checked in the"
        " tracker); their postings record the confirmation",
    )
    p.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_seconds,
        nargs="?",
        const=600,
        default=0,
        help="a source another run is syncing is skipped (exit 0); with --wait, sync it once"
        " that run is done, waiting up to SECONDS (default 600)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_sync)

    p = sub.add_parser(
        "balance",
        help="what is left in each budget",
        description="One row per budget: balance, opening, credited, debited, open refill.",
        epilog="example: prepaid balance --customer acme --format json",
    )
    p.add_argument("--customer", metavar="ID")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_balance)

    p = sub.add_parser(
        "entries",
        help="time entries and their state; approve or exclude them",
        description="List entries (deducted, pending, excluded, unrouted, running, invalid, "
        "deleted), or review them: `entries approve ID...`, `entries exclude ID...`.",
        epilog="examples: prepaid entries --status pending; prepaid entries approve 12 13",
    )
    p.add_argument("--customer", metavar="ID")
    p.add_argument("--status", choices=list(EntryStatus))
    p.add_argument("--source", metavar="NAME")
    p.add_argument("--limit", type=int, metavar="N", help="at most N rows")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_entries)
    esub = p.add_subparsers(title="review", metavar="ACTION")
    for action, text in (
        ("approve", "deduct entries waiting for review"),
        ("exclude", "never deduct these entries"),
    ):
        a = esub.add_parser(
            action,
            help=text,
            description=f"{text.capitalize()}. ID@VERSION (as `prepaid entries` shows them)"
            " decides on the figures that version names and is refused, with the new figures,"
            " when the entry has changed since; a bare ID decides on the current figures and"
            " prints them.",
            epilog=f"example: prepaid entries {action} 12@3f9a02c1 13",
        )
        a.add_argument("ids", nargs="+", type=entry_target, metavar="ID[@VERSION]")
        a.add_argument("--format", choices=("table", "json"), default="table")
        a.set_defaults(
            handler=cmd_decide, decision="approved" if action == "approve" else "excluded"
        )

    p = sub.add_parser(
        "topup",
        help="record a one-off prepayment",
        description="Credit a budget with a prepayment received outside the refill flow."
        " AMOUNT is in the budget's unit, in plain digits, with at most the currency's decimals"
        " (none for JPY; two for hours budgets).",
        epilog="example: prepaid topup acme/retainer 500.00 --ref TRF-2026-1120"
        ' --note "bank transfer"',
    )
    p.add_argument("target", metavar="CUSTOMER[/BUDGET]")
    p.add_argument("amount", metavar="AMOUNT")
    p.add_argument("--note", metavar="TEXT")
    p.add_argument(
        "--ref",
        metavar="TEXT",
        help="the payment's reference: a top-up with a reference already recorded is not"
        " recorded again (safe to rerun)",
    )
    p.set_defaults(handler=cmd_topup)

    p = sub.add_parser(
        "refill",
        help="run the refill policy now; record payments; retry refused refills",
        description="Raise refills for budgets below their threshold and poll open refills; "
        "`refill paid ID` records a payment a sink cannot report, `refill retry ID` retries "
        "a refill the sink refused.",
        epilog="examples: prepaid refill --dry-run; prepaid refill paid acme-retainer-1",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be raised")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_refill)
    rsub = p.add_subparsers(title="actions", metavar="ACTION")
    a = rsub.add_parser(
        "paid",
        help="record that a refill's invoice was paid",
        description="Record a payment for a sink that cannot report one (outbox).",
        epilog="example: prepaid refill paid acme-retainer-1",
    )
    a.add_argument("refill_id", metavar="ID")
    a.set_defaults(handler=cmd_refill_paid)
    a = rsub.add_parser(
        "retry",
        help="retry a refill the sink refused",
        description="Issue a failed refill again with a fresh idempotency key.",
        epilog="example: prepaid refill retry acme-retainer-2",
    )
    a.add_argument("refill_id", metavar="ID")
    a.set_defaults(handler=cmd_refill_retry)

    p = sub.add_parser(
        "ledger",
        help="every posting with the reason it exists",
        description="The append-only ledger, oldest first, with each budget's balance after "
        "every posting.",
        epilog="example: prepaid ledger --customer acme --format csv > acme.csv",
    )
    p.add_argument("--customer", metavar="ID")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(handler=cmd_ledger)

    p = sub.add_parser(
        "check",
        help="validate the config (and try each connection)",
        description="Validate the config file; with --connections, make one cheap request to "
        "each source and sink.",
        epilog="example: prepaid check --connections",
    )
    p.add_argument("--connections", action="store_true")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser(
        "db",
        help="database maintenance",
        description="Database maintenance.",
        epilog="example: prepaid db upgrade",
    )
    dsub = p.add_subparsers(title="actions", metavar="ACTION")
    a = dsub.add_parser(
        "upgrade",
        help="apply migrations",
        description="Apply migrations.",
        epilog="example: prepaid db upgrade",
    )
    a.set_defaults(handler=cmd_db_upgrade)

    add_service_commands(sub)
    return parser


def _seconds(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 1 to 86400")
    return int(text)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
