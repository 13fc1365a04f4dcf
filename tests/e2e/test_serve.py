"""The real `prepaid serve` as a subprocess: it syncs on its schedule, raises a refill in a local
fake Stripe, accepts the signed webhook that says it was paid, and stops with exit 0 on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fakes.stripe_server import FakeStripe
from tests.service_story import (
    SECOND_EXPORT,
    TOKEN,
    Serve,
    free_port,
    wait_for,
    write_story,
)
from tests.support import PREPAID, run_prepaid

pytestmark = pytest.mark.slow

WHSEC = "whsec_serve_test_0123456789"
ACME = (("budget", "retainer"), ("customer", "acme"), ("unit", "EUR"))


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


def stripe_story(folder: Path, database: str, port: int, fake: FakeStripe) -> Path:
    """The service story invoicing through the fake Stripe; ACME's refill threshold is above
    what the first export leaves (EUR 500.00), so the first sync raises a refill."""
    sink = (
        "    type: stripe\n"
        f"    api_key: {fake.api_key}\n"
        f"    webhook_secret: {WHSEC}\n"
        f"    base_url: {fake.base_url}\n"
        "    max_network_retries: 0"
    )
    return write_story(folder, database, port=port, below="600.00", sink_name="stripe", sink=sink)


def test_serve_syncs_takes_webhooks_and_stops_cleanly(
    tmp_path: Path, sqlite_url: str, stripe: FakeStripe
) -> None:
    port = free_port()
    config = stripe_story(tmp_path, sqlite_url, port, stripe)
    serve = Serve(config, port, tmp_path / "serve.log", {"PREPAID_SCHEDULE_SECONDS": "1"})
    try:
        wait_for("/healthz", serve.healthy)
        assert serve.request("/healthz").json() == {"status": "ok"}

        # the start-up sync charges 2 h + 3 h and raises one refill invoice in Stripe
        wait_for(
            "the first sync",
            lambda: serve.metrics().get(("prepaid_balance", ACME)) == Decimal("500.00"),
        )
        wait_for("the refill invoice", lambda: stripe.invoice_count("acme-retainer-1") == 1)
        (invoice,) = stripe.invoices_for_refill("acme-retainer-1")

        # a later scheduled tick picks up the corrected export (a2: 3 h -> 1 h)
        (tmp_path / "entries.csv").write_text(SECOND_EXPORT)
        wait_for(
            "the scheduled re-sync",
            lambda: serve.metrics().get(("prepaid_balance", ACME)) == Decimal("700.00"),
        )

        # the client pays; Stripe says so by webhook
        stripe.mark_paid(invoice["id"])
        headers, body = stripe.events.signed_webhook(
            "invoice.paid", invoice["id"], WHSEC, int(time.time())
        )
        paid = serve.request("/webhooks/stripe", data=body, headers=headers)
        # A 1 s tick may poll Stripe and credit the invoice before the webhook arrives; either
        # path is right as long as the budget is credited exactly once (checked below).
        assert paid.status == 200
        assert paid.json() in ({"outcome": "paid"}, {"outcome": "already paid"})
        again = serve.request("/webhooks/stripe", data=body, headers=headers)
        assert (again.status, again.json()) == (200, {"outcome": "duplicate"})
        forged = serve.request(
            "/webhooks/stripe", data=body, headers={**headers, "Stripe-Signature": "t=1,v1=00"}
        )
        assert forged.status == 400

        metrics = serve.metrics()
        webhooks = {
            result: metrics.get(
                ("prepaid_webhooks_total", (("result", result), ("sink", "stripe")))
            )
            for result in ("applied", "duplicate", "rejected")
        }
        assert webhooks == {"applied": 1, "duplicate": 1, "rejected": 1}
        # 700.00 + one credit of 1000.00
        assert metrics[("prepaid_balance", ACME)] == Decimal("1700.00")
        assert stripe.invoice_count("acme-retainer-1") == 1
        ledger = json.loads(run_prepaid(config, "ledger", "--format", "json").stdout)
        credits = [p for p in ledger if p["kind"] == "refill_credit"]
        assert [c["amount"] for c in credits] == ["1000.00"]

        page = serve.request("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status == 200 and "1700.00 EUR" in page.text
    finally:
        code = serve.stop(signal.SIGTERM)
    output = serve.output()
    assert code == 0, output
    lines = serve.log_lines()
    messages = [line["message"] for line in lines]
    assert any(m.startswith("tick start-up source:exports: synced (ok)") for m in messages)
    assert messages[-1] == "stopped"
    assert "Traceback" not in output
    for secret in (TOKEN, WHSEC, stripe.api_key):
        assert secret not in output


def test_second_serve_on_one_sqlite_file_refuses(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    config = write_story(tmp_path, sqlite_url, port=port)
    first = Serve(config, port, tmp_path / "first.log", {})
    try:
        wait_for("/healthz", first.healthy)
        second = Serve(config, free_port(), tmp_path / "second.log", {})
        code = second.process.wait(60)
        second.stop()
        database = sqlite_url.removeprefix("sqlite:///")
        assert code == 1
        assert second.output().strip().splitlines()[-1] == (
            f"error: another `prepaid serve` (pid {first.process.pid}) is already running on"
            f" {database}; SQLite allows one: stop it first, or use PostgreSQL to run several"
            " replicas"
        )
        assert first.healthy()
    finally:
        assert first.stop(signal.SIGINT) == 0


def test_bad_schedule_knob_is_a_usage_error(tmp_path: Path, sqlite_url: str) -> None:
    config = write_story(tmp_path, sqlite_url, port=free_port())
    serve = Serve(config, 0, tmp_path / "serve.log", {"PREPAID_SCHEDULE_SECONDS": "soon"})
    assert serve.process.wait(60) == 2
    serve.stop()
    assert serve.output().strip() == (
        "PREPAID_SCHEDULE_SECONDS='soon': use a whole number of seconds, at least 1"
    )


def test_unset_status_token_variable_stops_serve_only(tmp_path: Path, sqlite_url: str) -> None:
    """Issue 10: `status_token: ${VAR}` with VAR unset blocks `serve`, not `balance`."""
    config = write_story(tmp_path, sqlite_url, token="${PREPAID_STATUS_TOKEN}")
    unset = {"PREPAID_STATUS_TOKEN": ""}  # removed from the environment below
    environ = {k: v for k, v in os.environ.items() if k not in unset}

    synced = subprocess.run(
        [PREPAID, "--config", str(config), "sync"],
        capture_output=True, text=True, timeout=120, env=environ, cwd=tmp_path,
    )  # fmt: skip
    balance = subprocess.run(
        [PREPAID, "--config", str(config), "balance"],
        capture_output=True, text=True, timeout=120, env=environ, cwd=tmp_path,
    )  # fmt: skip
    served = subprocess.run(
        [PREPAID, "--config", str(config), "serve"],
        capture_output=True, text=True, timeout=120, env=environ, cwd=tmp_path,
    )  # fmt: skip

    assert synced.returncode == 0, synced.stderr
    assert "PREPAID_STATUS_TOKEN" not in synced.stderr
    assert (balance.returncode, balance.stderr) == (0, "")
    assert "acme" in balance.stdout
    assert served.returncode == 2
    assert served.stderr.strip() == (
        "config error: server.status_token: environment variable PREPAID_STATUS_TOKEN is not"
        " set; set it where prepaid runs, or write the value in the file"
    )
