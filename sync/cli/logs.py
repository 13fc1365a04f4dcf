"""Logging: readable lines on a terminal, JSON lines otherwise, secrets scrubbed from both.

The redaction filter sits on the handler, so no record reaches stderr without passing it,
whichever library logged it (I7).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from sync.redaction import Redactor


class RedactingFilter(logging.Filter):
    """Runs a log record's final text, and its exception text, through the `Redactor`."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor  # shared: secrets added after setup are honoured too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        record.msg, record.args = self._redact(record.getMessage()), None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data)


def configure_logging(*, verbose: bool, debug: bool, redactor: Redactor) -> None:
    """Send logs to stderr at WARNING (INFO with -v, DEBUG with --debug), through `redactor`."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "stripe", "alembic", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING) if not debug else level)
