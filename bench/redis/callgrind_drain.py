"""Count the instructions a `celeriac worker` spends draining no-op tasks.

Wall-clock rates move with the load on a shared machine; callgrind's
instruction counts do not. This queues N copies of a message made by Python
Celery itself (`send_task("tasks.noop")`, results ignored, each with fresh
ids), runs one `celeriac worker` under `valgrind --tool=callgrind` until the
queue and `unacked` are empty, and prints the total user-space instructions
(start-up included) and that total per message. Figures: BENCHMARKS.md,
"Redis broker vs Python Celery".

Usage (release build, the repo's .venv from scripts/test.sh, a scratch
Redis database that is flushed):
    .venv/bin/python bench/redis/callgrind_drain.py --redis redis://127.0.0.1:6502/5 -n 20000
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

import redis
from celery import Celery

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", required=True, help="scratch Redis URL (FLUSHED)")
    ap.add_argument("-n", type=int, default=20000, help="messages to drain")
    ap.add_argument("--celeriac", default=os.path.join(ROOT, "target/release/celeriac"))
    args = ap.parse_args()

    r = redis.Redis.from_url(args.redis)
    r.flushdb()
    Celery(broker=args.redis).send_task("tasks.noop", (), ignore_result=True)
    template = json.loads(r.rpop("celery"))
    pipe = r.pipeline(transaction=False)
    for _ in range(args.n):
        task_id = str(uuid.uuid4())
        template["headers"].update(id=task_id, root_id=task_id)
        template["properties"].update(correlation_id=task_id, delivery_tag=str(uuid.uuid4()))
        pipe.lpush("celery", json.dumps(template))
    pipe.execute()

    out = os.path.join(tempfile.mkdtemp(prefix="callgrind-"), "callgrind.out")
    worker = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", args.celeriac, "worker",
         "--broker", args.redis, "--backend", args.redis, "-c", "128", "--prefetch", "512",
         "-l", "warn"],
        stderr=subprocess.DEVNULL)
    started = time.time()
    while r.llen("celery") or r.hlen("unacked"):
        if worker.poll() is not None:
            sys.exit("the worker exited before draining the queue")
        time.sleep(0.1)
    worker.terminate()
    worker.wait()
    summary = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", summary).group(1).replace(",", ""))
    print(f"drained {args.n} messages in {time.time() - started:.1f} s under callgrind: "
          f"{total:,} instructions, {total / args.n:,.0f} per message (start-up included); "
          f"profile in {out}")


if __name__ == "__main__":
    main()
