"""The YAML config file -> validated, typed `sync.settings` records.

The operator writes one file and must be able to fix every mistake in it from the messages
alone, so the loader never stops at the first problem: it walks the whole file, collects one
`ConfigError` per problem, each starting with its YAML path (`customers[1].budgets[0].refill.below:
must be positive`), and raises them together as `ConfigErrors`.

Three rules keep the result exact and safe. Numbers never become floats: the YAML loader builds
`Decimal` from the text as written (`rate: 95.00` stays `Decimal("95.00")`) and keeps octal-, hex-
or clock-looking numbers as text, so an id such as `0755` is not silently read as 493. `${NAME}`
is replaced from the environment when the value is read, so a missing variable is reported at
the path that uses it. Secret fields become `Secret` and no message ever quotes them; a rejected
value that came from the environment is shown as its `${NAME}`, never as what it expanded to.

This module walks the document and knows its shape; `sync.config_values` reads single values
(the float-free YAML loader and one converter per kind of value).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TypedDict, TypeVar

import yaml

from sync.config_values import (
    _ENV_NAME,
    _ENV_REF,
    _amount,
    _bool,
    _choice,
    _cron,
    _currency,
    _database,
    _describe,
    _digits,
    _duration,
    _email,
    _ExactLoader,
    _ident,
    _Invalid,
    _join,
    _listen,
    _name,
    _secret,
    _slug,
    _text,
    _timezone,
    _url,
    _whole,
)
from sync.config_values import parse_duration as parse_duration  # public API
from sync.model import is_known_currency, minor_digits
from sync.settings import (
    Budget,
    ClockifySettings,
    Criteria,
    CsvSettings,
    Customer,
    HarvestSettings,
    InvoiceTo,
    MatchRule,
    OutboxSettings,
    QuickBooksSettings,
    RateOverride,
    RefillPolicy,
    Rounding,
    Secret,
    ServerSettings,
    Settings,
    SinkSettings,
    SourceSettings,
    StripeSettings,
    TogglSettings,
    XeroSettings,
)

T = TypeVar("T")

# --- errors ---------------------------------------------------------------------------------


class ConfigError(Exception):
    """One problem in the config: where it is (`yaml_path`) and what to do about it (`problem`).

    For problems with the file itself (missing, not YAML) `yaml_path` is the file name.
    """

    def __init__(self, yaml_path: str, problem: str) -> None:
        # One line per problem is part of the CLI contract, whatever a value contained.
        self.yaml_path = yaml_path
        self.problem = problem.replace("\r", " ").replace("\n", " ")
        super().__init__(f"{self.yaml_path}: {self.problem}")


class ConfigErrors(Exception):
    """Every problem found in one config file; `str()` gives one line per problem."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors: list[ConfigError] = list(errors)
        super().__init__("\n".join(self.messages))

    @property
    def messages(self) -> list[str]:
        """The one-line messages, in file order, for the CLI to print."""
        return [str(error) for error in self.errors]


# --- public API -----------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the config file at `path`; raise `ConfigErrors` listing every problem.

    `environ` (default `os.environ`) supplies `${NAME}` values.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _file_error(where, "file not found; check the --config path") from None
    except IsADirectoryError:
        raise _file_error(where, "is a folder; give the path of the YAML config file") from None
    except PermissionError:
        raise _file_error(where, "cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise _file_error(where, "is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise _file_error(where, f"cannot be read ({exc.strerror or 'I/O error'})") from None
    try:
        data = yaml.load(text, Loader=_ExactLoader)
    except yaml.YAMLError as exc:
        raise _file_error(where, _describe_yaml_error(exc)) from None
    return parse_config(data, Path(path), os.environ if environ is None else environ)


def parse_config(data: object, config_path: Path, environ: Mapping[str, str]) -> Settings:
    """Validate loaded YAML `data`; relative paths are taken from `config_path`'s folder."""
    reader = _Reader(environ, Path(os.path.abspath(config_path)))
    settings = reader.settings(data, str(config_path))
    if reader.errors or settings is None:
        raise ConfigErrors(reader.errors)
    return settings


def _file_error(where: str, problem: str) -> ConfigErrors:
    return ConfigErrors([ConfigError(where, problem)])


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    # PyYAML's own text quotes the offending line, which may hold a token: use only its parts.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {exc.problem}"
        text += f" ({exc.context})" if exc.context else ""
        if "alias" in f"{exc.problem} {exc.context}":
            text += '; put values that start with * in quotes, e.g. schedule: "*/15 * * * *"'
        return text
    if isinstance(exc, yaml.reader.ReaderError):
        return f"contains a character YAML does not allow (at character {exc.position})"
    return "is not valid YAML"


# --- the shape of the file ------------------------------------------------------------------

_CRITERIA_KEYS = tuple(
    "client_ids project_ids task_ids user_ids client project task user tags".split()
)
_TOP_KEYS = tuple("database timezone server sources invoicing customers encryption_key".split())
_SOURCE_COMMON = tuple("name type schedule lookback_days reconcile_every base_url".split())
_SOURCE_KEYS = {
    "harvest": ("account_id", "token", "user_agent"),
    "toggl": ("token", "workspace_id", "scope"),
    "clockify": ("api_key", "workspace_id"),
    "csv": ("path", "format"),
}
_SINK_COMMON = ("name", "type", "base_url")
_OAUTH_KEYS = ("client_id", "client_secret", "refresh_token", "token_url")
_SINK_KEYS = {
    "stripe": ("api_key", "webhook_secret", "create_customers", "max_network_retries"),
    "xero": _OAUTH_KEYS + tuple("tenant_id account_code tax_type status line_amount_types".split()),
    "quickbooks": (*_OAUTH_KEYS, "realm_id", "item_id", "minor_version"),
    "outbox": ("path",),
}
_CUSTOMER_KEYS = ("id", "name", "currency", "invoice_to", "match", "budgets")
_INVOICE_TO_KEYS = tuple("sink customer email collection_method days_until_due tax_rates".split())
_BUDGET_KEYS = tuple(
    "id unit rate opening_balance billable_only include exclude rounding rate_overrides approval"
    " refill".split()
)
_REFILL_KEYS = ("below", "amount", "top_up_to", "credit_on", "max_per_day")
_ROUNDING_KEYS = ("increment_minutes", "mode", "minimum_minutes")

# What to write when a required key is missing, by key.
_HINTS = {
    "name": 'a short unique name, e.g. "harvest"; customers refer to it',
    "account_id": 'the Harvest account id, e.g. "123456"',
    "token": "the API token, best taken from the environment: token: ${TOKEN_VARIABLE}",
    "api_key": "the API key, best taken from the environment: api_key: ${API_KEY_VARIABLE}",
    "user_agent": "Harvest refuses requests without a User-Agent naming your app and a contact,"
    ' e.g. "Acme Agency (ops@acme.example)"',
    "workspace_id": "the workspace id from the tracker's settings",
    "client_id": "the OAuth2 app's client id",
    "client_secret": "the OAuth2 app's client secret, e.g. client_secret: ${CLIENT_SECRET}",
    "refresh_token": "a refresh token from the first authorisation",
    "tenant_id": "the Xero organisation's tenant id (GET https://api.xero.com/connections)",
    "account_code": 'the sales account code for invoice lines, e.g. "200"',
    "realm_id": "the QuickBooks company id (realmId)",
    "item_id": "the id of the QuickBooks service item the invoice lines use",
    "id": 'a short id of lower-case letters, digits, - and _, e.g. "acme"',
    "currency": "an ISO 4217 code such as EUR",
    "sink": "the name of one of the invoicing entries",
    "source": "the name of one of the sources",
    "unit": "money or hours",
    "below": "the threshold under which a refill is raised, in the budget's unit",
    "rate": 'the hourly rate, e.g. "120.00"',
    "increment_minutes": "e.g. 15 to round each entry to a quarter of an hour",
}

# Defaults live in sync.settings only; these instances read them from there.
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
_SERVER_DEFAULTS = ServerSettings()
_INVOICE_TO_DEFAULTS = InvoiceTo(sink="")
_BUDGET_DEFAULTS = Budget(yaml_path="", id="", unit="", rate=None, opening_balance=Decimal(0))
_REFILL_DEFAULTS = RefillPolicy(below=Decimal(0))
_DEFAULT_DATABASE = "sqlite:///prepaid.db"
_DEFAULT_TIMEZONE = "UTC"
_DEFAULT_ROUNDING_MODE = "up"
_SOURCE_EXAMPLE = "{name: exports, type: csv, path: exports/entries.csv}"
_SINK_EXAMPLE = "{name: files, type: outbox, path: ./outbox}"
_SERVER_EXAMPLE = "{listen: 127.0.0.1:8080, status_token: ${PREPAID_STATUS_TOKEN}}"


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


# --- the reader: walks the document, collects every problem ----------------------------------


class _Reader:
    """One pass over a loaded document; each problem lands in `errors` and reading goes on.

    A wrong value is replaced by a placeholder so that later checks still run; the records built
    from placeholders are thrown away, because `parse_config` raises when `errors` is not empty.
    """

    def __init__(self, environ: Mapping[str, str], config_path: Path) -> None:
        self.environ = environ
        self.config_path = config_path
        self.errors: list[ConfigError] = []

    def error(self, path: str, problem: str) -> None:
        self.errors.append(ConfigError(path, problem))

    # -- values ------------------------------------------------------------------------------

    def expand(self, value: object) -> object:
        """Replace `${NAME}` in a string from the environment; `$${` stands for a literal `${`."""
        if not isinstance(value, str) or "${" not in value:
            return value
        missing: list[str] = []

        def substitute(found: re.Match[str]) -> str:
            name = found.group(1)
            if found.group(0) == "$${":
                return "${"
            if name is None or not _ENV_NAME.fullmatch(name):
                hint = "a name has letters, digits and _ only; write $${ for a literal ${"
                raise _Invalid("has a ${ that is not a ${VARIABLE} reference", hint, show=False)
            if name not in self.environ:
                missing.append(name)
            return self.environ.get(name, "")

        expanded = _ENV_REF.sub(substitute, value)
        if missing:
            one = len(missing) == 1
            names = ", ".join(dict.fromkeys(missing))
            problem = f"environment variable{'' if one else 's'} {names} {'is' if one else 'are'}"
            hint = (
                f"set {'it' if one else 'them'} where prepaid runs, or write the value in the file"
            )
            raise _Invalid(f"{problem} not set", hint, show=False)
        return expanded

    def convert(self, raw: object, path: str, conv: Callable[[object], T], default: T) -> T:
        """`conv(raw)` after `${...}` expansion; on failure, record why and return `default`."""
        value = raw
        try:
            value = self.expand(raw)
            return conv(value)
        except _Invalid as exc:
            shown = None
            if exc.show and conv is not _secret:
                expanded = isinstance(raw, str) and raw != value
                shown = f"the value of {_describe(raw)}" if expanded else _describe(value)
            self.error(path, exc.message(shown))
            return default

    def optional(
        self, m: Mapping[str, object], path: str, key: str, conv: Callable[[object], T], default: T
    ) -> T:
        """`m[key]` converted; absent or null gives `default`."""
        raw = m.get(key)
        return default if raw is None else self.convert(raw, _join(path, key), conv, default)

    def required(
        self,
        m: Mapping[str, object],
        path: str,
        key: str,
        conv: Callable[[object], T],
        placeholder: T,
        hint: str | None = None,
    ) -> T:
        """`m[key]` converted; absent or null is an error saying what to write there."""
        if m.get(key) is None:
            hint = _HINTS.get(key, "") if hint is None else hint
            self.error(_join(path, key), f"is required; {hint}" if hint else "is required")
            return placeholder
        return self.convert(m[key], _join(path, key), conv, placeholder)

    def listing(
        self, m: Mapping[str, object], path: str, key: str, conv: Callable[[object], T]
    ) -> tuple[T, ...]:
        """A list of values; a single value counts as a one-item list."""
        raw, sub = m.get(key), _join(path, key)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            return tuple(v for v in [self.convert(raw, sub, conv, None)] if v is not None)
        values = [self.convert(item, f"{sub}[{i}]", conv, None) for i, item in enumerate(raw)]
        return tuple(v for v in values if v is not None)

    def items(
        self, m: Mapping[str, object], path: str, key: str, needed: str = ""
    ) -> list[tuple[str, object]]:
        """`(path, item)` for each item of the list at `m[key]`; `needed` makes it non-empty."""
        raw, sub = m.get(key), _join(path, key)
        if raw is None or raw == []:
            if needed:
                self.error(sub, f"add at least one {needed}")
            return []
        if not isinstance(raw, list):
            shown = _describe(raw)
            self.error(sub, f'must be a list (one item per line starting with "- "), got {shown}')
            return []
        return [(f"{sub}[{index}]", item) for index, item in enumerate(raw)]

    def mapping(
        self, raw: object, path: str, allowed: Sequence[str], example: str
    ) -> dict[str, object] | None:
        """`raw` as a mapping of `allowed` keys; unknown keys are errors, never ignored."""
        if not isinstance(raw, dict):
            self.error(path, f"must be a mapping such as {example}, got {_describe(raw)}")
            return None
        known: dict[str, object] = {}
        for key, value in raw.items():
            if isinstance(key, str) and key in allowed:
                known[key] = value
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            guess = f'; did you mean "{close[0]}"?' if close else ""
            problem = f"unknown key; expected one of: {', '.join(allowed)}{guess}"
            self.error(_join(path, str(key)), problem)
        return known

    def local_path(self, value: object) -> Path:
        """A file or folder path; a relative one is taken from the config file's folder."""
        given = Path(_text(value)).expanduser()
        return Path(os.path.abspath(self.config_path.parent / given))

    def unique(self, seen: dict[str, str], value: str, path: str, what: str) -> None:
        if value in seen:
            self.error(path, f'"{value}" is already used by {seen[value]}; each {what} must differ')
        elif value:
            seen[value] = path.rpartition(".")[0]

    # -- the document ------------------------------------------------------------------------

    def settings(self, data: object, where: str) -> Settings | None:
        if not isinstance(data, dict):
            got = "the file is empty" if data is None else f"got {_describe(data)}"
            self.error(where, f"must hold a mapping of keys (database, sources, ...); {got}")
            return None
        top = self.mapping(data, "", _TOP_KEYS, "{sources: [...]}") or {}
        database = self.optional(top, "", "database", _database, _DEFAULT_DATABASE)
        timezone = self.optional(top, "", "timezone", _timezone, _DEFAULT_TIMEZONE)
        server = self.server(top.get("server"))
        encryption_key = self.optional(top, "", "encryption_key", _secret, None)
        source_items = self.items(top, "", "sources", needed="source")
        sink_items = self.items(top, "", "invoicing")
        # A missing or broken list is reported once, not again at every reference to it.
        sources = _names_by_type(source_items) if source_items else None
        broken = top.get("invoicing") is not None and not isinstance(top["invoicing"], list)
        sinks = None if broken else _names_by_type(sink_items)
        seen_sources: dict[str, str] = {}
        seen_sinks: dict[str, str] = {}
        seen_customers: dict[str, str] = {}
        built_sources = [self.source(item, at, seen_sources) for at, item in source_items]
        built_sinks = [self.sink(item, at, seen_sinks) for at, item in sink_items]
        customers = [
            self.customer(item, at, sources, sinks, seen_customers)
            for at, item in self.items(top, "", "customers")
        ]
        return Settings(
            config_path=self.config_path,
            database=self.sqlite_absolute(database),
            timezone=timezone,
            server=server,
            sources=tuple(s for s in built_sources if s is not None),
            invoicing=tuple(s for s in built_sinks if s is not None),
            customers=tuple(c for c in customers if c is not None),
            encryption_key=encryption_key,
        )

    def sqlite_absolute(self, url: str) -> str:
        """`sqlite:///rel.db` -> the file next to the config, whatever the working directory."""
        if not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
            return url
        file, sep, query = url.removeprefix("sqlite:///").partition("?")
        if file in ("", ":memory:") or file.startswith("file:"):
            return url
        return f"sqlite:///{self.local_path(file)}{sep}{query}"

    def server(self, raw: object) -> ServerSettings:
        d = _SERVER_DEFAULTS
        if raw is None:
            return d
        m = self.mapping(raw, "server", ("listen", "status_token"), _SERVER_EXAMPLE)
        if m is None:
            return d
        host, port = self.optional(m, "server", "listen", _listen, (d.host, d.port))
        token = self.optional(m, "server", "status_token", _secret, d.status_token)
        return ServerSettings(host=host, port=port, status_token=token)

    def typed_mapping(
        self,
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
        return self.mapping(raw, path, allowed, example)

    # -- sources -----------------------------------------------------------------------------

    def source(self, raw: object, path: str, seen: dict[str, str]) -> SourceSettings | None:
        m = self.typed_mapping(raw, path, _SOURCE_COMMON, _SOURCE_KEYS, _SOURCE_EXAMPLE)
        if m is None:
            return None
        kind = self.required(
            m, path, "type", _choice(*_SOURCE_KEYS), "", "harvest, toggl, clockify or csv"
        )
        name = self.required(m, path, "name", _slug, "")
        self.unique(seen, name, _join(path, "name"), "source name")
        d = _SOURCE_DEFAULTS
        common = _SourceCommon(
            yaml_path=path,
            name=name,
            type=kind,
            schedule=self.optional(m, path, "schedule", _cron, d.schedule),
            lookback_days=self.optional(
                m, path, "lookback_days", _whole(1, "days"), d.lookback_days
            ),
            reconcile_every=self.optional(m, path, "reconcile_every", _duration, d.reconcile_every),
            base_url=self.optional(m, path, "base_url", _url, d.base_url),
        )
        if kind == "harvest":
            return HarvestSettings(
                **common,
                account_id=self.required(m, path, "account_id", _digits, ""),
                token=self.required(m, path, "token", _secret, _NO_SECRET),
                user_agent=self.required(m, path, "user_agent", _text, ""),
            )
        if kind == "toggl":
            scope = self.optional(m, path, "scope", _choice("workspace", "me"), "workspace")
            workspace = self.optional(m, path, "workspace_id", _digits, None)
            if scope == "workspace" and m.get("workspace_id") is None:
                hint = "the Toggl workspace id, needed for scope: workspace (or use scope: me)"
                self.error(_join(path, "workspace_id"), f"is required; {hint}")
            return TogglSettings(
                **common,
                token=self.required(m, path, "token", _secret, _NO_SECRET),
                workspace_id=workspace,
                scope=scope,
            )
        if kind == "clockify":
            return ClockifySettings(
                **common,
                api_key=self.required(m, path, "api_key", _secret, _NO_SECRET),
                workspace_id=self.required(m, path, "workspace_id", _ident, ""),
            )
        if kind == "csv":
            # A missing file is fine (the export may arrive later); a folder never will be one.
            file = self.required(m, path, "path", self.local_path, Path(), "the CSV file to read")
            if file.is_dir():
                self.error(_join(path, "path"), "is a folder; give the path of a CSV file")
            formats = _choice("generic", "harvest", "toggl", "clockify")
            return CsvSettings(
                **common, file=file, format=self.optional(m, path, "format", formats, "generic")
            )
        return None

    # -- sinks -------------------------------------------------------------------------------

    def sink(self, raw: object, path: str, seen: dict[str, str]) -> SinkSettings | None:
        m = self.typed_mapping(raw, path, _SINK_COMMON, _SINK_KEYS, _SINK_EXAMPLE)
        if m is None:
            return None
        kind = self.required(
            m, path, "type", _choice(*_SINK_KEYS), "", "stripe, xero, quickbooks or outbox"
        )
        name = self.required(m, path, "name", _slug, "", 'a short unique name, e.g. "stripe"')
        self.unique(seen, name, _join(path, "name"), "invoicing name")
        base_url = self.optional(m, path, "base_url", _url, None)
        common = _SinkCommon(yaml_path=path, name=name, type=kind, base_url=base_url)
        if kind == "stripe":
            s = _STRIPE_DEFAULTS
            api_key = self.required(m, path, "api_key", _secret, _NO_SECRET)
            if api_key.reveal().startswith("pk_"):
                hint = "use a secret key (sk_...) or a restricted key (rk_...)"
                self.error(_join(path, "api_key"), f"is a publishable key (pk_...); {hint}")
            retries = _whole(0, maximum=10)
            return StripeSettings(
                **common,
                api_key=api_key,
                webhook_secret=self.optional(m, path, "webhook_secret", _secret, s.webhook_secret),
                create_customers=self.optional(
                    m, path, "create_customers", _bool, s.create_customers
                ),
                max_network_retries=self.optional(
                    m, path, "max_network_retries", retries, s.max_network_retries
                ),
            )
        if kind == "xero":
            x = _XERO_DEFAULTS
            line_types = _choice("Exclusive", "Inclusive", "NoTax")
            return XeroSettings(
                **common,
                client_id=self.required(m, path, "client_id", _text, ""),
                client_secret=self.required(m, path, "client_secret", _secret, _NO_SECRET),
                refresh_token=self.required(m, path, "refresh_token", _secret, _NO_SECRET),
                tenant_id=self.required(m, path, "tenant_id", _ident, ""),
                account_code=self.required(m, path, "account_code", _ident, ""),
                tax_type=self.optional(m, path, "tax_type", _text, x.tax_type),
                status=self.optional(m, path, "status", _choice("DRAFT", "AUTHORISED"), x.status),
                line_amount_types=self.optional(
                    m, path, "line_amount_types", line_types, x.line_amount_types
                ),
                token_url=self.optional(m, path, "token_url", _url, x.token_url),
            )
        if kind == "quickbooks":
            q = _QUICKBOOKS_DEFAULTS
            return QuickBooksSettings(
                **common,
                client_id=self.required(m, path, "client_id", _text, ""),
                client_secret=self.required(m, path, "client_secret", _secret, _NO_SECRET),
                refresh_token=self.required(m, path, "refresh_token", _secret, _NO_SECRET),
                realm_id=self.required(m, path, "realm_id", _ident, ""),
                item_id=self.required(m, path, "item_id", _ident, ""),
                minor_version=self.optional(m, path, "minor_version", _whole(75), q.minor_version),
                token_url=self.optional(m, path, "token_url", _url, q.token_url),
            )
        if kind == "outbox":
            hint = "the folder invoices are written to, e.g. ./outbox"
            folder = self.required(m, path, "path", self.local_path, Path(), hint)
            if folder.exists() and not folder.is_dir():
                self.error(_join(path, "path"), "is a file; give a folder for the invoice files")
            return OutboxSettings(**common, folder=folder)
        return None

    # -- customers ---------------------------------------------------------------------------

    def customer(
        self,
        raw: object,
        path: str,
        sources: Mapping[str, str] | None,
        sinks: Mapping[str, str] | None,
        seen: dict[str, str],
    ) -> Customer | None:
        m = self.mapping(raw, path, _CUSTOMER_KEYS, "{id: acme, name: ACME Corp, currency: EUR}")
        if m is None:
            return None
        cid = self.required(m, path, "id", _slug, "")
        self.unique(seen, cid, _join(path, "id"), "customer id")
        name = self.required(m, path, "name", _text, "", "the customer's name for statements")
        currency = self.required(m, path, "currency", _currency, "")
        budget_items = self.items(m, path, "budgets", needed="budget")
        raw_ids = [item.get("id") for _, item in budget_items if isinstance(item, dict)]
        budget_ids = list(dict.fromkeys(i for i in raw_ids if isinstance(i, str)))
        invoice_to = None
        if m.get("invoice_to") is not None:
            invoice_to = self.invoice_to(m["invoice_to"], _join(path, "invoice_to"), sinks)
        rules = [
            self.match_rule(item, at, sources, budget_ids)
            for at, item in self.items(m, path, "match")
        ]
        seen_budgets: dict[str, str] = {}
        budgets = [self.budget(item, at, currency, seen_budgets) for at, item in budget_items]
        refilled = [b.id for b in budgets if b is not None and b.refill is not None]
        if refilled and m.get("invoice_to") is None:
            self.error(
                _join(path, "invoice_to"),
                f'is required because budget "{refilled[0]}" has a refill; add'
                " {sink: NAME} naming one of the invoicing entries",
            )
        return Customer(
            yaml_path=path,
            id=cid,
            name=name,
            currency=currency,
            invoice_to=invoice_to,
            match=tuple(r for r in rules if r is not None),
            budgets=tuple(b for b in budgets if b is not None),
        )

    def invoice_to(
        self, raw: object, path: str, sinks: Mapping[str, str] | None
    ) -> InvoiceTo | None:
        m = self.mapping(raw, path, _INVOICE_TO_KEYS, "{sink: stripe, customer: cus_123}")
        if m is None:
            return None
        d = _INVOICE_TO_DEFAULTS
        sink = self.required(m, path, "sink", _text, "")
        if sink and sinks is not None and sink not in sinks:
            self.error(
                _join(path, "sink"), f'unknown invoicing "{sink}"; {_listed(sinks, "invoicing")}'
            )
        kind = None if sinks is None else sinks.get(sink)
        if kind in ("xero", "quickbooks") and m.get("customer") is None:
            what = "Xero ContactID" if kind == "xero" else "QuickBooks Customer Id"
            self.error(_join(path, "customer"), f"is required for {kind}; give the {what}")
        if kind == "stripe" and m.get("customer") is None and m.get("email") is None:
            hint = "give customer (a Stripe id such as cus_123) or an email to find or create one"
            self.error(
                _join(path, "customer"), f"is required for stripe unless email is given; {hint}"
            )
        methods = _choice("send_invoice", "charge_automatically")
        return InvoiceTo(
            sink=sink,
            customer=self.optional(m, path, "customer", _ident, d.customer),
            email=self.optional(m, path, "email", _email, d.email),
            collection_method=self.optional(
                m, path, "collection_method", methods, d.collection_method
            ),
            days_until_due=self.optional(
                m, path, "days_until_due", _whole(0, "days"), d.days_until_due
            ),
            tax_rates=self.listing(m, path, "tax_rates", _ident),
        )

    def match_rule(
        self, raw: object, path: str, sources: Mapping[str, str] | None, budget_ids: Sequence[str]
    ) -> MatchRule | None:
        allowed = ("source", "budget", *_CRITERIA_KEYS)
        m = self.mapping(raw, path, allowed, "{source: harvest, client_ids: [111]}")
        if m is None:
            return None
        source = self.required(m, path, "source", _text, "")
        if source and sources is not None and source not in sources:
            self.error(
                _join(path, "source"), f'unknown source "{source}"; {_listed(sources, "sources")}'
            )
        budget = self.optional(m, path, "budget", _text, None)
        if budget is not None and budget not in budget_ids:
            listed = ", ".join(budget_ids) or "none"
            self.error(
                _join(path, "budget"), f'unknown budget "{budget}"; this customer has: {listed}'
            )
        return MatchRule(
            yaml_path=path, source=source, criteria=self.criteria(m, path), budget=budget
        )

    def criteria(self, m: Mapping[str, object], path: str) -> Criteria:
        """The condition keys shared by match rules, include/exclude and rate overrides."""
        ids = {key: self.listing(m, path, key, _ident) for key in _CRITERIA_KEYS[:4]}
        return Criteria(
            **ids,
            clients=self.listing(m, path, "client", _name),
            projects=self.listing(m, path, "project", _name),
            tasks=self.listing(m, path, "task", _name),
            users=self.listing(m, path, "user", _name),
            tags=self.listing(m, path, "tags", _name),
        )

    # -- budgets -----------------------------------------------------------------------------

    def budget(self, raw: object, path: str, currency: str, seen: dict[str, str]) -> Budget | None:
        m = self.mapping(raw, path, _BUDGET_KEYS, '{id: retainer, unit: money, rate: "95.00"}')
        if m is None:
            return None
        d = _BUDGET_DEFAULTS
        bid = self.required(m, path, "id", _slug, "", 'e.g. "retainer"')
        self.unique(seen, bid, _join(path, "id"), "budget id of a customer")
        unit = self.required(m, path, "unit", _choice("money", "hours"), "")
        money_places = minor_digits(currency) if is_known_currency(currency) else None
        # Hours are kept as seconds: two decimals (multiples of 36 s) are exact and print back.
        places = {"money": money_places, "hours": 2}.get(unit)
        label = "hours" if unit == "hours" else currency
        rate, from_source = self.rate(m, path, unit, currency, money_places)
        opening = self.optional(
            m, path, "opening_balance", _amount(places, label, positive=False), Decimal(0)
        )
        refill = None
        if m.get("refill") is not None:
            refill = self.refill(m["refill"], _join(path, "refill"), places, label)
        if m.get("rate") is None and (unit == "money" or refill is not None):
            why = 'for a money budget; give the hourly rate, e.g. "95.00", or from_source'
            if unit == "hours":
                why = "because this hours budget has a refill: the rate prices the refill invoice"
            self.error(_join(path, "rate"), f"is required {why}")
        return Budget(
            yaml_path=path,
            id=bid,
            unit=unit,
            rate=rate,
            opening_balance=opening,
            rate_from_source=from_source,
            billable_only=self.optional(m, path, "billable_only", _bool, d.billable_only),
            include=self.criteria_block(m, path, "include"),
            exclude=self.criteria_block(m, path, "exclude"),
            rounding=self.rounding(m, path),
            rate_overrides=self.rate_overrides(m, path, unit, money_places, currency),
            approval=self.optional(m, path, "approval", _choice("auto", "review"), d.approval),
            refill=refill,
        )

    def criteria_block(self, m: Mapping[str, object], path: str, key: str) -> Criteria:
        """`include` / `exclude`: a mapping of the same condition keys as a match rule."""
        if m.get(key) is None:
            return Criteria()
        block = self.mapping(m[key], _join(path, key), _CRITERIA_KEYS, "{tags: [internal]}")
        return Criteria() if block is None else self.criteria(block, _join(path, key))

    def rate(
        self, m: Mapping[str, object], path: str, unit: str, currency: str, places: int | None
    ) -> tuple[Decimal | None, bool]:
        """`(rate, rate_from_source)`. A rate is money, so it obeys the currency's minor unit."""
        raw = m.get("rate")
        if isinstance(raw, str) and raw.strip() == "from_source":
            if unit == "hours":
                hint = "an hours budget needs a fixed rate to price its refill invoice"
                self.error(_join(path, "rate"), f"from_source only works for money budgets; {hint}")
            return None, True
        return self.optional(m, path, "rate", _amount(places, currency, positive=True), None), False

    def rate_overrides(
        self, m: Mapping[str, object], path: str, unit: str, places: int | None, currency: str
    ) -> tuple[RateOverride, ...]:
        found: list[RateOverride] = []
        allowed = ("rate", *_CRITERIA_KEYS)
        for at, item in self.items(m, path, "rate_overrides"):
            o = self.mapping(item, at, allowed, '{project_ids: [42], rate: "120.00"}')
            if o is None:
                continue
            rate = self.required(
                o, at, "rate", _amount(places, currency, positive=True), Decimal(0)
            )
            criteria = self.criteria(o, at)
            if criteria.is_empty():
                hint = "to change the rate of every entry, change the budget's rate instead"
                self.error(at, f"needs at least one condition such as project_ids or tags; {hint}")
            found.append(RateOverride(criteria=criteria, rate=rate))
        if found and unit == "hours":
            hint = "an hours budget deducts hours whatever the rate; remove them"
            self.error(_join(path, "rate_overrides"), f"only apply to money budgets; {hint}")
        return tuple(found)

    def rounding(self, m: Mapping[str, object], path: str) -> Rounding | None:
        at = _join(path, "rounding")
        r = None
        if m.get("rounding") is not None:
            r = self.mapping(m["rounding"], at, _ROUNDING_KEYS, "{increment_minutes: 15, mode: up}")
        if r is None:
            return None
        minutes = _whole(0, "minutes", 1440)
        return Rounding(
            increment_minutes=self.required(
                r, at, "increment_minutes", _whole(1, "minutes", 1440), 1
            ),
            mode=self.optional(
                r, at, "mode", _choice("up", "down", "nearest"), _DEFAULT_ROUNDING_MODE
            ),
            minimum_minutes=self.optional(r, at, "minimum_minutes", minutes, 0),
        )

    def refill(self, raw: object, path: str, places: int | None, label: str) -> RefillPolicy | None:
        m = self.mapping(raw, path, _REFILL_KEYS, '{below: "500.00", amount: "2000.00"}')
        if m is None:
            return None
        d = _REFILL_DEFAULTS
        positive = _amount(places, label, positive=True)
        below = self.required(m, path, "below", positive, Decimal(0))
        amount = self.optional(m, path, "amount", positive, None)
        top_up_to = self.optional(m, path, "top_up_to", positive, None)
        given = [key for key in ("amount", "top_up_to") if m.get(key) is not None]
        if len(given) != 1:
            choose = "amount (a fixed refill) or top_up_to (refill up to a target)"
            self.error(path, f"give either {choose}, not both" if given else f"needs {choose}")
        if top_up_to is not None and below > 0 and top_up_to <= below:
            hint = "or a refill would not lift the balance over the threshold"
            self.error(_join(path, "top_up_to"), f"must be more than below ({below}), {hint}")
        return RefillPolicy(
            below=below,
            amount=amount,
            top_up_to=top_up_to,
            credit_on=self.optional(m, path, "credit_on", _choice("paid", "issued"), d.credit_on),
            max_per_day=self.optional(m, path, "max_per_day", _whole(1), d.max_per_day),
        )


def _names_by_type(items: Sequence[tuple[str, object]]) -> dict[str, str]:
    """Name -> type of each source or sink as written, valid or not, for reference checks.

    Raw names keep one typo from also turning every reference to that entry into an error.
    """
    found: dict[str, str] = {}
    for _, item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            kind = item.get("type")
            found.setdefault(item["name"].strip(), kind if isinstance(kind, str) else "")
    return found


def _listed(names: Mapping[str, str], what: str) -> str:
    return f"configured {what}: {', '.join(names)}" if names else f"there are no {what} in the file"
