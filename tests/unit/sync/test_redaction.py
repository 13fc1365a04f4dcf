"""The one redactor (`sync.redaction`), as the CLI's log handler uses it (invariant I7)."""

from __future__ import annotations

import logging
import sys

from sync.cli.logs import RedactingFilter
from sync.redaction import Redactor
from sync.settings import Secret


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("x", logging.ERROR, __file__, 1, message, args, exc_info)


def test_the_log_filter_scrubs_every_form_the_http_layer_knows() -> None:
    redactor = Redactor()
    log_filter = RedactingFilter(redactor)
    redactor.add(
        Secret("s3cret/key+1")
    )  # added after setup, as the CLI does once it has read the config
    line = record("GET %s?token=%s", "/a s3cret/key+1", "s3cret%2Fkey%2B1")
    assert log_filter.filter(line)
    assert line.getMessage() == "GET /a ***?token=***"


def test_the_log_filter_scrubs_the_exception_text_too() -> None:
    redactor = Redactor(["tok-12345"])
    try:
        raise RuntimeError("refused tok-12345")
    except RuntimeError as exc:
        line = record("failed", exc=exc)
    assert sys.exc_info() == (None, None, None)
    RedactingFilter(redactor).filter(line)
    assert line.exc_text is not None and "tok-12345" not in line.exc_text
    assert "refused ***" in line.exc_text


def test_short_secrets_are_left_alone() -> None:
    assert Redactor(["abc"])("abc abcd") == "abc abcd"
