"""The one HTTP layer every adapter (source or sink) is built on.

An adapter composes an `HttpClient` (base URL, auth object, timeouts, a `RetryPolicy`) instead
of subclassing anything. The client does four things and nothing else:

* sends requests on one `requests.Session`, with connect/read timeouts and a `User-Agent` that
  names the program, counting every attempt (`requests_made`, shown in the run summary and
  charged to `Page.requests`, because some trackers allow only 30 requests an hour);
* retries, in exactly one place (a tenacity loop), on connection errors, 5xx and 429, honouring
  `Retry-After` (seconds or an HTTP date) and otherwise backing off exponentially with jitter,
  within a cap per wait and a bound on the total time; a short quota reset (Toggl's 402) is
  waited out once in the same loop;
* classifies every other status through `STATUS_TABLE` into the errors of `sync.ports`, with a
  message that is safe to show and, for credentials, names the setting to fix;
* scrubs every secret it knows from every message and log line (`sync.redaction.Redactor`),
  so a token never reaches a log, an exception or a metric (invariant I7).

The status table and error bodies live in `errors`, the retry loop and `RetryPolicy` in
`retries`, auth objects in `auth`, paging in `paging`; `connectors.http` names the public ones.
Sleep, clock and jitter are injectable so tests never wait for real.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from connectors.http.auth import SecretAuth
from connectors.http.errors import HttpRejected, Outcome, api_message, classify
from connectors.http.retries import (
    QuotaWait,
    Retryable,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
)
from sync.ports import ConnectorError, CredentialsRejected, QuotaExhausted
from sync.redaction import Redactor
from sync.settings import Secret

log = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/prepaid-sync/prepaid-sync"


def default_user_agent() -> str:
    """`prepaid-sync/<version> (+<contact>)`: APIs such as Harvest refuse anonymous clients."""
    try:
        version = metadata.version("prepaid-sync")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        version = "0"
    return f"prepaid-sync/{version} (+{PROJECT_URL})"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to connect, and to wait for each read."""

    connect: float = 5.0
    read: float = 60.0


# --- the client -----------------------------------------------------------------------------


# One shared default, as a default argument is evaluated once anyway (RetryPolicy is frozen).
_DEFAULT_RETRY_POLICY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A decoded JSON answer with the headers a paginator may need (`X-Next-Row-Number`)."""

    status: int
    headers: Mapping[str, str]
    payload: Any


class HttpClient:
    """A session bound to one service: base URL, auth, retries, classification, redaction.

    `name` prefixes every message ("harvest: ..."). `credential_setting` is the YAML path of the
    secret (e.g. `sources[0].token`), named when the service rejects it. `status_overrides`
    re-maps statuses for one service (Toggl: 402 -> QUOTA). `idempotency_header` is the header
    that `idempotency_key=` fills on a request. `clock` is epoch seconds (`time.time`), used for
    the total time bound and for HTTP-date `Retry-After` values.
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        auth: AuthBase | None = None,
        credential_setting: str | None = None,
        user_agent: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeouts = Timeouts(),
        retry: RetryPolicy = _DEFAULT_RETRY_POLICY,
        secrets: Iterable[str | Secret] = (),
        status_overrides: Mapping[int, Outcome] | None = None,
        quota_reset_header: str = "X-Toggl-Quota-Resets-In",
        idempotency_header: str = "Idempotency-Key",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.auth = auth
        self.credential_setting = credential_setting
        self.timeout = timeout
        self.retry = retry
        self.status_overrides = dict(status_overrides or {})
        self.quota_reset_header = quota_reset_header
        self.idempotency_header = idempotency_header
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent or default_user_agent()
        self.session.headers["Accept"] = "application/json"
        self.session.headers.update(headers or {})
        self.redact = Redactor(secrets)
        if isinstance(auth, SecretAuth):
            self.redact.add(*auth.secrets())
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"HttpClient({self.name!r}, {self.base_url!r})"

    # -- public API ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL for `path`; an absolute `path` must stay on the base URL's origin
        (credentials are never sent to a host a response pointed at).
        """
        if "://" not in path:
            return f"{self.base_url}/{path.lstrip('/')}"
        base, target = urlsplit(self.base_url), urlsplit(path)
        if (base.scheme, base.netloc) != (target.scheme, target.netloc):
            raise ConnectorError(
                self.redact(f"{self.name}: refusing to follow {path} off {self.base_url}"),
                kind="invalid_response",
            )
        return path

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON (floats as Decimal)."""
        return self.request_json("GET", path, params=params).payload

    def post_json(
        self,
        path: str,
        json_body: Any,
        *,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """POST a JSON body (Decimals sent as exact numbers) and decode the JSON answer."""
        return self.request_json(
            "POST", path, params=params, json_body=json_body, idempotency_key=idempotency_key
        ).payload

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        auth: AuthBase | None = None,
    ) -> JsonResponse:
        """`request`, then decode the body; malformed JSON is a `ConnectorError`
        (kind invalid_response), never retried: the same request would get the same body.
        """
        response = self.request(
            method,
            path,
            params=params,
            json_body=json_body,
            data=data,
            headers=headers,
            idempotency_key=idempotency_key,
            auth=auth,
        )
        return JsonResponse(response.status_code, response.headers, self.decode(response))

    def decode(self, response: requests.Response) -> Any:
        """A response body as JSON with exact decimals; an empty body is None."""
        if not response.content:
            return None
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            where = self._where(response.request.method or "?", response.url)
            raise ConnectorError(
                self.redact(f"{self.name}: {where} returned malformed JSON: {exc}"),
                kind="invalid_response",
            ) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        auth: AuthBase | None = None,
    ) -> requests.Response:
        """Send with retries; return a 2xx response or raise a `sync.ports` error.

        `json_body` is sent as JSON, `data` as a form (or raw bytes); `auth` replaces the
        client's auth for this call (an OAuth token endpoint). Every method is retried, so a
        request that creates something must be idempotent: the same `idempotency_key` (or a
        service's own request id) is sent on every retry of the call. Redirects are not
        followed: a custom auth header would travel to wherever a redirect points.
        """
        url = self.url(path)
        send_headers = dict(headers or {})
        body: str | bytes | Mapping[str, Any] | None = data
        if json_body is not None:
            body = encode_json(json_body)
            send_headers.setdefault("Content-Type", "application/json")
        if idempotency_key is not None:
            send_headers[self.idempotency_header] = idempotency_key
        if isinstance(auth, SecretAuth):
            self.redact.add(*auth.secrets())

        def attempt() -> requests.Response:
            return self._attempt(
                method, url, params=params, data=body, headers=send_headers, auth=auth
            )

        return self._with_retries(method, url, attempt)

    # -- internals -----------------------------------------------------------------------------

    def _where(self, method: str, url: str) -> str:
        """`GET /v2/time_entries` style: the path without host or query, secrets scrubbed."""
        return self.redact(f"{method} {urlsplit(url).path}")

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        data: Any,
        headers: Mapping[str, str],
        auth: AuthBase | None,
    ) -> requests.Response:
        where = self._where(method, url)
        self.requests_made += 1
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                auth=auth or self.auth,
                timeout=(self.timeout.connect, self.timeout.read),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            detail = self.redact(f"{where}: {type(exc).__name__}: {exc}")
            log.debug("%s: %s failed: %s", self.name, where, detail)
            raise Retryable(detail, "network") from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.debug(
            "%s: %s %s -> %s in %.0f ms",
            self.name,
            method,
            self.redact(response.url),
            response.status_code,
            elapsed_ms,
        )
        return self._check(response, where)

    def _check(self, response: requests.Response, where: str) -> requests.Response:
        status = response.status_code
        outcome = classify(status, self.status_overrides)
        if outcome is Outcome.OK:
            return response
        said = self.redact(api_message(response))
        if outcome is Outcome.RETRY:
            delay = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            kind = "rate_limit" if status == 429 else "server"
            raise Retryable(f"{where}: {status} {said}".rstrip(), kind, delay=delay)
        if outcome is Outcome.CREDENTIALS:
            setting = self.credential_setting or "the credentials"
            label = setting.rsplit(".", 1)[-1] if self.credential_setting else "credentials"
            message = f"{self.name}: {label} rejected ({status}): check {setting}"
            raise CredentialsRejected(self.redact(message + (f" ({said})" if said else "")))
        if outcome is Outcome.QUOTA:
            resets_in = _int_header(response.headers.get(self.quota_reset_header))
            if resets_in is None:
                resets_in = _int_header(response.headers.get("Retry-After"))
            detail = f"{where}: quota exhausted ({status})"
            if resets_in is not None and resets_in <= self.retry.quota_wait:
                raise QuotaWait(detail, resets_in)
            when = f"resets in {resets_in} s" if resets_in is not None else "reset time unknown"
            message = self.redact(f"{self.name}: {detail}, {when}")
            raise QuotaExhausted(message, resets_in=resets_in)
        message = self.redact(f"{self.name}: {where} rejected ({status}): {said}".rstrip(": "))
        raise HttpRejected(message, status=status, api_message=said)

    def _with_retries(
        self, method: str, url: str, attempt: Callable[[], requests.Response]
    ) -> requests.Response:
        return call_with_retries(
            attempt,
            name=self.name,
            policy=self.retry,
            redact=self.redact,
            sleep=self._sleep,
            clock=self._clock,
            jitter=self._jitter,
        )


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(0, int(Decimal(value.strip())))
    except ArithmeticError:
        return None


def encode_json(body: Any) -> str:
    """JSON text with every Decimal written as an exact number (json cannot do this itself)."""
    marker = f"@dec{uuid.uuid4().hex}:"
    decimals: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Decimal):
            decimals.append(str(value))
            return f"{marker}{len(decimals) - 1}"
        if isinstance(value, Mapping):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(body), separators=(",", ":"))
    for index in range(len(decimals) - 1, -1, -1):
        text = text.replace(f'"{marker}{index}"', decimals[index])
    return text
