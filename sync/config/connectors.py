"""The `sources` and `invoicing` sections of the config, and the registry of connector kinds.

Each entry is a mapping whose allowed keys depend on its `type`, so the reader looks at the type
first and then reads the keys of that kind into its `sync.settings` record. `SOURCE_KINDS` and
`SINK_KINDS` are the registry: one `ConnectorKind` per type names its settings record (whose
fields are the YAML keys it allows), the function that reads it, and the adapter that
`sync.wiring` builds from it. A new connector is one entry here plus its module under
`connectors/`. Kept apart from `sync.config.customers` because customers only refer to these
entries by name (`names_by_type`).
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TypedDict, get_args

from sync.config.fields import FieldReader
from sync.config.values import (
    Invalid,
    as_amount,
    as_bool,
    as_choice,
    as_cron,
    as_digits,
    as_duration,
    as_ident,
    as_secret,
    as_slug,
    as_text,
    as_url,
    as_whole,
    join_path,
)
from sync.settings import (
    TOP_LEVEL,
    ClockifySettings,
    CsvFormat,
    CsvSettings,
    CsvSnapshot,
    DateOrder,
    HarvestSettings,
    OutboxSettings,
    QuickBooksSettings,
    Secret,
    SinkSettings,
    SinkType,
    SourceSettings,
    SourceType,
    StripeSettings,
    TogglScope,
    TogglSettings,
    XeroLineAmountTypes,
    XeroSettings,
    XeroStatus,
)

_NO_SECRET = Secret("")
_SOURCE_DEFAULTS = SourceSettings(yaml_path="", name="", type="csv")
_STRIPE_DEFAULTS = StripeSettings(yaml_path="", name="", type="stripe", api_key=_NO_SECRET)
_XERO_DEFAULTS = XeroSettings(
    yaml_path="",
    name="",
    type="xero",
    client_id="",
    client_secret=_NO_SECRET,
    refresh_token=_NO_SECRET,
    tenant_id="",
    account_code="",
)
_QUICKBOOKS_DEFAULTS = QuickBooksSettings(
    yaml_path="",
    name="",
    type="quickbooks",
    client_id="",
    client_secret=_NO_SECRET,
    refresh_token=_NO_SECRET,
    realm_id="",
    item_id="",
)
_SOURCE_EXAMPLE = "{name: exports, type: csv, path: exports/entries.csv}"
_SINK_EXAMPLE = "{name: files, type: outbox, path: ./outbox}"


class SourceCommon(TypedDict):
    """What `read_source` has read for every source before its kind's reader runs."""

    yaml_path: str
    name: str
    type: SourceType
    schedule: str
    lookback_days: int
    reconcile_every: dt.timedelta
    base_url: str | None
    max_hours: Decimal
    timezone: str


class SinkCommon(TypedDict):
    """What `read_sink` has read for every sink before its kind's reader runs."""

    yaml_path: str
    name: str
    type: SinkType
    base_url: str | None


@dataclass(frozen=True, slots=True)
class SourceKind:
    """One `type` of source: its settings record, its config reader and its adapter.

    The YAML keys it allows are the fields of `settings` (but `yaml_path` and the fields
    marked `TOP_LEVEL`, such as `timezone`, copied from the top of the file), under the names in
    `renamed` where the YAML calls a field otherwise (`path` for a CSV `file`). `adapter` is
    the `module:callable` under `connectors/` that takes the settings; it is a name, not an
    import, because only `sync.wiring` may import an adapter.
    """

    settings: type[SourceSettings]
    read: Callable[[FieldReader, Mapping[str, object], str, SourceCommon], SourceSettings]
    adapter: str
    renamed: Mapping[str, str] = field(default_factory=dict)

    def yaml_keys(self) -> tuple[str, ...]:
        """The YAML keys an entry of this kind may have, in the settings record's order."""
        return _yaml_keys(self.settings, self.renamed)


@dataclass(frozen=True, slots=True)
class SinkKind:
    """One `type` of invoicing sink, as `SourceKind`; `stores_credentials` means its adapter
    also takes the credential store (an OAuth refresh token that rotates is persisted there).
    """

    settings: type[SinkSettings]
    read: Callable[[FieldReader, Mapping[str, object], str, SinkCommon], SinkSettings]
    adapter: str
    renamed: Mapping[str, str] = field(default_factory=dict)
    stores_credentials: bool = False

    def yaml_keys(self) -> tuple[str, ...]:
        """The YAML keys an entry of this kind may have, in the settings record's order."""
        return _yaml_keys(self.settings, self.renamed)


def _yaml_keys(settings: type[object], renamed: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(
        renamed.get(f.name, f.name)
        for f in dataclasses.fields(settings)  # type: ignore[arg-type]
        if f.name != "yaml_path" and not f.metadata.get(TOP_LEVEL)
    )


def _read_harvest(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SourceCommon
) -> HarvestSettings:
    return HarvestSettings(
        **common,
        account_id=reader.required(m, path, "account_id", as_digits, ""),
        token=reader.required(m, path, "token", as_secret, _NO_SECRET),
        user_agent=reader.required(m, path, "user_agent", as_text, ""),
    )


def _read_toggl(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SourceCommon
) -> TogglSettings:
    scope: TogglScope = reader.optional(
        m, path, "scope", as_choice(*get_args(TogglScope)), "workspace"
    )
    workspace = reader.optional(m, path, "workspace_id", as_digits, None)
    if scope == "workspace" and m.get("workspace_id") is None:
        hint = "the Toggl workspace id, needed for scope: workspace (or use scope: me)"
        reader.error(join_path(path, "workspace_id"), f"is required; {hint}")
    return TogglSettings(
        **common,
        token=reader.required(m, path, "token", as_secret, _NO_SECRET),
        workspace_id=workspace,
        scope=scope,
    )


def _read_clockify(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SourceCommon
) -> ClockifySettings:
    return ClockifySettings(
        **common,
        api_key=reader.required(m, path, "api_key", as_secret, _NO_SECRET),
        workspace_id=reader.required(m, path, "workspace_id", as_ident, ""),
    )


def _read_csv(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SourceCommon
) -> CsvSettings:
    # A file, a folder of .csv files or a glob; a missing one is fine (the export may arrive
    # later: the source's sync says so). None when unreadable (an unset ${VARIABLE}).
    what = "the CSV file, folder or glob to read"
    file = reader.required(m, path, "path", reader.local_path, None, what)
    formats = as_choice(*get_args(CsvFormat))
    c = _CSV_DEFAULTS
    return CsvSettings(
        **common,
        file=file or Path(),
        format=reader.optional(m, path, "format", formats, c.format),
        date_order=reader.optional(m, path, "date_order", _DATE_ORDER, c.date_order),
        encoding=reader.optional(m, path, "encoding", _encoding, c.encoding),
        snapshot=reader.optional(m, path, "snapshot", _SNAPSHOT, c.snapshot),
    )


_CSV_DEFAULTS = CsvSettings(yaml_path="", name="", type="csv", file=Path())
_DATE_ORDER = as_choice(*get_args(DateOrder))
_SNAPSHOT = as_choice(*get_args(CsvSnapshot))
_HOURS = as_amount(2, "hours", positive=True)


def _max_hours(value: object) -> Decimal:
    """The longest entry a source may charge: plain decimal hours, up to a month (744)."""
    if isinstance(value, str) and any(letter in value for letter in "eE"):
        raise Invalid('must be a number such as "24"', "no exponent notation")
    hours = _HOURS(value)
    if hours > 744:
        raise Invalid("must be at most 744 hours (a month)")
    return hours


def _encoding(value: object) -> str:
    """A text encoding Python can decode (utf-8, cp1252, latin-1, utf-16, ...)."""
    name = as_text(value)
    try:
        codecs.lookup(name)
    except LookupError:
        raise Invalid("is not a known text encoding", "e.g. utf-8 or cp1252") from None
    return name


def _read_stripe(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SinkCommon
) -> StripeSettings:
    s = _STRIPE_DEFAULTS
    api_key = reader.required(m, path, "api_key", as_secret, _NO_SECRET)
    if api_key.reveal().startswith("pk_"):
        hint = "use a secret key (sk_...) or a restricted key (rk_...)"
        reader.error(join_path(path, "api_key"), f"is a publishable key (pk_...); {hint}")
    retries = as_whole(0, maximum=10)
    return StripeSettings(
        **common,
        api_key=api_key,
        webhook_secret=reader.optional(m, path, "webhook_secret", as_secret, s.webhook_secret),
        create_customers=reader.optional(m, path, "create_customers", as_bool, s.create_customers),
        max_network_retries=reader.optional(
            m, path, "max_network_retries", retries, s.max_network_retries
        ),
    )


def _read_xero(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SinkCommon
) -> XeroSettings:
    x = _XERO_DEFAULTS
    statuses = as_choice(*get_args(XeroStatus))
    line_types = as_choice(*get_args(XeroLineAmountTypes))
    return XeroSettings(
        **common,
        client_id=reader.required(m, path, "client_id", as_text, ""),
        client_secret=reader.required(m, path, "client_secret", as_secret, _NO_SECRET),
        refresh_token=reader.required(m, path, "refresh_token", as_secret, _NO_SECRET),
        tenant_id=reader.required(m, path, "tenant_id", as_ident, ""),
        account_code=reader.required(m, path, "account_code", as_ident, ""),
        tax_type=reader.optional(m, path, "tax_type", as_text, x.tax_type),
        status=reader.optional(m, path, "status", statuses, x.status),
        line_amount_types=reader.optional(
            m, path, "line_amount_types", line_types, x.line_amount_types
        ),
        token_url=reader.optional(m, path, "token_url", as_url, x.token_url),
    )


def _read_quickbooks(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SinkCommon
) -> QuickBooksSettings:
    q = _QUICKBOOKS_DEFAULTS
    return QuickBooksSettings(
        **common,
        client_id=reader.required(m, path, "client_id", as_text, ""),
        client_secret=reader.required(m, path, "client_secret", as_secret, _NO_SECRET),
        refresh_token=reader.required(m, path, "refresh_token", as_secret, _NO_SECRET),
        realm_id=reader.required(m, path, "realm_id", as_ident, ""),
        item_id=reader.required(m, path, "item_id", as_ident, ""),
        minor_version=reader.optional(m, path, "minor_version", as_whole(75), q.minor_version),
        token_url=reader.optional(m, path, "token_url", as_url, q.token_url),
    )


def _read_outbox(
    reader: FieldReader, m: Mapping[str, object], path: str, common: SinkCommon
) -> OutboxSettings:
    hint = "the folder invoices are written to, e.g. ./outbox"
    folder = reader.required(m, path, "path", reader.local_path, Path(), hint)
    if folder.exists() and not folder.is_dir():
        reader.error(join_path(path, "path"), "is a file; give a folder for the invoice files")
    return OutboxSettings(**common, folder=folder)


SOURCE_KINDS: Mapping[SourceType, SourceKind] = {
    "harvest": SourceKind(
        HarvestSettings, _read_harvest, "connectors.sources.harvest:HarvestSource"
    ),
    "toggl": SourceKind(TogglSettings, _read_toggl, "connectors.sources.toggl:TogglSource"),
    "clockify": SourceKind(
        ClockifySettings, _read_clockify, "connectors.sources.clockify:ClockifySource"
    ),
    "csv": SourceKind(
        CsvSettings, _read_csv, "connectors.sources.csv_export:CsvSource", {"file": "path"}
    ),
}
SINK_KINDS: Mapping[SinkType, SinkKind] = {
    "stripe": SinkKind(StripeSettings, _read_stripe, "connectors.invoicing.stripe:StripeSink"),
    "xero": SinkKind(
        XeroSettings, _read_xero, "connectors.invoicing.xero:XeroSink", stores_credentials=True
    ),
    "quickbooks": SinkKind(
        QuickBooksSettings,
        _read_quickbooks,
        "connectors.invoicing.quickbooks:QuickBooksSink",
        stores_credentials=True,
    ),
    "outbox": SinkKind(
        OutboxSettings, _read_outbox, "connectors.invoicing.outbox:OutboxSink", {"folder": "path"}
    ),
}


# The keys each type allows, worked out once from the registry.
_SOURCE_KEYS: dict[str, tuple[str, ...]] = {t: kind.yaml_keys() for t, kind in SOURCE_KINDS.items()}
_SINK_KEYS: dict[str, tuple[str, ...]] = {t: kind.yaml_keys() for t, kind in SINK_KINDS.items()}


def _listed(kinds: Iterable[str]) -> str:
    names = list(kinds)
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def read_source(
    reader: FieldReader, raw: object, path: str, seen: dict[str, str], timezone: str = "UTC"
) -> SourceSettings | None:
    """One entry of `sources`, read by its kind's reader; None when it cannot be built.

    `timezone` is the config's top-level zone, which dates the source's instants.
    """
    m = _typed_mapping(reader, raw, path, _SOURCE_KEYS, _SOURCE_EXAMPLE)
    if m is None:
        return None
    kind: SourceType | None = reader.required(
        m, path, "type", as_choice(*SOURCE_KINDS), None, _listed(SOURCE_KINDS)
    )
    name = reader.required(m, path, "name", as_slug, "")
    reader.unique(seen, name, join_path(path, "name"), "source name")
    if kind is None:
        return None
    d = _SOURCE_DEFAULTS
    common = SourceCommon(
        yaml_path=path,
        name=name,
        type=kind,
        schedule=reader.optional(m, path, "schedule", as_cron, d.schedule),
        lookback_days=reader.optional(
            m, path, "lookback_days", as_whole(1, "days"), d.lookback_days
        ),
        reconcile_every=reader.optional(m, path, "reconcile_every", as_duration, d.reconcile_every),
        base_url=reader.optional(m, path, "base_url", as_url, d.base_url),
        max_hours=reader.optional(m, path, "max_hours", _max_hours, d.max_hours),
        timezone=timezone,
    )
    return SOURCE_KINDS[kind].read(reader, m, path, common)


def read_sink(
    reader: FieldReader, raw: object, path: str, seen: dict[str, str]
) -> SinkSettings | None:
    """One entry of `invoicing`, read by its kind's reader; None when it cannot be built."""
    m = _typed_mapping(reader, raw, path, _SINK_KEYS, _SINK_EXAMPLE)
    if m is None:
        return None
    kind: SinkType | None = reader.required(
        m, path, "type", as_choice(*SINK_KINDS), None, _listed(SINK_KINDS)
    )
    name = reader.required(m, path, "name", as_slug, "", 'a short unique name, e.g. "stripe"')
    reader.unique(seen, name, join_path(path, "name"), "invoicing name")
    base_url = reader.optional(m, path, "base_url", as_url, None)
    if kind is None:
        return None
    common = SinkCommon(yaml_path=path, name=name, type=kind, base_url=base_url)
    return SINK_KINDS[kind].read(reader, m, path, common)


def _typed_mapping(
    reader: FieldReader,
    raw: object,
    path: str,
    keys: Mapping[str, tuple[str, ...]],
    example: str,
) -> dict[str, object] | None:
    """A source or sink: which keys it may have depends on its `type`, so look at that first.

    Without a valid type only `name` and `type` are read; the caller reports the type.
    """
    kind = raw.get("type") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and not (isinstance(kind, str) and kind in keys):
        return {k: v for k, v in raw.items() if k in ("name", "type")}
    allowed = keys[kind] if isinstance(kind, str) else ()
    return reader.mapping(raw, path, allowed, example)


def names_by_type(items: Sequence[tuple[str, object]]) -> dict[str, str]:
    """Name -> type of each source or sink as written, valid or not, for reference checks.

    Raw names keep one typo from also turning every reference to that entry into an error.
    """
    found: dict[str, str] = {}
    for _, item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            kind = item.get("type")
            found.setdefault(item["name"].strip(), kind if isinstance(kind, str) else "")
    return found
