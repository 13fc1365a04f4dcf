"""The status page and a client statement in a real headless Chromium.

The app is served by waitress on 127.0.0.1 in this process. Chromium opens `?token=...`, follows
the redirect with the session cookie it was given, and its DOM (after parsing, as a browser
sees it) must show the right balance and an SVG chart. Screenshots land in tests/artifacts/
(desktop and phone width) for a human to look at. Approving an entry needs a click, which
`--dump-dom` cannot do; the approve form itself is exercised in test_web with werkzeug's client.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waitress.server import create_server

from tests.service_story import TOKEN, seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (.ci/run installs it: apt-get install chromium)",
    ),
]


@pytest.fixture
def base_url(tmp_path: Path, sqlite_url: str) -> Iterator[str]:
    story = seed(tmp_path, sqlite_url)
    server: Any = create_server(story.web, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()


def chromium(
    url: str, profile: Path, *, screenshot: Path | None = None, size: str = "1280,1600"
) -> str:
    """Run headless Chromium on `url`: the DOM it built, or a screenshot into `screenshot`."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
    ]
    command += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    result = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_status_page_in_a_browser(base_url: str, tmp_path: Path) -> None:
    dom = chromium(f"{base_url}/?token={TOKEN}", tmp_path / "profile")
    assert "<h1>prepaid-sync</h1>" in dom
    assert "950.00 EUR" in dom
    assert dom.count("<svg") == 2
    assert "Password reset" in dom and ">Approve</button>" in dom
    assert TOKEN not in dom
    denied = chromium(f"{base_url}/", tmp_path / "fresh-profile")
    assert "unauthorized" in denied and "950.00" not in denied

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status.png"
    shot.unlink(missing_ok=True)
    chromium(f"{base_url}/?token={TOKEN}", tmp_path / "profile", screenshot=shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_statement_in_a_browser(base_url: str, tmp_path: Path) -> None:
    url = f"{base_url}/statements/acme?token={TOKEN}"
    dom = chromium(url, tmp_path / "profile")
    assert "<h1>Statement: ACME Corp</h1>" in dom
    assert "<strong>950.00</strong>" in dom  # the closing balance
    assert dom.count("<svg") == 1
    assert "Navigation &amp; &lt;header&gt;" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    for name, size in (("statement.png", "1280,1600"), ("statement-phone.png", "390,844")):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        chromium(url, tmp_path / "profile", screenshot=shot, size=size)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
