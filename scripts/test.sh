#!/usr/bin/env bash
# scripts/test.sh — run every Celeriac check with ONE command.
#
# Usage:
#   scripts/test.sh                       # full run: fmt, clippy, doctests, tests
#   scripts/test.sh --env-only -- CMD...  # set up the test environment, run CMD in it
#   scripts/test.sh --env-only            # same, with an interactive shell
#   scripts/test.sh --help
#
# Examples:
#   scripts/test.sh --env-only -- cargo test -p celeriac --test redis_interop
#   scripts/test.sh --env-only -- python scripts/capture_celery_fixtures.py
#   scripts/test.sh --env-only -- bash -c 'redis-cli -u "$CELERIAC_TEST_REDIS_URL" ping'
#
# Meant for a fresh Debian machine with Rust, run as root (or with sudo), with
# network access to the package registries only. What it does, idempotently:
#   1. installs what is missing:
#      - redis-server (apt-get, only when `redis-server` is not on PATH);
#      - rabbitmq-server (apt-get) only when an AMQP test exists, i.e. some
#        file under crates/*/tests or tests/ mentions CELERIAC_TEST_AMQP_URL
#        (or CELERIAC_NEED_RABBITMQ=1 is set);
#      - chromium + chromium-driver (apt-get) only when a browser test exists,
#        i.e. some file under crates/*/tests or tests/ mentions
#        CELERIAC_TEST_CHROMIUM (or CELERIAC_NEED_CHROMIUM=1 is set);
#      - nginx (apt-get, Debian's package) only when a deployment test
#        exists, i.e. some file under crates/*/tests or tests/ mentions
#        CELERIAC_TEST_NGINX (or CELERIAC_NEED_NGINX=1 is set); the tests
#        start their own nginx on a loopback port, never the system's;
#      - a Python venv in .venv with the packages pinned in
#        scripts/requirements-interop.txt (Celery 5.x, redis, flower); an
#        existing venv is reused when its packages import at the pinned versions.
#   2. starts a private redis-server on a free port (6390 and up) in a temp
#      dir, without persistence, and exports for the tests:
#        CELERIAC_TEST_REDIS_URL     redis://127.0.0.1:PORT/0 (the private server)
#        CELERIAC_TEST_REDIS_SERVER  path of redis-server (tests may start their own)
#        CELERIAC_TEST_PYTHON        $ROOT/.venv/bin/python (has celery, kombu, redis, flower)
#        CELERIAC_TEST_CHROMIUM / CELERIAC_TEST_CHROMEDRIVER (only when installed)
#        CELERIAC_TEST_NGINX         path of nginx (only when installed)
#        CELERIAC_TEST_AMQP_URL      amqp://guest:guest@127.0.0.1:PORT// (a private
#                                    rabbitmq node on 5690 and up, own state dir;
#                                    only when AMQP tests exist)
#        CELERIAC_TEST_RABBITMQ_SERVER  path of rabbitmq-server (same condition)
#        CELERIAC_TEST_RABBITMQ_NODE    that node's name, for rabbitmqctl -n (the
#                                    broker conformance suite makes a virtual
#                                    host per test with it; same condition)
#        PATH                        with .venv/bin first
#   3. full run: cargo fmt --check, cargo clippy -D warnings, then the tests:
#      with cargo-nextest installed `cargo test --workspace --doc` followed by
#      `cargo nextest run --workspace --no-fail-fast` (so the output ends with
#      nextest's summary line); otherwise `cargo test --workspace --no-fail-fast`.
#      Every step runs even if an earlier one failed; the exit code is non-zero
#      if any failed.
#   4. stops everything it started (trap on EXIT).
#
# Environment knobs: CELERIAC_NEED_CHROMIUM=1 forces the chromium install;
# CELERIAC_NEED_NGINX=1 forces the nginx install;
# CELERIAC_NEED_RABBITMQ=1 forces the rabbitmq-server install and start;
# CELERIAC_SKIP_INSTALL=1 skips all installs (use what is there).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
REQS="$ROOT/scripts/requirements-interop.txt"

log() { printf '[test.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MODE=full
CMD=()
while [ $# -gt 0 ]; do
    case "$1" in
        --env-only) MODE=env; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; CMD=("$@"); break ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
if [ "$MODE" = full ] && [ ${#CMD[@]} -gt 0 ]; then
    die "a command after -- needs --env-only"
fi
if [ "$MODE" = env ] && [ ${#CMD[@]} -eq 0 ]; then
    [ -t 0 ] || die "--env-only needs a command after -- when stdin is not a terminal"
    CMD=("${SHELL:-bash}")
    log "will start ${SHELL:-bash} in the test environment; exit it to stop redis"
fi

# ---------------------------------------------------------------- installing

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    [ "${CELERIAC_SKIP_INSTALL:-0}" = 1 ] && die "missing $*, and CELERIAC_SKIP_INSTALL=1"
    log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
        if [ "$APT_UPDATED" = 0 ]; then
            log "apt-get install failed; running apt-get update first"
            as_root apt-get update -q >/dev/null
            APT_UPDATED=1
        fi
        as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null
    fi
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH"
}

browser_tests_exist() {
    [ "${CELERIAC_NEED_CHROMIUM:-0}" = 1 ] && return 0
    local dirs=()
    for d in crates/*/tests tests; do [ -d "$d" ] && dirs+=("$d"); done
    [ ${#dirs[@]} -gt 0 ] || return 1
    grep -rlq --exclude-dir=fixtures CELERIAC_TEST_CHROMIUM "${dirs[@]}" 2>/dev/null
}

ensure_chromium() {
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        apt_install chromium chromium-driver
    fi
    CELERIAC_TEST_CHROMIUM="$(command -v chromium)"
    CELERIAC_TEST_CHROMEDRIVER="$(command -v chromedriver)"
    export CELERIAC_TEST_CHROMIUM CELERIAC_TEST_CHROMEDRIVER
}

amqp_tests_exist() {
    [ "${CELERIAC_NEED_RABBITMQ:-0}" = 1 ] && return 0
    local dirs=()
    for d in crates/*/tests tests; do [ -d "$d" ] && dirs+=("$d"); done
    [ ${#dirs[@]} -gt 0 ] || return 1
    grep -rlq --exclude-dir=fixtures CELERIAC_TEST_AMQP_URL "${dirs[@]}" 2>/dev/null
}

ensure_rabbitmq() {
    if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
        apt_install rabbitmq-server
    fi
    CELERIAC_TEST_RABBITMQ_SERVER="$(command -v rabbitmq-server || echo /usr/sbin/rabbitmq-server)"
    [ -x "$CELERIAC_TEST_RABBITMQ_SERVER" ] || die "rabbitmq-server still not installed"
    export CELERIAC_TEST_RABBITMQ_SERVER
}

nginx_tests_exist() {
    [ "${CELERIAC_NEED_NGINX:-0}" = 1 ] && return 0
    local dirs=()
    for d in crates/*/tests tests; do [ -d "$d" ] && dirs+=("$d"); done
    [ ${#dirs[@]} -gt 0 ] || return 1
    grep -rlq --exclude-dir=fixtures CELERIAC_TEST_NGINX "${dirs[@]}" 2>/dev/null
}

# nginx lives in /usr/sbin, which is not on every PATH.
nginx_path() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

ensure_nginx() {
    if [ -z "$(nginx_path)" ]; then
        apt_install nginx
    fi
    CELERIAC_TEST_NGINX="$(nginx_path || true)"
    [ -n "$CELERIAC_TEST_NGINX" ] || die "nginx still not installed"
    export CELERIAC_TEST_NGINX
}

# Exit 0 when the venv's python imports every pinned package at its pinned version.
venv_ok() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$REQS" >/dev/null 2>&1 <<'PY'
import importlib, importlib.metadata as md, re, sys
for line in open(sys.argv[1]):
    line = line.split('#', 1)[0].strip()
    if not line:
        continue
    m = re.match(r'^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==\s*(\S+)$', line)
    if not m:
        continue
    name, _, want = m.groups()
    if md.version(name) != want:
        sys.exit(1)
for mod in ('celery', 'kombu', 'redis', 'flower', 'billiard'):
    importlib.import_module(mod)
import celery
sys.exit(0 if celery.VERSION[0] == 5 else 1)
PY
}

ensure_venv() {
    if venv_ok; then return 0; fi
    [ "${CELERIAC_SKIP_INSTALL:-0}" = 1 ] && die ".venv is missing or incomplete, and CELERIAC_SKIP_INSTALL=1"
    local py
    py="$(command -v python3 || true)"
    if [ -z "$py" ]; then apt_install python3 python3-venv; py="$(command -v python3)"; fi
    if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "removing broken venv $VENV"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV"
        if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv
            /usr/bin/python3 -m venv "$VENV"
        fi
    fi
    log "pip install -r scripts/requirements-interop.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    venv_ok || die "venv $VENV still lacks the packages of $REQS"
}

# ---------------------------------------------------------------- redis

TMPD=""
REDIS_PID=""
RMQ_DIR=""
cleanup() {
    local rc=$?
    stop_rabbitmq
    if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    [ -n "$TMPD" ] && rm -rf "$TMPD"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
    else
        port_in_use "$1"
    fi
}

start_redis() {
    TMPD="$(mktemp -d "${TMPDIR:-/tmp}/celeriac-test.XXXXXX")"
    local port
    for port in $(seq 6390 6489); do
        port_in_use "$port" && continue
        redis-server --port "$port" --bind 127.0.0.1 --dir "$TMPD" \
            --save '' --appendonly no --daemonize no \
            --logfile "$TMPD/redis-$port.log" &
        REDIS_PID=$!
        for _ in $(seq 1 100); do
            if ! kill -0 "$REDIS_PID" 2>/dev/null; then break; fi
            if redis_ping "$port"; then
                CELERIAC_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
                export CELERIAC_TEST_REDIS_URL
                log "redis-server pid $REDIS_PID on $CELERIAC_TEST_REDIS_URL"
                return 0
            fi
            sleep 0.05
        done
        # lost a race for the port, or it did not come up: try the next one
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    done
    die "could not start redis-server on any port in 6390-6489"
}

# ---------------------------------------------------------------- rabbitmq

# The node's pid (beam.smp), from its pid file; the wrapper's pid is not it.
rabbitmq_pid() { [ -n "$RMQ_DIR" ] && [ -s "$RMQ_DIR/pid" ] && cat "$RMQ_DIR/pid"; }

stop_rabbitmq() {
    [ -n "$RMQ_DIR" ] || return 0
    local pid
    pid="$(rabbitmq_pid || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$RMQ_DIR"
    RMQ_DIR=""
}

# A private node (no plugins, own state, runs as the user rabbitmq, which
# must be able to write its directories: see shared notes).
start_rabbitmq() {
    local port
    for port in $(seq 5690 5789); do
        port_in_use "$port" && continue
        port_in_use "$((port + 20000))" && continue
        RMQ_DIR="$(mktemp -d "${TMPDIR:-/tmp}/celeriac-rabbitmq.XXXXXX")"
        chmod 755 "$RMQ_DIR"
        mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
        as_root chown -R rabbitmq: "$RMQ_DIR" 2>/dev/null || true
        RABBITMQ_NODE_PORT="$port" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_DIST_PORT="$((port + 20000))" RABBITMQ_NODENAME="celeriac$port@localhost" \
        RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" RABBITMQ_LOG_BASE="$RMQ_DIR/log" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/plugins" RABBITMQ_PID_FILE="$RMQ_DIR/pid" \
            "$CELERIAC_TEST_RABBITMQ_SERVER" >"$RMQ_DIR/server.out" 2>&1 &
        local wrapper=$!
        for _ in $(seq 1 600); do
            if port_in_use "$port"; then
                CELERIAC_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port//"
                CELERIAC_TEST_RABBITMQ_NODE="celeriac$port@localhost"
                export CELERIAC_TEST_AMQP_URL CELERIAC_TEST_RABBITMQ_NODE
                log "rabbitmq-server pid $(rabbitmq_pid || echo '?') on $CELERIAC_TEST_AMQP_URL"
                return 0
            fi
            kill -0 "$wrapper" 2>/dev/null || break
            sleep 0.1
        done
        log "rabbitmq-server did not come up on $port: $(tail -n 5 "$RMQ_DIR/server.out" 2>/dev/null)"
        stop_rabbitmq
    done
    die "could not start rabbitmq-server on any port in 5690-5789"
}

# ---------------------------------------------------------------- main

ensure_redis
ensure_venv
if browser_tests_exist; then ensure_chromium; fi
if nginx_tests_exist; then ensure_nginx; fi
start_redis
if amqp_tests_exist; then ensure_rabbitmq; start_rabbitmq; fi

CELERIAC_TEST_REDIS_SERVER="$(command -v redis-server)"
CELERIAC_TEST_PYTHON="$VENV/bin/python"
PATH="$VENV/bin:$PATH"
# keep tests/python free of __pycache__ when tests start Python workers
PYTHONDONTWRITEBYTECODE=1
export CELERIAC_TEST_REDIS_SERVER CELERIAC_TEST_PYTHON PATH PYTHONDONTWRITEBYTECODE

if [ "$MODE" = env ]; then
    set +e
    "${CMD[@]}"
    exit $?
fi

FAILED=()
step() {
    log "==> $*"
    if ! "$@"; then
        FAILED+=("$*")
        log "FAILED: $*"
    fi
}

step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    step cargo test --workspace --doc
    if [ ${#FAILED[@]} -gt 0 ]; then
        log "failed so far: $(IFS=';'; echo "${FAILED[*]}") (running the tests anyway)"
    fi
    LAST=(cargo nextest run --workspace --no-fail-fast)
else
    if [ ${#FAILED[@]} -gt 0 ]; then
        log "failed so far: $(IFS=';'; echo "${FAILED[*]}") (running the tests anyway)"
    fi
    LAST=(cargo test --workspace --no-fail-fast)
fi

# The test runner goes last and nothing is printed after it, so that the
# output ends with the runner's summary line.
log "==> ${LAST[*]}"
set +e
"${LAST[@]}"
rc=$?
set -e
[ "$rc" -eq 0 ] && [ ${#FAILED[@]} -eq 0 ]
