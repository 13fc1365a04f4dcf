"""Credentials on the wire, and keeping them out of every text.

The auth objects put a secret where its service expects it (a bearer token, HTTP Basic, a
custom header) and list every form in which it travels, so the `Redactor` that scrubs messages
and logs knows all of them (invariant I7). Separate from the HTTP client because sinks with
OAuth (`connectors.http.oauth`) build auth objects of their own, and because this is the part a
security review reads.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import requests
from requests.auth import AuthBase

from sync.settings import Secret

REDACTED = "***"


class Redactor:
    """Replaces every known secret (and its URL-encoded forms) in a text with `***`.

    Secrets shorter than 4 characters are ignored: scrubbing "a" would destroy every message
    while protecting nothing.
    """

    def __init__(self, secrets: Iterable[str | Secret] = ()) -> None:
        self._needles: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | Secret) -> None:
        """Also scrub these values (and their percent-encoded forms) from now on."""
        for secret in secrets:
            value = secret.reveal() if isinstance(secret, Secret) else secret
            if len(value) < 4:
                continue
            for form in (value, quote(value, safe=""), quote_plus(value)):
                if form not in self._needles:
                    self._needles.append(form)
        # Longest first, so a secret that contains another is scrubbed whole.
        self._needles.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text


def redact(text: str, secrets: Iterable[str | Secret]) -> str:
    """Scrub `secrets` from `text`: the function form of `Redactor` for one-off messages."""
    return Redactor(secrets)(text)


class SecretAuth(AuthBase):
    """An auth object that also lists the strings a redactor must scrub."""

    def secrets(self) -> tuple[str, ...]:
        """Every form in which this auth's secret travels (raw, or base64 inside a header)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class BearerAuth(SecretAuth):
    """`Authorization: Bearer <token>` (Harvest, Xero, QuickBooks)."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return r

    def secrets(self) -> tuple[str, ...]:
        return (self._token.reveal(),)


class BasicAuth(SecretAuth):
    """HTTP Basic (Toggl: user = API token, password = the literal `api_token`)."""

    def __init__(self, user: Secret | str, password: Secret | str) -> None:
        self._user = user if isinstance(user, Secret) else Secret(user)
        self._password = password if isinstance(password, Secret) else Secret(password)

    def _encoded(self) -> str:
        pair = f"{self._user.reveal()}:{self._password.reveal()}".encode()
        return base64.b64encode(pair).decode("ascii")

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Basic {self._encoded()}"
        return r

    def secrets(self) -> tuple[str, ...]:
        return (self._user.reveal(), self._password.reveal(), self._encoded())


class HeaderAuth(SecretAuth):
    """A custom header carrying the secret, e.g. Clockify's `X-Api-Key`."""

    def __init__(self, header: str, secret: Secret) -> None:
        self._header = header
        self._secret = secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers[self._header] = self._secret.reveal()
        return r

    def secrets(self) -> tuple[str, ...]:
        return (self._secret.reveal(),)
