"""The one HTTP layer every adapter is built on (as dlt's `rest_client`); its public API.

An adapter composes an `HttpClient` (base URL, auth object, timeouts, a `RetryPolicy`) and a
paginator instead of subclassing anything. The parts live apart so each reads on its own:
`client` (session, timeouts, the request loop), `errors` (the status table), `retries` (the one
tenacity loop), `auth` (auth objects), `oauth` (refresh-token rotation) and `paging`. Code
outside this package imports from `connectors.http`, never from those modules.
"""

from connectors.http.auth import BasicAuth, BearerAuth, HeaderAuth, SecretAuth
from connectors.http.client import (
    HttpClient,
    JsonResponse,
    Timeouts,
    default_user_agent,
    encode_json,
)
from connectors.http.errors import STATUS_TABLE, HttpRejected, Outcome, api_message, classify
from connectors.http.oauth import RefreshingTokens, oauth_clients
from connectors.http.paging import (
    FetchedPage,
    HeaderRowPaginator,
    LinkPaginator,
    PageNumberPaginator,
    PageRequest,
    PaginationLoop,
    Paginator,
    paginate,
)
from connectors.http.retries import Retryable, RetryPolicy, call_with_retries, parse_retry_after

__all__ = [
    "STATUS_TABLE",
    "BasicAuth",
    "BearerAuth",
    "FetchedPage",
    "HeaderAuth",
    "HeaderRowPaginator",
    "HttpClient",
    "HttpRejected",
    "JsonResponse",
    "LinkPaginator",
    "Outcome",
    "PageNumberPaginator",
    "PageRequest",
    "PaginationLoop",
    "Paginator",
    "RefreshingTokens",
    "RetryPolicy",
    "Retryable",
    "SecretAuth",
    "Timeouts",
    "api_message",
    "call_with_retries",
    "classify",
    "default_user_agent",
    "encode_json",
    "oauth_clients",
    "paginate",
    "parse_retry_after",
]
