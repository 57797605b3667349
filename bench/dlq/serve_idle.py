"""What an idle `celeriac serve` costs against 100 MB of dead letters.

1. Starts a private redis-server on a free port (or uses --redis, FLUSHED).
2. Queues N messages of an unregistered task, each carrying a 190 KB
   argument (made by Python Celery's own `send_task`; ~255 KB once the
   body is base64-encoded), and runs one `celeriac worker` until every one
   is dead-lettered (NotRegistered); then stops it. The dead letters then
   hold N x ~255 KB (107 MB at the default N = 420), each below the
   256 KiB payload cap, so all of it is stored.
3. Starts `celeriac serve` on that Redis with one live dashboard stream
   open (`/api/events/stream`, as a browser tab keeps), waits --settle
   seconds, then for --seconds samples Redis `INFO stats`
   total_net_output_bytes (bytes Redis sent to all clients) and the serve
   process's RSS (/proc/<pid>/status VmRSS) every 0.25 s.
4. Prints one JSON line: dead-letter bytes stored (and truncated, if any), Redis output rate
   (bytes/s), RSS max and min.

Usage (release build; the repo's .venv from scripts/test.sh):
    cargo build --release -p celeriac-cli
    .venv/bin/python bench/dlq/serve_idle.py
Figures: BENCHMARKS.md, "serve idle against dead letters".
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis
from celery import Celery

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, timeout, condition):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fill(r, url, celeriac, n, size, env):
    app = Celery(broker=url)
    arg = "x" * size
    for _ in range(n):
        app.send_task("bench.not_registered", (arg,), ignore_result=True)
    worker = subprocess.Popen(
        [celeriac, "worker", "-n", "dlq-filler@bench", "-c", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("the dead letters", 300,
                 lambda: r.zcard("celeriac.dead_letter.index") >= n)
    finally:
        worker.terminate()
        worker.wait(30)
    stored = sum(r.hstrlen("celeriac.dead_letter.payload", k)
                 for k in r.hkeys("celeriac.dead_letter.payload"))
    metas = [json.loads(m) for m in r.hvals("celeriac.dead_letter.meta")]
    return stored, sum(1 for m in metas if m["stored"] < m["size"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", help="scratch Redis URL (FLUSHED); default: a private server")
    ap.add_argument("-n", type=int, default=420, help="dead letters")
    ap.add_argument("--size", type=int, default=190_000, help="argument bytes per message")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--celeriac", default=os.path.join(ROOT, "target/release/celeriac"))
    args = ap.parse_args()

    scratch = tempfile.mkdtemp(prefix="celeriac-dlq-bench-")
    server = None
    url = args.redis
    if url is None:
        port = free_port()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", scratch],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    wait_for("redis", 10, lambda: _ping(r))
    r.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERIAC_")}
    env.update(CELERIAC_BROKER_URL=url, CELERIAC_RESULT_BACKEND=url, RUST_LOG="warn")
    serve = None
    try:
        stored, truncated = fill(r, url, args.celeriac, args.n, args.size, env)
        http_port = free_port()
        serve = subprocess.Popen(
            [args.celeriac, "serve", "--port", str(http_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{http_port}"
        wait_for("serve", 30, lambda: _get(base + "/health"))
        stream = urllib.request.urlopen(base + "/api/events/stream", timeout=60)
        overview = json.loads(urllib.request.urlopen(base + "/api/overview").read())
        time.sleep(args.settle)  # let start-up traffic pass: not synchronisation
        start_bytes = r.info("stats")["total_net_output_bytes"]
        start = time.monotonic()
        rss = []
        while time.monotonic() - start < args.seconds:
            rss.append(rss_kib(serve.pid))
            time.sleep(0.25)
        end_bytes = r.info("stats")["total_net_output_bytes"]
        elapsed = time.monotonic() - start
        stream.close()
        # Includes the two INFO replies of this script (about 2 KB).
        out = end_bytes - start_bytes
        print(json.dumps({
            "dead_letters": args.n,
            "dead_letter_payload_bytes": stored,
            "truncated": truncated,
            "dashboard_count": overview.get("dead_letters"),
            "seconds": round(elapsed, 1),
            "redis_output_bytes_per_sec": round(max(out, 0) / elapsed),
            "serve_rss_max_mib": round(max(rss) / 1024, 1),
            "serve_rss_min_mib": round(min(rss) / 1024, 1),
        }))
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(30)
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)


def _ping(r):
    try:
        return r.ping()
    except redis.exceptions.ConnectionError:
        return False


def _get(url):
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
