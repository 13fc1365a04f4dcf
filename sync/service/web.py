"""HTTP for `prepaid serve`: health, metrics, webhooks, the status page and client statements.

A plain WSGI app on werkzeug's routing and request objects, served by waitress in the same
process as the scheduler. Three audiences, three rules:

- machines (`/healthz`, `/metrics`) get short, stable, unauthenticated answers; whoever may
  reach the port decides who sees them (`server.listen`);
- sinks (`POST /webhooks/<sink>`) prove themselves by signature; a body we cannot verify is a
  400, a state we cannot read yet is a 503 so the sender retries later;
- people (`/`, `/statements/<customer>`) need `server.status_token`: as a bearer header, or
  once as `?token=`, which is traded for an HttpOnly SameSite=Strict cookie holding an HMAC of
  the token (never the token) and a redirect that drops it from the address bar. Forms carry a
  CSRF token, also an HMAC of the status token. Without a status token those pages do not
  exist (404).

Nobody ever sees a traceback: errors are one short line, logged in full only with --debug.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sync.app import App
from sync.books import StaleDecision, decide
from sync.ledger import StoreUnavailable, utcnow
from sync.model import EntryStatus
from sync.ports import ConnectorError, WebhookRejected
from sync.refill import RefillService
from sync.service.metrics import ServiceMetrics, service_registry
from sync.views.statement import build_statement, load_rows
from sync.views.statement_formats import render
from sync.views.status_page import load_status, render_status

log = logging.getLogger("prepaid.web")

WEBHOOK_LIMIT = 1 << 20  # 1 MiB: Stripe's events are a few KiB
FORM_LIMIT = 16 << 10
COOKIE = "prepaid_status"
_SESSION_LABEL = b"prepaid-sync status session v1"
_CSRF_LABEL = b"prepaid-sync status csrf v1"

_CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}

_URLS = Map(
    [
        Rule("/healthz", endpoint="healthz", methods=["GET", "HEAD"]),
        Rule("/metrics", endpoint="metrics", methods=["GET", "HEAD"]),
        Rule("/webhooks/<sink>", endpoint="webhook", methods=["POST"]),
        Rule("/", endpoint="status", methods=["GET", "HEAD"]),
        Rule("/statements/<customer>", endpoint="statement", methods=["GET", "HEAD"]),
        Rule(
            "/entries/<int:entry_id>/<any(approve, exclude):action>",
            endpoint="decide",
            methods=["POST"],
        ),
    ],
    strict_slashes=False,
)


def _derive(token: str, label: bytes) -> str:
    return hmac.new(token.encode(), label, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class WebApp:
    """The WSGI application. `refills` gives the refill service webhooks are applied with
    (the scheduler's, so sink errors are counted once); by default the app's own."""

    def __init__(
        self,
        app: App,
        *,
        metrics: ServiceMetrics | None = None,
        refills: Callable[[], RefillService] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.metrics = metrics
        self.registry = service_registry(app.ledger, app.settings, metrics)
        self._refills = refills or app.refills
        self.clock = clock
        secret = app.settings.server.status_token
        self._token = secret.reveal() if secret else None
        if self._token is None:
            log.warning(
                "status page and statements are disabled: set server.status_token to enable them"
            )
        self._session = _derive(self._token, _SESSION_LABEL) if self._token else ""
        self.csrf = _derive(self._token, _CSRF_LABEL) if self._token else ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request; every failure becomes a short answer, never a traceback."""
        adapter = _URLS.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
            return handler(request, **values)
        except NotFound:
            return _text(404, "not found")
        except MethodNotAllowed as exc:
            response = _text(405, "method not allowed")
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
            return response
        except RequestEntityTooLarge:
            return _text(413, "request body too large")
        except HTTPException as exc:
            return _text(exc.code or 400, exc.name.lower())
        except StoreUnavailable as exc:
            log.error("%s %s: %s", request.method, request.path, exc)
            return _text(503, "database unavailable")
        except Exception as exc:
            log.error("%s %s: internal error: %s", request.method, request.path, type(exc).__name__)
            log.debug("internal error", exc_info=True)
            return _text(500, "internal error")

    # --- machines ---------------------------------------------------------------------------

    def on_healthz(self, request: Request) -> Response:
        """200 when the database answers, else 503."""
        if self.app.ledger.ping():
            return _json(200, {"status": "ok"})
        return _json(503, {"status": "unavailable", "reason": "database unreachable"})

    def on_metrics(self, request: Request) -> Response:
        """The Prometheus text exposition: the ledger's figures read now, this process's
        counters."""
        return Response(generate_latest(self.registry), 200, content_type=CONTENT_TYPE_LATEST)

    # --- webhooks ---------------------------------------------------------------------------

    def on_webhook(self, request: Request, sink: str) -> Response:
        """Verify a delivery with its sink, then apply it once."""
        if self.settings.sink(sink) is None:
            return _json(404, {"error": f"no invoicing sink named {sink!r}"})
        if request.content_length is not None and request.content_length > WEBHOOK_LIMIT:
            self._count_webhook(sink, "too_large")
            return _json(413, {"error": "body larger than 1 MiB"})
        request.max_content_length = WEBHOOK_LIMIT
        body = request.get_data(cache=False)
        service = self._refills()
        adapter = service.sinks.get(sink)
        if adapter is None:
            return _json(404, {"error": f"no invoicing sink named {sink!r}"})
        try:
            event = adapter.parse_webhook(dict(request.headers.items()), body, self.clock())
        except WebhookRejected as exc:
            self._count_webhook(sink, "rejected")
            log.warning("webhook for %s rejected: %s", sink, exc)
            return _json(400, {"error": _short(str(exc))})
        try:
            outcome = service.apply_webhook(sink, event)
        except ConnectorError as exc:
            self._count_webhook(sink, "retry")
            log.warning(
                "webhook %s for %s: invoice state unreadable: %s", event.event_id, sink, exc
            )
            return _json(503, {"error": "invoice state unavailable; retry later"})
        result = "duplicate" if outcome == "duplicate" else "applied"
        self._count_webhook(sink, result)
        log.info("webhook %s %s for %s: %s", event.event_id, event.type, sink, outcome)
        return _json(200, {"outcome": outcome})

    def _count_webhook(self, sink: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.add("prepaid_webhooks_total", sink=sink, result=result)

    # --- people -----------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response | None:
        """None when the request may see the pages; else the answer to give instead."""
        if self._token is None:
            log.info(
                "%s %s: status page disabled (no server.status_token)", request.method, request.path
            )
            return _text(404, "not found")
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and given and _same(given.strip(), self._token):
            return None
        if "token" in request.args:
            if not _same(request.args.get("token", ""), self._token):
                return _unauthorized()
            rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            location = request.path + (f"?{urlencode(rest)}" if rest else "")
            response = Response("", 303, headers={"Location": location})
            response.set_cookie(
                COOKIE,
                self._session,
                httponly=True,
                samesite="Strict",
                secure=request.is_secure,
                path="/",
            )
            return response
        cookie = request.cookies.get(COOKIE)
        if cookie and _same(cookie, self._session):
            return None
        return _unauthorized()

    def on_status(self, request: Request) -> Response:
        """The operator's page."""
        denied = self._authorize(request)
        if denied is not None:
            return denied
        now = self.clock()
        with self.app.ledger.read() as conn:
            data = load_status(conn, self.settings, now)
        notice = None
        decided = request.args.get("decided", "")
        entry, _, status = decided.partition(":")
        if entry.isdigit() and status in (EntryStatus.DEDUCTED, EntryStatus.EXCLUDED):
            notice = f"entry {entry}: {status}"
        return _page(200, render_status(data, csrf=self.csrf, notice=notice))

    def on_decide(self, request: Request, entry_id: int, action: str) -> Response:
        """Approve or exclude one entry from the status page."""
        denied = self._authorize(request)
        if denied is not None:
            return denied
        if request.content_length is not None and request.content_length > FORM_LIMIT:
            return _text(413, "request body too large")
        request.max_content_length = FORM_LIMIT
        request.max_form_memory_size = FORM_LIMIT
        if not _same(request.form.get("csrf", ""), self.csrf):
            return _text(403, "missing or wrong form token: reload the status page")
        decision = "approved" if action == "approve" else "excluded"
        # The form names the figures the page showed; without them nothing is decided, so a
        # button on a stale page can never approve an entry's new figures (I4a).
        version = request.form.get("version", "").strip()
        if not version:
            return _text(400, "missing entry version: reload the status page")
        try:
            results = decide(
                self.app.ledger,
                self.app.pricer,
                [entry_id],
                decision,
                versions={entry_id: version},
            )
        except KeyError:
            return _text(404, f"no entry {entry_id}")
        except StaleDecision as exc:
            return _text(409, f"{exc}; nothing was {decision}: reload the status page")
        log.info("entry %d %s from the status page: %s", entry_id, decision, results[0].status)
        return Response("", 303, headers={"Location": f"/?decided={entry_id}:{results[0].status}"})

    def on_statement(self, request: Request, customer: str) -> Response:
        """A client statement as HTML (default), CSV or JSON."""
        denied = self._authorize(request)
        if denied is not None:
            return denied
        found = self.settings.customer(customer)
        if found is None:
            return _text(404, "not found")
        try:
            start = _date_arg(request, "from")
            end = _date_arg(request, "to")
        except ValueError as exc:
            return _text(400, str(exc))
        if start is not None and end is not None and end < start:
            return _text(400, "to: must not be before from")
        fmt = request.args.get("format", "html")
        if fmt not in _CONTENT_TYPES:
            return _text(400, "format: use html, csv or json")
        with self.app.ledger.read() as conn:
            rows = load_rows(conn, found.id)
        statement = build_statement(
            found,
            rows,
            start=start,
            end=end,
            timezone=self.settings.timezone,
            generated_at=self.clock(),
        )
        response = _page(200, render(statement, fmt), content_type=_CONTENT_TYPES[fmt])
        if fmt != "html":
            name = f"statement-{found.id}.{fmt}"
            response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


def _date_arg(request: Request, name: str) -> dt.date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: not a date, use YYYY-MM-DD") from None


def _short(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "rejected"
    return line[:200]


def _text(status: int, text: str) -> Response:
    return Response(text + "\n", status, content_type="text/plain; charset=utf-8")


def _json(status: int, data: dict[str, Any]) -> Response:
    return Response(json.dumps(data) + "\n", status, content_type="application/json")


def _page(status: int, body: str, *, content_type: str = _CONTENT_TYPES["html"]) -> Response:
    response = Response(body, status, content_type=content_type)
    response.headers.update(_SECURITY_HEADERS)
    return response


def _unauthorized() -> Response:
    response = _text(
        401,
        "unauthorized: send Authorization: Bearer <server.status_token>, or open ?token=<it> once",
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="prepaid-sync"'
    return response
