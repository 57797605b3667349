"""Python Celery 5.x, the reference side of `celeriac bench --compare-celery`.

Two presets, both one worker, prefork pool, concurrency = the machine's
cores (Celery's default):

- ``defaults``: nothing else changed: prefetch multiplier 4, gossip, mingle
  and heartbeats on;
- ``tuned``: ``--prefetch-multiplier 128 --without-gossip --without-mingle
  --without-heartbeat``.

Two ways to use it:

    # What `celeriac bench --compare-celery` runs: become the worker
    # (exec) on a queue the bench has filled with raw Celery messages; the
    # bench watches the results and stops it.
    python celery_bench.py worker --url redis://127.0.0.1:6379/15 --queue celeriac.bench --preset tuned

    # Standalone: empty the database, send N tasks.add(2, 2) with Celery's
    # own producer, start the worker, time until every result is stored,
    # print JSON. THE DATABASE AT --url IS FLUSHED.
    python celery_bench.py drain --url redis://127.0.0.1:6379/15 -n 20000 --preset defaults
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

PRESETS = {
    "defaults": [],
    "tuned": ["--prefetch-multiplier", "128", "--without-gossip", "--without-mingle", "--without-heartbeat"],
}


def worker_argv(a: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "benchtasks", "worker", "-l", "ERROR",
            "-P", "prefork", "-Q", a.queue, "-n", f"celerybench-{a.preset}-{os.getpid()}@%h",
            *PRESETS[a.preset]]


def worker_env(a: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env["CELERIAC_BENCH_REDIS_URL"] = a.url
    env["CELERIAC_BENCH_ACKS_LATE"] = "1" if a.acks_late else "0"
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    # Celery warns at length when run as root (as in a container); a bench
    # has no use for warnings on its stderr.
    env["PYTHONWARNINGS"] = "ignore"
    return env


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its living descendants."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return total
    return total + sum(tree_cpu_seconds(c) for c in children)


def drain(a: argparse.Namespace) -> int:
    import redis

    os.environ.update(worker_env(a))
    sys.path.insert(0, HERE)
    from benchtasks import app  # noqa: E402

    r = redis.Redis.from_url(a.url)
    r.flushdb()
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(a.n):
            app.send_task("tasks.add", (2, 2), queue=a.queue, producer=producer)
    enqueue_secs = time.perf_counter() - start
    base = r.dbsize()  # the queue's list
    start = time.perf_counter()
    worker = subprocess.Popen(worker_argv(a), cwd=HERE, env=worker_env(a),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            stored = sum(1 for _ in r.scan_iter("celery-task-meta-*", count=10000)) \
                if r.dbsize() - base >= a.n - 1 else 0
            if stored >= a.n:
                break
            if time.perf_counter() - start > a.timeout:
                print(json.dumps({"error": "timeout", "stored": stored}))
                return 1
            time.sleep(0.01)
        drain_secs = time.perf_counter() - start
        cpu = tree_cpu_seconds(worker.pid)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
    print(json.dumps({
        "system": f"Python Celery {__import__('celery').__version__} (prefork, {a.preset})",
        "tasks": a.n,
        "enqueue_per_sec": a.n / enqueue_secs,
        "drain_per_sec": a.n / drain_secs,
        "worker_cpu_us_per_task": cpu / a.n * 1e6,
    }))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["worker", "drain"])
    p.add_argument("--url", required=True)
    p.add_argument("--queue", default="celeriac.bench")
    p.add_argument("--preset", choices=sorted(PRESETS), default="defaults")
    p.add_argument("--acks-late", action="store_true")
    p.add_argument("-n", type=int, default=20000, help="drain: tasks to send")
    p.add_argument("--timeout", type=float, default=600, help="drain: give up after this many seconds")
    a = p.parse_args()
    if a.mode == "worker":
        os.chdir(HERE)
        argv = worker_argv(a)
        os.execve(argv[0], argv, worker_env(a))
    return drain(a)


if __name__ == "__main__":
    sys.exit(main())
