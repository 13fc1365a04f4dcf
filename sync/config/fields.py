"""The typed field reader: one value of the config at a time, every problem collected.

`FieldReader` is what every section of the config loader reads through. It expands `${NAME}`
from the environment, runs a converter from `sync.config.values`, and turns a rejected value
into a `ConfigError` at the field's YAML path instead of raising, so one pass over the file
reports every mistake. It also checks the generic shapes (a mapping with known keys only, a
list, a unique name). Kept apart from the sections (`sync.config`, `sync.config.connectors`,
`sync.config.customers`) because it is the one place that decides how a value is quoted back
in a message, which is what keeps secrets and expanded environment values out of them.
`ConfigError` and `ConfigErrors` live here because the reader builds them; `sync.config`
re-exports both as its public API.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from sync.config.values import (
    ENV_NAME,
    ENV_REF,
    Invalid,
    MissingVariable,
    as_secret,
    as_text,
    describe,
    join_path,
)

T = TypeVar("T")


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


class FieldReader:
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

    def expand(self, value: object) -> object:
        """Replace `${NAME}` in a string from the environment; `$${` stands for a literal `${`."""
        if not isinstance(value, str) or "${" not in value:
            return value
        missing: list[str] = []

        def substitute(found: re.Match[str]) -> str:
            name = found.group(1)
            if found.group(0) == "$${":
                return "${"
            if name is None or not ENV_NAME.fullmatch(name):
                hint = "a name has letters, digits and _ only; write $${ for a literal ${"
                raise Invalid("has a ${ that is not a ${VARIABLE} reference", hint, show=False)
            if name not in self.environ:
                missing.append(name)
            return self.environ.get(name, "")

        expanded = ENV_REF.sub(substitute, value)
        if missing:
            one = len(missing) == 1
            names = ", ".join(dict.fromkeys(missing))
            problem = f"environment variable{'' if one else 's'} {names} {'is' if one else 'are'}"
            hint = (
                f"set {'it' if one else 'them'} where prepaid runs, or write the value in the file"
            )
            raise MissingVariable(f"{problem} not set", hint, show=False)
        return expanded

    def convert(self, raw: object, path: str, conv: Callable[[object], T], default: T) -> T:
        """`conv(raw)` after `${...}` expansion; on failure, record why and return `default`."""
        value = raw
        try:
            value = self.expand(raw)
            return conv(value)
        except Invalid as exc:
            shown = None
            if exc.show and conv is not as_secret:
                expanded = isinstance(raw, str) and raw != value
                shown = f"the value of {describe(raw)}" if expanded else describe(value)
            self.error(path, exc.message(shown))
            return default

    def optional(
        self, m: Mapping[str, object], path: str, key: str, conv: Callable[[object], T], default: T
    ) -> T:
        """`m[key]` converted; absent or null gives `default`."""
        raw = m.get(key)
        return default if raw is None else self.convert(raw, join_path(path, key), conv, default)

    def deferred(
        self, m: Mapping[str, object], path: str, key: str, conv: Callable[[object], T], default: T
    ) -> tuple[T, ConfigError | None]:
        """As `optional`, but an unset `${NAME}` is handed back instead of recorded, for a
        value only some commands use (the server's): those commands refuse with it, the
        others run without it. Any other problem with the value is an error as usual.
        """
        raw, where = m.get(key), join_path(path, key)
        if raw is None:
            return default, None
        try:
            self.expand(raw)
        except MissingVariable as exc:
            return default, ConfigError(where, exc.message(None))
        except Invalid:
            pass  # reported by `convert` below
        return self.convert(raw, where, conv, default), None

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
            self.error(join_path(path, key), f"is required; {hint}" if hint else "is required")
            return placeholder
        return self.convert(m[key], join_path(path, key), conv, placeholder)

    def listing(
        self, m: Mapping[str, object], path: str, key: str, conv: Callable[[object], T]
    ) -> tuple[T, ...]:
        """A list of values; a single value counts as a one-item list."""
        raw, sub = m.get(key), join_path(path, key)
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
        raw, sub = m.get(key), join_path(path, key)
        if raw is None or raw == []:
            if needed:
                self.error(sub, f"add at least one {needed}")
            return []
        if not isinstance(raw, list):
            shown = describe(raw)
            self.error(sub, f'must be a list (one item per line starting with "- "), got {shown}')
            return []
        return [(f"{sub}[{index}]", item) for index, item in enumerate(raw)]

    def mapping(
        self, raw: object, path: str, allowed: Sequence[str], example: str
    ) -> dict[str, object] | None:
        """`raw` as a mapping of `allowed` keys; unknown keys are errors, never ignored."""
        if not isinstance(raw, dict):
            self.error(path, f"must be a mapping such as {example}, got {describe(raw)}")
            return None
        known: dict[str, object] = {}
        for key, value in raw.items():
            if isinstance(key, str) and key in allowed:
                known[key] = value
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            guess = f'; did you mean "{close[0]}"?' if close else ""
            problem = f"unknown key; expected one of: {', '.join(allowed)}{guess}"
            self.error(join_path(path, str(key)), problem)
        return known

    def local_path(self, value: object) -> Path:
        """A file or folder path; a relative one is taken from the config file's folder."""
        given = Path(as_text(value)).expanduser()
        return Path(os.path.abspath(self.config_path.parent / given))

    def unique(self, seen: dict[str, str], value: str, path: str, what: str) -> None:
        if value in seen:
            self.error(path, f'"{value}" is already used by {seen[value]}; each {what} must differ')
        elif value:
            seen[value] = path.rpartition(".")[0]
