"""The composition root: settings in, adapters out. The one module of `sync` that imports
`connectors`, so the decision-making core never depends on the outside world.

Which adapter serves which `type` is the registry's word (`sync.config.connectors`): this module
only looks the entry up and imports the adapter it names, when it is first needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sync.config.connectors import SINK_KINDS, SOURCE_KINDS
from sync.ports import CredentialStore, InvoiceSink, TimeSource
from sync.settings import SinkSettings, SourceSettings


def build_source(settings: SourceSettings) -> TimeSource:
    """The adapter for one configured source."""
    kind = SOURCE_KINDS[settings.type]
    if not isinstance(settings, kind.settings):
        raise TypeError(f"{settings.yaml_path}: a {settings.type} source needs {kind.settings}")
    factory: Callable[[SourceSettings], TimeSource] = adapter(kind.adapter)
    return factory(settings)


def build_sink(settings: SinkSettings, credentials: CredentialStore) -> InvoiceSink:
    """The adapter for one configured invoicing sink."""
    kind = SINK_KINDS[settings.type]
    if not isinstance(settings, kind.settings):
        raise TypeError(f"{settings.yaml_path}: a {settings.type} sink needs {kind.settings}")
    if kind.stores_credentials:
        with_store: Callable[[SinkSettings, CredentialStore], InvoiceSink] = adapter(kind.adapter)
        return with_store(settings, credentials)
    factory: Callable[[SinkSettings], InvoiceSink] = adapter(kind.adapter)
    return factory(settings)


def adapter(name: str) -> Any:
    """The callable a registry entry names as `module:attribute`, imported on first use (so a
    run that uses no Stripe sink never imports the Stripe SDK).
    """
    module, _, attribute = name.partition(":")
    if not module.startswith("connectors."):
        raise ValueError(f"adapter {name!r} is not in the connectors package")
    return getattr(importlib.import_module(module), attribute)
