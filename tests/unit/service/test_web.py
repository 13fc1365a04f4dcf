"""The HTTP side of `prepaid serve`, through werkzeug's test client (no server, no network).

The ledger is seeded by the scheduler's own job body (`run_source`), so the metrics of what
this process did are exact too. See `service_story` for the figures.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from werkzeug.test import Client

from sync.app import App
from sync.ledger import schema
from sync.ports import TemporaryFailure, WebhookEvent, WebhookRejected
from sync.refill import RefillService
from sync.service.metrics import ServiceMetrics
from sync.service.web import COOKIE, WEBHOOK_LIMIT, WebApp
from sync.views.reports import balance_rows, entry_rows
from tests.service_story import TOKEN, Story, scrape, seed
from tests.support import (
    PREPAID,
    ROOT,
    RecordingSink,
    ScriptedSource,
    entry,
    money_customer,
    run_prepaid,
    settings_for,
)


@pytest.fixture
def story(tmp_path: Path, sqlite_url: str) -> Story:
    return seed(tmp_path, sqlite_url)


def logged_in(story: Story) -> Client:
    client = story.client()
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 303
    return client


# --- machines ------------------------------------------------------------------------------------


def test_healthz(story: Story) -> None:
    response = story.client().get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_healthz_when_the_database_is_gone(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}", money_customer())
    response = Client(WebApp(App(settings))).get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"


def test_metrics_when_the_database_is_gone(tmp_path: Path) -> None:
    """The process's counters are still served, next to `prepaid_database_up 0`."""
    settings = settings_for(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}", money_customer())
    metrics = ServiceMetrics()
    metrics.add("prepaid_ticks_total", job="source:tracker", result="failed")
    response = Client(WebApp(App(settings), metrics=metrics)).get("/metrics")
    assert response.status_code == 200
    assert scrape(response.get_data(as_text=True)) == {
        ("prepaid_database_up", ()): 0,
        ("prepaid_ticks_total", (("job", "source:tracker"), ("result", "failed"))): 1,
    }


def test_metrics_exact_values(story: Story) -> None:
    response = story.client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type == CONTENT_TYPE_LATEST
    text = response.get_data(as_text=True)
    samples = scrape(text)
    acme = (("budget", "retainer"), ("customer", "acme"), ("unit", "EUR"))
    globex = (("budget", "support"), ("customer", "globex"), ("unit", "hours"))
    exports = (("source", "exports"),)
    expected = {
        ("prepaid_database_up", ()): Decimal("1"),
        ("prepaid_balance", acme): Decimal("950.00"),
        ("prepaid_balance", globex): Decimal("10.00"),
        ("prepaid_pending_review", acme): Decimal("0.00"),
        ("prepaid_pending_review", globex): Decimal("1.50"),
        ("prepaid_refills_open", (("status", "intent"),)): Decimal("0"),
        ("prepaid_refills_open", (("status", "issued"),)): Decimal("0"),
        ("prepaid_refills_open", (("status", "failed"),)): Decimal("0"),
        ("prepaid_entries", (*exports, ("status", "deducted"))): Decimal("2"),
        ("prepaid_entries", (*exports, ("status", "pending"))): Decimal("1"),
        ("prepaid_sync_runs_total", (("outcome", "ok"), *exports)): Decimal("2"),
        ("prepaid_entries_fetched_total", exports): Decimal("6"),
        ("prepaid_postings_written_total", exports): Decimal("3"),
        ("prepaid_ticks_total", (("job", "source:exports"), ("result", "ran"))): Decimal("2"),
    }
    assert {key: samples.get(key) for key in expected} == expected
    # exactly the documented names: no `_created` twin of any counter
    assert {name for name, _ in samples} == {name for name, _ in expected} | {
        "prepaid_sync_last_duration_seconds",
        "prepaid_sync_last_finished_timestamp_seconds",
    }
    durations = [k for k in samples if k[0] == "prepaid_sync_last_duration_seconds"]
    assert durations == [("prepaid_sync_last_duration_seconds", exports)]
    assert samples[durations[0]] >= 0
    # every family is announced once, before its samples
    for name in {key[0] for key in samples}:
        assert text.count(f"# TYPE {name} ") == 1
        assert text.index(f"# TYPE {name} ") < text.index(f"\n{name}")
    assert TOKEN not in text


def test_unknown_path_and_wrong_method(story: Story) -> None:
    client = story.client()
    assert client.get("/nope").status_code == 404
    assert client.get("/webhooks/files").status_code == 405
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


# --- webhooks ------------------------------------------------------------------------------------


@dataclass
class SignedSink(RecordingSink):
    """A recording sink whose webhooks are JSON bodies "signed" by an X-Signature header."""

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WebhookEvent:
        if headers.get("X-Signature") != "good":
            raise WebhookRejected("no valid signature")
        data = json.loads(body)
        return WebhookEvent(
            event_id=data["id"], type=data["type"], invoice_id=data["invoice"], refill_id=None
        )


class Broken(SignedSink):
    def refresh(self, state: Any) -> Any:
        raise TemporaryFailure("sink answered 502")


def webhook_app(tmp_path: Path, sink: SignedSink) -> tuple[WebApp, App, RefillService]:
    """ACME below its threshold with an issued refill invoice `inv_acme-retainer-1`."""
    source = ScriptedSource()
    source.put(entry("e1", hours="8"))
    settings = settings_for(f"sqlite:///{tmp_path / 'hooks.db'}", money_customer())
    app = App(settings)
    app.prepare()
    app.engine().sync(source, settings.sources[0])
    service = RefillService(app.ledger, settings, {"files": sink}, holder="test")
    report = service.run()
    assert report.issued == ["acme-retainer-1"]
    return WebApp(app, refills=lambda: service, metrics=ServiceMetrics()), app, service


def deliver(client: Client, event_id: str, *, signature: str = "good", sink: str = "files") -> Any:
    body = json.dumps({"id": event_id, "type": "invoice.paid", "invoice": "inv_acme-retainer-1"})
    return client.post(
        f"/webhooks/{sink}",
        data=body,
        headers={"X-Signature": signature, "Content-Type": "application/json"},
    )


def test_webhook_paid_then_duplicate(tmp_path: Path) -> None:
    sink = SignedSink()
    web, app, _ = webhook_app(tmp_path, sink)
    client = Client(web)
    sink.set_status("acme-retainer-1", "paid")
    first = deliver(client, "evt_1")
    assert (first.status_code, first.json) == (200, {"outcome": "paid"})
    again = deliver(client, "evt_1")
    assert (again.status_code, again.json) == (200, {"outcome": "duplicate"})
    later = deliver(client, "evt_2")
    assert (later.status_code, later.json) == (200, {"outcome": "already paid"})
    with app.ledger.read() as conn:
        row = balance_rows(conn, app.settings)[0]
    assert (row.balance, row.credited) == (Decimal("1200.00"), Decimal("1000.00"))
    assert web.metrics is not None
    assert web.metrics.value("prepaid_webhooks_total", sink="files", result="applied") == 2
    assert web.metrics.value("prepaid_webhooks_total", sink="files", result="duplicate") == 1


def test_webhook_rejected_unknown_sink_and_oversized(tmp_path: Path) -> None:
    web, app, _ = webhook_app(tmp_path, SignedSink())
    client = Client(web)
    rejected = deliver(client, "evt_1", signature="forged")
    assert (rejected.status_code, rejected.json) == (400, {"error": "no valid signature"})
    unknown = deliver(client, "evt_1", sink="stripe")
    assert unknown.status_code == 404
    huge = client.post("/webhooks/files", data=b"x" * (WEBHOOK_LIMIT + 1))
    assert huge.status_code == 413
    with app.ledger.read() as conn:
        assert balance_rows(conn, app.settings)[0].credited == 0


def test_webhook_answers_503_when_the_invoice_cannot_be_read(tmp_path: Path) -> None:
    web, app, _ = webhook_app(tmp_path, Broken())
    response = deliver(Client(web), "evt_1")
    assert (response.status_code, response.json) == (
        503,
        {"error": "invoice state unavailable; retry later"},
    )
    # not recorded as seen, so the sender's retry is applied, not called a duplicate
    with app.ledger.read() as conn:
        assert conn.execute(select(func.count()).select_from(schema.webhook_events)).scalar() == 0


# --- the status page -----------------------------------------------------------------------------


def test_status_page_needs_the_token_and_never_shows_it(story: Story) -> None:
    client = story.client()
    denied = client.get("/")
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"] == 'Bearer realm="prepaid-sync"'
    assert "950" not in denied.get_data(as_text=True)
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/statements/acme").status_code == 401

    login = client.get(f"/?token={TOKEN}")
    assert login.status_code == 303
    assert login.headers["Location"] == "/"
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie

    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert TOKEN not in html
    assert '<meta name="viewport"' in html
    assert "950.00 EUR" in html
    assert html.count("<svg") == 2  # one burn-down per budget
    assert "Password reset" in html  # waiting for review
    assert "Navigation &amp; &lt;header&gt;" not in html  # deducted, not pending
    assert page.headers["Cache-Control"] == "no-store"

    bearer = story.client().get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_token_login_keeps_other_query_arguments(story: Story) -> None:
    response = story.client().get(f"/statements/acme?from=2026-11-01&token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/statements/acme?from=2026-11-01"


def test_pages_are_disabled_without_a_status_token(tmp_path: Path, sqlite_url: str) -> None:
    story = seed(tmp_path, sqlite_url, token=None)
    client = story.client()
    assert client.get("/").status_code == 404
    assert client.get(f"/?token={TOKEN}").status_code == 404
    assert client.get("/statements/acme").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_approve_button_needs_the_form_token_and_changes_the_balance(story: Story) -> None:
    client = logged_in(story)
    with story.app.ledger.read() as conn:
        (pending,) = entry_rows(conn, status="pending")
    html = client.get("/").get_data(as_text=True)
    assert f'action="/entries/{pending.id}/approve"' in html
    assert story.web.csrf in html and story.web.csrf != TOKEN

    forged = client.post(f"/entries/{pending.id}/approve", data={"csrf": "guess"})
    assert forged.status_code == 403
    missing = client.post(f"/entries/{pending.id}/approve")
    assert missing.status_code == 403
    anonymous = story.client().post(f"/entries/{pending.id}/approve", data={"csrf": story.web.csrf})
    assert anonymous.status_code == 401
    assert story.balances()["globex/support"] == "10.00"

    assert f'name="version" value="{pending.priced_version}"' in html
    version = pending.priced_version
    done = client.post(
        f"/entries/{pending.id}/approve", data={"csrf": story.web.csrf, "version": version}
    )
    assert done.status_code == 303
    assert done.headers["Location"] == f"/?decided={pending.id}:deducted"
    assert story.balances()["globex/support"] == "8.50"
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert f"entry {pending.id}: deducted" in after
    assert "nothing to review" in after
    gone = client.post("/entries/999999/exclude", data={"csrf": story.web.csrf, "version": "x"})
    assert gone.status_code == 404


def test_a_button_on_a_stale_page_decides_nothing(story: Story) -> None:
    """Issue 10 item 7: the page showed 1.50 h; the entry is edited to 9 h and synced; the
    button still on the page must not deduct 9 h."""
    client = logged_in(story)
    with story.app.ledger.read() as conn:
        (pending,) = entry_rows(conn, status="pending")
    shown = pending.priced_version
    assert shown and f'name="version" value="{shown}"' in client.get("/").get_data(as_text=True)
    export = story.config.parent / "entries.csv"
    export.write_text(export.read_text().replace(",1.5,Cara", ",9,Cara"))
    assert story.scheduler.run_source("exports") == "ok"

    form = {"csrf": story.web.csrf, "version": shown}
    stale = client.post(f"/entries/{pending.id}/approve", data=form)
    assert stale.status_code == 409
    text = stale.get_data(as_text=True)
    assert "globex/support 9.00 h" in text and "nothing was approved" in text
    assert story.balances()["globex/support"] == "10.00"
    assert (
        client.post(f"/entries/{pending.id}/approve", data={"csrf": story.web.csrf}).status_code
        == 400
    )
    assert story.balances()["globex/support"] == "10.00"


def test_the_review_table_says_why_an_entry_waits_again(story: Story) -> None:
    """An approved entry edited to other figures goes back to review; the page says it was
    approved before, on which figures, and what they are now."""
    client = logged_in(story)
    with story.app.ledger.read() as conn:
        (pending,) = entry_rows(conn, status="pending")
    form = {"csrf": story.web.csrf, "version": pending.priced_version or ""}
    assert client.post(f"/entries/{pending.id}/approve", data=form).status_code == 303
    export = story.config.parent / "entries.csv"
    export.write_text(export.read_text().replace(",1.5,Cara", ",2,Cara"))
    assert story.scheduler.run_source("exports") == "ok"

    with story.app.ledger.read() as conn:
        (again,) = entry_rows(conn, status="pending")
    assert again.id == pending.id and again.reason and "review again" in again.reason
    html = client.get("/").get_data(as_text=True)
    review = html[html.index('<section id="review">') :]
    assert "<th>Why</th>" in review
    assert escape(again.reason) in review
    assert "approved before at" in again.reason


def test_oversized_form_is_refused(story: Story) -> None:
    client = logged_in(story)
    response = client.post("/entries/1/approve", data={"csrf": "x" * (64 << 10)})
    assert response.status_code == 413


# --- statements ----------------------------------------------------------------------------------


def test_statement_page(story: Story) -> None:
    client = logged_in(story)
    data = client.get("/statements/acme?format=json").json
    (budget,) = data["budgets"]
    assert {k: budget[k] for k in ("opening_balance", "added", "used", "closing_balance")} == {
        "opening_balance": "1000.00",
        "added": "250.00",
        "used": "300.00",
        "closing_balance": "950.00",
    }
    assert [(line["kind"], line["amount"], line["balance"]) for line in budget["lines"]] == [
        ("work", "-200.00", "800.00"),
        ("work", "-300.00", "500.00"),
        ("adjustment", "200.00", "700.00"),
        ("top-up", "250.00", "950.00"),
    ]
    work, edited, adjustment = budget["lines"][0:3]
    assert (work["person"], work["task"], work["hours"], work["work_date"]) == (
        "Ann Peeters",
        "Website / Design",
        "2.00",
        "2026-11-02",
    )
    assert edited["hours"] is None  # the 3 h version no longer exists
    assert adjustment["hours"] == "1.00"
    assert adjustment["explanation"].endswith("it cost 300.00 before")
    assert "customers[" not in adjustment["explanation"]
    assert budget["lines"][3]["description"] == "Prepayment: bank transfer"

    html_response = client.get("/statements/acme")
    html = html_response.get_data(as_text=True)
    assert html_response.content_type == "text/html; charset=utf-8"
    assert "<svg" in html and "950.00" in html
    assert "Navigation &amp; &lt;header&gt;" in html  # escaped, never markup
    assert "<header>" not in html
    csv_response = client.get("/statements/acme?format=csv")
    assert (
        csv_response.headers["Content-Disposition"] == 'attachment; filename="statement-acme.csv"'
    )
    assert csv_response.get_data(as_text=True).splitlines()[-1].split(",")[-2] == "950.00"

    assert client.get("/statements/nobody").status_code == 404
    assert client.get("/statements/acme?from=2026-13-01").status_code == 400
    assert client.get("/statements/acme?from=2026-11-02&to=2026-11-01").status_code == 400
    assert client.get("/statements/acme?format=pdf").status_code == 400


def test_statement_period_after_everything_carries_the_balance(story: Story) -> None:
    client = logged_in(story)
    data = client.get("/statements/acme?format=json&from=2999-01-01").json
    (budget,) = data["budgets"]
    assert (budget["opening_balance"], budget["lines"], budget["closing_balance"]) == (
        "950.00",
        [],
        "950.00",
    )
    before = client.get("/statements/acme?format=json&to=2000-01-01").json["budgets"][0]
    assert (before["opening_balance"], before["lines"], before["closing_balance"]) == (
        "1000.00",  # the configured opening balance is where the budget starts
        [],
        "1000.00",
    )


def test_statement_command_reconciles_with_balance(tmp_path: Path, db_url: str) -> None:
    story = seed(tmp_path, db_url)
    balance = run_prepaid(story.config, "balance", "--format", "json")
    assert balance.returncode == 0, balance.stderr
    balances = {(r["customer"], r["budget"]): r["balance"] for r in json.loads(balance.stdout)}
    assert balances == {("acme", "retainer"): "950.00", ("globex", "support"): "10.00"}

    for customer, budget in balances:
        for extra in ((), ("--from", "2000-01-01")):
            result = run_prepaid(story.config, "statement", customer, "--format", "json", *extra)
            assert result.returncode == 0, result.stderr
            (section,) = json.loads(result.stdout)["budgets"]
            assert section["closing_balance"] == balances[(customer, budget)]

    out = tmp_path / "acme.csv"
    result = run_prepaid(story.config, "statement", "acme", "--format", "csv", "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("customer,budget,unit,date,kind")
    assert lines[-1].split(",")[4:5] == ["closing balance"]
    assert lines[-1].split(",")[-2] == "950.00"

    html = tmp_path / "acme.html"
    result = run_prepaid(story.config, "statement", "acme", "-o", str(html))
    assert result.returncode == 0, result.stderr
    text = html.read_text()
    assert (
        "<svg" in text
        and "950.00" in text
        and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )

    unknown = run_prepaid(story.config, "statement", "nobody")
    assert unknown.returncode == 2
    assert "unknown customer 'nobody'" in unknown.stderr


def test_service_commands_have_help_and_a_readme_example() -> None:
    readme = (ROOT / "README.md").read_text()
    examples = {
        "serve": "example: PREPAID_CONFIG=/config/config.yaml prepaid serve",
        "statement": "example: prepaid statement acme --from 2026-11-01 --to 2026-11-30",
    }
    for command, example in examples.items():
        result = subprocess.run([PREPAID, command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert example in result.stdout
        assert f"prepaid {command}" in readme
