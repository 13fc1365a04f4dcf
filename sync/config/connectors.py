"""The `sources` and `invoicing` sections of the config: one settings record per entry.

Each entry is a mapping whose allowed keys depend on its `type` (harvest, toggl, clockify, csv;
stripe, xero, quickbooks, outbox), so these readers look at the type first and then read the
keys of that kind into its `sync.settings` record. Kept apart from `sync.config` because this
is the part that grows with every new adapter, and apart from `sync.config.customers` because
customers only refer to these entries by name (`names_by_type`).
"""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from sync.config.fields import FieldReader
from sync.config.values import (
    _amount,
    _bool,
    _choice,
    _cron,
    _digits,
    _duration,
    _ident,
    _Invalid,
    _join,
    _secret,
    _slug,
    _text,
    _url,
    _whole,
)
from sync.settings import (
    ClockifySettings,
    CsvSettings,
    HarvestSettings,
    OutboxSettings,
    QuickBooksSettings,
    Secret,
    SinkSettings,
    SourceSettings,
    StripeSettings,
    TogglSettings,
    XeroSettings,
)

_SOURCE_COMMON = tuple("name type schedule lookback_days reconcile_every base_url".split())
_SOURCE_KEYS = {
    "harvest": ("account_id", "token", "user_agent"),
    "toggl": ("token", "workspace_id", "scope"),
    "clockify": ("api_key", "workspace_id"),
    "csv": ("path", "format", "date_order", "max_hours", "encoding", "snapshot"),
}
_SINK_COMMON = ("name", "type", "base_url")
_OAUTH_KEYS = ("client_id", "client_secret", "refresh_token", "token_url")
_SINK_KEYS = {
    "stripe": ("api_key", "webhook_secret", "create_customers", "max_network_retries"),
    "xero": _OAUTH_KEYS + tuple("tenant_id account_code tax_type status line_amount_types".split()),
    "quickbooks": (*_OAUTH_KEYS, "realm_id", "item_id", "minor_version"),
    "outbox": ("path",),
}
_NO_SECRET = Secret("")
_SOURCE_DEFAULTS = SourceSettings(yaml_path="", name="", type="")
_STRIPE_DEFAULTS = StripeSettings(yaml_path="", name="", type="", api_key=_NO_SECRET)
_XERO_DEFAULTS = XeroSettings(
    yaml_path="",
    name="",
    type="",
    client_id="",
    client_secret=_NO_SECRET,
    refresh_token=_NO_SECRET,
    tenant_id="",
    account_code="",
)
_QUICKBOOKS_DEFAULTS = QuickBooksSettings(
    yaml_path="",
    name="",
    type="",
    client_id="",
    client_secret=_NO_SECRET,
    refresh_token=_NO_SECRET,
    realm_id="",
    item_id="",
)
_CSV_DEFAULTS = CsvSettings(yaml_path="", name="", type="", file=Path())
_DATE_ORDER = _choice("auto", "dmy", "mdy", "ymd")
_SNAPSHOT = _choice("dates", "dates_and_clients", "none")
_HOURS = _amount(2, "hours", positive=True)


def _max_hours(value: object) -> Decimal:
    """The longest entry a CSV source may charge: plain decimal hours, up to a month (744)."""
    if isinstance(value, str) and any(letter in value for letter in "eE"):
        raise _Invalid('must be a number such as "24"', "no exponent notation")
    hours = _HOURS(value)
    if hours > 744:
        raise _Invalid("must be at most 744 hours (a month)")
    return hours


def _encoding(value: object) -> str:
    """A text encoding Python can decode (utf-8, cp1252, latin-1, utf-16, ...)."""
    name = _text(value)
    try:
        codecs.lookup(name)
    except LookupError:
        raise _Invalid("is not a known text encoding", "e.g. utf-8 or cp1252") from None
    return name


_SOURCE_EXAMPLE = "{name: exports, type: csv, path: exports/entries.csv}"
_SINK_EXAMPLE = "{name: files, type: outbox, path: ./outbox}"


class _SourceCommon(TypedDict):
    yaml_path: str
    name: str
    type: str
    schedule: str
    lookback_days: int
    reconcile_every: dt.timedelta
    base_url: str | None


class _SinkCommon(TypedDict):
    yaml_path: str
    name: str
    type: str
    base_url: str | None


def read_source(
    reader: FieldReader, raw: object, path: str, seen: dict[str, str]
) -> SourceSettings | None:
    m = _typed_mapping(reader, raw, path, _SOURCE_COMMON, _SOURCE_KEYS, _SOURCE_EXAMPLE)
    if m is None:
        return None
    kind = reader.required(
        m, path, "type", _choice(*_SOURCE_KEYS), "", "harvest, toggl, clockify or csv"
    )
    name = reader.required(m, path, "name", _slug, "")
    reader.unique(seen, name, _join(path, "name"), "source name")
    d = _SOURCE_DEFAULTS
    common = _SourceCommon(
        yaml_path=path,
        name=name,
        type=kind,
        schedule=reader.optional(m, path, "schedule", _cron, d.schedule),
        lookback_days=reader.optional(m, path, "lookback_days", _whole(1, "days"), d.lookback_days),
        reconcile_every=reader.optional(m, path, "reconcile_every", _duration, d.reconcile_every),
        base_url=reader.optional(m, path, "base_url", _url, d.base_url),
    )
    if kind == "harvest":
        return HarvestSettings(
            **common,
            account_id=reader.required(m, path, "account_id", _digits, ""),
            token=reader.required(m, path, "token", _secret, _NO_SECRET),
            user_agent=reader.required(m, path, "user_agent", _text, ""),
        )
    if kind == "toggl":
        scope = reader.optional(m, path, "scope", _choice("workspace", "me"), "workspace")
        workspace = reader.optional(m, path, "workspace_id", _digits, None)
        if scope == "workspace" and m.get("workspace_id") is None:
            hint = "the Toggl workspace id, needed for scope: workspace (or use scope: me)"
            reader.error(_join(path, "workspace_id"), f"is required; {hint}")
        return TogglSettings(
            **common,
            token=reader.required(m, path, "token", _secret, _NO_SECRET),
            workspace_id=workspace,
            scope=scope,
        )
    if kind == "clockify":
        return ClockifySettings(
            **common,
            api_key=reader.required(m, path, "api_key", _secret, _NO_SECRET),
            workspace_id=reader.required(m, path, "workspace_id", _ident, ""),
        )
    if kind == "csv":
        # A missing file is fine (the export may arrive later); a folder never will be one.
        file = reader.required(m, path, "path", reader.local_path, Path(), "the CSV file to read")
        if file.is_dir():
            reader.error(_join(path, "path"), "is a folder; give the path of a CSV file")
        formats = _choice("generic", "harvest", "toggl", "clockify")
        c = _CSV_DEFAULTS
        return CsvSettings(
            **common,
            file=file,
            format=reader.optional(m, path, "format", formats, c.format),
            date_order=reader.optional(m, path, "date_order", _DATE_ORDER, c.date_order),
            max_hours=reader.optional(m, path, "max_hours", _max_hours, c.max_hours),
            encoding=reader.optional(m, path, "encoding", _encoding, c.encoding),
            snapshot=reader.optional(m, path, "snapshot", _SNAPSHOT, c.snapshot),
        )
    return None


def _typed_mapping(
    reader: FieldReader,
    raw: object,
    path: str,
    common: Sequence[str],
    keys: Mapping[str, Sequence[str]],
    example: str,
) -> dict[str, object] | None:
    """A source or sink: which keys it may have depends on its `type`, so look at that first.

    Without a valid type only `name` and `type` are read; the caller reports the type.
    """
    kind = raw.get("type") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and not (isinstance(kind, str) and kind in keys):
        return {k: v for k, v in raw.items() if k in ("name", "type")}
    allowed = (*common, *keys[kind]) if isinstance(kind, str) else ()
    return reader.mapping(raw, path, allowed, example)


def read_sink(
    reader: FieldReader, raw: object, path: str, seen: dict[str, str]
) -> SinkSettings | None:
    m = _typed_mapping(reader, raw, path, _SINK_COMMON, _SINK_KEYS, _SINK_EXAMPLE)
    if m is None:
        return None
    kind = reader.required(
        m, path, "type", _choice(*_SINK_KEYS), "", "stripe, xero, quickbooks or outbox"
    )
    name = reader.required(m, path, "name", _slug, "", 'a short unique name, e.g. "stripe"')
    reader.unique(seen, name, _join(path, "name"), "invoicing name")
    base_url = reader.optional(m, path, "base_url", _url, None)
    common = _SinkCommon(yaml_path=path, name=name, type=kind, base_url=base_url)
    if kind == "stripe":
        s = _STRIPE_DEFAULTS
        api_key = reader.required(m, path, "api_key", _secret, _NO_SECRET)
        if api_key.reveal().startswith("pk_"):
            hint = "use a secret key (sk_...) or a restricted key (rk_...)"
            reader.error(_join(path, "api_key"), f"is a publishable key (pk_...); {hint}")
        retries = _whole(0, maximum=10)
        return StripeSettings(
            **common,
            api_key=api_key,
            webhook_secret=reader.optional(m, path, "webhook_secret", _secret, s.webhook_secret),
            create_customers=reader.optional(
                m, path, "create_customers", _bool, s.create_customers
            ),
            max_network_retries=reader.optional(
                m, path, "max_network_retries", retries, s.max_network_retries
            ),
        )
    if kind == "xero":
        x = _XERO_DEFAULTS
        line_types = _choice("Exclusive", "Inclusive", "NoTax")
        return XeroSettings(
            **common,
            client_id=reader.required(m, path, "client_id", _text, ""),
            client_secret=reader.required(m, path, "client_secret", _secret, _NO_SECRET),
            refresh_token=reader.required(m, path, "refresh_token", _secret, _NO_SECRET),
            tenant_id=reader.required(m, path, "tenant_id", _ident, ""),
            account_code=reader.required(m, path, "account_code", _ident, ""),
            tax_type=reader.optional(m, path, "tax_type", _text, x.tax_type),
            status=reader.optional(m, path, "status", _choice("DRAFT", "AUTHORISED"), x.status),
            line_amount_types=reader.optional(
                m, path, "line_amount_types", line_types, x.line_amount_types
            ),
            token_url=reader.optional(m, path, "token_url", _url, x.token_url),
        )
    if kind == "quickbooks":
        q = _QUICKBOOKS_DEFAULTS
        return QuickBooksSettings(
            **common,
            client_id=reader.required(m, path, "client_id", _text, ""),
            client_secret=reader.required(m, path, "client_secret", _secret, _NO_SECRET),
            refresh_token=reader.required(m, path, "refresh_token", _secret, _NO_SECRET),
            realm_id=reader.required(m, path, "realm_id", _ident, ""),
            item_id=reader.required(m, path, "item_id", _ident, ""),
            minor_version=reader.optional(m, path, "minor_version", _whole(75), q.minor_version),
            token_url=reader.optional(m, path, "token_url", _url, q.token_url),
        )
    if kind == "outbox":
        hint = "the folder invoices are written to, e.g. ./outbox"
        folder = reader.required(m, path, "path", reader.local_path, Path(), hint)
        if folder.exists() and not folder.is_dir():
            reader.error(_join(path, "path"), "is a file; give a folder for the invoice files")
        return OutboxSettings(**common, folder=folder)
    return None


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
