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

This module is the entry point: it reads the file, walks the top level and hands each section
to its reader. `sync.config.fields` reads one field at a time and collects the errors,
`sync.config.values` holds the float-free YAML loader and one converter per kind of value,
`sync.config.connectors` reads `sources` and `invoicing`, `sync.config.customers` `customers`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from sync.config.connectors import names_by_type, read_sink, read_source
from sync.config.customers import read_customer
from sync.config.fields import ConfigError, ConfigErrors, FieldReader
from sync.config.values import (
    ExactLoader,
    as_database,
    as_listen,
    as_secret,
    as_timezone,
    describe,
    parse_duration,
)
from sync.settings import ServerSettings, Settings

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "load_config",
    "parse_config",
    "parse_duration",
    "require_server",
]

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
        data = yaml.load(text, Loader=ExactLoader)
    except yaml.YAMLError as exc:
        raise _file_error(where, _describe_yaml_error(exc)) from None
    return parse_config(data, Path(path), os.environ if environ is None else environ)


def parse_config(data: object, config_path: Path, environ: Mapping[str, str]) -> Settings:
    """Validate loaded YAML `data`; relative paths are taken from `config_path`'s folder."""
    reader = FieldReader(environ, Path(os.path.abspath(config_path)))
    settings = _read_settings(reader, data, str(config_path))
    if reader.errors or settings is None:
        raise ConfigErrors(reader.errors)
    return settings


def require_server(settings: Settings) -> None:
    """Raise `ConfigErrors` when a `server` key names an unset environment variable.

    Loading leaves those to the one command that uses them (`serve`), so that `balance` or
    `sync` run where the status token is not set.
    """
    if settings.server.unresolved:
        raise ConfigErrors([ConfigError(*problem) for problem in settings.server.unresolved])


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


# --- the top level --------------------------------------------------------------------------

_TOP_KEYS = tuple("database timezone server sources invoicing customers encryption_key".split())
_SERVER_DEFAULTS = ServerSettings()
_DEFAULT_DATABASE = "sqlite:///prepaid.db"
_DEFAULT_TIMEZONE = "UTC"
_SERVER_EXAMPLE = "{listen: 127.0.0.1:8080, status_token: ${PREPAID_STATUS_TOKEN}}"


def _read_settings(reader: FieldReader, data: object, where: str) -> Settings | None:
    if not isinstance(data, dict):
        got = "the file is empty" if data is None else f"got {describe(data)}"
        reader.error(where, f"must hold a mapping of keys (database, sources, ...); {got}")
        return None
    top = reader.mapping(data, "", _TOP_KEYS, "{sources: [...]}") or {}
    database = reader.optional(top, "", "database", as_database, _DEFAULT_DATABASE)
    timezone = reader.optional(top, "", "timezone", as_timezone, _DEFAULT_TIMEZONE)
    server = _read_server(reader, top.get("server"))
    encryption_key = reader.optional(top, "", "encryption_key", as_secret, None)
    source_items = reader.items(top, "", "sources", needed="source")
    sink_items = reader.items(top, "", "invoicing")
    # A missing or broken list is reported once, not again at every reference to it.
    sources = names_by_type(source_items) if source_items else None
    broken = top.get("invoicing") is not None and not isinstance(top["invoicing"], list)
    sinks = None if broken else names_by_type(sink_items)
    seen_sources: dict[str, str] = {}
    seen_sinks: dict[str, str] = {}
    seen_customers: dict[str, str] = {}
    built_sources = [
        read_source(reader, item, at, seen_sources, timezone) for at, item in source_items
    ]
    built_sinks = [read_sink(reader, item, at, seen_sinks) for at, item in sink_items]
    customers = [
        read_customer(reader, item, at, sources, sinks, seen_customers)
        for at, item in reader.items(top, "", "customers")
    ]
    return Settings(
        config_path=reader.config_path,
        database=_sqlite_absolute(reader, database),
        timezone=timezone,
        server=server,
        sources=tuple(s for s in built_sources if s is not None),
        invoicing=tuple(s for s in built_sinks if s is not None),
        customers=tuple(c for c in customers if c is not None),
        encryption_key=encryption_key,
    )


def _sqlite_absolute(reader: FieldReader, url: str) -> str:
    """`sqlite:///rel.db` -> the file next to the config, whatever the working directory."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return url
    file, sep, query = url.removeprefix("sqlite:///").partition("?")
    if file in ("", ":memory:") or file.startswith("file:"):
        return url
    return f"sqlite:///{reader.local_path(file)}{sep}{query}"


def _read_server(reader: FieldReader, raw: object) -> ServerSettings:
    d = _SERVER_DEFAULTS
    if raw is None:
        return d
    m = reader.mapping(raw, "server", ("listen", "status_token"), _SERVER_EXAMPLE)
    if m is None:
        return d
    # Only `serve` uses these: an unset variable here is its problem, not every command's.
    (host, port), listen_unset = reader.deferred(m, "server", "listen", as_listen, (d.host, d.port))
    token, token_unset = reader.deferred(m, "server", "status_token", as_secret, d.status_token)
    unresolved = tuple(
        (error.yaml_path, error.problem) for error in (listen_unset, token_unset) if error
    )
    return ServerSettings(host=host, port=port, status_token=token, unresolved=unresolved)
