"""Canvas benchmark: a chain of 1,000 links and a chord of 10,000 parts, sent
by Python Celery, run by a `celeriac worker` and by a Python `celery worker`
in one run, on one Redis. Figures: BENCHMARKS.md, "Canvas: chains and chords".

Run it through bench/canvas/run.sh, which builds the release binary and
starts (and stops) a private redis-server; directly:

    .venv/bin/python bench/canvas/run.py --redis redis://127.0.0.1:PORT/0 \
        --celeriac target/release/celeriac [--reps 3] [--configs celeriac,celery]

The database is FLUSHED. For each repetition, each worker configuration in
turn (interleaved, so drifting load hits every configuration alike):

1. start the worker (its own process group), wait until it answers
   `tasks.add(0, 0)`;
2. chain: `chain(add.s(0, 1), add.s(1), ... )` of --chain links, sent with
   `apply_async`, `.get()` checked == links;
3. chord: `chord([add.s(i, i) for i in range(N)], xsum.s())` (--chord parts),
   `.get()` checked == N * (N - 1);
4. stop the worker (SIGTERM, then SIGKILL after 30 s).

`chord-preloaded` (before step 1): the same chord sent while no worker
runs, then the worker started on the full queue; `done s` runs from the
worker's start (its start-up included: Celery's imports, mingle) to the
body's stored result, and its CPU is everything the worker used from its
start. This is the workers' own chord throughput, which the other chord
row cannot show when the Python producer sends slower than the worker
runs.

For each workload: `done s`, from the call of `apply_async` to the moment
the worker stored the final result (its `date_done`; the producer's sending
time included: it is the same Python code for both workers, and the workers
consume while it sends; `send s` is the time `apply_async` took); `seen by
producer s`, until the producer had the value (checked) from `get()`: for
the chord that is later, the producer first reads the 10,000 parts' result
notices it subscribed to while sending (Celery's Redis backend subscribes to
every task it sends); CPU seconds of the
worker's whole process tree (utime + stime of every process in its group,
from /proc; the prefork pool's children included) per task (chain: links;
chord: parts + body), Redis's CPU per task (`INFO cpu`), the producer's CPU,
the 1-minute load average before and after, and the CPU steal of the VM
(/proc/stat). One JSON line per measurement on stdout, then a Markdown table
of medians.

Worker configurations (--configs, comma-separated):

- `celeriac`: `celeriac worker` at its defaults (concurrency = cores,
  prefetch 4 x concurrency, log level info);
- `celery`: `celery -A pytasks worker` at its defaults (prefork,
  concurrency = cores, prefetch multiplier 4, log level WARNING; gossip,
  mingle and heartbeat on); tests/python/pytasks.py is the app;
- `celeriac-c8`, `celery-c8`: both tuned the same way: concurrency 8, 64
  messages prefetched (Celery: `-c 8 --prefetch-multiplier 8`, still
  prefork);
- `celery-threads8`: Celery's thread pool, `-P threads -c 8
  --prefetch-multiplier 8` (the thread pool was Celery's best in
  `celeriac bench --compare-celery`).
"""

from __future__ import annotations

import argparse
from datetime import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTASKS_DIR = os.path.join(ROOT, "tests", "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis", required=True, help="Redis URL (the database is FLUSHED)")
    p.add_argument("--celeriac", default=os.path.join(ROOT, "target", "release", "celeriac"))
    p.add_argument("--celery", default=os.path.join(os.path.dirname(sys.executable), "celery"))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--chain", type=int, default=1000, help="links in the chain")
    p.add_argument("--chord", type=int, default=10000, help="parts in the chord")
    p.add_argument("--configs", default="celeriac,celery")
    p.add_argument("--workloads", default="chain,chord,chord-preloaded")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--logs", default=None, help="directory for the workers' logs")
    p.add_argument("--pgid-file", default=None,
                   help="file listing running workers' process groups (for the wrapper's cleanup)")
    return p.parse_args()


ARGS = parse_args()
os.environ["CELERIAC_TEST_REDIS_URL"] = ARGS.redis
sys.path.insert(0, PYTASKS_DIR)

import redis  # noqa: E402
from celery import chain, chord  # noqa: E402

from celery.result import AsyncResult  # noqa: E402

from pytasks import add, app, xsum  # noqa: E402


def done_at(task_id: str) -> float:
    """When the worker stored the final result: its `date_done`, as a Unix
    time (both workers stamp it on this machine's clock)."""
    meta = app.backend.get_task_meta(task_id)
    return datetime.fromisoformat(meta["date_done"]).timestamp()


def wait(res):
    """The value of `res`, waited for through the result backend's pub/sub
    as `res.get()` does, but on a fresh result without parents: the result
    `apply_async` returns knows its parents (the chain's 999 links, the
    chord's 10,000 parts), and Celery's `get()` re-reads every parent not
    yet ready from Redis each 0.5 s to re-raise its error (`on_interval`,
    `_maybe_reraise_parent_error`): up to 10,000 GETs per half second, which
    took the producer 0.35-0.45 of a core, taken from the workers on this
    2-core machine, and the longer the workers take the more it takes."""
    return AsyncResult(res.id, app=app).get(timeout=ARGS.timeout)


def worker_command(config: str) -> tuple[list[str], str]:
    """The command line and working directory of a configuration."""
    if config.startswith("celeriac"):
        cmd = [ARGS.celeriac, "worker", "-n", f"{config}@bench"]
        if config == "celeriac-c8":
            cmd += ["-c", "8", "--prefetch", "64"]
        elif config != "celeriac":
            sys.exit(f"unknown configuration {config}")
        return cmd, ROOT
    cmd = [ARGS.celery, "-A", "pytasks", "worker", "-n", f"{config}@bench"]
    if config == "celery-c8":
        cmd += ["-c", "8", "--prefetch-multiplier", "8"]
    elif config == "celery-threads8":
        cmd += ["-P", "threads", "-c", "8", "--prefetch-multiplier", "8"]
    elif config != "celery":
        sys.exit(f"unknown configuration {config}")
    return cmd, PYTASKS_DIR


def worker_env() -> dict[str, str]:
    # Defaults mean defaults: nothing inherited that tunes either worker.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CELERIAC_", "CELERY_")) and k != "RUST_LOG"}
    env.update(CELERIAC_BROKER_URL=ARGS.redis, CELERIAC_RESULT_BACKEND=ARGS.redis,
               CELERIAC_TEST_REDIS_URL=ARGS.redis)
    return env


class Worker:
    def __init__(self, config: str, rep: int):
        self.config = config
        cmd, cwd = worker_command(config)
        self.log_path = os.path.join(ARGS.logs, f"{config}.{rep}.log") if ARGS.logs else os.devnull
        self.log = open(self.log_path, "ab")
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=worker_env(), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pgid = self.proc.pid
        record_pgid(self.pgid, add=True)

    def cpu_seconds(self) -> float:
        """utime + stime of every live process in the worker's group."""
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.pgid:  # pgrp
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def wait_ready(self, timeout: float = 90):
        deadline = time.monotonic() + timeout
        res = add.delay(0, 0)
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{self.config} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                assert res.get(timeout=1) == 0
                return
            except Exception as exc:  # celery.exceptions.TimeoutError while starting
                if type(exc).__name__ != "TimeoutError" or time.monotonic() > deadline:
                    raise

    def stop(self):
        try:
            os.killpg(self.pgid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        # Prefork children left behind by a killed parent.
        deadline = time.monotonic() + 10
        while self.cpu_seconds_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.cpu_seconds_alive():
            os.killpg(self.pgid, signal.SIGKILL)
        record_pgid(self.pgid, add=False)
        self.log.close()

    def cpu_seconds_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
            return True
        except ProcessLookupError:
            return False


def record_pgid(pgid: int, add: bool):
    if not ARGS.pgid_file:
        return
    try:
        with open(ARGS.pgid_file) as f:
            ids = {int(x) for x in f.read().split()}
    except FileNotFoundError:
        ids = set()
    ids = ids | {pgid} if add else ids - {pgid}
    with open(ARGS.pgid_file, "w") as f:
        f.write("".join(f"{i}\n" for i in sorted(ids)))


def loadavg1() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_times() -> tuple[int, int]:
    """(total, steal) jiffies of all CPUs."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[7]


def redis_cpu(r) -> float:
    info = r.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def run_chain(n: int) -> tuple[int, float]:
    sig = chain(add.s(0, 1), *(add.s(1) for _ in range(n - 1)))
    started = time.time()
    res = sig.apply_async()
    sent = time.time() - started
    value = wait(res)
    if value != n:
        sys.exit(f"chain of {n} returned {value!r}, expected {n}")
    return n, sent, done_at(res.id) - started


def run_chord(n: int) -> tuple[int, float]:
    sig = chord([add.s(i, i) for i in range(n)], xsum.s())
    started = time.time()
    res = sig.apply_async()
    sent = time.time() - started
    value = wait(res)
    if value != n * (n - 1):
        sys.exit(f"chord of {n} returned {value!r}, expected {n * (n - 1)}")
    return n + 1, sent, done_at(res.id) - started


def send_preloaded_chord(n: int):
    """The chord of `run_chord`, sent while no worker runs."""
    sig = chord([add.s(i, i) for i in range(n)], xsum.s())
    started = time.time()
    res = sig.apply_async()
    return res, time.time() - started


def measure_preloaded(r, worker: "Worker", res, sent: float, redis_cpu0: float,
                      load0: float, rep: int) -> dict:
    """The worker was started on a queue already holding the chord: from
    its start (start-up included) to the body's stored result."""
    n = ARGS.chord
    value = wait(res)
    if value != n * (n - 1):
        sys.exit(f"chord of {n} returned {value!r}, expected {n * (n - 1)}")
    wall = time.time() - worker.started
    done = done_at(res.id) - worker.started
    tasks, wcpu, rcpu = n + 1, worker.cpu_seconds(), redis_cpu(r) - redis_cpu0
    return {
        "config": worker.config, "workload": "chord-preloaded", "rep": rep, "tasks": tasks,
        "done_s": round(done, 3), "wall_s": round(wall, 3), "send_s": round(sent, 3),
        "tasks_per_s": round(tasks / done, 1),
        "worker_cpu_s": round(wcpu, 2), "worker_cpu_us_per_task": round(wcpu / tasks * 1e6, 1),
        "redis_cpu_us_per_task": round(rcpu / tasks * 1e6, 1), "producer_cpu_s": 0.0,
        "load1_before": load0, "load1_after": loadavg1(), "steal_pct": 0.0,
    }


WORKLOADS = {
    "chain": lambda: run_chain(ARGS.chain),
    "chord": lambda: run_chord(ARGS.chord),
}


def measure(r, worker: Worker, workload: str, rep: int) -> dict:
    load0, (tot0, steal0) = loadavg1(), cpu_times()
    wcpu0, rcpu0, pcpu0 = worker.cpu_seconds(), redis_cpu(r), time.process_time()
    started = time.perf_counter()
    tasks, sent, done = WORKLOADS[workload]()
    wall = time.perf_counter() - started
    wcpu, rcpu = worker.cpu_seconds() - wcpu0, redis_cpu(r) - rcpu0
    pcpu = time.process_time() - pcpu0
    tot1, steal1 = cpu_times()
    return {
        "config": worker.config, "workload": workload, "rep": rep, "tasks": tasks,
        "done_s": round(done, 3), "wall_s": round(wall, 3), "send_s": round(sent, 3),
        "tasks_per_s": round(tasks / done, 1),
        "worker_cpu_s": round(wcpu, 2), "worker_cpu_us_per_task": round(wcpu / tasks * 1e6, 1),
        "redis_cpu_us_per_task": round(rcpu / tasks * 1e6, 1),
        "producer_cpu_s": round(pcpu, 2),
        "load1_before": load0, "load1_after": loadavg1(),
        "steal_pct": round(100 * (steal1 - steal0) / max(1, tot1 - tot0), 1),
    }


def table(rows: list[dict], configs: list[str], workloads: list[str]) -> str:
    out = ["| workload | worker | done s (runs) | median done s | tasks/s | seen by producer s | "
           "worker CPU µs/task | Redis CPU µs/task | send s | producer CPU s | load avg (1 min) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in workloads:
        for c in configs:
            mine = [x for x in rows if x["config"] == c and x["workload"] == w]
            if not mine:
                continue
            med = lambda k: statistics.median(x[k] for x in mine)  # noqa: E731
            loads = [x["load1_before"] for x in mine] + [x["load1_after"] for x in mine]
            dones = " / ".join(f"{x['done_s']:.2f}" for x in mine)
            out.append(
                f"| {w} | {c} | {dones} | "
                f"**{med('done_s'):.2f}** | {med('tasks_per_s'):,.0f} | {med('wall_s'):.2f} | "
                f"{med('worker_cpu_us_per_task'):,.0f} | {med('redis_cpu_us_per_task'):,.0f} | "
                f"{med('send_s'):.2f} | {med('producer_cpu_s'):.1f} | "
                f"{min(loads):.1f}–{max(loads):.1f} |")
    return "\n".join(out)


def main() -> int:
    configs = [c for c in ARGS.configs.split(",") if c]
    workloads = [w for w in ARGS.workloads.split(",") if w]
    r = redis.Redis.from_url(ARGS.redis)
    r.flushdb()
    print(json.dumps({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "uptime_load": os.getloadavg(),
                      "cores": os.cpu_count(), "chain": ARGS.chain, "chord": ARGS.chord,
                      "redis": r.info("server")["redis_version"],
                      "celery": __import__("celery").__version__,
                      "python": sys.version.split()[0]}), flush=True)
    rows = []
    run_started = time.perf_counter()
    for rep in range(1, ARGS.reps + 1):
        for config in configs:
            preloaded = None
            if "chord-preloaded" in workloads:
                preloaded = send_preloaded_chord(ARGS.chord)
            load0, redis_cpu0 = loadavg1(), redis_cpu(r)
            worker = Worker(config, rep)
            try:
                if preloaded:
                    row = measure_preloaded(r, worker, *preloaded, redis_cpu0, load0, rep)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                worker.wait_ready()
                for workload in (w for w in workloads if w in WORKLOADS):
                    row = measure(r, worker, workload, rep)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                worker.stop()
    print(json.dumps({"finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "seconds": round(time.perf_counter() - run_started, 1),
                      "uptime_load": os.getloadavg()}), flush=True)
    print()
    print(table(rows, configs, workloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
