#!/usr/bin/env bash
# bench/canvas/run.sh — a chain of 1,000 `tasks.add` links and a chord of
# 10,000 `tasks.add` parts (body `tasks.xsum`), sent by Python Celery, run
# by `celeriac worker` and by a Python `celery worker`, in one run on one
# private redis-server. Figures go in BENCHMARKS.md, "Canvas: chains and
# chords"; bench/canvas/run.py says what is measured.
#
# Usage: bench/canvas/run.sh [run.py options: --reps N, --configs A,B,
#        --chain N, --chord N, --workloads chain,chord]
#
# CELERIAC_BIN=path: measure that binary instead of building one (e.g. a
# copy kept while the tree is being edited).
#
# Needs redis-server (apt-get install -y redis-server) and the repo's .venv
# (scripts/test.sh makes it); builds the release binary. Everything it
# starts (redis-server, the workers) is stopped on exit, also on Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${CELERIAC_TEST_PYTHON:-$ROOT/.venv/bin/python}"
command -v redis-server >/dev/null || { echo "missing redis-server: apt-get install -y redis-server" >&2; exit 2; }
"$PY" -c 'import celery, redis' || { echo "no Celery in $PY: run scripts/test.sh once" >&2; exit 2; }

if [[ -n "${CELERIAC_BIN:-}" ]]; then
    BIN="$(realpath "$CELERIAC_BIN")"
else
    cargo build --release -q -p celeriac-cli
    BIN="$ROOT/target/release/celeriac"
fi

SCRATCH="$(mktemp -d -t celeriac-canvas-bench.XXXXXX)"
PGIDS="$SCRATCH/worker-pgids"
REDIS_PID=""
cleanup() {
    local status=$?
    # Workers still running (the driver stops its own; this is for Ctrl-C
    # or a crash), by the process groups the driver recorded.
    if [[ -f "$PGIDS" ]]; then
        while read -r pgid; do
            [[ -n "$pgid" ]] && kill -TERM -- "-$pgid" 2>/dev/null || true
        done <"$PGIDS"
        sleep 2
        while read -r pgid; do
            [[ -n "$pgid" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
        done <"$PGIDS"
    fi
    if [[ -n "$REDIS_PID" ]]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -d "$SCRATCH/logs" ]]; then
        rm -rf "$ROOT/target/canvas-bench-logs"
        cp -r "$SCRATCH/logs" "$ROOT/target/canvas-bench-logs" && cp "$SCRATCH/redis.log" "$ROOT/target/canvas-bench-logs/" || true
        echo "failed (status $status); the workers' logs are in target/canvas-bench-logs" >&2
    fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$SCRATCH" \
    --logfile "$SCRATCH/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr), load: $(cut -d' ' -f1-3 /proc/loadavg)," \
     "$("$BIN" --version 2>/dev/null || echo celeriac), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+uncommitted')" >&2
mkdir -p "$SCRATCH/logs"
"$PY" bench/canvas/run.py --redis "redis://127.0.0.1:$PORT/0" \
    --celeriac "$BIN" --logs "$SCRATCH/logs" --pgid-file "$PGIDS" "$@"
