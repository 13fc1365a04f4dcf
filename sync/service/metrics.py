"""`GET /metrics`: the Prometheus text format, written by hand (no client library needed).

Two kinds of figures, kept apart on purpose. What the ledger knows (balances, sync runs by
outcome, the last run's duration, open refills, entries by state) is read from the database
at scrape time, so every replica reports the same truth and a restart loses nothing. What only
this process saw (entries it fetched, postings it wrote, API errors by kind, ticks it ran or
left to another replica, webhooks it answered) lives in `ServiceMetrics`, counters since start,
which Prometheus sums across replicas and handles across restarts as it does any counter.
Labels carry ids and units, never a secret (I7).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal

from sqlalchemy import Connection, func, select

from sync.engine import RunSummary
from sync.ledger import schema
from sync.model import OPEN_REFILL_STATUSES, RefillStatus
from sync.settings import Settings
from sync.views.reports import balance_rows

Labels = tuple[tuple[str, str], ...]

# name -> (type, help); the order here is the order of the exposition.
_FAMILIES: dict[str, tuple[str, str]] = {
    "prepaid_database_up": ("gauge", "1 when the database answers, else 0."),
    "prepaid_balance": ("gauge", "Balance of each budget, in its unit (a currency or hours)."),
    "prepaid_pending_review": ("gauge", "What entries waiting for review would deduct."),
    "prepaid_refills_open": ("gauge", "Refills not yet paid or void, by status."),
    "prepaid_entries": ("gauge", "Stored time entries by source and state."),
    "prepaid_sync_runs_total": ("counter", "Sync runs recorded in the ledger, by outcome."),
    "prepaid_sync_last_duration_seconds": ("gauge", "Duration of the last finished sync run."),
    "prepaid_sync_last_finished_timestamp_seconds": (
        "gauge",
        "When the last sync run of a source finished (Unix time).",
    ),
    "prepaid_entries_fetched_total": ("counter", "Entries fetched by this process."),
    "prepaid_postings_written_total": ("counter", "Ledger postings written by this process."),
    "prepaid_api_errors_total": ("counter", "Errors from trackers and sinks, by kind."),
    "prepaid_ticks_total": (
        "counter",
        "Scheduled ticks by result: ran, skipped (another replica took it), busy, failed.",
    ),
    "prepaid_webhooks_total": ("counter", "Webhook deliveries answered, by result."),
}


class ServiceMetrics:
    """Counters of what this process did since it started; safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, Labels], int] = {}

    def add(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` to the counter `name` with these labels."""
        if name not in _FAMILIES:
            raise KeyError(f"unknown metric {name}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def record_run(self, summary: RunSummary) -> None:
        """What one sync run fetched and posted."""
        self.add("prepaid_entries_fetched_total", summary.fetched, source=summary.source)
        self.add("prepaid_postings_written_total", summary.postings, source=summary.source)

    def api_error(self, connector: str, kind: str) -> None:
        """A `ConnectorError` of `kind` from the source or sink named `connector`."""
        self.add("prepaid_api_errors_total", connector=connector, kind=kind)

    def value(self, name: str, **labels: str) -> int:
        """One counter's current value (0 when never bumped)."""
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def samples(self) -> list[tuple[str, Labels, int]]:
        """Every counter, sorted for a stable exposition."""
        with self._lock:
            return sorted((name, labels, value) for (name, labels), value in self._values.items())


def render_metrics(
    conn: Connection | None, settings: Settings, counters: ServiceMetrics | None
) -> str:
    """The whole exposition. `conn` is None when the database is unreachable: the in-process
    counters and `prepaid_database_up 0` are still served, so the alert says why."""
    samples: list[tuple[str, Labels, Decimal | int]] = [
        ("prepaid_database_up", (), 0 if conn is None else 1)
    ]
    if conn is not None:
        samples.extend(_ledger_samples(conn, settings))
    if counters is not None:
        samples.extend(counters.samples())
    return exposition(samples)


def exposition(samples: Iterable[tuple[str, Labels, Decimal | int]]) -> str:
    """Group samples by family (in `_FAMILIES` order) with their HELP and TYPE lines."""
    by_family: dict[str, list[str]] = {}
    for name, labels, value in samples:
        by_family.setdefault(name, []).append(f"{name}{_labels(labels)} {_number(value)}")
    lines: list[str] = []
    for name, (kind, text) in _FAMILIES.items():
        if name not in by_family:
            continue
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(by_family[name])
    return "\n".join(lines) + "\n"


def _ledger_samples(
    conn: Connection, settings: Settings
) -> Iterable[tuple[str, Labels, Decimal | int]]:
    for row in balance_rows(conn, settings):
        labels: Labels = (
            ("customer", row.customer),
            ("budget", row.budget),
            ("unit", row.unit_label),
        )
        yield "prepaid_balance", labels, row.balance
        yield "prepaid_pending_review", labels, row.pending
    refills = schema.refills
    open_counts = dict.fromkeys((s for s in RefillStatus if s in OPEN_REFILL_STATUSES), 0)
    stmt = (
        select(refills.c.status, func.count())
        .where(refills.c.status.in_(sorted(OPEN_REFILL_STATUSES)))
        .group_by(refills.c.status)
    )
    for status, count in conn.execute(stmt):
        open_counts[status] = int(count)
    for status, count in open_counts.items():
        yield "prepaid_refills_open", (("status", status),), count
    entries = schema.entries
    stmt = (
        select(entries.c.source, entries.c.status, entries.c.deleted, func.count())
        .group_by(entries.c.source, entries.c.status, entries.c.deleted)
        .order_by(entries.c.source, entries.c.status)
    )
    by_state: dict[tuple[str, str], int] = {}
    for source, status, deleted, count in conn.execute(stmt):
        key = (source, "deleted" if deleted else status)
        by_state[key] = by_state.get(key, 0) + int(count)
    for (source, status), count in sorted(by_state.items()):
        yield "prepaid_entries", (("source", source), ("status", status)), count
    yield from _run_samples(conn)


def _run_samples(conn: Connection) -> Iterable[tuple[str, Labels, Decimal | int]]:
    runs = schema.sync_runs
    stmt = (
        select(runs.c.source, runs.c.outcome, func.count())
        .where(runs.c.outcome != "running")
        .group_by(runs.c.source, runs.c.outcome)
        .order_by(runs.c.source, runs.c.outcome)
    )
    for source, outcome, count in conn.execute(stmt):
        yield "prepaid_sync_runs_total", (("source", source), ("outcome", outcome)), int(count)
    latest = (
        select(runs.c.source, func.max(runs.c.id).label("id"))
        .where(runs.c.finished_at.is_not(None))
        .group_by(runs.c.source)
        .subquery()
    )
    stmt2 = (
        select(runs.c.source, runs.c.started_at, runs.c.finished_at)
        .join(latest, runs.c.id == latest.c.id)
        .order_by(runs.c.source)
    )
    for source, started, finished in conn.execute(stmt2):
        labels: Labels = (("source", source),)
        yield "prepaid_sync_last_duration_seconds", labels, _seconds(finished - started)
        yield "prepaid_sync_last_finished_timestamp_seconds", labels, _epoch(finished)


def _seconds(delta: dt.timedelta) -> Decimal:
    """Exact seconds of a duration (microsecond resolution), never a float."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros).scaleb(-6).normalize() if micros else Decimal(0)


def _epoch(moment: dt.datetime) -> Decimal:
    return _seconds(moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    """Label values escape backslash, double quote and newline (the text format's rule)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def parse_exposition(text: str) -> Mapping[tuple[str, Labels], str]:
    """Samples of an exposition as {(name, labels): value text}: for tests and scripts that
    read `/metrics` without a Prometheus client."""
    found: dict[tuple[str, Labels], str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels: list[tuple[str, str]] = []
        rest = rest.removesuffix("}")
        while rest:
            key, _, rest = rest.partition('="')
            chars: list[str] = []
            i = 0
            while rest[i] != '"':
                if rest[i] == "\\":
                    i += 1
                    chars.append({"n": "\n"}.get(rest[i], rest[i]))
                else:
                    chars.append(rest[i])
                i += 1
            labels.append((key, "".join(chars)))
            rest = rest[i + 1 :].removeprefix(",")
        found[(name, tuple(labels))] = value
    return found
