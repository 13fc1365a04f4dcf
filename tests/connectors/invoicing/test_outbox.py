"""OutboxSink: invoice files written once and atomically, escaped HTML, the .paid marker."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.invoicing.outbox import OutboxSink
from sync.ports import (
    ConnectorError,
    InvoiceRequest,
    InvoiceSink,
    InvoiceState,
    InvoiceStatus,
    RequestRejected,
    TemporaryFailure,
    WebhookRejected,
)
from sync.settings import InvoiceTo, OutboxSettings

REQUEST = InvoiceRequest(
    refill_id="rf_0001",
    idempotency_key="refill:rf_0001:1",
    customer_id="acme",
    customer_name="ACME Corp",
    budget_id="retainer",
    invoice_to=InvoiceTo(sink="files", email="billing@acme.example", days_until_due=14),
    currency="EUR",
    amount_minor=190000,
    quantity=Decimal("20"),
    unit_price=Decimal("95.00"),
    description="Prepaid hours refill: 20 h at 95.00 EUR",
    issue_date=dt.date(2026, 3, 2),
)


def make_sink(folder: Path) -> OutboxSink:
    return OutboxSink(
        OutboxSettings(yaml_path="invoicing[1]", name="files", type="outbox", folder=folder)
    )


def issue(
    sink: OutboxSink, request: InvoiceRequest = REQUEST
) -> tuple[InvoiceState, list[InvoiceState]]:
    recorded: list[InvoiceState] = []
    state = sink.issue(request, None, recorded.append)
    return state, recorded


def test_outbox_sink_satisfies_the_invoice_sink_protocol(tmp_path: Path) -> None:
    sink: InvoiceSink = make_sink(tmp_path)
    assert (sink.name, sink.reports_payment) == ("files", False)


def test_issue_writes_the_invoice_as_json_and_html_and_records_it(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "2026"  # created on the first invoice
    state, recorded = issue(make_sink(folder))
    html_path = folder / "rf_0001.html"
    assert state == InvoiceState(
        invoice_id="rf_0001",
        number="rf_0001",
        url=html_path.resolve().as_uri(),
        step="sent",
        status=InvoiceStatus.OPEN,
    )
    assert recorded == [state]
    assert json.loads((folder / "rf_0001.json").read_text()) == {
        "number": "rf_0001",
        "refill_id": "rf_0001",
        "reference": "rf_0001",
        "idempotency_key": "refill:rf_0001:1",
        "customer": {"id": "acme", "name": "ACME Corp"},
        "invoice_to": {"sink": "files", "customer": None, "email": "billing@acme.example"},
        "budget_id": "retainer",
        "currency": "EUR",
        "amount": "1900.00",
        "amount_minor": 190000,
        "lines": [
            {
                "description": "Prepaid hours refill: 20 h at 95.00 EUR",
                "quantity": "20",
                "unit_price": "95.00",
                "amount": "1900.00",
            }
        ],
        "issue_date": "2026-03-02",
        "due_date": "2026-03-16",
    }
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for text in (
        "Invoice rf_0001",
        "ACME Corp",
        "billing@acme.example",
        "1900.00 EUR",
        "2026-03-16",
    ):
        assert text in page
    assert "http" not in page and "<link" not in page and "<script" not in page  # standalone
    assert sorted(p.name for p in folder.iterdir()) == ["rf_0001.html", "rf_0001.json"]


def test_amounts_follow_the_currency_minor_unit(tmp_path: Path) -> None:
    yen = replace(REQUEST, currency="JPY", amount_minor=120000, unit_price=Decimal("6000"))
    issue(make_sink(tmp_path), yen)
    document = json.loads((tmp_path / "rf_0001.json").read_text())
    assert (document["amount"], document["amount_minor"]) == ("120000", 120000)


def test_html_escapes_every_text_from_the_request(tmp_path: Path) -> None:
    hostile = replace(
        REQUEST,
        customer_name='<script>alert("x")</script> & Co',
        description="<b>hours</b>",
        invoice_to=InvoiceTo(sink="files", customer="<img src=x>"),
    )
    issue(make_sink(tmp_path), hostile)
    page = (tmp_path / "rf_0001.html").read_text()
    assert "<script" not in page and "<b>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page
    assert "&lt;b&gt;hours&lt;/b&gt;" in page
    assert "Customer reference: &lt;img src=x&gt;" in page
    document = json.loads((tmp_path / "rf_0001.json").read_text())
    assert document["customer"]["name"] == '<script>alert("x")</script> & Co'  # data stays raw


def test_issuing_again_rewrites_nothing_and_returns_the_same_state(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    first, _ = issue(sink)
    before = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()
    }
    changed = replace(REQUEST, amount_minor=1, description="something else")
    second, recorded = issue(sink, changed)
    after = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()
    }
    assert second == first
    assert recorded == [first]  # recorded again: the run that wrote it may have crashed before
    assert after == before


def test_a_half_written_invoice_is_completed(tmp_path: Path) -> None:
    (tmp_path / "rf_0001.html").write_text("stale page from a crashed run")
    state, recorded = issue(make_sink(tmp_path))
    assert recorded == [state]
    assert "Invoice rf_0001" in (tmp_path / "rf_0001.html").read_text()
    assert json.loads((tmp_path / "rf_0001.json").read_text())["amount"] == "1900.00"


def test_refresh_reports_paid_once_a_paid_marker_exists(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    state, _ = issue(sink)
    assert sink.refresh(state) == state
    (tmp_path / "rf_0001.paid").touch()
    assert sink.refresh(state) == replace(
        state, status=InvoiceStatus.PAID, amount_paid_minor=190000
    )
    assert sink.refresh(InvoiceState()) == InvoiceState()  # nothing issued yet: nothing to read


def test_refill_ids_that_could_leave_the_folder_are_refused(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(RequestRejected):
            issue(sink, replace(REQUEST, refill_id=bad))
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_outbox_is_a_temporary_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(TemporaryFailure, match="cannot write invoice rf_0001"):
        issue(make_sink(blocker))


def test_check_connection(tmp_path: Path) -> None:
    issue(make_sink(tmp_path))
    assert (
        make_sink(tmp_path).check_connection() == f"outbox folder {tmp_path}: writable, 1 invoices"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rf_0001.html", "rf_0001.json"]
    later = tmp_path / "new" / "outbox"
    expected = f"outbox folder {later}: does not exist yet, created with the first invoice"
    assert make_sink(later).check_connection() == expected
    assert not later.exists()
    with pytest.raises(ConnectorError, match="is not a folder"):
        make_sink(tmp_path / "rf_0001.json").check_connection()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_check_connection_on_a_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ConnectorError, match="is not writable"):
            make_sink(tmp_path).check_connection()
    finally:
        tmp_path.chmod(0o755)


def test_the_outbox_has_no_webhooks(tmp_path: Path) -> None:
    with pytest.raises(WebhookRejected, match="the outbox sink has no webhooks"):
        make_sink(tmp_path).parse_webhook({}, b"{}", dt.datetime(2026, 3, 2, tzinfo=dt.UTC))


def test_an_invoice_file_from_another_database_is_refused(tmp_path: Path) -> None:
    import dataclasses

    sink = make_sink(tmp_path)
    issue(sink, dataclasses.replace(REQUEST, reference="rf_0001/aaaaaaaaaaaa"))
    (tmp_path / "rf_0001.paid").touch()
    other = dataclasses.replace(REQUEST, reference="rf_0001/bbbbbbbbbbbb")
    with pytest.raises(RequestRejected, match="belongs to another database"):
        sink.issue(other, None, lambda state: None)


def test_an_invoice_file_from_before_references_is_refused(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    issue(sink)
    path = tmp_path / "rf_0001.json"
    document = json.loads(path.read_text())
    del document["reference"]  # written by an older version: the refill id alone
    path.write_text(json.dumps(document))
    ours = replace(REQUEST, reference="rf_0001/0a1b2c3d4e5f")
    with pytest.raises(RequestRejected, match=r"rf_0001\.json belongs to another database"):
        sink.issue(ours, None, lambda state: None)


def test_the_invoice_file_with_our_reference_is_read_back(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    ours = replace(REQUEST, reference="rf_0001/0a1b2c3d4e5f")
    first, _ = issue(sink, ours)
    again, recorded = issue(sink, ours)
    assert again == first and recorded == [first]
    assert json.loads((tmp_path / "rf_0001.json").read_text())["reference"] == ours.reference


def test_a_paid_marker_left_without_its_invoice_is_refused(tmp_path: Path) -> None:
    # The operator moved the old invoice away but not its marker: the new invoice must not
    # read as paid.
    (tmp_path / "rf_0001.paid").touch()
    sink = make_sink(tmp_path)
    with pytest.raises(RequestRejected, match=r"rf_0001\.paid is left from another invoice"):
        issue(sink)
    assert not (tmp_path / "rf_0001.json").exists()
