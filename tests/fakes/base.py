"""The shared machinery of the tracker fakes: a threaded HTTP server on 127.0.0.1, a request
log, injected failures and JSON with exact decimals.

A fake subclasses `FakeService`, implements `authorize` (None when the credentials are good,
else the error `Reply`) and `handle`, and is used as a context manager:

    with FakeHarvest() as fake:
        fake.add(hours="1.5")
        ... HarvestSource(settings(base_url=fake.base_url)) ...

`fail_next(n, status, retry_after=...)` makes the next n requests (optionally only those whose
path contains `path`) answer with that status before any auth or routing, which is how tests
exercise 429 + Retry-After, 5xx and quota answers.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

_MARKER = f"@dec{uuid.uuid4().hex}:"  # never occurs in data: random per process


def dumps(value: Any) -> str:
    """Compact JSON in which every Decimal is written as the exact number it is.

    json can only write floats, so each Decimal goes out as a marked string (through the C
    encoder's `default` hook, no Python recursion) whose quotes and marker are then dropped.
    """
    text = json.dumps(value, separators=(",", ":"), default=_marked)
    if _MARKER not in text:
        return text
    parts = text.split(f'"{_MARKER}')
    return parts[0] + "".join(part.replace('"', "", 1) for part in parts[1:])


def _marked(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{_MARKER}{value}"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FakeClock:
    """Epoch seconds that advance only when the code under test sleeps: inject `clock` as the
    clock and `clock.sleep` as the sleep, then assert on `sleeps`.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: status, body text (JSON unless headers say otherwise), extra headers."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON answer."""
        return cls(status, dumps(value), dict(headers or {}))


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """A request as the fake saw it. `query` keeps the last value of each parameter."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON with exact decimals (None when empty)."""
        return json.loads(self.body, parse_float=Decimal) if self.body else None


@dataclass(slots=True)
class _Failure:
    status: int
    headers: dict[str, str]
    body: str
    path: str | None


class FakeService:
    """A fake HTTP service on 127.0.0.1, port chosen by the OS, served from a thread."""

    prefix = ""  # the API's path prefix, e.g. "/v2"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[FakeRequest] = []
        self._failures: deque[_Failure] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, port: int = 0) -> Self:
        """Listen on 127.0.0.1:`port` (0: any free port) and serve in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`."""
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The base URL an adapter is configured with."""
        return self.origin + self.prefix

    # -- failure injection and the request log ---------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        *,
        retry_after: int | str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `count` requests (whose path contains `path`, if given) with
        `status` before auth and routing; `retry_after` sets the `Retry-After` header.
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        text = dumps(body if body is not None else {"message": f"injected {status}"})
        with self.lock:
            for _ in range(count):
                self._failures.append(_Failure(status, extra, text, path))

    def count(self, path_part: str = "", method: str | None = None) -> int:
        """How many requests were made to paths containing `path_part`."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if path_part in r.path and (method is None or r.method == method)
            )

    # -- what a fake implements -----------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> Reply | None:
        """None when the request's credentials are good, else the error answer."""
        raise NotImplementedError

    def handle(self, request: FakeRequest) -> Reply:
        """The answer to an authorised request."""
        raise NotImplementedError

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self, request: FakeRequest) -> Reply:
        """Log, then injected failure, auth, and the fake's own handler (under the lock, so
        tests can mutate the fake between requests without races).
        """
        with self.lock:
            self.requests.append(request)
            for failure in self._failures:
                if failure.path is None or failure.path in request.path:
                    self._failures.remove(failure)
                    return Reply(failure.status, failure.body, failure.headers)
            denied = self.authorize(request)
            if denied is not None:
                return denied
            try:
                return self.handle(request)
            except LookupError:
                return Reply.json(404, {"message": "Not found"})


def _handler_for(service: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = FakeRequest(
                method=self.command,
                path=split.path,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            reply = service.dispatch(request)
            payload = reply.body.encode()
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
            pass

    return Handler


def serve_forever(service: FakeService, port: int, banner: str) -> None:
    """Run a fake in the foreground for manual testing (the `__main__` of each fake)."""
    service.start(port)
    print(f"{type(service).__name__} on {service.base_url}\n{banner}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        service.stop()
