"""The shared HTTP layer: retries, Retry-After, classification, redaction, pagination."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from connectors.http import (
    BasicAuth,
    BearerAuth,
    HeaderAuth,
    HeaderRowPaginator,
    HttpClient,
    HttpRejected,
    LinkPaginator,
    Outcome,
    PageNumberPaginator,
    PageRequest,
    PaginationLoop,
    RetryPolicy,
    default_user_agent,
    encode_json,
    paginate,
    parse_retry_after,
)
from sync.ports import (
    ConnectorError,
    CredentialsRejected,
    QuotaExhausted,
    RequestRejected,
    TemporaryFailure,
)
from sync.redaction import Redactor
from sync.settings import Secret
from tests.fakes.base import FakeClock

BASE = "https://api.example.test/v1"
TOKEN = "tok-SECRET-123456"


def client(clock: FakeClock, **kwargs: Any) -> HttpClient:
    kwargs.setdefault("auth", BearerAuth(Secret(TOKEN)))
    kwargs.setdefault("credential_setting", "sources[0].token")
    return HttpClient(
        BASE, name="demo", sleep=clock.sleep, clock=clock, jitter=lambda: 0.0, **kwargs
    )


@responses.activate(assert_all_requests_are_fired=True)
def test_get_json_sends_auth_user_agent_and_parses_decimals() -> None:
    responses.get(f"{BASE}/things", body='{"hours": 1.10, "n": 3}')
    clock = FakeClock()
    http = client(clock)
    assert http.get_json("/things", {"a": 1}) == {"hours": Decimal("1.10"), "n": 3}
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["User-Agent"] == default_user_agent()
    assert default_user_agent().startswith("prepaid-sync/")
    assert sent.url == f"{BASE}/things?a=1"
    assert http.requests_made == 1


@responses.activate(assert_all_requests_are_fired=True)
def test_429_then_success_honours_retry_after_seconds() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/x", json={"ok": True})
    clock = FakeClock()
    http = client(clock)
    assert http.get_json("/x") == {"ok": True}
    assert clock.sleeps == [7.0]
    assert http.requests_made == 2


@responses.activate(assert_all_requests_are_fired=True)
def test_retry_after_as_http_date() -> None:
    clock = FakeClock(start=1_800_000_000.0)
    # 1_800_000_030 = Fri, 15 Jan 2027 08:00:30 GMT
    responses.get(f"{BASE}/x", status=503, headers={"Retry-After": "Fri, 15 Jan 2027 08:00:30 GMT"})
    responses.get(f"{BASE}/x", json=[])
    assert client(clock).get_json("/x") == []
    assert clock.sleeps == [30.0]


@responses.activate(assert_all_requests_are_fired=True)
def test_5xx_backs_off_exponentially_then_gives_up_with_temporary_failure() -> None:
    for _ in range(4):
        responses.get(f"{BASE}/x", status=502, body="bad gateway")
    clock = FakeClock()
    http = client(clock, retry=RetryPolicy(attempts=4, initial=1.0, max_backoff=3.0))
    with pytest.raises(TemporaryFailure) as err:
        http.get_json("/x")
    assert clock.sleeps == [1.0, 2.0, 3.0]
    assert err.value.kind == "server"
    assert str(err.value) == "demo: GET /v1/x: 502 bad gateway: gave up after 4 attempt(s)"


@responses.activate(assert_all_requests_are_fired=True)
def test_jitter_adds_up_to_the_configured_fraction() -> None:
    responses.get(f"{BASE}/x", status=500)
    responses.get(f"{BASE}/x", json={})
    clock = FakeClock()
    http = HttpClient(
        BASE,
        name="demo",
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda: 1.0,
        retry=RetryPolicy(initial=2.0, jitter=0.5),
    )
    http.get_json("/x")
    assert clock.sleeps == [3.0]


@responses.activate(assert_all_requests_are_fired=True)
def test_retry_after_beyond_cap_gives_up_at_once() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "3600"})
    clock = FakeClock()
    with pytest.raises(TemporaryFailure) as err:
        client(clock).get_json("/x")
    assert clock.sleeps == []
    assert err.value.kind == "rate_limit"
    assert "server asked to wait 3600 s" in str(err.value)


@responses.activate(assert_all_requests_are_fired=True)
def test_total_time_bound_stops_retrying() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "100"})
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "100"})
    clock = FakeClock()
    with pytest.raises(TemporaryFailure):
        client(clock, retry=RetryPolicy(total=150.0)).get_json("/x")
    assert clock.sleeps == [100.0]


@responses.activate(assert_all_requests_are_fired=True)
def test_connection_error_is_retried() -> None:
    responses.get(f"{BASE}/x", body=requests.ConnectionError("refused"))
    responses.get(f"{BASE}/x", json={"ok": 1})
    clock = FakeClock()
    assert client(clock).get_json("/x") == {"ok": 1}
    assert clock.sleeps == [1.0]


@responses.activate(assert_all_requests_are_fired=True)
def test_connection_errors_exhausted_are_network_failures() -> None:
    responses.get(f"{BASE}/x", body=requests.ConnectionError("refused"))
    clock = FakeClock()
    with pytest.raises(TemporaryFailure) as err:
        client(clock, retry=RetryPolicy(attempts=1)).get_json("/x")
    assert err.value.kind == "network"
    assert str(err.value) == (
        "demo: GET /v1/x: ConnectionError: refused: gave up after 1 attempt(s)"
    )


@pytest.mark.parametrize("status", [401, 403])
@responses.activate(assert_all_requests_are_fired=True)
def test_credentials_rejected_names_the_setting(status: int) -> None:
    responses.get(f"{BASE}/x", status=status, json={"error": "invalid_token"})
    with pytest.raises(CredentialsRejected) as err:
        client(FakeClock()).get_json("/x")
    assert str(err.value) == (
        f"demo: token rejected ({status}): check sources[0].token (invalid_token)"
    )


@responses.activate(assert_all_requests_are_fired=True)
def test_422_is_rejected_with_the_apis_message() -> None:
    responses.get(f"{BASE}/x", status=422, json={"message": "per_page must be <= 2000"})
    with pytest.raises(HttpRejected) as err:
        client(FakeClock()).get_json("/x")
    assert isinstance(err.value, RequestRejected)
    assert err.value.status == 422
    assert str(err.value) == "demo: GET /v1/x rejected (422): per_page must be <= 2000"


@responses.activate(assert_all_requests_are_fired=True)
def test_api_message_shapes_of_other_vendors() -> None:
    responses.get(
        f"{BASE}/qb", status=400, json={"Fault": {"Error": [{"Message": "Bad", "Detail": "x"}]}}
    )
    responses.get(
        f"{BASE}/xero",
        status=400,
        json={"Elements": [{"ValidationErrors": [{"Message": "A"}, {"Message": "B"}]}]},
    )
    responses.get(f"{BASE}/text", status=404, body="not here")
    http = client(FakeClock())
    for path, expected in (("qb", "Bad x"), ("xero", "A; B"), ("text", "not here")):
        with pytest.raises(HttpRejected) as err:
            http.get_json(path)
        assert err.value.api_message == expected


@responses.activate(assert_all_requests_are_fired=True)
def test_402_short_reset_waits_once_then_succeeds() -> None:
    quota = {"X-Toggl-Quota-Resets-In": "40", "X-Toggl-Quota-Remaining": "0"}
    responses.get(f"{BASE}/x", status=402, headers=quota)
    responses.get(f"{BASE}/x", json={"ok": 1})
    clock = FakeClock()
    http = client(clock, status_overrides={402: Outcome.QUOTA})
    assert http.get_json("/x") == {"ok": 1}
    assert clock.sleeps == [40.0]


@responses.activate(assert_all_requests_are_fired=True)
def test_402_short_reset_twice_raises_quota() -> None:
    quota = {"X-Toggl-Quota-Resets-In": "40"}
    responses.get(f"{BASE}/x", status=402, headers=quota)
    responses.get(f"{BASE}/x", status=402, headers=quota)
    clock = FakeClock()
    with pytest.raises(QuotaExhausted) as err:
        client(clock, status_overrides={402: Outcome.QUOTA}).get_json("/x")
    assert clock.sleeps == [40.0]
    assert err.value.resets_in == 40


@responses.activate(assert_all_requests_are_fired=True)
def test_402_long_reset_raises_with_reset_time() -> None:
    responses.get(f"{BASE}/x", status=402, headers={"X-Toggl-Quota-Resets-In": "1800"})
    clock = FakeClock()
    with pytest.raises(QuotaExhausted) as err:
        client(clock, status_overrides={402: Outcome.QUOTA}).get_json("/x")
    assert clock.sleeps == []
    assert err.value.resets_in == 1800
    assert str(err.value) == "demo: GET /v1/x: quota exhausted (402), resets in 1800 s"


@responses.activate(assert_all_requests_are_fired=True)
def test_402_without_override_is_a_rejection() -> None:
    responses.get(f"{BASE}/x", status=402, json={"message": "card declined"})
    with pytest.raises(HttpRejected):
        client(FakeClock()).get_json("/x")


@responses.activate(assert_all_requests_are_fired=True)
def test_malformed_json_is_invalid_response_and_not_retried() -> None:
    responses.get(f"{BASE}/x", body="<html>oops")
    http = client(FakeClock())
    with pytest.raises(ConnectorError) as err:
        http.get_json("/x")
    assert err.value.kind == "invalid_response"
    assert str(err.value).startswith("demo: GET /v1/x returned malformed JSON: ")
    assert http.requests_made == 1


@responses.activate(assert_all_requests_are_fired=True)
def test_post_json_sends_exact_decimals_and_idempotency_key() -> None:
    responses.post(f"{BASE}/invoices", json={"id": 1})
    http = client(FakeClock())
    body = {"amount": Decimal("1234.50"), "lines": [{"q": Decimal("0.1")}], "s": "x"}
    assert http.post_json("/invoices", body, idempotency_key="refill-1:create") == {"id": 1}
    sent = responses.calls[0].request
    assert sent.body == '{"amount":1234.50,"lines":[{"q":0.1}],"s":"x"}'
    assert sent.headers["Idempotency-Key"] == "refill-1:create"
    assert sent.headers["Content-Type"] == "application/json"


@responses.activate(assert_all_requests_are_fired=True)
def test_form_body_custom_headers_and_per_request_auth() -> None:
    responses.post("https://api.example.test/token", json={"access_token": "new"})
    http = client(FakeClock())
    http.request_json(
        "POST",
        "https://api.example.test/token",
        data={"grant_type": "refresh_token"},
        headers={"X-Extra": "1"},
        auth=BasicAuth("client-id", Secret("client-secret-9")),
    )
    sent = responses.calls[0].request
    assert sent.body == "grant_type=refresh_token"
    assert sent.headers["X-Extra"] == "1"
    assert sent.headers["Authorization"].startswith("Basic ")
    assert "client-secret-9" not in http.redact(
        f"x client-secret-9 {sent.headers['Authorization']}"
    )


def test_absolute_url_to_another_host_is_refused() -> None:
    http = client(FakeClock())
    with pytest.raises(ConnectorError):
        http.url("https://evil.example/steal")
    assert http.url(f"{BASE}/a?b=1") == f"{BASE}/a?b=1"


@responses.activate(assert_all_requests_are_fired=True)
def test_secrets_never_reach_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(f"{BASE}/x", status=500, body=f"token {TOKEN} is odd")
    responses.get(f"{BASE}/y", status=401, json={"message": f"bad token {TOKEN}"})
    responses.get(f"{BASE}/z", body=f"not json {TOKEN}")
    http = client(FakeClock(), retry=RetryPolicy(attempts=2), secrets=["other-secret"])
    texts = []
    for path in ("x?key=" + TOKEN, "y", "z"):
        with pytest.raises(ConnectorError) as err:
            http.get_json(path)
        texts.append(str(err.value))
        texts.append(repr(err.value))
    texts.append(caplog.text)
    texts.append(repr(http))
    assert all(TOKEN not in text for text in texts)
    assert "***" in texts[0]
    assert "GET" in caplog.text and "-> 500" in caplog.text


def test_auth_objects_and_redactor() -> None:
    basic = BasicAuth(Secret("tgl-token-1"), "api_token")
    redact = Redactor(basic.secrets())
    assert repr(basic) == "BasicAuth(***)"
    header = HeaderAuth("X-Api-Key", Secret("ck-key-1234"))
    redact.add(*header.secrets(), "ab")
    assert redact("a tgl-token-1 b ck-key-1234 ab dGdsLXRva2VuLTE6YXBpX3Rva2Vu") == (
        "a *** b *** ab ***"
    )
    assert redact("tgl%2Dtoken") == "tgl%2Dtoken"
    assert Redactor(["a b+c/d"])("x a%20b%2Bc%2Fd y a+b%2Bc%2Fd") == "x *** y ***"


def test_parse_retry_after() -> None:
    assert parse_retry_after("12", 0.0) == 12.0
    assert parse_retry_after(None, 0.0) is None
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after("Fri, 15 Jan 2027 08:00:00 GMT", 1_800_000_010.0) == 0.0


def test_encode_json_keeps_decimal_text() -> None:
    assert encode_json({"a": Decimal("1E+2"), "b": [Decimal("0.10")]}) == '{"a":1E+2,"b":[0.10]}'


@responses.activate(assert_all_requests_are_fired=True)
def test_link_paginator_follows_until_null_and_guards_repeats() -> None:
    responses.get(f"{BASE}/e", json={"links": {"next": f"{BASE}/e?cursor=abc"}, "n": 1})
    responses.get(f"{BASE}/e?cursor=abc", json={"links": {"next": f"{BASE}/e?cursor=abc"}, "n": 2})
    http = client(FakeClock())
    pages = []
    with pytest.raises(PaginationLoop):
        for page in paginate(http, PageRequest("GET", "/e", {"per_page": 5}), LinkPaginator()):
            pages.append((page.number, page.payload["n"], page.last))
    assert pages == [(1, 1, False), (2, 2, False)]


@responses.activate(assert_all_requests_are_fired=True)
def test_header_row_paginator() -> None:
    responses.post(f"{BASE}/search", json=[1], headers={"X-Next-Row-Number": "51"})
    responses.post(
        f"{BASE}/search",
        json=[2],
        match=[responses.matchers.json_params_matcher({"size": 50, "first_row_number": 51})],
    )
    http = client(FakeClock())
    first = PageRequest("POST", "/search", json_body={"size": 50})
    got = [(p.payload, p.last) for p in paginate(http, first, HeaderRowPaginator())]
    assert got == [([1], False), ([2], True)]


@responses.activate(assert_all_requests_are_fired=True)
def test_page_number_paginator_stops_at_short_page_and_catches_ignored_page() -> None:
    responses.get(f"{BASE}/u?page=1&size=2", json=[1, 2])
    responses.get(f"{BASE}/u?page=2&size=2", json=[3])
    http = client(FakeClock())
    first = PageRequest("GET", "/u", {"page": 1, "size": 2})
    assert [p.payload for p in paginate(http, first, PageNumberPaginator(2))] == [[1, 2], [3]]

    responses.get(f"{BASE}/same", json=[1, 2])
    responses.get(f"{BASE}/same", json=[1, 2])
    with pytest.raises(PaginationLoop):
        list(paginate(http, PageRequest("GET", "/same", {"page": 1}), PageNumberPaginator(2)))


@responses.activate(assert_all_requests_are_fired=True)
def test_redirects_are_not_followed_so_credentials_stay_home() -> None:
    responses.get(f"{BASE}/x", status=302, headers={"Location": "https://elsewhere.test/x"})
    with pytest.raises(HttpRejected) as err:
        client(FakeClock()).get_json("/x")
    assert err.value.status == 302
    assert len(responses.calls) == 1
