"""The container recipe, read statically (no Docker daemon needed), and its health check run
for real against the WSGI app on 127.0.0.1."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from waitress.server import create_server

from sync.app import App
from sync.service.web import WebApp
from tests.support import ROOT, money_customer, settings_for


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def only(keyword: str) -> str:
    values = [rest for key, rest in instructions() if key == keyword]
    assert len(values) == 1, f"{keyword}: {values}"
    return values[0]


def test_base_image_install_and_paths() -> None:
    # CI passes a stand-in base built from Debian bookworm; users get the official image, pinned
    # to the same Debian release (the plain `3.11-slim` tag moved to a newer one).
    assert only("ARG") == "PYTHON_IMAGE=python:3.11-slim-bookworm"
    assert only("FROM") == "${PYTHON_IMAGE}"
    env = dict(pair.split("=", 1) for pair in shlex.split(only("ENV")))
    assert env["PREPAID_CONFIG"] == "/config/config.yaml"
    runs = [rest for key, rest in instructions() if key == "RUN"]
    assert any(rest.startswith("pip install .") for rest in runs)
    assert only("EXPOSE") == "8080"
    assert json.loads(only("VOLUME")) == ["/data"]
    copied = [rest for key, rest in instructions() if key == "COPY"]
    assert copied == ["pyproject.toml README.md ./", "sync ./sync", "connectors ./connectors"]


def test_runs_as_a_non_root_user_created_for_it() -> None:
    steps = instructions()
    user = only("USER")
    assert user.split(":")[0] == "prepaid"
    position = steps.index(("USER", user))
    assert all(key != "RUN" for key, _ in steps[position:])  # nothing runs as root after
    assert any(key == "RUN" and "useradd --system" in rest for key, rest in steps[:position])


def test_entrypoint_is_prepaid_serve() -> None:
    assert json.loads(only("ENTRYPOINT")) == ["prepaid"]
    assert json.loads(only("CMD")) == ["serve"]
    text = (ROOT / "pyproject.toml").read_text()
    assert 'prepaid = "sync.cli:run"' in text


def healthcheck_command() -> list[str]:
    options, _, command = only("HEALTHCHECK").partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert isinstance(argv, list)
    return [str(part) for part in argv]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two apps on 127.0.0.1: one with a database, one whose database cannot be opened."""
    servers: list[Any] = []
    urls = []
    for database in (tmp_path / "ok.db", tmp_path / "missing" / "gone.db"):
        web = WebApp(App(settings_for(f"sqlite:///{database}", money_customer())))
        server = create_server(web, host="127.0.0.1", port=0, threads=1)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        urls.append(f"http://127.0.0.1:{server.effective_port}/healthz")
    yield urls[0], urls[1]
    for server in servers:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()


def test_healthcheck_asks_healthz_with_python(served: tuple[str, str]) -> None:
    argv = healthcheck_command()
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in argv[2]
    healthy, broken = served

    def check(url: str) -> int:
        result = subprocess.run(
            [sys.executable, *argv[1:]],
            env={"PREPAID_HEALTH_URL": url},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Traceback" not in result.stderr
        return result.returncode

    assert check(healthy) == 0
    assert check(broken) == 1  # 503: database unreachable
    assert check("http://127.0.0.1:9/healthz") == 1  # nothing listening


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "*.db", "config.yaml", ".env"} <= ignored
    assert not {"sync", "connectors", "pyproject.toml", "README.md"} & ignored


def test_compose_example_has_postgres_with_health_and_secrets_from_env() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.example.yml").read_text())
    db = compose["services"]["db"]
    app = compose["services"]["prepaid"]
    assert db["image"] == "postgres:16"
    assert db["healthcheck"]["test"] == ["CMD-SHELL", "pg_isready -U prepaid -d prepaid"]
    assert db["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert app["environment"]["PREPAID_CONFIG"] == "/config/config.yaml"
    assert "./config:/config:ro" in app["volumes"]
    assert set(compose["volumes"]) == {"pgdata", "prepaid-data"}
    secrets = ("PASSWORD", "TOKEN", "KEY", "SECRET", "DATABASE_URL")
    for name, value in {**db["environment"], **app["environment"]}.items():
        if any(word in name for word in secrets):
            assert "${" in value, f"{name} must come from the environment"
