"""Logging: readable lines on a terminal, JSON lines otherwise, secrets scrubbed from both.

The redaction filter sits on the handler, so no record reaches stderr without passing it,
whichever library logged it (I7).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a log record's final text with `***`."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = secrets  # shared list: secrets added after setup are honoured too

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            if secret and len(secret) >= 4:
                message = message.replace(secret, "***")
                if record.exc_text:
                    record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = message, None
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


def configure_logging(*, verbose: bool, debug: bool, secrets: Sequence[str]) -> None:
    """Send logs to stderr at WARNING (INFO with -v, DEBUG with --debug)."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "stripe", "alembic", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING) if not debug else level)
