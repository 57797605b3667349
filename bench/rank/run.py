"""Benchmark /rank: the Celeriac ranking server against the FastAPI reference.

Started by bench/rank/run.sh (which builds the release binary and installs
the reference's requirements). In one run, on loopback:

1. a private redis-server holding a top-entities record of 10 entities;
2. `post-history rank-server` (reads the record in the background) and the
   reference `uvicorn ranking_server:app` (reads it per request, as the
   original did), with 1 and with 2 uvicorn worker processes;
3. request bodies of 10 and 100 reddit items (~230 characters of text each,
   a third mentioning one of the entities), built deterministically;
4. a parity check: both servers must give the same ranked_ids;
5. wrk, one thread: a closed-loop run (throughput, p50/p99, server CPU per
   request) and a run paced at a fixed rate (p50/p99 below saturation), per
   server and size.

Prints a Markdown table (and writes it to --out when given).
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
KEY = "my_worker:scheduled:top_named_entities"
ENTITIES = [
    "Washington", "Donald Trump", "Golden State Warriors", "Congress", "New York City",
    "Apple", "Main Street", "CNN", "LeBron James", "City Council",
]
WORDS = (
    "the council said on Tuesday that new rules would apply to every district after a long "
    "debate about budgets schools roads and the future of the town honestly I think people "
    "should read the article before they comment because this keeps happening every year"
).split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FLOOR = "HTTP floor (same stack, body read, constant answer)"
FLOOR_AXUM = "HTTP floor on plain axum::serve (no connection timeouts)"
OURS = "Celeriac rank-server"
BEFORE = "Celeriac rank-server, before (--before)"


def wait_port(base, timeout=30.0):
    host, port = base.rsplit("/", 1)[-1].split(":")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{base} did not come up")


def wait_http(url, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def feed(n, rng):
    items = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(40)]
        text = " ".join(words)[:200].capitalize()
        if i % 3 == 1:
            text += f" Anyway, {rng.choice(ENTITIES)} again."
        else:
            text += " Anyway, same as always."
        items.append({
            "id": f"t3_{rng.getrandbits(40):010x}",
            "post_id": None,
            "parent_id": None,
            "title": "Discussion thread" if i % 4 == 0 else None,
            "text": text,
            "author_name_hash": f"{rng.getrandbits(256):064x}",
            "type": "post" if i % 4 == 0 else "comment",
            "embedded_urls": [],
            "created_at": f"2024-01-20 1{i % 10}:{i % 60:02d}:{(7 * i) % 60:02d}",
            "engagements": {"upvote": rng.randint(0, 500), "downvote": rng.randint(0, 50),
                            "comment": rng.randint(0, 80), "award": rng.randint(0, 3)},
        })
    return {
        "session": {
            "user_id": "193a9e01-8849-4e1f-a42a-a859fa7f2ad3",
            "user_name_hash": "6511c5688bbb87798128695a283411a26da532df06e6e931a53416e379ddda0e",
            "platform": "reddit",
            "cohort": "AB",
            "current_time": "2024-01-20 18:41:20",
        },
        "items": items,
    }


def post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def cpu_seconds(root_pid):
    """User + system CPU seconds of a process and its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = {}
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def wrk(url, script, args, conns, duration, pid=None):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", script, url, "--"] + args
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if bad or errors:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    return {"rps": rps, "p50": to_ms(lat.get("50", "")), "p99": to_ms(lat.get("99", "")),
            "cpu_us": cpu * 1e6 / max(total, 1)}


def paced_run(base, path, args):
    """wrk paced at about args.rate: connections x 1000 / (pause + latency)
    requests per second. The connection count is corrected (at most twice)
    until the rate reached is within 3 % of the target; a server that cannot
    keep up stays below it, which the table shows."""
    conns = max(1, round(args.rate * (args.pause_ms + 0.5) / 1000))
    for _ in range(3):
        paced = wrk(base, os.path.join(HERE, "paced.lua"), [path, str(args.pause_ms)],
                    conns, args.duration)
        paced["conns"] = conns
        if paced["rps"] >= 0.97 * args.rate or paced["rps"] < 0.5 * args.rate:
            break
        conns = int(conns * args.rate / paced["rps"]) + 1
    return paced


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--celeriac", default=os.path.join(ROOT, "target/release/post-history"))
    ap.add_argument("--floor", default=os.path.join(ROOT, "target/release/examples/http_floor"),
                    help="the HTTP floor server (crates/posts/examples/http_floor.rs)")
    ap.add_argument("--before", help="another celeriac binary (an earlier build) measured in "
                    "the same run, as its own row")
    ap.add_argument("--floor-axum", action="store_true",
                    help="also measure the floor on plain axum::serve (without the "
                    "per-connection timeouts of the serving stack)")
    ap.add_argument("--only", help="comma-separated: celeriac,before,floor,floor-axum,uvicorn "
                    "(default: all that apply)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64, help="closed-loop connections")
    ap.add_argument("--rate", type=int, default=5000, help="paced requests per second")
    ap.add_argument("--pause-ms", type=int, default=1,
                    help="paced runs: each connection's wait between requests")
    ap.add_argument("--out", help="also write the Markdown table here")
    args = ap.parse_args()
    for tool in ("wrk", "redis-server", "redis-cli"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install -y wrk redis-server)")

    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="rank-bench-")
    try:
        redis_port = free_port()
        procs.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", tmp])
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(redis_port), "ping"],
                              capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        record = json.dumps({"top_named_entities": [[e, 100 - i] for i, e in enumerate(ENTITIES)],
                             "timestamp": "2024-01-20T18:41:20.000000+00:00"})
        subprocess.run(["redis-cli", "-p", str(redis_port), "set", KEY, record],
                       check=True, capture_output=True)

        rng = random.Random(42)
        bodies = {}
        for n in (10, 100):
            path = os.path.join(tmp, f"body{n}.json")
            with open(path, "w") as f:
                json.dump(feed(n, rng), f)
            bodies[n] = path

        redis_url = f"redis://127.0.0.1:{redis_port}"
        servers = []
        only = set(args.only.split(",")) if args.only else None

        def wanted(kind):
            return only is None or kind in only

        def rank_server(name, binary):
            port = free_port()
            p = procs.start([binary, "rank-server", "--port", str(port),
                             "--backend", f"{redis_url}/0"])
            servers.append((name, f"http://127.0.0.1:{port}", p))

        if wanted("celeriac"):
            rank_server(OURS, args.celeriac)
        if args.before and wanted("before"):
            rank_server(BEFORE, args.before)
        # The floor: the same HTTP stack reading the body and answering a
        # constant; no handler can be faster than this on this machine.
        if wanted("floor"):
            port = free_port()
            floor = procs.start([args.floor, str(port)])
            servers.append((FLOOR, f"http://127.0.0.1:{port}", floor))
        if args.floor_axum and wanted("floor-axum"):
            port = free_port()
            floor = procs.start([args.floor, str(port), "--axum-serve"])
            servers.append((FLOOR_AXUM, f"http://127.0.0.1:{port}", floor))
        for workers in (1, 2) if wanted("uvicorn") else ():
            port = free_port()
            p = procs.start([args.python, "-m", "uvicorn", "ranking_server:app", "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                            cwd=os.path.join(ROOT, "bench/fastapi"),
                            env=dict(os.environ, REDIS_CONNECTION_STRING=redis_url))
            servers.append((f"FastAPI/uvicorn, {workers} worker{'s' if workers > 1 else ''}",
                            f"http://127.0.0.1:{port}", p))
        floors = (FLOOR, FLOOR_AXUM)
        for name, base, _ in servers:
            if name not in floors:
                wait_http(base + "/health")
            else:
                wait_port(base)

        # Parity: the same ranking from every server.
        for n, path in bodies.items():
            body = open(path, "rb").read()
            answers = {name: post(base + "/rank", body)["ranked_ids"]
                       for name, base, _ in servers if name not in floors}
            items = json.loads(body)["items"]
            expected = [i["id"] for i in items if not any(e in i["text"] for e in ENTITIES)] + \
                       [i["id"] for i in items if any(e in i["text"] for e in ENTITIES)]
            for name, ids in answers.items():
                if ids != expected:
                    raise SystemExit(f"{name} ranked the {n}-item feed differently: {ids}")
        print("parity: every server gives the expected ranking for both feeds", file=sys.stderr)

        results = {}
        for name, base, proc in servers:
            for n, path in bodies.items():
                wrk(base, os.path.join(HERE, "post.lua"), [path], args.connections, 2)  # warm-up
                closed = wrk(base, os.path.join(HERE, "post.lua"), [path],
                             args.connections, args.duration, proc.pid)
                paced = paced_run(base, path, args)
                results[(name, n)] = (closed, paced)
                print(f"{name}, {n} items: {closed['rps']:.0f} req/s closed loop "
                      f"({closed['cpu_us']:.0f} µs server CPU per request); "
                      f"paced {paced['rps']:.0f} req/s p50 {paced['p50']:.2f} ms "
                      f"p99 {paced['p99']:.2f} ms", file=sys.stderr)
            procs.stop(proc)

        lines = [
            f"| server | items | closed loop ({args.connections} conns): req/s | p50 ms | p99 ms "
            f"| server CPU µs/req "
            f"| paced at ~{args.rate}/s: req/s (conns) | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for (name, n), (closed, paced) in results.items():
            lines.append(f"| {name} | {n} | {closed['rps']:,.0f} | {closed['p50']:.2f} | "
                         f"{closed['p99']:.2f} | {closed['cpu_us']:.0f} | "
                         f"{paced['rps']:,.0f} ({paced['conns']}) | {paced['p50']:.2f} | "
                         f"{paced['p99']:.2f} |")
        lines.append("")
        names = [name for name, _, _ in servers]
        for n in bodies:
            for ours_name in (OURS, BEFORE):
                if ours_name not in names:
                    continue
                ours = results[(ours_name, n)][0]
                for floor_name in floors:
                    if floor_name in names:
                        floor = results[(floor_name, n)][0]
                        lines.append(f"- {n} items: {ours_name} reaches "
                                     f"**{100 * ours['rps'] / floor['rps']:.0f} %** of the "
                                     f"{floor_name} ({floor['rps']:,.0f} req/s); server CPU "
                                     f"{ours['cpu_us']:.0f} µs/request against "
                                     f"{floor['cpu_us']:.0f}")
                for name in names:
                    if not name.startswith("FastAPI"):
                        continue
                    theirs = results[(name, n)][0]
                    lines.append(f"- {n} items: {ours_name} / {name}: "
                                 f"**{ours['rps'] / theirs['rps']:.1f}×** throughput, "
                                 f"{theirs['cpu_us'] / max(ours['cpu_us'], 1e-9):.1f}× less "
                                 f"server CPU per request")
        table = "\n".join(lines)
        print(table)
        if args.out:
            with open(args.out, "w") as f:
                f.write(table + "\n")
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
