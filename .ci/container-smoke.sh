#!/usr/bin/env bash
# Build the project's Dockerfile and prove the image in a private Docker engine.
#
# Run as root (`make container-test`; .ci/run calls it after `make test`). It:
#   - installs docker.io, mmdebstrap and docker-compose from Debian when missing (services are
#     kept from starting; the machine's own Docker, if any, is never used);
#   - starts its OWN dockerd (own socket, data root, exec root and pid file, overlay2, no
#     bridge, no iptables, no forwarding or masquerading: the machine's networking is not
#     touched); every build and container uses the host network and only 127.0.0.1;
#   - builds a STAND-IN for python:3.11-slim-bookworm, because no container registry can be
#     reached from the CI machines: Debian bookworm (python3 is 3.11) from the Debian mirror
#     this machine's apt already uses, with the machine's CA bundle (HTTPS is re-signed by a
#     local authority here, so pip inside the build needs it) and its apt sources. THAT
#     STAND-IN, AND EVERY IMAGE BUILT ON IT HERE, IS FOR THIS SMOKE TEST ONLY AND IS NEVER
#     PUBLISHED OR PUSHED: users build on the official image (the Dockerfile's default).
#     It is cached under $PREPAID_CI_CACHE (/var/cache/prepaid-ci), keyed by its recipe;
#   - builds the Dockerfile on it, runs the image with a small config (CSV source, outbox sink,
#     status token from the environment, SQLite on a volume, then two replicas on the host's
#     PostgreSQL) and checks what an operator relies on;
#   - removes its containers, volumes, database and daemon (stopped by its PID, its mounts
#     unmounted) on the way out, whatever happened.
#
# Ends with `N passed, N failed` (exit 1 when any failed). When no Docker engine can be started
# on this machine it says why and ends with `0 passed, 0 failed, 1 skipped` (exit 0).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CACHE=${PREPAID_CI_CACHE:-/var/cache/prepaid-ci}
STATE=${PREPAID_CI_STATE:-/var/lib/prepaid-ci}
PG_URL=${PREPAID_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
SUITE=bookworm
STANDIN=prepaid-ci-standin/python:3.11-slim-bookworm
IMAGE=prepaid-sync:ci-smoke
STANDIN_PACKAGES=python3,python3-pip,python3-venv,python-is-python3,ca-certificates
STARTED=$(date +%s)

PASSED=0
FAILED=0
say() { printf '%s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); say "ok   $1"; }
fail() {
  FAILED=$((FAILED + 1))
  say "FAIL $1"
  shift
  local line
  for line in "$@"; do say "     $line"; done
}
# check NAME COMMAND...: pass when the command succeeds; its output explains a failure.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$name"
    [ -n "$out" ] && printf '%s\n' "$out" | tail -n 3 | sed 's/^/     /'
  else
    fail "$name" "${out:-(no output)}"
  fi
  return 0
}
finish() {
  say "container smoke test: $(($(date +%s) - STARTED)) s"
  say "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit
}
skip() {
  say "SKIPPED: no Docker engine on this machine: $*"
  say "(the image was not built or run; nothing about it was checked)"
  say "0 passed, 0 failed, 1 skipped"
  exit 0
}

# --- cleanup: everything this run started, even after a failure ---------------------------

RUN_ID=$$
WORK=$STATE/run-$RUN_ID                # data root, configs, logs
EXEC=/run/prepaid-ci-$RUN_ID           # exec root: short, sockets live under it
SOCK=$EXEC/docker.sock
DOCKERD_PID=
PG_DB=
POLICY_RC_CREATED=
ETC_DOCKER_CREATED=
KEY_JSON_CREATED=

unmount_under() {  # every mount point below the given directories, deepest first
  local dir
  for dir in "$@"; do
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts
  done | sort -r | while read -r point; do umount "$point" 2>/dev/null || umount -l "$point"; done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  case $status in 130 | 143) say "interrupted: cleaning up, then $PASSED passed, $FAILED failed so far" ;; esac
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    local ids
    ids=$(dk ps -aq 2>/dev/null)
    [ -n "$ids" ] && dk rm -f -v $ids >/dev/null 2>&1
    dk volume prune -f >/dev/null 2>&1
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      say "dockerd $DOCKERD_PID did not stop on SIGTERM: killing it"
      kill -KILL "$DOCKERD_PID" 2>/dev/null
    fi
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  # dockerd's own containerd, should dockerd have been killed before it could stop it
  local pidfile pid
  for pidfile in "$EXEC/containerd/containerd.pid" "$WORK/containerd.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  done
  unmount_under "$EXEC" "$WORK"   # the network namespace dockerd leaves under its exec root
  rm -rf "$EXEC" "$WORK"
  if [ -n "$PG_DB" ]; then
    dropdb "${PG_ARGS[@]}" --if-exists "$PG_DB" >/dev/null 2>&1 \
      || say "could not drop database $PG_DB"
  fi
  [ -n "$POLICY_RC_CREATED" ] && rm -f /usr/sbin/policy-rc.d
  [ -n "$KEY_JSON_CREATED" ] && rm -f /etc/docker/key.json
  [ -n "$ETC_DOCKER_CREATED" ] && rmdir /etc/docker 2>/dev/null
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of runs that were killed before they could clean up (their script is gone).
sweep_stale() {
  local dir pid
  for dir in "$STATE"/run-* /run/prepaid-ci-*; do
    [ -d "$dir" ] || continue
    pid=${dir##*-}
    [ "$pid" = "$RUN_ID" ] && continue
    kill -0 "$pid" 2>/dev/null && continue
    say "removing the leftovers of an earlier run: $dir"
    unmount_under "$dir"
    rm -rf "$dir"
  done
}

# --- the tools -----------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || skip "this script must run as root to start its own dockerd (try: sudo make container-test)"

apt_install() {
  local pkgs=("$@")
  [ ${#pkgs[@]} -eq 0 ] && return 0
  say "installing ${pkgs[*]} (Debian packages, --no-install-recommends)"
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # never let apt start the machine's own dockerd
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  local quiet=(-y -qq -o Dpkg::Use-Pty=0 --no-install-recommends)
  DEBIAN_FRONTEND=noninteractive apt-get install "${quiet[@]}" "${pkgs[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install "${quiet[@]}" "${pkgs[@]}" >/dev/null; }
  local status=$?
  if [ -n "$POLICY_RC_CREATED" ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=; fi
  return $status
}

command -v apt-get >/dev/null || skip "no apt-get to install docker.io with (a Debian machine is expected)"
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v curl >/dev/null || missing+=(curl)
apt_install "${missing[@]}" || skip "apt-get could not install ${missing[*]}"
DOCKER=/usr/bin/docker   # Debian's client, matching its dockerd (not another docker on PATH)
export DOCKER_CONFIG=$WORK/client DOCKER_BUILDKIT=0
dk() { "$DOCKER" --host "unix://$SOCK" "$@"; }

# --- a private Docker engine ------------------------------------------------------------------

mkdir -p "$STATE" "$CACHE"
sweep_stale
mkdir -p "$WORK/data" "$EXEC" "$DOCKER_CONFIG"
echo '{}' >"$WORK/daemon.json"   # not the machine's /etc/docker/daemon.json
# dockerd before 23.0 writes a trust key to /etc/docker/key.json: removed again if it is ours
[ -e /etc/docker ] || ETC_DOCKER_CREATED=1
[ -e /etc/docker/key.json ] || KEY_JSON_CREATED=1
/usr/sbin/dockerd \
  --config-file "$WORK/daemon.json" \
  --host "unix://$SOCK" \
  --data-root "$WORK/data" \
  --exec-root "$EXEC" \
  --pidfile "$EXEC/dockerd.pid" \
  --storage-driver overlay2 \
  --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
  --log-level warn \
  >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do
  dk version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || break
  sleep 0.5
done
if ! dk version >/dev/null 2>&1; then
  why=$(grep -E 'failed to start daemon|level=(fatal|error)' "$WORK/dockerd.log" | tail -n 2)
  [ -n "$why" ] || why=$(grep -v '^\s*$' "$WORK/dockerd.log" | tail -n 3)
  kill -0 "$DOCKERD_PID" 2>/dev/null || DOCKERD_PID=
  skip "dockerd did not start${why:+: $why}"
fi
say "private dockerd $DOCKERD_PID ($(dk version -f '{{.Server.Version}}' 2>/dev/null)) on $SOCK"

# --- the stand-in base (smoke test only, never published) --------------------------------------

# The Debian mirror(s) this machine's apt uses for bookworm, as it resolved them.
mirrors() {
  local arch
  arch=$(dpkg --print-architecture)
  apt-get indextargets --format '$(ORIGIN)|$(CODENAME)|$(REPO_URI)|$(COMPONENT)|$(ARCHITECTURE)' \
    'Identifier: Packages' 2>/dev/null \
    | awk -F'|' -v arch="$arch" -v suite="$SUITE" '
        $1 == "Debian" && $4 == "main" && $5 == arch \
        && ($2 == suite || $2 == suite "-updates" || $2 == suite "-security") {
          print "deb " $3 " " $2 " main" }' \
    | sort -u
}
mapfile -t MIRRORS < <(mirrors)
if [ ${#MIRRORS[@]} -eq 0 ]; then
  apt-get update -qq >/dev/null 2>&1
  mapfile -t MIRRORS < <(mirrors)
fi
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
RECIPE=(
  --variant=minbase
  --include="$STANDIN_PACKAGES"
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  # pip installs into the system Python of this image, as it does in the official one
  --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
  # the machine's CA bundle and local authorities, so HTTPS (pip, apt) works in the build
  --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"'
  --customize-hook='if [ -d /usr/local/share/ca-certificates ]; then cp -a /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/"; fi'
  --customize-hook="cp $CA_BUNDLE \"\$1$CA_BUNDLE\""
)
# apt settings the machine's mirror needs (a snapshot mirror's Release files expire)
if apt-config dump Acquire::Check-Valid-Until 2>/dev/null | grep -q '"false"'; then
  RECIPE+=(--aptopt='Acquire::Check-Valid-Until "false"')
fi
RECIPE+=("$SUITE")
KEY=$({
  printf '%s\n' "${RECIPE[@]}" "${MIRRORS[@]}"
  sha256sum "$CA_BUNDLE" | cut -d' ' -f1
  cat /usr/local/share/ca-certificates/* 2>/dev/null | sha256sum | cut -d' ' -f1
} | sha256sum | cut -c1-16)
TARBALL=$CACHE/standin-$SUITE-$KEY.tar

build_standin() {
  if [ ${#MIRRORS[@]} -eq 0 ]; then
    say "no Debian $SUITE mirror in this machine's apt sources (apt-get indextargets)"
    return 1
  fi
  say "building the stand-in base with mmdebstrap from: ${MIRRORS[*]}"
  local partial=$CACHE/.partial-$RUN_ID.tar
  if ! mmdebstrap --quiet --format=tar "${RECIPE[@]}" "$partial" "${MIRRORS[@]}" >"$WORK/mmdebstrap.log" 2>&1; then
    tail -n 15 "$WORK/mmdebstrap.log"
    rm -f "$partial"
    return 1
  fi
  rm -f "$CACHE"/standin-"$SUITE"-*.tar   # older recipes
  mv "$partial" "$TARBALL"
}

base_started=$(date +%s)
(
  flock 9
  if [ -s "$TARBALL" ]; then exit 0; fi
  build_standin
) 9>"$CACHE/.lock"
base_status=$?
if [ $base_status -eq 0 ] && [ -s "$TARBALL" ] && dk import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'LABEL org.opencontainers.image.description="stand-in for python:3.11-slim-bookworm: prepaid-sync container smoke test only, never published"' \
  --change 'CMD ["python3"]' \
  "$TARBALL" "$STANDIN" >/dev/null; then
  pass "stand-in base $STANDIN ready, for this smoke test only, never published ($(($(date +%s) - base_started)) s; cache $TARBALL)"
else
  fail "stand-in base could not be built or imported (see above)"
  finish
fi

# --- the image ---------------------------------------------------------------------------------

build_started=$(date +%s)
if dk build --network host --build-arg "PYTHON_IMAGE=$STANDIN" -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
  pass "docker build of the Dockerfile ($(($(date +%s) - build_started)) s)"
else
  fail "docker build of the Dockerfile" "$(tail -n 20 "$WORK/build.log")"
  finish
fi
size=$(dk image inspect -f '{{.Size}}' "$IMAGE")
base_size=$(dk image inspect -f '{{.Size}}' "$STANDIN")
say "image size: $((size / 1000000)) MB ($((base_size / 1000000)) MB stand-in base + $(((size - base_size) / 1000000)) MB from the Dockerfile)"

compose_check() {
  POSTGRES_PASSWORD=ci-only PREPAID_STATUS_TOKEN=ci-only \
    docker-compose --project-directory "$REPO" -f docker-compose.example.yml config -q || return 1
  if env -u POSTGRES_PASSWORD PREPAID_STATUS_TOKEN=ci-only \
    docker-compose --project-directory "$REPO" -f docker-compose.example.yml config -q 2>/dev/null; then
    echo "accepted without POSTGRES_PASSWORD"
    return 1
  fi
}
check "docker-compose.example.yml is valid (docker-compose config), and refuses without its secrets" compose_check

# --- helpers for the runs --------------------------------------------------------------------

free_ports() {  # free_ports N: N distinct ports that nothing listens on, on 127.0.0.1
  python3 - "$1" <<'PY'
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}
http_code() {  # http_code URL [curl options]
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 5 "$@" "$url"
}
is_200() { [ "$(http_code "$1")" = 200 ]; }
logs_count() {  # logs_count CONTAINER TEXT: how many log lines contain TEXT
  dk logs "$1" 2>&1 | grep -cF -- "$2"
}
logs_reach() { [ "$(logs_count "$1" "$2")" -ge "$3" ]; }
show_logs() { dk logs --tail "${2:-15}" "$1" 2>&1; }
running() { [ "$(dk inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
state_of() {
  dk inspect -f '{{if .State.Running}}running{{else}}exited with code {{.State.ExitCode}}{{end}}' \
    "$1" 2>/dev/null || echo "no such container"
}
why_not() { echo "$1: $(state_of "$1"); its last log lines:"; show_logs "$1" "${2:-6}"; }
wait_up() {  # wait_up CONTAINER[,CONTAINER] SECONDS COMMAND...: poll while the containers run
  local names=$1 until=$(($(date +%s) + $2)) name
  shift 2
  while ! "$@" >/dev/null 2>&1; do
    for name in ${names//,/ }; do running "$name" || return 1; done
    [ "$(date +%s)" -ge "$until" ] && return 1
    sleep 0.5
  done
}
stop_timed() {  # stop_timed CONTAINER: docker stop exits 0 in under 5 s and so does the service
  local begin end took code
  begin=$(date +%s%N)
  if ! dk stop -t 10 "$1" >/dev/null; then echo "docker stop failed"; return 1; fi
  end=$(date +%s%N)
  took=$(((end - begin) / 1000000))
  code=$(dk inspect -f '{{.State.ExitCode}}' "$1")
  echo "$1: docker stop took ${took} ms, exit code $code"
  [ "$took" -lt 5000 ] && [ "$code" = 0 ] || { show_logs "$1" 3; return 1; }
}

TOKEN=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
CONFIG=$WORK/config
mkdir -p "$CONFIG"
cat >"$CONFIG/time_entries.csv" <<'CSV'
id,updated_at,date,start,end,hours,user,client,project,task,tags,billable,description
a1,2026-11-02T17:05:00Z,2026-11-02,,,3.5,Ann Peeters,ACME Corp,Website,Design,,true,Homepage wireframes
a2,2026-11-03T18:00:00Z,2026-11-03,,,4.25,Bob Janssens,ACME Corp,Website,Development,,true,Navigation and header
a3,2026-11-05T15:30:00Z,2026-11-05,,,2.1,Ann Peeters,ACME Corp,Website,Design,,true,Product page mock-ups
CSV
# 10 h (15-minute rounding up) at 95.00 from 1000.00 leaves 50.00, below 500.00: one refill.
config_yaml() {  # config_yaml DATABASE
  cat <<YAML
database: $1
timezone: Europe/Brussels
server:
  listen: 127.0.0.1:\${PREPAID_PORT}
  status_token: \${PREPAID_STATUS_TOKEN}
sources:
  - {name: exports, type: csv, path: /config/time_entries.csv, format: generic}
invoicing:
  - {name: files, type: outbox, path: /data/outbox}
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    invoice_to: {sink: files, email: accounts@acme.example}
    match:
      - {source: exports, client: "ACME Corp"}
    budgets:
      - id: retainer
        unit: money
        rate: "95.00"
        opening_balance: "1000.00"
        rounding: {increment_minutes: 15, mode: up}
        refill: {below: "500.00", amount: "2000.00", credit_on: paid}
YAML
}
config_yaml 'sqlite:////data/prepaid.db' >"$CONFIG/config.yaml"
config_yaml '${DATABASE_URL}' >"$CONFIG/config-pg.yaml"
chmod 755 "$CONFIG" && chmod 644 "$CONFIG"/*

# run_service NAME PORT VOLUME [docker run options...]: `prepaid serve` in the background
run_service() {
  local name=$1 port=$2 volume=$3
  shift 3
  # --hostname: each container its own, as on a bridge network (compose), not the host's
  dk run -d --name "$name" --hostname "$name" --network host --health-interval 2s \
    -v "$CONFIG:/config:ro" -v "$volume:/data" \
    -e PREPAID_STATUS_TOKEN="$TOKEN" -e PREPAID_PORT="$port" \
    -e PREPAID_HEALTH_URL="http://127.0.0.1:$port/healthz" \
    "$@" "$IMAGE" >/dev/null
}
# oneoff SECONDS [docker run options...] IMAGE [ARGS...]: a container that must finish in time
# (were the ENTRYPOINT in shell form, `docker run IMAGE balance` would start serving instead)
oneoff() {
  local seconds=$1 name="prepaid-ci-oneoff-$BASHPID-$RANDOM" status
  shift
  timeout -k 5 "$seconds" "$DOCKER" --host "unix://$SOCK" run --rm --name "$name" "$@"
  status=$?
  if [ $status -ge 124 ]; then
    echo "one-off container still running after $seconds s: removed" >&2
    dk rm -f "$name" >/dev/null 2>&1
  fi
  return $status
}
# books VOLUME [docker run options...]: `prepaid balance` and `prepaid ledger` as JSON and the
# outbox's files, from one-off containers (their stderr goes to $WORK/books.log)
books() {
  local volume=$1
  shift
  local args=(--network host -v "$CONFIG:/config:ro" -v "$volume:/data"
    -e PREPAID_STATUS_TOKEN="$TOKEN" -e PREPAID_PORT="$SPARE" "$@")
  {
    oneoff 30 "${args[@]}" "$IMAGE" balance --format json && echo "---" \
      && oneoff 30 "${args[@]}" "$IMAGE" ledger --format json && echo "---" \
      && oneoff 30 "${args[@]}" --entrypoint ls "$IMAGE" /data/outbox
  } 2>>"$WORK/books.log"
}
# expect_books TEXT: one refill invoice, 50.00 left, the opening and three entries posted once
expect_books() {
  python3 - "$1" "$(tail -n 5 "$WORK/books.log" 2>/dev/null)" <<'PY'
import json, sys
parts = sys.argv[1].split("\n---\n")
if len(parts) != 3:
    print("could not read the books:", sys.argv[1][-300:], sys.argv[2][-600:])
    sys.exit(1)
balance, ledger = json.loads(parts[0]), json.loads(parts[1])
outbox = parts[2].split()
kinds = sorted(posting["kind"] for posting in ledger)
problems = []
if [b["balance"] for b in balance] != ["50.00"]:
    problems.append(f"balance {[b['balance'] for b in balance]}, expected ['50.00']")
if kinds != ["entry", "entry", "entry", "opening"]:
    problems.append(f"postings {kinds}, expected the opening and three entries")
if sorted(outbox) != ["acme-retainer-1.html", "acme-retainer-1.json"]:
    problems.append(f"outbox {outbox}, expected one invoice (acme-retainer-1)")
print("; ".join(problems) or f"balance 50.00, {len(ledger)} postings, invoice acme-retainer-1")
sys.exit(1 if problems else 0)
PY
}
same_books() {  # same_books BEFORE AFTER: the same books, and still the expected ones
  expect_books "$2" || return 1
  [ "$1" = "$2" ] && return 0
  echo "balance, ledger or outbox changed:"
  diff <(echo "$1") <(echo "$2") | head -n 20
  return 1
}

# --- one replica on SQLite ---------------------------------------------------------------------

HEALTH_CMD=()
mapfile -d '' HEALTH_CMD < <(dk image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE" \
  | python3 -c 'import json, sys; t = json.load(sys.stdin) or []; sys.stdout.write("".join(a + "\0" for a in t[1:]) if t[:1] == ["CMD"] else "")')

read -r PORT CLOSED P1 P2 P3 SPARE < <(free_ports 6)
VOLUME=prepaid-ci-data
dk volume create "$VOLUME" >/dev/null
run_service prepaid-ci-1 "$PORT" "$VOLUME"
if wait_up prepaid-ci-1 60 is_200 "http://127.0.0.1:$PORT/healthz"; then
  pass "/healthz answers 200 (127.0.0.1:$PORT, host network)"
else
  fail "/healthz answers 200 (127.0.0.1:$PORT)" \
    "got $(http_code "http://127.0.0.1:$PORT/healthz")" "$(why_not prepaid-ci-1 12)"
fi

service_user() {
  local pid uid
  pid=$(dk inspect -f '{{.State.Pid}}' prepaid-ci-1)
  [ -n "$pid" ] && [ "$pid" != 0 ] || { echo "not running"; return 1; }
  uid=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
  echo "uids (real, effective, saved, fs) of the service: $uid"
  [ "$uid" = "10001 10001 10001 10001" ]
}
check "the service runs as the non-root user prepaid (uid 10001)" service_user

service_is_pid1() {  # exec-form ENTRYPOINT: `prepaid serve` itself receives docker stop's SIGTERM
  local pid cmdline
  pid=$(dk inspect -f '{{.State.Pid}}' prepaid-ci-1)
  [ -n "$pid" ] && [ "$pid" != 0 ] || { echo "not running"; return 1; }
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  echo "the container's first process: $cmdline"
  case "$cmdline" in */bin/sh* | sh\ *) return 1 ;; *prepaid\ serve*) return 0 ;; *) return 1 ;; esac
}
check "the container's first process is prepaid serve itself, not a shell" service_is_pid1

healthcheck_with() {  # the image's own HEALTHCHECK command, against the given /healthz URL
  [ ${#HEALTH_CMD[@]} -gt 0 ] || { echo "the image has no HEALTHCHECK CMD"; return 2; }
  running prepaid-ci-1 || { echo "prepaid-ci-1 $(state_of prepaid-ci-1)"; return 2; }
  dk exec -e PREPAID_HEALTH_URL="$1" prepaid-ci-1 "${HEALTH_CMD[@]}"
}
check "the image's HEALTHCHECK passes while the service is up" \
  healthcheck_with "http://127.0.0.1:$PORT/healthz"
health_fails_when_closed() {
  local out code
  out=$(healthcheck_with "http://127.0.0.1:$CLOSED/healthz" 2>&1)
  code=$?
  echo "exit $code: $out"
  [ "$code" = 1 ]
}
check "the image's HEALTHCHECK fails when the port is closed" health_fails_when_closed
is_healthy() { [ "$(dk inspect -f '{{.State.Health.Status}}' prepaid-ci-1)" = healthy ]; }
if wait_up prepaid-ci-1 60 is_healthy; then
  pass "docker reports the container healthy"
else
  fail "docker reports the container healthy" \
    "$(dk inspect -f '{{.State.Health.Status}} {{json .State.Health.Log}}' prepaid-ci-1 | tail -c 600)"
fi

status_refused=$(http_code "http://127.0.0.1:$PORT/")
[ "$status_refused" = 401 ] && pass "the status page refuses without the token ($status_refused)" \
  || fail "the status page refuses without the token" "got $status_refused, expected 401"
status_token=$(http_code "http://127.0.0.1:$PORT/" -H "Authorization: Bearer $TOKEN")
[ "$status_token" = 200 ] && pass "the status page answers with the token ($status_token)" \
  || fail "the status page answers with the token" "got $status_token, expected 200"

invoice_in_volume() {
  oneoff 30 --network host -v "$VOLUME:/data" --entrypoint test "$IMAGE" -s /data/outbox/acme-retainer-1.json
}
if wait_up prepaid-ci-1 60 invoice_in_volume || invoice_in_volume; then
  pass "the start-up sync wrote its refill invoice into the volume (outbox/acme-retainer-1.json)"
else
  fail "the start-up sync wrote its refill invoice into the volume" "$(why_not prepaid-ci-1)"
fi

check "docker stop: exit 0 within 5 s (SIGTERM reaches the service)" stop_timed prepaid-ci-1
before=$(books "$VOLUME")
check "the books after the start-up sync: 50.00 left, opening + 3 entries, one invoice" \
  expect_books "$before"

dk start prepaid-ci-1 >/dev/null
restarted() {
  wait_up prepaid-ci-1 60 logs_reach prepaid-ci-1 "tick start-up source:exports:" 2 \
    || { echo "no second start-up sync"; why_not prepaid-ci-1; return 1; }
  stop_timed prepaid-ci-1 >/dev/null || { echo "did not stop cleanly"; return 1; }
  same_books "$before" "$(books "$VOLUME")"
}
check "restarted on the same volume: synced again, nothing posted twice" restarted

dk rm prepaid-ci-1 >/dev/null
run_service prepaid-ci-2 "$PORT" "$VOLUME"
fresh_container() {
  wait_up prepaid-ci-2 60 logs_reach prepaid-ci-2 "tick start-up source:exports:" 1 \
    || { echo "no start-up sync"; why_not prepaid-ci-2; return 1; }
  stop_timed prepaid-ci-2 || return 1
  same_books "$before" "$(books "$VOLUME")"
}
check "a brand-new container on the volume: synced, stopped cleanly, nothing posted twice" fresh_container
dk rm prepaid-ci-2 >/dev/null

# --- two replicas on the host's PostgreSQL ----------------------------------------------------

mapfile -t PG < <(python3 - "$PG_URL" <<'PY'
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
print(url.hostname or "127.0.0.1"); print(url.port or 5432); print(url.username or "postgres")
PY
)
PG_ARGS=(-h "${PG[0]}" -p "${PG[1]}" -U "${PG[2]}")
if createdb "${PG_ARGS[@]}" "prepaid_ci_$RUN_ID" 2>"$WORK/createdb.log"; then
  PG_DB=prepaid_ci_$RUN_ID
  DB_URL="postgresql+psycopg://${PG[2]}@${PG[0]}:${PG[1]}/$PG_DB"
  PG_RUN=(-e PREPAID_CONFIG=/config/config-pg.yaml -e DATABASE_URL="$DB_URL")
  PG_VOLUME=prepaid-ci-replicas   # shared by the replicas, as compose's named volume is
  dk volume create "$PG_VOLUME" >/dev/null
  # every 2 s both replicas fire the same tick: one syncs it, the other must skip it
  run_service prepaid-ci-r1 "$P1" "$PG_VOLUME" "${PG_RUN[@]}" -e PREPAID_SCHEDULE_SECONDS=2
  run_service prepaid-ci-r2 "$P2" "$PG_VOLUME" "${PG_RUN[@]}" -e PREPAID_SCHEDULE_SECONDS=2
  both_up() { is_200 "http://127.0.0.1:$P1/healthz" && is_200 "http://127.0.0.1:$P2/healthz"; }
  if wait_up prepaid-ci-r1,prepaid-ci-r2 60 both_up; then
    pass "two replicas on PostgreSQL answer /healthz 200 (127.0.0.1:$P1, 127.0.0.1:$P2)"
  else
    fail "two replicas on PostgreSQL answer /healthz 200" "$(why_not prepaid-ci-r1)" "$(why_not prepaid-ci-r2)"
  fi
  # every interval tick synced by exactly one replica, the other logging that it skipped it
  ticks_shared() {
    dk logs prepaid-ci-r1 >"$WORK/r1.log" 2>&1
    dk logs prepaid-ci-r2 >"$WORK/r2.log" 2>&1
    python3 - "$WORK/r1.log" "$WORK/r2.log" "${1:-3}" <<'PY'
import re, sys
tick = re.compile(r"tick (\S+) source:exports: (synced|skipped)")
synced, skipped = [set(), set()], [set(), set()]
for n, path in enumerate(sys.argv[1:3]):
    for label, what in tick.findall(open(path).read()):
        if label != "start-up":
            (synced if what == "synced" else skipped)[n].add(label)
twice = synced[0] & synced[1]
shared = (synced[0] & skipped[1]) | (synced[1] & skipped[0])
print(f"interval ticks synced by r1: {len(synced[0])}, by r2: {len(synced[1])},"
      f" skipped by the other: {len(shared)}, synced by both: {sorted(twice) or 'none'}")
sys.exit(1 if twice or len(shared) < int(sys.argv[3]) else 0)
PY
  }
  shared_ticks() {
    wait_up prepaid-ci-r1 60 logs_reach prepaid-ci-r1 "tick start-up source:exports:" 1 || { why_not prepaid-ci-r1; return 1; }
    wait_up prepaid-ci-r2 60 logs_reach prepaid-ci-r2 "tick start-up source:exports:" 1 || { why_not prepaid-ci-r2; return 1; }
    wait_up prepaid-ci-r1,prepaid-ci-r2 30 ticks_shared 3
    ticks_shared 3 || { show_logs prepaid-ci-r1 4; show_logs prepaid-ci-r2 4; return 1; }
  }
  check "the replicas share the ticks: each one is synced by one replica" shared_ticks
  pg_stop_all() {
    local name out=0
    for name in "$@"; do stop_timed "$name" || out=1; done
    return $out
  }
  check "both replicas stop with exit 0 within 5 s" pg_stop_all prepaid-ci-r1 prepaid-ci-r2
  pg_before=$(books "$PG_VOLUME" "${PG_RUN[@]}")
  check "two replicas, one database: 50.00 left, opening + 3 entries, one invoice" \
    expect_books "$pg_before"

  dk start prepaid-ci-r1 prepaid-ci-r2 >/dev/null
  run_service prepaid-ci-r3 "$P3" "$PG_VOLUME" "${PG_RUN[@]}" -e PREPAID_SCHEDULE_SECONDS=2
  pg_again() {
    wait_up prepaid-ci-r1 60 logs_reach prepaid-ci-r1 "tick start-up source:exports:" 2 || { why_not prepaid-ci-r1; return 1; }
    wait_up prepaid-ci-r2 60 logs_reach prepaid-ci-r2 "tick start-up source:exports:" 2 || { why_not prepaid-ci-r2; return 1; }
    wait_up prepaid-ci-r3 60 logs_reach prepaid-ci-r3 "tick start-up source:exports:" 1 || { why_not prepaid-ci-r3; return 1; }
    sleep 3   # a tick or two more on every replica
    pg_stop_all prepaid-ci-r1 prepaid-ci-r2 prepaid-ci-r3 >/dev/null || { echo "a replica did not stop cleanly"; return 1; }
    same_books "$pg_before" "$(books "$PG_VOLUME" "${PG_RUN[@]}")"
  }
  check "both replicas restarted and a third one added: nothing posted twice" pg_again
else
  fail "PostgreSQL at ${PG[0]}:${PG[1]} (user ${PG[2]}): could not create a database" \
    "$(cat "$WORK/createdb.log")" "(start it as .ci/run does, or set PREPAID_TEST_POSTGRES_URL)"
fi

finish
