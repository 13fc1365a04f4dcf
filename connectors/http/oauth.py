"""OAuth2 access tokens from a rotating refresh token (Xero, QuickBooks Online).

Both services hand out a new refresh token on (almost) every refresh and stop honouring the old
one soon after, so the new one is saved through the `CredentialStore` the moment it arrives,
before the access token is used: a crash after the refresh then loses nothing.

Which refresh token is sent: the stored (rotated) one first, falling back to the one in the
config. The config's token is only the seed of the chain, so after the first refresh it is
normally stale; but when the operator re-authorises the app they put a *new* token in the
config, while the store still holds the old, now refused, one. So when the service answers
`invalid_grant` to the stored token and the config holds a different token, that one is tried
once; if it works, its successor replaces the stored token and the chain continues from the
operator's new grant. Trying a stale config token costs one refused request and changes
nothing. When both are refused the operator gets `CredentialsRejected` saying what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from connectors.http.auth import BasicAuth, BearerAuth
from connectors.http.client import HttpClient
from connectors.http.errors import HttpRejected
from sync.ports import ConnectorError, CredentialsRejected, CredentialStore
from sync.settings import QuickBooksSettings, Secret, XeroSettings

T = TypeVar("T")

REFRESH_MARGIN_SECONDS = 60
"""An access token is refreshed this long before it expires, so no request carries a token
that dies in flight."""


DEFAULT_LIFETIME_SECONDS = 1800
"""Assumed when a token answer has no usable `expires_in` (Xero's tokens live 30 min)."""


class _InvalidGrant(Exception):
    """The service refused this refresh token (expired, revoked or already rotated away)."""


class RefreshingTokens:
    """Hands out a valid access token, refreshing (and persisting the rotation) when needed.

    `http` is a client for the token endpoint (`token_url` is absolute, on its origin);
    `store_key` names the rotated token in `credentials` (`xero:<sink>:refresh_token`);
    `setting` is the sink's YAML path (`invoicing[1]`), named in every credentials error;
    `service` and `reauthorise` word those errors ("Xero", "connect the app again in ...").
    """

    def __init__(
        self,
        *,
        http: HttpClient,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        refresh_token: Secret,
        credentials: CredentialStore,
        store_key: str,
        setting: str,
        service: str,
        reauthorise: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client = BasicAuth(client_id, client_secret)
        self._configured = refresh_token
        self._credentials = credentials
        self._store_key = store_key
        self._setting = setting
        self._service = service
        self._reauthorise = reauthorise
        self._clock = clock
        self._access: Secret | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0
        http.redact.add(refresh_token, client_secret)

    def __repr__(self) -> str:
        return f"RefreshingTokens({self._service!r}, {self._store_key!r})"

    def auth(self) -> BearerAuth:
        """`Authorization: Bearer <access token>` for the next API request."""
        return BearerAuth(self.access_token())

    def access_token(self) -> Secret:
        """A cached access token while it has more than a minute to live, else a fresh one.

        The lock keeps two threads of one process (scheduler and web) from both spending the
        same refresh token.
        """
        with self._lock:
            fresh = self._clock() < self._expires_at - REFRESH_MARGIN_SECONDS
            if self._access is not None and fresh:
                return self._access
            return self._refresh()

    def forget(self) -> None:
        """Drop the cached access token (the API refused it): the next call refreshes."""
        self._access = None

    def call(self, request: Callable[[BearerAuth], T]) -> T:
        """Run one API request with the current token. When the API refuses a token that was
        cached (revoked before its time), refresh once and try again; a refused fresh token is
        the operator's to fix, so that error is raised as it is.
        """
        for attempt in (1, 2):
            before = self.refreshes
            auth = self.auth()
            try:
                return request(auth)
            except CredentialsRejected:
                if attempt == 2 or self.refreshes != before:
                    raise
                self.forget()
        raise AssertionError("unreachable")  # pragma: no cover

    def _refresh(self) -> Secret:
        stored = self._credentials.load(self._store_key)
        configured = self._configured.reveal()
        for token in dict.fromkeys(t for t in (stored, configured) if t):
            try:
                payload = self._grant(token)
            except _InvalidGrant:
                continue
            return self._accept(payload, used=token, stored=stored)
        raise CredentialsRejected(
            f"{self._service} refused the refresh token (invalid_grant): the connection must be "
            f"authorised again. {self._reauthorise}, put the new refresh token in "
            f"{self._setting}.refresh_token and run again; a new token there replaces the "
            "stored one as soon as the stored one is refused"
        )

    def _grant(self, refresh_token: str) -> dict[str, Any]:
        """One refresh-token grant; `_InvalidGrant` when the token is refused."""
        self._http.redact.add(refresh_token)
        try:
            response = self._http.request_json(
                "POST",
                self._token_url,
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                auth=self._client,
            )
        except HttpRejected as exc:
            if "invalid_grant" in exc.api_message:
                raise _InvalidGrant() from None
            if "invalid_client" in exc.api_message:
                raise CredentialsRejected(
                    f"{self._service} refused the app's credentials (invalid_client): check "
                    f"{self._setting}.client_id and {self._setting}.client_secret"
                ) from None
            raise
        payload = response.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
            raise ConnectorError(
                f"{self._service}: the token endpoint answered without an access token",
                kind="invalid_response",
            )
        return payload

    def _accept(self, payload: dict[str, Any], *, used: str, stored: str | None) -> Secret:
        """Persist the rotated refresh token first, then cache the access token."""
        rotated = payload.get("refresh_token")
        current = rotated if isinstance(rotated, str) and rotated else used
        self._http.redact.add(current, payload["access_token"])
        if current != stored:
            self._credentials.save(self._store_key, current)
        self.refreshes += 1
        lifetime = str(payload.get("expires_in", "")).strip()
        seconds = int(lifetime) if lifetime.isdigit() else DEFAULT_LIFETIME_SECONDS
        self._access = Secret(payload["access_token"])
        self._expires_at = self._clock() + seconds
        return self._access


def oauth_clients(
    settings: XeroSettings | QuickBooksSettings,
    credentials: CredentialStore,
    *,
    base_url: str,
    service: str,
    account_setting: str,
    reauthorise: str,
    http: HttpClient | None,
    token_http: HttpClient | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> tuple[HttpClient, RefreshingTokens]:
    """The API client and the token source an OAuth2 sink needs, built from its settings.

    `account_setting` names the setting that picks the account (`tenant_id`, `realm_id`) for
    errors about the API; token errors name `client_secret`. Given clients (tests) win.
    """
    secrets = (settings.client_secret, settings.refresh_token)
    api = http or HttpClient(
        settings.base_url or base_url,
        name=settings.name,
        credential_setting=f"{settings.yaml_path}.{account_setting}",
        secrets=secrets,
        sleep=sleep,
        clock=clock,
    )
    token_client = token_http or HttpClient(
        settings.token_url,
        name=f"{settings.name} (token)",
        credential_setting=f"{settings.yaml_path}.client_secret",
        secrets=secrets,
        sleep=sleep,
        clock=clock,
    )
    tokens = RefreshingTokens(
        http=token_client,
        token_url=settings.token_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        refresh_token=settings.refresh_token,
        credentials=credentials,
        store_key=f"{service.lower()}:{settings.name}:refresh_token",
        setting=settings.yaml_path,
        service=service,
        reauthorise=reauthorise,
        clock=clock,
    )
    return api, tokens
