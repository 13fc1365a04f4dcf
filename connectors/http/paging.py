"""Paged listings: a `Paginator` reads the next token from a response and shapes the next
request; `paginate` drives one over an `HttpClient`.

Kept apart from the HTTP client because it is the other half of what a new tracker adapter
composes (the client sends, the paginator walks), and because it has one rule of its own: a
token that repeats is an error (`PaginationLoop`), never an endless loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from connectors.http.client import HttpClient, JsonResponse, encode_json
from sync.ports import ConnectorError


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request of a paged listing: what a paginator shapes for the next page."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    json_body: Any = None

    def identity(self) -> str:
        """A stable text for the repeated-token guard."""
        return encode_json([self.method, self.path, sorted(self.params.items()), self.json_body])


class Paginator(Protocol):
    """A paging scheme's two jobs: read the next token from a response, shape the next request."""

    def next_token(self, response: JsonResponse) -> object | None:
        """The token for the next page, or None when this was the last page."""
        ...

    def shape(self, previous: PageRequest, token: object) -> PageRequest:
        """The request for the page that `token` names."""
        ...


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A page as `paginate` yields it: 1-based number, decoded body, whether it is the last."""

    number: int
    payload: Any
    last: bool


class PaginationLoop(ConnectorError):
    """A service handed back a page token it had already given: stopping, not looping forever."""

    kind = "invalid_response"


def paginate(http: HttpClient, first: PageRequest, paginator: Paginator) -> Iterator[FetchedPage]:
    """Fetch `first` and every following page until the paginator finds no next token."""
    request: PageRequest | None = first
    seen: set[object] = set()
    number = 0
    while request is not None:
        response = http.request_json(
            request.method, request.path, params=request.params, json_body=request.json_body
        )
        number += 1
        token = paginator.next_token(response)
        yield FetchedPage(number, response.payload, token is None)
        if token is None:
            return
        if token in seen:
            raise PaginationLoop(
                http.redact(f"{http.name}: page token {token!r} repeated after page {number}")
            )
        seen.add(token)
        request = paginator.shape(request, token)


@dataclass(frozen=True, slots=True)
class LinkPaginator:
    """Follow a next-page URL found in the body (Harvest's `links.next`) until it is null."""

    keys: tuple[str, ...] = ("links", "next")

    def next_token(self, response: JsonResponse) -> object | None:
        node: Any = response.payload
        for key in self.keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, str) and node else None

    def shape(self, previous: PageRequest, token: object) -> PageRequest:
        # The link already carries every query parameter (and the cursor).
        return replace(previous, path=str(token), params={})


@dataclass(frozen=True, slots=True)
class HeaderRowPaginator:
    """A row number in a response header, sent back in the JSON body (Toggl Reports v3)."""

    header: str = "X-Next-Row-Number"
    body_field: str = "first_row_number"

    def next_token(self, response: JsonResponse) -> object | None:
        value = response.headers.get(self.header)
        return int(value) if value and value.strip().isdigit() else None

    def shape(self, previous: PageRequest, token: object) -> PageRequest:
        return replace(previous, json_body={**previous.json_body, self.body_field: token})


@dataclass(frozen=True, slots=True)
class PageNumberPaginator:
    """`page` numbers with a page size: a bare-array page shorter than the size is the last.

    The token is the page's first and last item, so a service that ignores `page` and keeps
    answering the same full page is caught by the repeated-token guard.
    """

    size: int
    page_param: str = "page"

    def next_token(self, response: JsonResponse) -> object | None:
        items = response.payload
        if not isinstance(items, list) or not items or len(items) < self.size:
            return None
        return encode_json([items[0], items[-1]])

    def shape(self, previous: PageRequest, token: object) -> PageRequest:
        page = int(previous.params.get(self.page_param, 1)) + 1
        return replace(previous, params={**previous.params, self.page_param: page})
