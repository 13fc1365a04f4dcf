"""What an HTTP status means: the classification table and the errors it leads to.

`classify` maps a status through `STATUS_TABLE` (and a service's own overrides) to an
`Outcome`: fine, retry, a credential the operator must fix, a used-up quota, or a request that
is wrong and cannot succeed by repeating it. `api_message` digs the service's own explanation
out of an error body, whatever shape the vendor uses. Kept apart from the client because this
is the table a reader checks when asking "what happens on a 403?", and because it does no I/O.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from decimal import Decimal

import requests

from sync.ports import RequestRejected


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
