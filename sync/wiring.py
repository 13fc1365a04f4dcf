"""The composition root: settings in, adapters out. The one module of `sync` that imports
`connectors`, so the decision-making core never depends on the outside world.
"""

from __future__ import annotations

from sync.ports import CredentialStore, InvoiceSink, TimeSource
from sync.settings import (
    ClockifySettings,
    CsvSettings,
    HarvestSettings,
    OutboxSettings,
    QuickBooksSettings,
    SinkSettings,
    SourceSettings,
    StripeSettings,
    TogglSettings,
    XeroSettings,
)


def build_source(settings: SourceSettings) -> TimeSource:
    """The adapter for one configured source."""
    if isinstance(settings, HarvestSettings):
        from connectors.sources.harvest import HarvestSource

        return HarvestSource(settings)
    if isinstance(settings, TogglSettings):
        from connectors.sources.toggl import TogglSource

        return TogglSource(settings)
    if isinstance(settings, ClockifySettings):
        from connectors.sources.clockify import ClockifySource

        return ClockifySource(settings)
    if isinstance(settings, CsvSettings):
        from connectors.sources.csv_export import CsvSource

        return CsvSource(settings)
    raise ValueError(f"{settings.yaml_path}: no adapter for source type {settings.type!r}")


def build_sink(settings: SinkSettings, credentials: CredentialStore) -> InvoiceSink:
    """The adapter for one configured invoicing sink."""
    if isinstance(settings, StripeSettings):
        from connectors.invoicing.stripe import StripeSink

        return StripeSink(settings)
    if isinstance(settings, XeroSettings):
        from connectors.invoicing.xero import XeroSink

        return XeroSink(settings, credentials)
    if isinstance(settings, QuickBooksSettings):
        from connectors.invoicing.quickbooks import QuickBooksSink

        return QuickBooksSink(settings, credentials)
    if isinstance(settings, OutboxSettings):
        from connectors.invoicing.outbox import OutboxSink

        return OutboxSink(settings)
    raise ValueError(f"{settings.yaml_path}: no adapter for sink type {settings.type!r}")
