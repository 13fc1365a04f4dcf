"""Credentials on the wire.

The auth objects put a secret where its service expects it (a bearer token, HTTP Basic, a
custom header) and list every form in which it travels, so the `sync.redaction.Redactor` that
scrubs messages and logs knows all of them (invariant I7). Separate from the HTTP client
because sinks with OAuth (`connectors.http.oauth`) build auth objects of their own, and because
this is the part a security review reads.
"""

from __future__ import annotations

import base64

import requests
from requests.auth import AuthBase

from sync.settings import Secret


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
