"""Drain rate over RabbitMQ: a `celeriac worker` vs a Python `celery worker`, same run.

    scripts/test.sh --env-only -- .venv/bin/python bench/amqp/drain.py \
        [--n 20000] [--runs 3] [--celeriac target/release/celeriac] [--before OTHER_BINARY]
        [--celery-concurrency 2]

--celeriac may also be target/release/celeriac-interop-worker (the library's
Worker at its defaults, with the interop tasks).

RabbitMQ: $CELERIAC_TEST_AMQP_URL (the private node scripts/test.sh starts);
results: a private redis-server on a free port. For each run and each worker,
N `tasks.add(2, 2)` messages are published by Python Celery (kombu's pyamqp,
publisher confirms off, as Celery sends them) to a fresh queue, then the
worker is started on that queue and the time from its start to N results
stored in Redis is measured (the worker's start-up included: Python pays
more). Prints tasks/s per worker, medians over --runs, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import redis
from celery import Celery

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(amqp: str, backend: str, queue: str, n: int) -> None:
    app = Celery("bench", broker=amqp, backend=backend)
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            app.send_task("tasks.add", (2, 2), queue=queue, producer=producer)


def drain(cmd: list[str], env: dict, r: redis.Redis, n: int, cwd: str) -> float:
    base = r.dbsize()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = started + 600
        while r.dbsize() - base < n:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out with {r.dbsize() - base}/{n} results")
            time.sleep(0.005)
        return n / (time.monotonic() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--celeriac", default=os.path.join(ROOT, "target/release/celeriac"))
    parser.add_argument("--before", help="a second celeriac binary, measured in the same runs (e.g. the previous build)")
    parser.add_argument("--celery-concurrency", type=int, default=2)
    args = parser.parse_args()
    amqp = os.environ["CELERIAC_TEST_AMQP_URL"]
    port = free_port()
    tmp = tempfile.mkdtemp()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    backend = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(backend)
    for _ in range(200):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    binaries = {"celeriac": args.celeriac}
    if args.before:
        binaries["before"] = args.before
    rates: dict[str, list[float]] = {who: [] for who in [*binaries, "celery"]}
    try:
        for run in range(args.runs):
            for who in rates:
                binary = binaries.get(who)
                queue = f"bench-{who}-{uuid.uuid4().hex[:8]}"
                r.flushall()
                fill(amqp, backend, queue, args.n)
                if binary and "interop" in os.path.basename(binary):
                    # The interop test worker: the library's Worker at its defaults.
                    cmd = [binary, "--broker", amqp, "--backend", backend, "-Q", queue]
                    env = dict(os.environ, RUST_LOG="warn")
                    cwd = ROOT
                elif binary:
                    cmd = [binary, "worker", "--loglevel", "warn", "-Q", queue]
                    env = dict(os.environ, CELERIAC_BROKER_URL=amqp, CELERIAC_RESULT_BACKEND=backend)
                    env.pop("CELERIAC_CONFIG", None)
                    cwd = ROOT
                else:
                    cmd = [sys.executable, "-m", "celery", "-A", "amqp_app", "worker", "-l", "WARNING",
                           "-Q", queue, "-c", str(args.celery_concurrency),
                           "--without-gossip", "--without-mingle", "--without-heartbeat"]
                    env = dict(os.environ, CELERIAC_TEST_REDIS_URL=backend)
                    cwd = os.path.join(ROOT, "tests/python")
                rate = drain(cmd, env, r, args.n, cwd)
                rates[who].append(rate)
                print(f"run {run + 1}: {who:8} {rate:10.0f} tasks/s  (load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        server.terminate()
        server.wait()
    p = statistics.median(rates["celery"])
    for who in binaries:
        c = statistics.median(rates[who])
        print(f"median: {who} {c:.0f} tasks/s, celery -c {args.celery_concurrency} {p:.0f} tasks/s, ratio {c / p:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
