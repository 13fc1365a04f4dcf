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
* scrubs every secret it knows from every message and log line (`Redactor`), so a token never
  reaches a log, an exception or a metric (invariant I7).

Paging lives in `connectors.paging`. Sleep, clock and jitter are injectable so tests never
wait for real.
"""

from __future__ import annotations

import email.utils
import enum
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
import tenacity
from requests.auth import AuthBase

from connectors.auth import Redactor, SecretAuth
from sync.ports import (
    ConnectorError,
    CredentialsRejected,
    QuotaExhausted,
    RequestRejected,
    TemporaryFailure,
)
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


# --- classification -------------------------------------------------------------------------


class Outcome(enum.Enum):
    """What a response status means for the caller."""

    OK = "ok"
    RETRY = "retry"  # transient: 429, 5xx (and connection errors)
    CREDENTIALS = "credentials"  # the operator must fix a setting
    QUOTA = "quota"  # a quota is used up until a reset time
    REJECTED = "rejected"  # the request itself is wrong; retrying cannot help


# Statuses not listed fall back by class: 2xx OK, 5xx RETRY, everything else REJECTED. 402 is
# REJECTED by default (Stripe uses it for card errors); Toggl maps it to QUOTA per client.
STATUS_TABLE: Mapping[int, Outcome] = {
    401: Outcome.CREDENTIALS,
    403: Outcome.CREDENTIALS,
    408: Outcome.RETRY,
    429: Outcome.RETRY,
}


def classify(status: int, overrides: Mapping[int, Outcome] | None = None) -> Outcome:
    """The outcome of an HTTP status: `overrides`, then `STATUS_TABLE`, then the status class."""
    if overrides and status in overrides:
        return overrides[status]
    if status in STATUS_TABLE:
        return STATUS_TABLE[status]
    if 200 <= status < 300:
        return Outcome.OK
    if status >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


class HttpRejected(RequestRejected):
    """A `RequestRejected` that keeps the status and the API's own message (a sink treats a 404
    on an invoice it looks up differently from a validation error).
    """

    def __init__(self, message: str, *, status: int, api_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.api_message = api_message


def api_message(response: requests.Response, limit: int = 300) -> str:
    """The service's own explanation from an error body, whatever shape the vendor uses.

    Tried in order: `message`/`Message`, `error_description`, `error` (a string or an object
    with `message`), `detail`, QuickBooks' `Fault.Error[0]`, Xero's `Elements[].ValidationErrors`;
    otherwise the body text, truncated.
    """
    text = response.text or ""
    try:
        body = json.loads(text, parse_float=Decimal)
    except ValueError:
        body = None
    found: str | None = None
    if isinstance(body, str):
        found = body
    elif isinstance(body, dict):
        for key in ("message", "Message", "error_description", "error", "detail", "Detail"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("Message")
            if isinstance(value, str) and value:
                found = value
                break
        fault = body.get("Fault")
        if found is None and isinstance(fault, dict) and fault.get("Error"):
            first = fault["Error"][0]
            found = " ".join(str(first.get(k, "")) for k in ("Message", "Detail")).strip()
        for element in body.get("Elements") or []:
            errors = element.get("ValidationErrors") if isinstance(element, dict) else None
            if errors:
                found = "; ".join(str(e.get("Message", "")) for e in errors)
                break
    message = (found if found is not None else text).strip().replace("\n", " ")
    return message[:limit] + ("..." if len(message) > limit else "")


# --- retry policy ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying a transient failure.

    `attempts` counts the first try. Backoff is `initial * 2**n`, capped at `max_backoff`, with
    up to `jitter` (a fraction) added at random so replicas do not retry in step. `Retry-After`
    is honoured as given; when it asks for more than `max_retry_after` the call gives up at once
    (sleeping through a long ban would block the whole run). No retry starts once `total`
    seconds would be exceeded. A quota reset (402) no longer than `quota_wait` is waited out once.
    """

    attempts: int = 5
    initial: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    total: float = 300.0
    quota_wait: float = 60.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to connect, and to wait for each read."""

    connect: float = 5.0
    read: float = 60.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds to wait: an integer, or an HTTP date relative to `now` (epoch)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class _Retryable(Exception):
    """An attempt that may be retried; carries what the wait and the final error need."""

    def __init__(self, detail: str, kind: str, *, delay: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.delay = delay  # what the server asked for (Retry-After), if anything


class _QuotaWait(_Retryable):
    """A 402 whose quota resets soon enough to wait for it (once)."""

    def __init__(self, detail: str, resets_in: int) -> None:
        super().__init__(detail, "quota", delay=float(resets_in))
        self.resets_in = resets_in


# --- the client -----------------------------------------------------------------------------


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
        retry: RetryPolicy = RetryPolicy(),
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
            raise _Retryable(detail, "network") from None
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
            raise _Retryable(f"{where}: {status} {said}".rstrip(), kind, delay=delay)
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
                raise _QuotaWait(detail, resets_in)
            when = f"resets in {resets_in} s" if resets_in is not None else "reset time unknown"
            message = self.redact(f"{self.name}: {detail}, {when}")
            raise QuotaExhausted(message, resets_in=resets_in)
        message = self.redact(f"{self.name}: {where} rejected ({status}): {said}".rstrip(": "))
        raise HttpRejected(message, status=status, api_message=said)

    def _with_retries(
        self, method: str, url: str, attempt: Callable[[], requests.Response]
    ) -> requests.Response:
        policy = self.retry
        started = self._clock()
        quota_waits = 0

        def wait(state: tenacity.RetryCallState) -> float:
            exc = _exception(state)
            if exc.delay is not None:
                return exc.delay
            backoff = min(policy.max_backoff, policy.initial * 2.0 ** (state.attempt_number - 1))
            return min(policy.max_backoff, backoff * (1 + policy.jitter * self._jitter()))

        def stop(state: tenacity.RetryCallState) -> bool:
            nonlocal quota_waits
            exc = _exception(state)
            if isinstance(exc, _QuotaWait):
                quota_waits += 1
                return quota_waits > 1
            if exc.delay is not None and exc.delay > policy.max_retry_after:
                return True
            elapsed = self._clock() - started
            return (
                state.attempt_number >= policy.attempts
                or elapsed + state.upcoming_sleep > policy.total
            )

        def before_sleep(state: tenacity.RetryCallState) -> None:
            log.info(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                self.name,
                _exception(state).detail,
                state.upcoming_sleep,
                state.attempt_number + 1,
                policy.attempts,
            )

        retrying = tenacity.Retrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _QuotaWait as exc:
            message = f"{self.name}: {exc.detail}, still exhausted after waiting {exc.resets_in} s"
            raise QuotaExhausted(self.redact(message), resets_in=exc.resets_in) from None
        except _Retryable as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            hint = ""
            if exc.delay is not None and exc.delay > policy.max_retry_after:
                hint = f" (server asked to wait {exc.delay:.0f} s)"
            message = f"{self.name}: {exc.detail}: gave up after {tries} attempt(s){hint}"
            raise TemporaryFailure(self.redact(message), kind=exc.kind) from None


def _exception(state: tenacity.RetryCallState) -> _Retryable:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert isinstance(exc, _Retryable)
    return exc


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
