"""End-to-end: the real `prepaid sync` with FakeStripe as the invoicing sink (I3, I4).

The example story's CSV exports take ACME's money budget from EUR 2000.00 to EUR 290.00 on the
first sync, below its EUR 500.00 threshold, so the run raises `acme-retainer-1` and invoices
EUR 2000.00 in (fake) Stripe. Each test kills the process (SIGKILL at a named crash point) or
loses Stripe's answer at one step of that refill, reruns `prepaid sync` until it exits 0, and
checks what Stripe and the ledger hold: exactly one invoice for the refill, sent once, for the
right amount and description, recorded as issued with its number. Once the client pays, the
budget is credited exactly once, whatever crash happens before that credit commits. A refused
invoice waits as `failed` for the operator and is issued exactly once by `prepaid refill retry`.

All kill points and lost answers run on SQLite; a representative subset runs on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sync.ledger import Ledger, schema
from tests.e2e.test_cli import ROOT, run
from tests.fakes.stripe_server import FakeStripe

REFILL = "acme-retainer-1"
AMOUNT_MINOR = 200_000  # EUR 2000.00
DESCRIPTION = "Prepaid budget top-up"
EMAIL = "accounts@acme.example"
UNKNOWN_CUSTOMER = "cus_NoSuchCustomer01"
WEBHOOK_SECRET = "whsec_e2e_0123456789abcdef0123456789abcdef"
KILLED = -signal.SIGKILL
EXIT_USAGE = 2
EXIT_PARTIAL = 3

CONFIG = """\
database: {database}
timezone: Europe/Brussels

sources:
  - name: exports
    type: csv
    path: time_entries.csv
    format: generic

invoicing:
  - name: stripe
    type: stripe
    api_key: ${{STRIPE_API_KEY}}
    webhook_secret: ${{STRIPE_WEBHOOK_SECRET}}
    base_url: {base_url}
    max_network_retries: {retries}

customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    invoice_to: {invoice_to}
    match:
      - {{source: exports, client: "ACME Corp"}}
    budgets:
      - id: retainer
        unit: money
        rate: "95.00"
        opening_balance: "2000.00"
        billable_only: true
        exclude: {{tags: [internal]}}
        rounding: {{increment_minutes: 15, mode: up}}
        refill:
          below: "500.00"
          amount: "2000.00"
          credit_on: paid
"""


# --- the story ------------------------------------------------------------------------------


@dataclass
class Story:
    """A temp folder with the example exports and a config whose Stripe is `fake`."""

    folder: Path
    database: str
    fake: FakeStripe
    customer: str | None = None  # invoice_to.customer, or ...
    email: str | None = None  # ... invoice_to.email
    retries: int = 0  # the sink's max_network_retries
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    def write_config(self) -> None:
        target = {"sink": "stripe", "customer": self.customer, "email": self.email}
        invoice_to = ", ".join(f"{k}: {v}" for k, v in target.items() if v)
        self.config.write_text(
            CONFIG.format(
                database=self.database,
                base_url=self.fake.base_url,
                retries=self.retries,
                invoice_to="{" + invoice_to + "}",
            )
        )

    def run(self, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
        """`prepaid --config ... ARGS`, the Stripe secrets in its environment only."""
        env = {**self.env, "PREPAID_CRASH_AT": crash or ""}
        result = run(self.config, *args, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def acme(self) -> dict[str, Any]:
        """ACME's retainer row of `prepaid balance --format json`."""
        rows = self.json("balance", "--customer", "acme")
        assert [r["budget"] for r in rows] == ["retainer"]
        return dict(rows[0])

    def sync_until_ok(self, limit: int = 3) -> list[subprocess.CompletedProcess[str]]:
        """Rerun `prepaid sync` until it exits 0; every run before must be a partial one."""
        results = []
        for _ in range(limit):
            result = self.run("sync")
            results.append(result)
            if result.returncode == 0:
                return results
            assert result.returncode == EXIT_PARTIAL, result.stdout + result.stderr
        raise AssertionError(f"sync never exited 0: {results[-1].stdout}")

    def refill_row(self) -> Any:
        """The refill as stored (read in this process: the killed one holds no lock)."""
        ledger = Ledger(self.database)
        try:
            with ledger.read() as conn:
                rows = conn.execute(select(schema.refills)).all()
        finally:
            ledger.dispose()
        assert [r.id for r in rows] == [REFILL]
        return rows[0]

    def credit_keys(self) -> list[str]:
        """The keys of every refill credit posting, read from the database."""
        postings = schema.postings
        ledger = Ledger(self.database)
        try:
            with ledger.read() as conn:
                keys = conn.execute(
                    select(postings.c.key).where(postings.c.kind == "refill_credit")
                ).scalars()
                return list(keys)
        finally:
            ledger.dispose()

    def customer_id(self) -> str:
        """The Stripe customer invoiced: the configured one, or the only one with the email."""
        if self.customer:
            return self.customer
        with self.fake.lock:
            found = [c["id"] for c in self.fake.state.customers.values() if c["email"] == EMAIL]
        assert len(found) == 1, found
        return str(found[0])

    def write_keys(self, since: int = 0) -> list[str]:
        """The Idempotency-Key of every write sent to Stripe (from request `since` on)."""
        with self.fake.lock:
            writes = [r for r in self.fake.requests[since:] if r.method == "POST"]
        return [r.idempotency_key or "" for r in writes]


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


def make_story(
    tmp_path: Path, db_url: str, fake: FakeStripe, *, by_email: bool = False, retries: int = 0
) -> Story:
    """ACME invoiced through `fake`: by a customer id made in the fake, or by email."""
    shutil.copy(ROOT / "examples" / "time_entries.csv", tmp_path / "time_entries.csv")
    story = Story(
        folder=tmp_path,
        database=db_url,
        fake=fake,
        retries=retries,
        env={"STRIPE_API_KEY": fake.api_key, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    if by_email:
        story.email = EMAIL
    else:
        story.customer = fake.add_customer(email=EMAIL, name="ACME Corp")
    story.write_config()
    return story


def fake_invoice(fake: FakeStripe) -> dict[str, Any] | None:
    """The refill's invoice in the fake (a deep copy), None before it exists; never two."""
    with fake.lock:
        invoices = fake.invoices_for_refill(REFILL)
        assert len(invoices) <= 1, [i["id"] for i in invoices]
        return json.loads(json.dumps(invoices[0])) if invoices else None


def assert_issued(story: Story, *, attempt: int = 1, since: int = 0) -> dict[str, Any]:
    """Exactly one invoice in Stripe for the refill, complete and sent once, and the refill
    `issued` with that invoice in `prepaid balance`; nothing credited yet. Returns the invoice."""
    invoice = fake_invoice(story.fake)
    assert invoice is not None
    assert invoice["status"] == "open"
    assert invoice["customer"] == story.customer_id()
    assert (invoice["collection_method"], invoice["days_until_due"]) == ("send_invoice", 14)
    assert invoice["currency"] == "eur"
    assert (invoice["total"], invoice["amount_due"], invoice["amount_paid"]) == (
        AMOUNT_MINOR,
        AMOUNT_MINOR,
        0,
    )
    lines = [(line["amount"], line["description"]) for line in invoice["lines"]["data"]]
    assert lines == [(AMOUNT_MINOR, DESCRIPTION)]
    metadata = dict(invoice["metadata"])
    reference = metadata.pop("prepaid_reference")
    assert metadata == {
        "prepaid_refill_id": REFILL,
        "prepaid_customer": "acme",
        "prepaid_budget": "retainer",
    }
    assert re.fullmatch(rf"{REFILL}/[0-9a-f]{{12}}", reference), reference
    assert dict(story.fake.sends) == {invoice["id"]: 1}
    assert not story.fake.charges

    acme = story.acme()
    assert (acme["balance"], acme["debited"], acme["credited"]) == ("290.00", "1710.00", "0.00")
    refill = acme["open_refill"]
    assert refill is not None
    assert {k: refill[k] for k in ("id", "status", "amount", "invoice_amount", "error")} == {
        "id": REFILL,
        "status": "issued",
        "amount": "2000.00",
        "invoice_amount": "2000.00",
        "error": None,
    }
    assert invoice["number"] is not None and refill["invoice"] == invoice["number"]
    assert refill["invoice_url"] == invoice["hosted_invoice_url"]
    assert story.refill_row().invoice_id == invoice["id"]

    # every write of this attempt carried the refill's deterministic key for its step
    keys = story.write_keys(since)
    assert keys, "no write reached Stripe"
    prefixes = {key.rsplit(":", 1)[0] for key in keys}
    assert len(prefixes) == 1, keys
    prefix = prefixes.pop()
    assert prefix.startswith("prepaid-sync:") and prefix.endswith(f":{REFILL}:a{attempt}")
    return invoice


# --- a refill interrupted at each step ------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One way the first refill run is interrupted, and what it must leave behind."""

    crash: str | None = None  # PREPAID_CRASH_AT for the first run
    lose: str | None = None  # the first run's next POST under this path loses its answer
    lose_send: bool = False  # the first rerun loses the answer to its send
    retries: int = 0  # the sink's max_network_retries
    by_email: bool = False  # invoice_to by email instead of a customer id
    first_exit: int = KILLED
    # after the first run: refill status, recorded step, the invoice's status in Stripe (None:
    # no invoice), its line count, sends
    left: tuple[str, str, str | None, int, int] = ("intent", "", None, 0, 0)
    error: str | None = None  # what the sink could not do, in the summary and `balance`
    reruns: int = 1  # `prepaid sync` runs until exit 0


CASES = {
    "killed-after-intent": Case(crash="after_refill_intent"),
    "killed-after-created": Case(
        crash="after_record_created", left=("intent", "created", "draft", 0, 0)
    ),
    "killed-after-item-added": Case(
        crash="after_record_item_added", left=("intent", "item_added", "draft", 1, 0)
    ),
    "killed-after-finalized": Case(
        crash="after_record_finalized", left=("intent", "finalized", "open", 1, 0)
    ),
    "killed-after-sent": Case(crash="after_record_sent", left=("intent", "sent", "open", 1, 1)),
    "killed-after-issued": Case(crash="after_refill_issued", left=("issued", "sent", "open", 1, 1)),
    # The invoice is created but its answer never arrives; the rerun finds it by metadata.
    "lost-create": Case(
        lose="/v1/invoices",
        first_exit=EXIT_PARTIAL,
        left=("intent", "", "draft", 0, 0),
        error="create the invoice",
    ),
    # The SDK's own retry repeats the create with the same key: Stripe replays the answer.
    "lost-create-sdk-retry": Case(
        lose="/v1/invoices", retries=2, first_exit=0, left=("issued", "sent", "open", 1, 1)
    ),
    "lost-customer-create": Case(
        lose="/v1/customers",
        by_email=True,
        first_exit=EXIT_PARTIAL,
        error="create the customer",
    ),
    "lost-item": Case(
        lose="/v1/invoiceitems",
        first_exit=EXIT_PARTIAL,
        left=("intent", "created", "draft", 1, 0),
        error="add the invoice line",
    ),
    # The first POST under an invoice's own path is its finalize.
    "lost-finalize": Case(
        lose="/v1/invoices/in_",
        first_exit=EXIT_PARTIAL,
        left=("intent", "item_added", "open", 1, 0),
        error="finalize the invoice",
    ),
    "lost-finalize-sdk-retry": Case(
        lose="/v1/invoices/in_", retries=2, first_exit=0, left=("issued", "sent", "open", 1, 1)
    ),
    # Killed once finalized; the rerun's send goes out but its answer is lost; the next rerun
    # sends with the same key and Stripe replays the answer instead of emailing again.
    "killed-after-finalized-then-lost-send": Case(
        crash="after_record_finalized",
        lose_send=True,
        left=("intent", "finalized", "open", 1, 0),
        reruns=2,
    ),
}
ON_POSTGRES = ("killed-after-intent", "killed-after-item-added", "killed-after-sent", "lost-create")


def _cases() -> list[Any]:
    params = [pytest.param(name, "sqlite", id=f"{name}-sqlite") for name in CASES]
    params += [pytest.param(name, "postgresql", id=f"{name}-postgresql") for name in ON_POSTGRES]
    return params


@pytest.mark.parametrize(("case", "db_url"), _cases(), indirect=["db_url"])
def test_interrupted_refill_issues_exactly_one_invoice(
    tmp_path: Path, db_url: str, fake: FakeStripe, case: str
) -> None:
    spec = CASES[case]
    story = make_story(tmp_path, db_url, fake, by_email=spec.by_email, retries=spec.retries)
    if spec.lose:
        fake.lose_next_response(spec.lose)

    first = story.run("sync", crash=spec.crash)
    assert first.returncode == spec.first_exit, first.stdout + first.stderr
    row = story.refill_row()
    invoice = fake_invoice(fake)
    assert (
        row.status,
        row.step,
        None if invoice is None else invoice["status"],
        0 if invoice is None else len(invoice["lines"]["data"]),
        sum(fake.sends.values()),
    ) == spec.left
    assert row.invoice_id == (invoice["id"] if invoice and row.step else None)
    if spec.crash == "after_refill_intent":
        assert fake.requests == []  # the intent is committed before Stripe hears of it
    if spec.error:
        assert f"refill error: {REFILL}: could not reach Stripe to {spec.error}" in first.stdout
        assert row.error.startswith(f"could not reach Stripe to {spec.error}")
    if spec.lose_send:
        assert invoice is not None
        fake.lose_next_response(f"/v1/invoices/{invoice['id']}/send")

    reruns = story.sync_until_ok()
    assert len(reruns) == spec.reruns
    if spec.lose_send:
        assert "could not reach Stripe to send the invoice" in reruns[0].stdout
    if row.status == "intent":
        assert f"refill issued: {REFILL}" in reruns[-1].stdout
    assert "refill raised" not in "".join(r.stdout for r in reruns)
    invoice = assert_issued(story)
    if spec.lose == "/v1/invoices":
        # without SDK retries the rerun adopts the invoice found by its metadata; with them
        # the SDK repeats the create under the same key and Stripe replays its answer
        creates = fake.calls("POST", "/v1/invoices")
        assert len(creates) == (2 if spec.retries else 1)
        assert len({r.idempotency_key for r in creates}) == 1
    if spec.lose_send:
        sends = fake.calls("POST", f"/v1/invoices/{invoice['id']}/send")
        assert len(sends) == 2 and len({r.idempotency_key for r in sends}) == 1


# --- payment ----------------------------------------------------------------------------------


def test_paid_invoice_is_credited_exactly_once(
    tmp_path: Path, db_url: str, fake: FakeStripe
) -> None:
    story = make_story(tmp_path, db_url, fake)
    first = story.run("sync")
    assert first.returncode == 0, first.stdout + first.stderr
    invoice = assert_issued(story)

    # the client pays; the next sync polls, and dies just before the credit commits
    fake.mark_paid(invoice["id"])
    dead = story.run("sync", crash="before_credit_commit")
    assert dead.returncode == KILLED, dead.stdout + dead.stderr
    row = story.refill_row()
    assert (row.status, row.open_slot, row.paid_at) == ("issued", 1, None)
    assert story.credit_keys() == []

    # the rerun polls again and credits once
    paid = story.run("sync")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert f"refill credited: {REFILL}" in paid.stdout
    acme = story.acme()
    assert (acme["balance"], acme["credited"], acme["debited"]) == ("2290.00", "2000.00", "1710.00")
    assert acme["open_refill"] is None
    ledger = story.json("ledger")
    credits = [p for p in ledger if p["kind"] == "refill_credit"]
    assert [
        {k: p[k] for k in ("customer", "budget", "amount", "refill_id", "key", "reason")}
        for p in credits
    ] == [
        {
            "customer": "acme",
            "budget": "retainer",
            "amount": "2000.00",
            "refill_id": REFILL,
            "key": f"refill:{REFILL}:credit",
            "reason": f"refill {REFILL} paid (invoice {invoice['number']}): 2000.00 EUR",
        }
    ]
    assert ledger[-1]["balance_after"] == "2290.00"
    row = story.refill_row()
    assert (row.status, row.invoice_status, row.open_slot) == ("paid", "paid", None)

    # further runs change nothing, and write nothing to Stripe
    writes = len(story.write_keys())
    again = story.run("sync")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "refills: nothing to do" in again.stdout
    assert story.json("ledger") == ledger
    assert len(story.write_keys()) == writes
    assert fake.invoice_count(REFILL) == 1


def test_payment_after_uncollectible_is_credited_once_and_not_invoiced_again(
    tmp_path: Path, db_url: str, fake: FakeStripe
) -> None:
    story = make_story(tmp_path, db_url, fake)
    first = story.run("sync")
    assert first.returncode == 0, first.stdout + first.stderr
    invoice = assert_issued(story)

    # written off in the dashboard: the refill is voided
    fake.mark_uncollectible(invoice["id"])
    voided = story.run("sync")
    assert voided.returncode == 0, voided.stdout + voided.stderr
    assert f"refill voided: {REFILL}" in voided.stdout
    assert story.refill_row().status == "void"

    # the client pays it anyway, in part and then in full (Stripe takes both)
    fake.pay_in_part(invoice["id"], 50_000)
    fake.pay_in_part(invoice["id"], AMOUNT_MINOR - 50_000)
    paid = story.run("sync")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert f"refill credited: {REFILL}" in paid.stdout
    assert "refill raised" not in paid.stdout  # no second invoice for the same shortfall
    row = story.refill_row()
    assert (row.status, row.invoice_status, row.amount_paid_minor) == ("paid", "paid", AMOUNT_MINOR)
    assert story.credit_keys() == [f"refill:{REFILL}:credit"]
    assert story.acme()["balance"] == "2290.00"
    again = story.run("sync")
    assert again.returncode == 0 and "refills: nothing to do" in again.stdout
    assert story.credit_keys() == [f"refill:{REFILL}:credit"]
    assert fake.invoice_count(REFILL) == 1


def test_partly_paid_invoice_is_shown_then_credited_when_paid_in_full(
    tmp_path: Path, db_url: str, fake: FakeStripe
) -> None:
    story = make_story(tmp_path, db_url, fake)
    assert story.run("sync").returncode == 0
    invoice = assert_issued(story)

    fake.pay_in_part(invoice["id"], 50_000)
    part = story.run("sync")
    assert part.returncode == 0, part.stdout + part.stderr
    assert f"refill paid in part: {REFILL}: 500.00 of 2000.00 EUR paid" in part.stdout
    acme = story.acme()
    assert acme["balance"] == "290.00"
    refill = acme["open_refill"]
    assert (refill["status"], refill["amount_paid"], refill["partly_paid"]) == (
        "issued",
        "500.00",
        True,
    )

    fake.pay_in_part(invoice["id"], AMOUNT_MINOR - 50_000)
    full = story.run("sync")
    assert f"refill credited: {REFILL}" in full.stdout
    assert story.acme()["balance"] == "2290.00"
    assert story.credit_keys() == [f"refill:{REFILL}:credit"]


# --- a refused invoice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fix", "db_url"),
    [
        pytest.param("config-fixed", "sqlite", id="config-fixed-sqlite"),
        pytest.param("config-fixed", "postgresql", id="config-fixed-postgresql"),
        pytest.param("stripe-accepts", "sqlite", id="stripe-accepts-sqlite"),
    ],
    indirect=["db_url"],
)
def test_refused_invoice_fails_until_the_operator_retries(
    tmp_path: Path, db_url: str, fake: FakeStripe, fix: str
) -> None:
    story = make_story(tmp_path, db_url, fake)
    if fix == "config-fixed":
        # a customer id Stripe does not know: a 404 `resource_missing` on the create
        good_customer, story.customer = story.customer, UNKNOWN_CUSTOMER
        story.write_config()
        message = (
            f"Stripe refused to create the invoice (404): No such customer: '{UNKNOWN_CUSTOMER}'"
        )
    else:
        # a 400 this time only (nothing is stored under the key: the endpoint never ran)
        fake.fail_next(1, 400, "/v1/invoices", method="POST")
        message = "Stripe refused to create the invoice (400): An unknown error occurred"

    first = story.run("sync")
    assert first.returncode == EXIT_PARTIAL, first.stdout + first.stderr
    assert f"refill raised: {REFILL}" in first.stdout
    assert f"refill failed: {REFILL}: {message}" in first.stdout
    assert "prepaid refill retry ID" in first.stdout
    acme = story.acme()
    refill = acme["open_refill"]
    assert (refill["id"], refill["status"], refill["invoice"]) == (REFILL, "failed", None)
    assert refill["error"].startswith(message)
    assert acme["balance"] == "290.00"
    assert fake.invoices_for_refill(REFILL) == []

    # reruns report it and leave it alone: not one request to Stripe
    seen = len(fake.requests)
    rerun = story.run("sync")
    assert rerun.returncode == EXIT_PARTIAL, rerun.stdout + rerun.stderr
    assert f"refill failed: {REFILL}: {message}" in rerun.stdout
    assert "refill raised" not in rerun.stdout
    assert len(fake.requests) == seen
    assert story.refill_row().status == "failed"

    if fix == "config-fixed":
        story.customer = good_customer
        story.write_config()
    retried = story.run("refill", "retry", REFILL)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"refill issued: {REFILL}" in retried.stdout
    invoice = assert_issued(story, attempt=2, since=seen)
    assert story.refill_row().attempt == 2

    # once issued, neither a retry nor a sync makes another invoice
    again = story.run("refill", "retry", REFILL)
    assert again.returncode == EXIT_USAGE
    assert f"refill {REFILL} is issued; only a failed refill is retried" in again.stderr
    assert story.run("sync").returncode == 0
    assert fake.invoice_count(REFILL) == 1
    assert dict(fake.sends) == {invoice["id"]: 1}


# --- a new database, the same Stripe account --------------------------------------------------


def test_a_reset_database_never_adopts_the_old_paid_invoice(
    tmp_path: Path, sqlite_url: str, fake: FakeStripe
) -> None:
    story = make_story(tmp_path, sqlite_url, fake)
    assert story.run("sync").returncode == 0
    old = assert_issued(story)
    fake.mark_paid(old["id"])
    assert story.run("sync").returncode == 0
    assert story.acme()["credited"] == "2000.00"

    # the operator starts over with an empty database; Stripe still holds the paid invoice
    Path(sqlite_url.removeprefix("sqlite:///")).unlink()
    result = story.run("sync")
    assert result.returncode == 0, result.stdout + result.stderr
    invoices = fake.invoices_for_refill(REFILL)
    assert [i["status"] for i in invoices] == ["paid", "open"]
    acme = story.acme()
    assert (acme["credited"], acme["open_refill"]["status"]) == ("0.00", "issued")
    assert acme["open_refill"]["invoice"] == invoices[1]["number"]
