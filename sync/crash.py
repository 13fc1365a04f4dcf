"""Named crash points, armed by `PREPAID_CRASH_AT`, so tests can kill a run at an exact step.

`PREPAID_CRASH_AT=after_page_commit` kills the process (SIGKILL, no cleanup, exactly like an
OOM kill or a pulled plug) the first time that point is reached; `name:3` on the third time.
Unarmed, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here if the environment says so."""
    spec = os.environ.get("PREPAID_CRASH_AT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(count) if count else 1):
        os.kill(os.getpid(), signal.SIGKILL)
