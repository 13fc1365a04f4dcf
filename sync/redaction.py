"""The one secret redactor: every known secret, in every form it travels in, becomes `***`.

Invariant I7 says no token reaches a log, an exception or a metric. The HTTP layer scrubs what
it raises and logs, and the CLI's log handler scrubs every record whichever library wrote it;
both use this `Redactor`, so a form of a secret one of them knows (percent-encoded in a URL, a
secret that contains another) is scrubbed by the other too. It lives in the core, with no I/O,
because `connectors` may import only the core's model, settings, ports and this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from sync.settings import Secret

REDACTED = "***"


class Redactor:
    """Replaces every known secret (and its URL-encoded forms) in a text with `***`.

    Secrets shorter than 4 characters are ignored: scrubbing "a" would destroy every message
    while protecting nothing. Secrets added later (once the config is read) are honoured from
    then on by everything that holds this redactor.
    """

    def __init__(self, secrets: Iterable[str | Secret] = ()) -> None:
        self._needles: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | Secret) -> None:
        """Also scrub these values (and their percent-encoded forms) from now on."""
        for secret in secrets:
            value = secret.reveal() if isinstance(secret, Secret) else secret
            if len(value) < 4:
                continue
            for form in (value, quote(value, safe=""), quote_plus(value)):
                if form not in self._needles:
                    self._needles.append(form)
        # Longest first, so a secret that contains another is scrubbed whole.
        self._needles.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text
