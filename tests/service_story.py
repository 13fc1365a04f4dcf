"""A small, exact story for the service tests (web, serve, browser): one config, one CSV.

ACME prepays EUR 1000.00 at EUR 100.00 an hour; Globex prepays 10 hours and reviews every entry.
The first export charges ACME 2 h + 3 h (EUR 500.00) and puts 1.5 h of Globex work up for
review; the second export corrects a2 from 3 h to 1 h (a reversal of EUR 200.00). With a
top-up of EUR 250.00 ACME's balance is EUR 950.00.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from sync.app import App
from sync.books import topup
from sync.config import load_config
from sync.service.metrics import ServiceMetrics
from sync.service.scheduler import ScheduleOptions, ServiceScheduler
from sync.service.web import WebApp
from sync.settings import Settings
from sync.views.reports import balance_rows
from tests.support import PREPAID

T = TypeVar("T")

TOKEN = "status-token-0123456789abcdef"

Labels = tuple[tuple[str, str], ...]


def scrape(text: str) -> dict[tuple[str, Labels], Decimal]:
    """The samples of a `/metrics` answer, read by prometheus_client's own parser, as
    {(name, labels sorted by name): value}. The format carries floats; each becomes the
    Decimal of its shortest repr, so 950.0 compares equal to Decimal("950.00")."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): Decimal(repr(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


HEADER = "id,updated_at,date,start,end,hours,user,client,project,task,tags,billable,description\n"
FIRST_EXPORT = HEADER + (
    "a1,2026-11-02T10:00:00Z,2026-11-02,,,2,Ann Peeters,ACME Corp,Website,Design,,true,"
    "Homepage wireframes\n"
    "a2,2026-11-03T10:00:00Z,2026-11-03,,,3,Bob Janssens,ACME Corp,Website,Build,,true,"
    "Navigation & <header>\n"
    "g1,2026-11-04T10:00:00Z,2026-11-04,,,1.5,Cara Dubois,Globex,Support,Tickets,,true,"
    "Password reset\n"
)
SECOND_EXPORT = FIRST_EXPORT.replace(
    "a2,2026-11-03T10:00:00Z,2026-11-03,,,3,", "a2,2026-11-05T09:00:00Z,2026-11-03,,,1,"
)

CONFIG = """\
database: @DATABASE@
timezone: Europe/Brussels
server:
  listen: 127.0.0.1:@PORT@
@TOKEN_LINE@
sources:
  - name: exports
    type: csv
    path: entries.csv
    schedule: "*/15 * * * *"
invoicing:
  - name: @SINK_NAME@
@SINK@
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    invoice_to: {sink: @SINK_NAME@, email: accounts@acme.example}
    match:
      - {source: exports, client: "ACME Corp"}
    budgets:
      - id: retainer
        unit: money
        rate: "100.00"
        opening_balance: "1000.00"
        refill: {below: "@BELOW@", amount: "1000.00", credit_on: paid}
  - id: globex
    name: Globex Ltd
    currency: GBP
    invoice_to: {sink: @SINK_NAME@, email: finance@globex.example}
    match:
      - {source: exports, client: Globex}
    budgets:
      - id: support
        unit: hours
        rate: "120.00"
        opening_balance: "10"
        approval: review
"""

OUTBOX = "    type: outbox\n    path: outbox"


def write_story(
    folder: Path,
    database: str,
    *,
    port: int = 8080,
    token: str | None = TOKEN,
    export: str = FIRST_EXPORT,
    below: str = "300.00",
    sink_name: str = "files",
    sink: str = OUTBOX,
) -> Path:
    """Write `config.yaml` and `entries.csv` into `folder`; return the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "entries.csv").write_text(export)
    token_line = f"  status_token: {token}" if token else ""
    text = (
        CONFIG.replace("@DATABASE@", database)
        .replace("@PORT@", str(port))
        .replace("@TOKEN_LINE@", token_line)
        .replace("@BELOW@", below)
        .replace("@SINK_NAME@", sink_name)
        .replace("@SINK@", sink)
    )
    config = folder / "config.yaml"
    config.write_text(text)
    return config


# --- a seeded ledger behind the WSGI app --------------------------------------------------


@dataclass
class Story:
    config: Path
    settings: Settings
    app: App
    metrics: ServiceMetrics
    scheduler: ServiceScheduler
    web: WebApp

    def client(self) -> Client:
        return Client(self.web)

    def balances(self) -> dict[str, str]:
        with self.app.ledger.read() as conn:
            return {
                f"{r.customer}/{r.budget}": str(r.balance)
                for r in balance_rows(conn, self.settings)
            }


def seed(folder: Path, database: str, *, token: str | None = TOKEN) -> Story:
    """Two scheduled ticks over the two exports, then a top-up: ACME ends at EUR 950.00."""
    config = write_story(folder, database, token=token)
    settings = load_config(config)
    app = App(settings)
    app.prepare()
    metrics = ServiceMetrics()
    scheduler = ServiceScheduler(app, metrics, ScheduleOptions(run_at_start=False))
    assert scheduler.run_source("exports") == "ok"
    (folder / "entries.csv").write_text(SECOND_EXPORT)
    assert scheduler.run_source("exports") == "ok"
    acme = settings.customers[0]
    topup(app.ledger, acme, acme.budgets[0], Decimal("250.00"), "bank transfer")
    web = WebApp(app, metrics=metrics, refills=lambda: scheduler.refill_service)
    return Story(config, settings, app, metrics, scheduler, web)


# --- a real `prepaid serve` in a subprocess ---------------------------------------------------

_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Answer:
    """An HTTP answer from the server under test."""

    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class Serve:
    """`prepaid --config CONFIG serve` as a child process, logging to `log`."""

    def __init__(self, config: Path, port: int, log: Path, env: dict[str, str]) -> None:
        self.port = port
        self.log = log
        self._stream = log.open("wb")
        self.process = subprocess.Popen(
            [PREPAID, "--config", str(config), "serve"],
            stdout=self._stream,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            env={**os.environ, **env},
        )

    def request(
        self, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers or {}
        )
        try:
            with _LOCAL.open(request, timeout=10) as response:
                return Answer(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read(), dict(exc.headers))

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output()}")
        try:
            return self.request("/healthz").status == 200
        except OSError:
            return False

    def metrics(self) -> Mapping[tuple[str, Labels], Decimal]:
        return scrape(self.request("/metrics").text)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (stderr is not a terminal here)."""
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` and wait (bounded) for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"serve ignored signal {sig}:\n{self.output()}") from None
        finally:
            self._stream.close()
