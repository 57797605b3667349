"""Drain N no-op tasks with Python Celery 5.x workers on Redis and print the
figures as JSON: the reference side of `celeriac bench --compare-celery`.

    python celery_bench.py --url redis://127.0.0.1:6379/15 -n 20000 --workers 2 --pool solo [--acks-late] [--no-results]

1. Empties the database, enqueues N `tasks.noop` messages with Celery's own
   producer (pipelined through one connection), and times it.
2. Starts the workers on the full queue and times until the queue and
   `unacked` are empty (and, with results, every result key exists).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pool", default="solo", choices=["solo", "prefork", "threads", "gevent"])
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--acks-late", action="store_true")
    p.add_argument("--no-results", action="store_true")
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()

    env = dict(os.environ)
    env["CELERIAC_BENCH_REDIS_URL"] = a.url
    env["CELERIAC_BENCH_ACKS_LATE"] = "1" if a.acks_late else "0"
    env["CELERIAC_BENCH_IGNORE_RESULT"] = "1" if a.no_results else "0"
    os.environ.update(env)
    sys.path.insert(0, HERE)
    from benchtasks import app  # noqa: E402

    r = redis.Redis.from_url(a.url)
    r.flushdb()
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for i in range(a.n):
            app.send_task("tasks.noop", (i,), producer=producer, ignore_result=a.no_results)
    enqueue_secs = time.perf_counter() - start

    workers = []
    start = time.perf_counter()
    for k in range(a.workers):
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchtasks", "worker", "-l", "ERROR",
                 "-P", a.pool, "-c", str(a.concurrency), "-n", f"bench{k}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )
    try:
        while True:
            queued = r.llen("celery")
            held = r.hlen("unacked")
            done = queued == 0 and held == 0
            if done and not a.no_results:
                done = r.dbsize() >= a.n
            if done:
                break
            if time.perf_counter() - start > a.timeout:
                print(json.dumps({"error": "timeout", "queued": queued, "held": held}))
                return 1
            time.sleep(0.01)
        drain_secs = time.perf_counter() - start
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.kill()
    print(json.dumps({
        "system": f"Python Celery {__import__('celery').__version__} ({a.workers} x {a.pool} -c {a.concurrency})",
        "tasks": a.n,
        "enqueue_per_sec": a.n / enqueue_secs,
        "drain_per_sec": a.n / drain_secs,
        "drain_secs": drain_secs,
        "acks_late": a.acks_late,
        "results": not a.no_results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
