"""`GET /metrics` through `prometheus_client`, on a private registry per service instance.

Two kinds of figures, kept apart on purpose. What the ledger knows (balances, sync runs by
outcome, the last run's duration, open refills, entries by state) is read by `LedgerCollector`
from the database at scrape time, so every replica reports the same truth and a restart loses
nothing. What only this process saw (entries it fetched, postings it wrote, API errors by
kind, ticks it ran or left to another replica, webhooks it answered) lives in `ServiceMetrics`,
`prometheus_client` counters since start, which Prometheus sums across replicas and handles
across restarts as it does any counter. Labels carry ids and units, never a secret (I7).

The exposition format carries float64 values: a balance becomes a float only here, on its way
out, and is exact for any amount below 2**53 minor units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync.engine import RunSummary
from sync.ledger import Ledger, StoreUnavailable
from sync.settings import Settings
from sync.views.figures import (
    entries_by_state,
    last_finished_runs,
    open_refills_by_status,
    runs_by_outcome,
)
from sync.views.reports import balance_rows


@dataclass(frozen=True, slots=True)
class _CounterSpec:
    """A process counter: its exposed name (with `_total`), help and label names."""

    name: str
    help: str
    labels: tuple[str, ...]


# The order here is the order of the exposition; label names sorted, as they always were.
_COUNTERS = (
    _CounterSpec("prepaid_entries_fetched_total", "Entries fetched by this process.", ("source",)),
    _CounterSpec(
        "prepaid_postings_written_total", "Ledger postings written by this process.", ("source",)
    ),
    _CounterSpec(
        "prepaid_api_errors_total",
        "Errors from trackers and sinks, by kind.",
        ("connector", "kind"),
    ),
    _CounterSpec(
        "prepaid_ticks_total",
        "Scheduled ticks by result: ran, skipped (another replica took it), busy, failed.",
        ("job", "result"),
    ),
    _CounterSpec(
        "prepaid_webhooks_total", "Webhook deliveries answered, by result.", ("result", "sink")
    ),
)


class ServiceMetrics(Collector):
    """Counters of what this process did since it started; safe to bump from any thread.

    A collector itself, so the web app's registry can serve them next to the ledger's
    figures; the counters live in a registry of their own, never the global one.
    """

    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        self._counters = {
            spec.name: Counter(
                spec.name.removesuffix("_total"),
                spec.help,
                spec.labels,
                registry=self._registry,
            )
            for spec in _COUNTERS
        }

    def add(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` to the counter `name` (as exposed, `..._total`) with these labels."""
        if name not in self._counters:
            raise KeyError(f"unknown metric {name}")
        self._counters[name].labels(**labels).inc(amount)

    def record_run(self, summary: RunSummary) -> None:
        """What one sync run fetched and posted."""
        self.add("prepaid_entries_fetched_total", summary.fetched, source=summary.source)
        self.add("prepaid_postings_written_total", summary.postings, source=summary.source)

    def api_error(self, connector: str, kind: str) -> None:
        """A `ConnectorError` of `kind` from the source or sink named `connector`."""
        self.add("prepaid_api_errors_total", connector=connector, kind=kind)

    def value(self, name: str, **labels: str) -> int:
        """One counter's current value (0 when never bumped)."""
        found = self._registry.get_sample_value(name, labels)
        return 0 if found is None else int(found)

    def collect(self) -> Iterable[Metric]:
        """Every counter family, for the registry that serves `/metrics`. A counter also
        carries a `_created` series; it is left out here (rather than switched off for the
        whole process), so the exposed names stay exactly the documented ones."""
        for family in self._registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class LedgerCollector(Collector):
    """The ledger's figures, read when Prometheus scrapes. When the database does not answer,
    only `prepaid_database_up 0` is reported (next to the process counters), so the alert
    says why."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings

    def collect(self) -> Iterable[Metric]:
        """Read everything in one snapshot, then hand the families over."""
        up = GaugeMetricFamily("prepaid_database_up", "1 when the database answers, else 0.")
        try:
            families = self._read()
        except StoreUnavailable:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _read(self) -> list[Metric]:
        balance = _gauge(
            "prepaid_balance",
            "Balance of each budget, in its unit (a currency or hours).",
            ("customer", "budget", "unit"),
        )
        pending = _gauge(
            "prepaid_pending_review",
            "What entries waiting for review would deduct.",
            ("customer", "budget", "unit"),
        )
        refills = _gauge(
            "prepaid_refills_open", "Refills not yet paid or void, by status.", ("status",)
        )
        entries = _gauge(
            "prepaid_entries", "Stored time entries by source and state.", ("source", "status")
        )
        runs = CounterMetricFamily(
            "prepaid_sync_runs",
            "Sync runs recorded in the ledger, by outcome.",
            labels=("source", "outcome"),
        )
        duration = _gauge(
            "prepaid_sync_last_duration_seconds",
            "Duration of the last finished sync run.",
            ("source",),
        )
        finished = _gauge(
            "prepaid_sync_last_finished_timestamp_seconds",
            "When the last sync run of a source finished (Unix time).",
            ("source",),
        )
        with self.ledger.read() as conn:
            for row in balance_rows(conn, self.settings):
                labels = [row.customer, row.budget, row.unit_label]
                balance.add_metric(labels, float(row.balance))
                pending.add_metric(labels, float(row.pending))
            _add_all(refills, open_refills_by_status(conn))
            _add_all(entries, entries_by_state(conn))
            _add_all(runs, runs_by_outcome(conn))
            for run in last_finished_runs(conn):
                duration.add_metric([run.source], run.duration.total_seconds())
                finished.add_metric([run.source], run.finished_at.timestamp())
        return [balance, pending, refills, entries, runs, duration, finished]


def service_registry(
    ledger: Ledger, settings: Settings, counters: ServiceMetrics | None
) -> CollectorRegistry:
    """The registry one web app serves: the ledger's figures, then this process's counters."""
    registry = CollectorRegistry()
    registry.register(LedgerCollector(ledger, settings))
    if counters is not None:
        registry.register(counters)
    return registry


def _gauge(name: str, text: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


def _add_all(
    family: GaugeMetricFamily | CounterMetricFamily,
    counts: Mapping[str, int] | Mapping[tuple[str, str], int],
) -> None:
    for key, count in counts.items():
        family.add_metric([key] if isinstance(key, str) else list(key), count)
