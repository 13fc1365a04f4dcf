"""`prepaid serve` and `prepaid statement`, registered on the CLI by `sync.cli.parser`.

`serve` runs the scheduler and the HTTP server in one foreground process, the shape a
container wants: logs on stderr (readable on a terminal, JSON lines otherwise), exit 0 on
SIGTERM or Ctrl-C once the page in flight is committed. On SQLite only one `serve` may run per
database file, and an OS lock next to the file makes a second one refuse at once instead of
quietly competing for the same file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from sync.app import App
from sync.cli.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE, say_pending
from sync.config import require_server
from sync.ledger import utcnow
from sync.service.scheduler import (
    ENV_REFILL_SECONDS,
    ENV_SCHEDULE_SECONDS,
    ScheduleError,
    ScheduleOptions,
    ServiceScheduler,
)
from sync.settings import Settings
from sync.views.statement import build_statement, load_rows
from sync.views.statement_formats import FORMATS, render

if TYPE_CHECKING:  # the HTTP side loads only for `serve`, keeping every other command quick
    from sync.service.web import WebApp

STOP_TIMEOUT_SECONDS = 20.0
HTTP_THREADS = 4

log = logging.getLogger("prepaid.serve")


class ServeRefused(Exception):
    """`serve` cannot start (database locked by another serve, port taken): exit 1."""


def add_service_commands(sub: Any) -> None:
    """Register `serve` and `statement` on the `prepaid` sub-command parser."""
    p = sub.add_parser(
        "serve",
        help="run the scheduler and the HTTP server (health, metrics, webhooks, status page)",
        description=(
            "Sync each source on its cron `schedule` (and once at start-up), run refills and"
            " poll open invoices every few minutes, and serve /healthz, /metrics,"
            " POST /webhooks/<sink>, the status page / and /statements/<customer> on"
            " server.listen (use 0.0.0.0:8080 inside a container). The config is read once:"
            " a change is picked up on restart. Stops cleanly on SIGTERM or Ctrl-C (exit 0)."
            " Several replicas may share one PostgreSQL database; on SQLite only one serve may"
            f" run per database file. Knobs: {ENV_SCHEDULE_SECONDS}=N syncs every N seconds"
            f" instead of the cron lines (tests, operations); {ENV_REFILL_SECONDS}=N paces"
            " the refill job (default 300)."
        ),
        epilog="example: PREPAID_CONFIG=/config/config.yaml prepaid serve",
    )
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser(
        "statement",
        help="a customer's statement: opening, top-ups, work, adjustments, closing",
        description=(
            "The client-facing statement of a customer: the balance before --from, every"
            " top-up, refill and deducted entry (date, person, task, description, hours,"
            " amount), corrections with their reason, the balance after each line, the closing"
            " balance and (in HTML) a chart of the balance over time. Lines are dated by when"
            " they were recorded, in the configured time zone; dates are inclusive."
        ),
        epilog="example: prepaid statement acme --from 2026-11-01 --to 2026-11-30 -o acme.html",
    )
    p.add_argument("customer", metavar="CUSTOMER")
    p.add_argument("--from", dest="start", metavar="DATE", type=_date, help="first day")
    p.add_argument("--to", dest="end", metavar="DATE", type=_date, help="last day")
    p.add_argument("--format", choices=FORMATS, default="html")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=cmd_statement)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


# --- statement ------------------------------------------------------------------------------


def cmd_statement(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid statement CUSTOMER`."""
    customer = settings.customer(args.customer)
    if customer is None:
        known = ", ".join(c.id for c in settings.customers)
        print(f"unknown customer {args.customer!r}; configured: {known}", file=sys.stderr)
        return EXIT_USAGE
    if args.start is not None and args.end is not None and args.end < args.start:
        print("--to must not be before --from", file=sys.stderr)
        return EXIT_USAGE
    app = App(settings)
    with app.reading() as books:  # a statement reads: nothing is re-valued or written here
        rows = [] if books is None else load_rows(books.conn, customer.id)
    say_pending(books)
    statement = build_statement(
        customer,
        rows,
        start=args.start,
        end=args.end,
        timezone=settings.timezone,
        generated_at=utcnow(),
    )
    text = render(statement, args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"cannot write the statement to {args.output}: {reason}", file=sys.stderr)
            return EXIT_USAGE
        print(f"statement of {customer.id} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- serve ----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """`prepaid serve`: until SIGTERM/SIGINT."""
    require_server(settings)  # a server key with an unset ${VARIABLE}: config error, exit 2
    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)  # a service says what it does without -v
    try:
        options = ScheduleOptions.from_env(os.environ)
    except ScheduleError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    try:
        lock = sqlite_serve_lock(settings.database)
    except ServeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _serve(settings, options)
    except ServeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if lock is not None:
            release_serve_lock(lock)


def _serve(settings: Settings, options: ScheduleOptions) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        # Only note it: a signal handler must not take locks (logging's included).
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    app = App(settings)
    app.prepare()  # replicas starting together queue on the books lock
    from sync.service.metrics import ServiceMetrics
    from sync.service.web import WebApp

    metrics = ServiceMetrics()
    scheduler = ServiceScheduler(app, metrics, options)
    web = WebApp(app, metrics=metrics, refills=lambda: scheduler.refill_service)
    server = _http_server(web, settings.server.host, settings.server.port)
    threading.Thread(target=server.run, name="http", daemon=True).start()
    log.info("listening on http://%s:%s", _host_text(settings.server.host), settings.server.port)
    scheduler.start()
    while not stop.wait(0.5):
        pass
    log.info("%s received: stopping", signal.Signals(received[0]).name if received else "stop")
    finished = scheduler.stop(STOP_TIMEOUT_SECONDS)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    app.ledger.dispose()
    log.info("stopped")
    if not finished:
        # Pool threads of an abandoned job would hold the interpreter open; committed work
        # is safe and an open transaction rolls back when its connection closes.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK


def _http_server(web: WebApp, host: str, port: int) -> Any:
    from waitress.server import create_server

    try:
        return create_server(web, host=host, port=port, threads=HTTP_THREADS, ident="prepaid-sync")
    except OSError as exc:
        raise ServeRefused(
            f"cannot listen on {_host_text(host)}:{port} ({exc.strerror or exc});"
            " change server.listen or stop what uses the port"
        ) from None


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def sqlite_serve_lock(database_url: str) -> IO[str] | None:
    """On SQLite, hold an exclusive lock on `<db file>.serve.lock` for the process lifetime;
    raise ServeRefused when another `serve` holds it. None for PostgreSQL (replicas welcome).

    The file is removed on exit (`release_serve_lock`), so a serve that starts just then may
    lock a file that is already gone: it checks that the locked file is still the one at the
    path, and otherwise tries again on the new one.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(f"{url.database}.serve.lock")
    while True:
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ServeRefused(
                f"another `prepaid serve` ({holder}) is already running on {url.database};"
                " SQLite allows one: stop it first, or use PostgreSQL to run several replicas"
            ) from None
        if _is_file_at(handle, path):
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def release_serve_lock(handle: IO[str]) -> None:
    """Remove the lock file, then let go of the lock: removed while still held, so no other
    serve can hold a lock on a file that is about to vanish."""
    try:
        if _is_file_at(handle, Path(handle.name)):
            os.unlink(handle.name)
    except OSError as exc:  # a lock file left behind is harmless: it is reused next time
        log.warning("could not remove %s: %s", handle.name, exc.strerror or exc)
    handle.close()


def _is_file_at(handle: IO[str], path: Path) -> bool:
    """True when `path` still names the open file `handle` (not removed, not replaced)."""
    try:
        at_path = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)
