"""Single config values: YAML scalars read without floats, and typed converters.

Each converter takes what the YAML gave (`object`) and returns a typed value or raises
`Invalid` with a sentence an operator can act on; `sync.config` walks the document, calls
these for every field and turns each `Invalid` into a `ConfigError` at the field's YAML path.
Kept apart from the walker so each rule about one kind of value (an amount's decimals, a cron
line, a database URL) is read and tested on its own. Internal to the config loader.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlsplit

import yaml
from apscheduler.triggers.cron import CronTrigger

from sync.model import is_known_currency, parse_decimal
from sync.settings import Secret

L = TypeVar("L", bound=str)


class Invalid(Exception):
    """A rejected value; `show` is False when the message must not quote it (secrets, URLs)."""

    def __init__(self, problem: str, hint: str = "", *, show: bool = True) -> None:
        super().__init__(problem)
        self.problem, self.hint, self.show = problem, hint, show

    def message(self, shown: str | None) -> str:
        text = self.problem if shown is None else f"{self.problem}, got {shown}"
        return f"{text}; {self.hint}" if self.hint else text


class MissingVariable(Invalid):
    """A `${NAME}` whose variable is not set: the value is unknown, not wrong."""


# --- YAML without floats --------------------------------------------------------------------

_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_PLAIN_DECIMAL = re.compile(r"[-+]?[0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ExactLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that never makes a float and refuses duplicate keys.

    YAML 1.1 reads `95.00` as a float and `0755` as octal, and lets a second `token:` silently
    replace the first; money must stay exact, ids what was written, and no key may hide another.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if key_node.value in seen:
                    problem = f'duplicate key "{key_node.value}"; each key may appear only once'
                    raise yaml.constructor.ConstructorError(
                        None, None, problem, key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = str(loader.construct_scalar(node))
    if _PLAIN_DECIMAL.fullmatch(text):
        try:
            return Decimal(text.replace("_", ""))
        except InvalidOperation:
            pass
    return text  # .inf, .nan, 1:30.5 are no amounts; the field's own check says why


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = str(loader.construct_scalar(node))
    return int(text.replace("_", "")) if _PLAIN_INT.fullmatch(text) else text


ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
ExactLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


# --- durations ------------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> dt.timedelta:
    """`90s`, `15m`, `6h`, `1d`, or several in that order (`1h30m`) -> timedelta.

    Every number needs its unit letter, so a bare `90` is never guessed as seconds or minutes.
    Raises ValueError naming the accepted forms.
    """
    cleaned = text.strip().lower().replace(" ", "")
    found = _DURATION.fullmatch(cleaned)
    if not cleaned or found is None:
        raise ValueError("expected a duration such as 90s, 15m, 6h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


# --- value converters: object -> T, raising Invalid -----------------------------------------

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
ENV_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def as_text(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, str):
        raise Invalid("must not be empty", show=False)
    raise Invalid("must be text", 'put it in quotes, e.g. "like this"')


def as_ident(value: object) -> str:
    """An id in a tracker or accounting system: text, or a whole number kept as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise Invalid("must be an id (text or a whole number)")


def as_digits(value: object) -> str:
    text = as_ident(value)
    if not text.isdigit():
        raise Invalid("must be a numeric id (digits only)")
    return text


def as_name(value: object) -> str:
    """A client, project, task, user or tag name; compared case-insensitively, so lower-cased."""
    return as_text(value).lower()


def as_slug(value: object) -> str:
    text = as_text(value)
    if _SLUG.fullmatch(text):
        return text
    suggestion = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    hint = f'for example "{suggestion}"' if suggestion else ""
    raise Invalid("must be a short id of lower-case letters, digits, - and _", hint)


def as_secret(value: object) -> Secret:
    if isinstance(value, int) and not isinstance(value, bool):
        return Secret(str(value))
    if isinstance(value, str) and value.strip():
        return Secret(value.strip())
    if isinstance(value, str):
        raise Invalid("must not be empty", show=False)
    raise Invalid("must be text", "put it in quotes, or use ${VARIABLE}", show=False)


def as_whole(minimum: int, unit: str = "", maximum: int | None = None) -> Callable[[object], int]:
    what = f"a whole number of {unit}" if unit else "a whole number"
    limit = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"

    def convert(value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            value = int(value)  # from an environment variable, where everything is text
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"must be {what}")
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid(f"must be {what} {limit}")
        return value

    return convert


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    raise Invalid("must be true or false")


def as_choice(*choices: L) -> Callable[[object], L]:
    """One of `choices`, written exactly; pass a `Literal`'s values: `as_choice(*get_args(X))`."""
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"

    def convert(value: object) -> L:
        for choice in choices:
            if isinstance(value, str) and value.strip() == choice:
                return choice
        text = value.strip().lower() if isinstance(value, str) else None
        near = [choice for choice in choices if choice.lower() == text]
        raise Invalid(f"must be {listed}", f'write it exactly as "{near[0]}"' if near else "")

    return convert


def as_decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise Invalid("must be an exact decimal", 'write it in quotes, e.g. "95.00"', show=False)
    if isinstance(value, (str, int, Decimal)) and not isinstance(value, bool):
        try:
            return parse_decimal(value)
        except ValueError:
            pass
    raise Invalid('must be a number such as "95.00"')


# No budget, rate or top-up comes near this; anything at or above it is a typing slip (a
# pasted account number), refused before it can overflow a 64-bit column or a sum of them.
AMOUNT_LIMIT = Decimal(10) ** 12


def as_amount(places: int | None, unit: str, *, positive: bool) -> Callable[[object], Decimal]:
    """An amount > 0 (`positive`) or >= 0 with at most `places` decimals of `unit` (None: any).

    Written out in plain digits (`1e3` is refused: nobody types money that way, and a slip of
    `e` must not multiply an amount by a thousand) and below `AMOUNT_LIMIT`. Used for the
    config's amounts and for amounts typed on the command line alike.
    """

    def convert(value: object) -> Decimal:
        number = as_decimal(value)
        written = value.lower() if isinstance(value, str) else ""
        exponent = number.as_tuple().exponent  # > 0 only when an exponent was written
        if "e" in written or (isinstance(exponent, int) and exponent > 0):
            raise Invalid("must be written in plain digits, without an exponent", 'e.g. "1000.00"')
        if abs(number) >= AMOUNT_LIMIT:
            raise Invalid(f"is too large: amounts stay below {AMOUNT_LIMIT:,}")
        if positive and number <= 0:
            raise Invalid("must be positive")
        if number < 0:
            raise Invalid("may not be negative")
        if places is not None:
            try:
                exact = number.quantize(Decimal(1).scaleb(-places)) == number
            except InvalidOperation:
                raise Invalid("is too large") from None
            if not exact and places == 0:
                raise Invalid(f"must be a whole amount: {unit} has no decimals")
            if not exact:
                raise Invalid(f"may have at most {places} decimals for {unit}")
        return number

    return convert


def as_currency(value: object) -> str:
    text = as_text(value)
    if is_known_currency(text):
        return text
    if is_known_currency(text.upper()):
        raise Invalid("must be an ISO 4217 code in upper case", f'write "{text.upper()}"')
    raise Invalid("must be an ISO 4217 currency code", "for example EUR, USD or JPY")


def as_timezone(value: object) -> str:
    text = as_text(value)
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = "use an IANA name such as Europe/Brussels or UTC (names are case-sensitive)"
        raise Invalid("is not a known time zone", hint) from None
    return text


def as_url(value: object) -> str:
    """An http(s) base address, without a trailing slash so adapters can append paths."""
    text = as_text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("must be an http:// or https:// address such as https://api.example.com")
    return text.rstrip("/")


def as_duration(value: object) -> dt.timedelta:
    try:
        return parse_duration(as_text(value))
    except ValueError:
        raise Invalid("must be a duration such as 90s, 15m, 6h, 1d or 1h30m") from None


def as_cron(value: object) -> str:
    text = as_text(value)
    try:
        CronTrigger.from_crontab(text, timezone=dt.UTC)
    except ValueError as exc:
        hint = 'write 5 fields: minute hour day month weekday, e.g. "*/15 * * * *"'
        raise Invalid(f"is not a valid cron line ({exc})", hint, show=False) from None
    return text


def as_listen(value: object) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise Invalid('must be "host:port" with a port from 1 to 65535, such as 127.0.0.1:8080')
    return host, int(port)


def as_database(value: object) -> str:
    """The URL with its driver made explicit; never quoted back, as it may hold a password."""
    text = as_text(value)
    scheme, sep, rest = text.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if sep and scheme in ("sqlite", "postgresql+psycopg"):
        return text
    shown = f"a {scheme}:// URL" if sep and len(scheme) < 30 else "no URL"
    hint = "e.g. sqlite:///prepaid.db or postgresql+psycopg://user@host/db"
    raise Invalid(
        f"must be a sqlite:/// or postgresql+psycopg:// URL, got {shown}", hint, show=False
    )


def as_email(value: object) -> str:
    text = as_text(value)
    user, at, domain = text.rpartition("@")
    if not at or not user or "." not in domain or " " in text:
        raise Invalid("must be an email address such as billing@acme.example")
    return text


def describe(value: object) -> str:
    """How a rejected value is quoted back: short, on one line, and never a float's repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        quoted = json.dumps(value, ensure_ascii=False)
        return quoted if len(quoted) <= 60 else quoted[:56] + '..."'
    if isinstance(value, (int, Decimal)):
        return str(value)
    kinds = {list: "a list", dict: "a mapping", type(None): "nothing", float: "a decimal number"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
