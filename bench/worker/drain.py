"""Drain rate of a real `celeriac worker` process, as a user runs it.

    .venv/bin/python bench/worker/drain.py [--n 30000] [--celeriac target/release/celeriac]
        [--runs 3] [-- WORKER_ARGS...]

A private redis-server on a free port; one message of `tasks.add(2, 2)` is
sent by the venv's Python Celery and copied N times with fresh task ids (the
same bytes a Celery producer sends, only the ids differ); then one
`celeriac worker` (default flags unless WORKER_ARGS) drains them with
results stored in the same Redis. Prints tasks/s (first result → N results
stored, from the worker's start), worker and Redis CPU per task, the
worker's peak RSS, and the load average. Medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import redis
from celery import Celery


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def template(url: str, r: redis.Redis) -> tuple[bytes, str]:
    app = Celery("bench", broker=url, backend=url)
    result = app.send_task("tasks.add", (2, 2))
    raw = r.rpop("celery")
    return raw, result.id


def run_once(url: str, r: redis.Redis, n: int, exe: str, worker_args: list[str]) -> dict:
    r.flushall()
    raw, old_id = template(url, r)
    text = raw.decode()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.lpush("celery", text.replace(old_id, str(uuid.uuid4())))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    base_keys = r.dbsize()
    env = dict(os.environ, CELERIAC_BROKER_URL=url, CELERIAC_RESULT_BACKEND=url)
    env.pop("CELERIAC_CONFIG", None)
    redis_before = redis_cpu(r)
    started = time.monotonic()
    proc = subprocess.Popen(
        [exe, "worker", "--loglevel", "warn", *worker_args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        rss = 0
        deadline = started + 600
        while True:
            stored = r.dbsize() - base_keys
            rss = max(rss, rss_peak_kib(proc.pid))
            if stored >= n:
                break
            if proc.poll() is not None:
                raise SystemExit(f"worker exited: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out with {stored}/{n} results")
            time.sleep(0.002)
        elapsed = time.monotonic() - started
        worker_cpu = cpu_seconds(proc.pid)
        redis_used = redis_cpu(r) - redis_before
        rss = max(rss, rss_peak_kib(proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    sample = r.get(f"celery-task-meta-{old_id}") or b"{}"
    return {
        "rate": n / elapsed,
        "worker_us": worker_cpu / n * 1e6,
        "redis_us": redis_used / n * 1e6,
        "rss_mib": rss / 1024,
        "load": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--celeriac", default="target/release/celeriac")
    parser.add_argument("worker_args", nargs="*")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        runs = [run_once(url, r, args.n, args.celeriac, args.worker_args) for _ in range(args.runs)]
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {k: round(statistics.median(run[k] for run in runs), 1) for k in runs[0]}
    summary["runs"] = [{k: round(v, 1) for k, v in run.items()} for run in runs]
    summary["worker_args"] = args.worker_args
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
