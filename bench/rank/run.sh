#!/usr/bin/env bash
# bench/rank/run.sh — /rank throughput and latency, the Celeriac ranking
# server side by side with the reference FastAPI/uvicorn implementation
# (bench/fastapi), in one run on loopback. Figures go in BENCHMARKS.md,
# "Ranking server (/rank)".
#
# Usage: bench/rank/run.sh [--duration S] [--connections N] [--rate R] [--out FILE]
#                         [--before OLD_CELERIAC_BINARY] [--floor-axum] [--only KINDS]
#
# Needs wrk and redis-server (apt-get install -y wrk redis-server) and the
# repo's .venv (scripts/test.sh makes it); installs the reference's
# requirements into .venv when they are missing, builds the release binary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${CELERIAC_TEST_PYTHON:-$ROOT/.venv/bin/python}"
for tool in wrk redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk redis-server" >&2; exit 2; }
done
if ! "$PY" -c 'import fastapi, uvicorn, uvloop, httptools, redis' 2>/dev/null; then
    "$PY" -m pip install -q --disable-pip-version-check -r bench/fastapi/requirements.txt
fi
cargo build --release -q -p post-history
cargo build --release -q -p posts --example http_floor
exec "$PY" bench/rank/run.py --celeriac "$ROOT/target/release/post-history" --python "$PY" "$@"
