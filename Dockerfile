# prepaid-sync: `prepaid serve` (scheduler + health, metrics, webhooks, status page) in one
# background container.
#
#   docker build -t prepaid-sync .
#   docker run -d -p 127.0.0.1:8080:8080 -v "$PWD/config:/config:ro" -v prepaid-data:/data \
#     -e PREPAID_STATUS_TOKEN=... prepaid-sync
#
# The config is read from /config/config.yaml (PREPAID_CONFIG). Inside a container the server
# must listen on all interfaces: set `server: {listen: 0.0.0.0:8080}` in that file (the port
# mapping then decides who can reach it). SQLite lives on the /data volume
# (`database: sqlite:////data/prepaid.db`; write outbox invoices under /data too, since /config
# is mounted read-only); for several replicas use PostgreSQL (see docker-compose.example.yml).
# Config changes are picked up on restart.
#
# The base is pinned to Debian bookworm (the plain `3.11-slim` tag moved to a newer Debian).
# PYTHON_IMAGE lets CI build on a stand-in base where no registry can be reached
# (.ci/container-smoke.sh); everyone else gets the official image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREPAID_CONFIG=/config/config.yaml

# Install the package from the source tree (root-owned, read-only for the service user).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
RUN pip install . && rm -rf /src

RUN groupadd --system --gid 10001 prepaid \
    && useradd --system --uid 10001 --gid prepaid --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin prepaid \
    && mkdir -p /data /config \
    && chown prepaid:prepaid /data

WORKDIR /data
VOLUME ["/data"]
USER prepaid:prepaid
EXPOSE 8080

# No curl in the slim image: ask /healthz with Python (never through a proxy). 200 means the
# database answers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as r\nurl = os.environ.get('PREPAID_HEALTH_URL', 'http://127.0.0.1:8080/healthz')\ntry:\n    answer = r.build_opener(r.ProxyHandler({})).open(url, timeout=4)\n    sys.exit(0 if answer.status == 200 else 1)\nexcept Exception as exc:\n    print(exc)\n    sys.exit(1)"]

# `prepaid serve` stops cleanly on SIGTERM (docker stop) once the page in flight is committed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["prepaid"]
CMD ["serve"]
