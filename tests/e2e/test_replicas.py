"""Three `prepaid serve` replicas on one real PostgreSQL database.

Every tick of a source is synced by exactly one replica (the others log that they skipped it),
one refill is raised and invoiced once however many replicas look at the budget, and killing a
replica with SIGKILL leaves the others ticking. Ticks are identified by the label every replica
computes alike (the interval boundary), so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from sync.ledger import schema
from tests.conftest import PG_ENV
from tests.fakes.stripe_server import FakeStripe
from tests.service_story import Serve, free_port, wait_for, write_story

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECONDS = 2
TICK = re.compile(r"^tick (\S+) source:exports: (synced|skipped|busy)")


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own (replicas outlive a test's usual reset), dropped afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: the replica test needs a real PostgreSQL")
    url = make_url(base)
    name = f"prepaid_replicas_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable: {exc}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def ticks(replicas: list[Serve]) -> list[tuple[int, str, str]]:
    """(replica, tick label, what it did) for every source tick logged so far."""
    found = []
    for number, replica in enumerate(replicas):
        for line in replica.log_lines():
            match = TICK.match(line["message"])
            if match:
                found.append((number, match[1], match[2]))
    return found


def synced_labels(replicas: list[Serve], among: set[int]) -> set[str]:
    return {
        label
        for number, label, what in ticks(replicas)
        if what == "synced" and number in among and label != "start-up"
    }


def test_three_replicas_share_the_work(tmp_path: Path, database: str) -> None:
    with FakeStripe() as stripe:
        sink = (
            "    type: stripe\n"
            f"    api_key: {stripe.api_key}\n"
            f"    base_url: {stripe.base_url}\n"
            "    max_network_retries: 0"
        )
        config = write_story(tmp_path, database, below="600.00", sink_name="stripe", sink=sink)
        env = {"PREPAID_SCHEDULE_SECONDS": str(SECONDS), "PREPAID_REFILL_SECONDS": "1"}
        replicas: list[Serve] = []
        try:
            for number in range(3):
                port = free_port()
                # each replica listens on its own port; the config is shared otherwise
                own = config.with_name(f"config-{number}.yaml")
                own.write_text(config.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
                replicas.append(Serve(own, port, tmp_path / f"replica-{number}.log", env))
            for replica in replicas:
                wait_for("/healthz", replica.healthy, timeout=60)
            everyone = {0, 1, 2}
            wait_for("4 shared ticks", lambda: len(synced_labels(replicas, everyone)) >= 4, 60)
            assert any(what == "skipped" for _, _, what in ticks(replicas))

            # kill one replica between syncs; the other two keep ticking
            engine = create_engine(database)
            with engine.connect() as conn:

                def idle() -> bool:
                    leases = schema.leases
                    held = conn.execute(
                        select(func.count()).where(leases.c.name == "source:exports")
                    ).scalar_one()
                    conn.rollback()
                    return held == 0

                wait_for("a moment between syncs", idle)
                replicas[0].process.send_signal(signal.SIGKILL)
                assert replicas[0].process.wait(30) == -signal.SIGKILL
                before = synced_labels(replicas, {1, 2})
                wait_for(
                    "3 ticks after the kill",
                    lambda: len(synced_labels(replicas, {1, 2}) - before) >= 3,
                    60,
                )
                for replica in replicas[1:]:
                    assert replica.healthy()
        finally:
            codes = [replica.stop(signal.SIGTERM) for replica in replicas]
        assert codes[1:] == [0, 0], [r.output() for r in replicas]

        # each tick synced by one replica at most; every sync in the ledger is one logged sync
        logged = ticks(replicas)
        per_label = Counter(label for _, label, what in logged if what == "synced")
        repeated = {label: n for label, n in per_label.items() if n > 1 and label != "start-up"}
        assert repeated == {}
        with engine.connect() as conn:
            runs = conn.execute(
                select(schema.sync_runs.c.outcome, func.count()).group_by(
                    schema.sync_runs.c.outcome
                )
            ).all()
            refills = conn.execute(
                select(schema.refills.c.id, schema.refills.c.status).order_by(schema.refills.c.id)
            ).all()
        engine.dispose()
        synced = sum(per_label.values())
        assert dict(runs) == {"ok": synced}
        # one refill, one invoice, though three replicas ran the refill job every second
        assert [tuple(r) for r in refills] == [("acme-retainer-1", "issued")]
        assert stripe.invoice_count("acme-retainer-1") == 1
