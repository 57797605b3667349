#!/usr/bin/env python3
"""Capture real Celery 5.x / kombu wire fixtures for Celeriac.

Records the literal bytes a real Python Celery + kombu put on Redis into
crates/celeriac/tests/fixtures/celery/ (see the README.md there):
task envelopes as they sit in the queue lists, binding sets, the unacked
hash, result-backend values, events, and pidbox (remote control) messages.

Run it inside the project's venv (scripts/test.sh sets it up):

    scripts/test.sh --env-only -- python scripts/capture_celery_fixtures.py

It always starts its own private redis-server (db 0 must be empty and is
watched with MONITOR), taken from $CELERIAC_TEST_REDIS_SERVER or PATH.
Python workers run tests/python/pytasks.py. Takes about two minutes.

Options:
    --out DIR    output folder (default crates/celeriac/tests/fixtures/celery)
    --keep-logs  keep the temp dir with worker and redis logs
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import importlib.metadata as md
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYDIR = os.path.join(ROOT, "tests", "python")
DEFAULT_OUT = os.path.join(ROOT, "crates", "celeriac", "tests", "fixtures", "celery")
WORKER_NAME = "pyworker@capture"

UTC = dt.timezone.utc


def log(*a):
    print("[capture]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# redis-server and MONITOR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, tmp):
        exe = os.environ.get("CELERIAC_TEST_REDIS_SERVER") or shutil.which("redis-server")
        if not exe:
            sys.exit("redis-server not found (run via scripts/test.sh --env-only)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", tmp,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", os.path.join(tmp, "redis.log")],
        )
        import redis
        self.client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                self.client.ping()
                break
            except Exception:
                time.sleep(0.05)
        else:
            sys.exit("redis-server did not start")
        self.version = self.client.info()["redis_version"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


_UNESC = {"\\": b"\\", '"': b'"', "n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}


def parse_monitor_line(line: str):
    """Parse one MONITOR line into (ts, db, client, [bytes args]).

    redis quotes every argument with sdscatrepr: \\\\ \\" \\n \\r \\t \\a \\b and
    \\xHH for every other non-printable byte, so this is exact.
    """
    m = re.match(r'^\+?(\d+\.\d+) \[(\d+) ([^\]]*)\] (.*)$', line)
    if not m:
        return None
    ts, db, client, rest = m.groups()
    args, i, n = [], 0, len(rest)
    while i < n:
        if rest[i] == " ":
            i += 1
            continue
        assert rest[i] == '"', line
        i += 1
        buf = bytearray()
        while rest[i] != '"':
            c = rest[i]
            if c == "\\":
                e = rest[i + 1]
                if e == "x":
                    buf.append(int(rest[i + 2:i + 4], 16))
                    i += 4
                    continue
                buf += _UNESC[e]
                i += 2
                continue
            buf += c.encode("latin-1")
            i += 1
        args.append(bytes(buf))
        i += 1
    return float(ts), int(db), client, args


class Monitor(threading.Thread):
    """Records every command the server runs (raw line + parsed args)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.lines = []  # (raw_line, parsed)
        self.lock = threading.Lock()
        self.stopped = False

    def run(self):
        buf = b""
        while not self.stopped:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n" in buf:
                raw, buf = buf.split(b"\r\n", 1)
                text = raw.decode("latin-1")
                if text == "+OK":
                    continue
                parsed = parse_monitor_line(text)
                if parsed:
                    with self.lock:
                        self.lines.append((text, parsed))

    def mark(self) -> int:
        time.sleep(0.05)
        with self.lock:
            return len(self.lines)

    def since(self, mark: int):
        time.sleep(0.2)
        with self.lock:
            return list(self.lines[mark:])

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass


class PatternSubscriber(threading.Thread):
    """PSUBSCRIBEs to patterns and records (channel, raw data bytes)."""

    def __init__(self, client, *patterns):
        super().__init__(daemon=True)
        self.pubsub = client.pubsub()
        self.pubsub.psubscribe(*patterns)
        self.messages = []
        self.lock = threading.Lock()
        self.stopped = False

    def run(self):
        while not self.stopped:
            try:
                msg = self.pubsub.get_message(timeout=0.2)
            except Exception:
                return
            if msg and msg["type"] == "pmessage":
                with self.lock:
                    self.messages.append((time.time(), msg["channel"], msg["data"]))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def stop(self):
        self.stopped = True
        self.join(2)
        self.pubsub.close()


# --------------------------------------------------------------------------
# output


class Out:
    def __init__(self, folder):
        self.folder = folder
        self.entries = []

    def reset(self):
        os.makedirs(self.folder, exist_ok=True)
        for name in os.listdir(self.folder):
            if name != "README.md":
                path = os.path.join(self.folder, name)
                if os.path.isfile(path):
                    os.remove(path)

    def raw(self, name, data: bytes, desc, produced_by, **meta):
        if name in {e["file"] for e in self.entries}:
            raise RuntimeError(f"duplicate fixture name {name}")
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, name), "wb") as f:
            f.write(data)
        entry = {"file": name, "description": desc, "produced_by": produced_by}
        entry.update({k: v for k, v in meta.items() if v is not None})
        self.entries.append(entry)
        log("wrote", name)

    def json(self, name, obj, desc, produced_by, **meta):
        data = (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()
        self.raw(name, data, desc, produced_by, **meta)

    def envelope(self, stem, raw: bytes, desc, produced_by, **meta):
        """An envelope (raw bytes) plus its base64-decoded body next to it."""
        self.raw(stem + ".json", raw, desc, produced_by, **meta)
        env = json.loads(raw)
        if env.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(env["body"])
            self.raw(stem + ".body.json", body,
                     f"base64-decoded `body` of {stem}.json (exact bytes)", produced_by)

    def transcript(self, name, lines, desc, produced_by):
        text = "".join(raw + "\n" for raw, _ in lines)
        self.raw(name, text.encode("latin-1"), desc, produced_by)


def key_repr(key) -> str:
    if isinstance(key, bytes):
        key = key.decode("utf-8")
    return key


def cmd_repr(args) -> str:
    """A compact, readable rendering of a command (args as Python-escaped strings)."""
    out = []
    for a in args:
        s = a.decode("utf-8", "backslashreplace")
        s = s.encode("unicode_escape").decode("ascii") if any(ord(c) < 32 for c in s) else s
        if len(s) > 80:
            s = s[:77] + "..."
        out.append(s)
    return " ".join(out)


def keyspace(r):
    """All keys with type, TTL and (for small structures) content."""
    out = {}
    for k in sorted(r.keys("*")):
        t = r.type(k).decode()
        entry = {"type": t, "ttl": r.ttl(k)}
        if t == "set":
            entry["members"] = sorted(m.decode() for m in r.smembers(k))
        elif t == "zset":
            entry["members"] = [[m.decode(), s] for m, s in r.zrange(k, 0, -1, withscores=True)]
        elif t == "list":
            entry["length"] = r.llen(k)
        elif t == "hash":
            entry["fields"] = sorted(f.decode() for f in r.hkeys(k))
        elif t == "string":
            v = r.get(k)
            entry["value"] = v.decode("utf-8", "backslashreplace") if len(v) < 300 else f"<{len(v)} bytes>"
        out[key_repr(k)] = entry
    return out


# --------------------------------------------------------------------------
# python workers


class Worker:
    def __init__(self, tmp, url, name, env=None, args=()):
        self.logpath = os.path.join(tmp, f"worker-{name}-{uuid.uuid4().hex[:6]}.log")
        e = dict(os.environ)
        e.update({"CELERIAC_TEST_REDIS_URL": url, "PYTHONPATH": PYDIR,
                  "PYTHONUNBUFFERED": "1"})
        e.update(env or {})
        cmd = [sys.executable, "-m", "celery", "-A", "pytasks", "worker", "-l", "INFO",
               "-c", "1", "-n", WORKER_NAME, *args]
        self.logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen(cmd, cwd=PYDIR, env=e, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_for(r"\bready\.", 60)

    def log_text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log_text()):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("worker died:\n" + self.log_text())
            time.sleep(0.1)
        raise RuntimeError(f"worker: no {pattern!r} within {timeout}s:\n" + self.log_text())

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.logf.close()


def wait_until(fn, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------
# scenarios


class Capture:
    def __init__(self, out: Out, tmp: str):
        self.out = out
        self.tmp = tmp
        self.server = RedisServer(tmp)
        self.url = self.server.url
        os.environ["CELERIAC_TEST_REDIS_URL"] = self.url
        self.r = self.server.client
        self.mon = Monitor(self.server.port)
        self.mon.start()
        sys.path.insert(0, PYDIR)
        import pytasks  # noqa: E402  (needs the env var above)
        self.pytasks = pytasks
        self.app = pytasks.app
        self.facts = {}

    def close(self):
        self.mon.stop()
        self.server.stop()

    # -- helpers

    def lists(self):
        out = {}
        for k in self.r.keys("*"):
            if self.r.type(k) == b"list":
                out[k] = self.r.lrange(k, 0, -1)
        return out

    def pushes(self, lines):
        return [(p[3][0].decode(), p[3][1], p[3][2]) for _, p in lines
                if p[3] and p[3][0].upper() in (b"LPUSH", b"RPUSH")]

    def send_and_capture(self, stem, desc, send, produced_by):
        """Run send(); record each new queue item with the list it landed in."""
        before = self.lists()
        m = self.mon.mark()
        result = send()
        lines = self.mon.since(m)
        after = self.lists()
        new = []
        for k, items in after.items():
            old = before.get(k, [])
            for item in items[: len(items) - len(old)]:  # LPUSH adds at the head
                new.append((k, item))
        pushes = self.pushes(lines)
        assert len(new) >= 1, f"{stem}: nothing queued"
        for i, (k, item) in enumerate(reversed(new)):
            cmd = [c for c, key, val in pushes if key == k and val == item]
            name = stem if len(new) == 1 else f"{stem}.{i + 1}"
            self.out.envelope(name, item, desc, produced_by,
                              redis_key=key_repr(k), redis_command=cmd[0] if cmd else None)
        for k in after:
            self.r.delete(k)
        return result

    # -- 1. task messages as queued by a Python client

    def task_messages(self):
        from celery import chain, chord, group
        app = self.app
        sig = app.signature
        P = "python client, no worker running: "

        self.send_and_capture(
            "task_add_args", "send_task('tasks.add', (2, 3))",
            lambda: app.send_task("tasks.add", (2, 3)), P + "app.send_task('tasks.add', (2, 3))")
        # what the first publish declared
        self.out.json("bindings_after_first_publish.json",
                      {key_repr(k): sorted(m.decode() for m in self.r.smembers(k))
                       for k in sorted(self.r.keys("_kombu.binding*")) if self.r.type(k) == b"set"},
                      "`_kombu.binding*` sets after the first send_task of a fresh client "
                      "(members are routing_key\\x06\\x16pattern\\x06\\x16queue)",
                      P + "first app.send_task")
        self.send_and_capture(
            "task_add_kwargs", "send_task('tasks.add', kwargs={'x': 2, 'y': 3})",
            lambda: app.send_task("tasks.add", kwargs={"x": 2, "y": 3}),
            P + "app.send_task('tasks.add', kwargs={'x': 2, 'y': 3})")
        self.send_and_capture(
            "task_echo_unicode", "unicode args: send_task('tasks.echo', ('héllo wörld ☃ 日本 🎉',))",
            lambda: app.send_task("tasks.echo", ("héllo wörld ☃ 日本 🎉",)),
            P + "app.send_task('tasks.echo', ('héllo wörld ☃ 日本 🎉',))")
        self.send_and_capture(
            "task_add_countdown", "countdown=60 (eta header = now + 60 s)",
            lambda: app.send_task("tasks.add", (2, 3), countdown=60),
            P + "app.send_task('tasks.add', (2, 3), countdown=60)")
        self.send_and_capture(
            "task_add_eta_utc", "eta=datetime(2030, 1, 1, 12, 0, tzinfo=utc)",
            lambda: app.send_task("tasks.add", (2, 3),
                                  eta=dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)),
            P + "app.send_task('tasks.add', (2, 3), eta=datetime(2030,1,1,12,0,tzinfo=utc))")
        self.send_and_capture(
            "task_add_eta_offset", "eta with a +02:00 offset: datetime(2030, 1, 1, 14, 0, tzinfo=+02:00)",
            lambda: app.send_task("tasks.add", (2, 3), eta=dt.datetime(
                2030, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
            P + "app.send_task(..., eta=datetime(2030,1,1,14,0,tzinfo=timezone(timedelta(hours=2))))")
        self.send_and_capture(
            "task_add_eta_naive", "naive eta datetime(2030, 1, 1, 12, 0) (app timezone UTC)",
            lambda: app.send_task("tasks.add", (2, 3), eta=dt.datetime(2030, 1, 1, 12, 0)),
            P + "app.send_task('tasks.add', (2, 3), eta=datetime(2030,1,1,12,0))")
        self.send_and_capture(
            "task_add_expires_seconds", "expires=300 (seconds from now)",
            lambda: app.send_task("tasks.add", (2, 3), expires=300),
            P + "app.send_task('tasks.add', (2, 3), expires=300)")
        self.send_and_capture(
            "task_add_expires_datetime", "expires=datetime(2030, 1, 1, 12, 0, tzinfo=utc)",
            lambda: app.send_task("tasks.add", (2, 3),
                                  expires=dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)),
            P + "app.send_task('tasks.add', (2, 3), expires=datetime(2030,1,1,12,0,tzinfo=utc))")
        for pri in (0, 1, 3, 5, 6, 9):
            self.send_and_capture(
                f"task_add_priority_{pri}", f"priority={pri} (see redis_key for the list it lands in)",
                lambda pri=pri: app.send_task("tasks.add", (2, 3), priority=pri),
                P + f"app.send_task('tasks.add', (2, 3), priority={pri})")
        self.send_and_capture(
            "task_add_custom_queue", "queue='other' (task_create_missing_queues)",
            lambda: app.send_task("tasks.add", (2, 3), queue="other"),
            P + "app.send_task('tasks.add', (2, 3), queue='other')")
        self.send_and_capture(
            "task_add_ignore_result", "ignore_result=True",
            lambda: app.send_task("tasks.add", (2, 3), ignore_result=True),
            P + "app.send_task('tasks.add', (2, 3), ignore_result=True)")
        self.send_and_capture(
            "task_add_time_limits", "time_limit=30, soft_time_limit=20",
            lambda: app.send_task("tasks.add", (2, 3), time_limit=30, soft_time_limit=20),
            P + "app.send_task('tasks.add', (2, 3), time_limit=30, soft_time_limit=20)")
        self.send_and_capture(
            "task_add_link", "link=signature('tasks.echo') and link_error=signature('tasks.echo', ('failed',))",
            lambda: app.send_task("tasks.add", (2, 3), link=sig("tasks.echo"),
                                  link_error=sig("tasks.echo", ("failed",))),
            P + "app.send_task('tasks.add', (2, 3), link=app.signature('tasks.echo'), "
                "link_error=app.signature('tasks.echo', ('failed',)))")
        self.send_and_capture(
            "task_chain_first", "first message of chain(add(2,3), add(10), echo()): the rest is in body[2].chain (reversed)",
            lambda: chain(sig("tasks.add", (2, 3)), sig("tasks.add", (10,)),
                          sig("tasks.echo")).apply_async(),
            P + "chain(app.signature('tasks.add', (2, 3)), app.signature('tasks.add', (10,)), "
                "app.signature('tasks.echo')).apply_async()")
        self.send_and_capture(
            "task_group_member", "group(add(1,1), add(2,2)): one message per member, with group/group_index headers",
            lambda: group(sig("tasks.add", (1, 1)), sig("tasks.add", (2, 2))).apply_async(),
            P + "group(app.signature('tasks.add', (1, 1)), app.signature('tasks.add', (2, 2))).apply_async()")
        self.send_and_capture(
            "task_chord_header", "chord([add(1,1), add(2,2)], echo()): header messages carry body[2].chord",
            lambda: chord([sig("tasks.add", (1, 1)), sig("tasks.add", (2, 2))])(sig("tasks.echo")),
            P + "chord([app.signature('tasks.add', (1, 1)), app.signature('tasks.add', (2, 2))])"
                "(app.signature('tasks.echo'))")
        self.send_and_capture(
            "task_add_shadow_headers", "shadow='shadowed.name' and custom headers={'x-custom': 'v'}",
            lambda: app.send_task("tasks.add", (2, 3), shadow="shadowed.name",
                                  headers={"x-custom": "v"}),
            P + "app.send_task('tasks.add', (2, 3), shadow='shadowed.name', headers={'x-custom': 'v'})")
        self.out.json("keyspace_after_client_sends.json", keyspace(self.r),
                      "every key (type, ttl, small contents) after the sends above (queues deleted)",
                      P + "all sends above")
        # start clean for the worker scenarios
        self.r.flushdb()

    # -- 2. bindings and keyspace of an idle worker; 3. unacked

    def worker_bindings(self):
        m = self.mon.mark()
        w = Worker(self.tmp, self.url, "idle")
        time.sleep(3)
        lines = self.mon.since(m)
        self.out.json("keyspace_worker_idle.json", keyspace(self.r),
                      "every key while a default Python worker (celery -A pytasks worker -c 1) idles",
                      f"celery worker -n {WORKER_NAME} (defaults: gossip, mingle, heartbeat)")
        self.out.json("bindings_worker.json",
                      {key_repr(k): sorted(m.decode() for m in self.r.smembers(k))
                       for k in sorted(self.r.keys("_kombu.binding*")) if self.r.type(k) == b"set"},
                      "`_kombu.binding*` sets after a default Python worker started",
                      f"celery worker -n {WORKER_NAME}")
        self.out.transcript("monitor_worker_startup.txt", lines,
                            "MONITOR transcript: a default Python worker starting up and idling 3 s",
                            f"celery worker -n {WORKER_NAME}")
        # one task through the worker, as the broker sees it
        m = self.mon.mark()
        res = self.app.send_task("tasks.add", (2, 3))
        assert res.get(timeout=20) == 5
        time.sleep(0.5)
        self.out.transcript("monitor_worker_task_add.txt", self.mon.since(m),
                            "MONITOR transcript: client send_task('tasks.add', (2, 3)) + "
                            "result.get(); worker consumes, acks, stores the result",
                            "python client + default worker")
        w.stop()
        self.r.flushdb()

    def unacked(self):
        env = {"CELERIAC_PY_ACKS_LATE": "1", "CELERIAC_PY_PREFETCH": "2"}
        w = Worker(self.tmp, self.url, "ackslate", env=env)
        r1 = self.app.send_task("tasks.sleep", (6,))
        r2 = self.app.send_task("tasks.sleep", (6,))
        wait_until(lambda: self.r.hlen("unacked") >= 2, 20, "two unacked messages")
        wait_until(lambda: f"Task tasks.sleep[{r1.id}] received" in w.log_text(), 10, "received log")
        unacked = self.r.hgetall("unacked")
        index = self.r.zrange("unacked_index", 0, -1, withscores=True)
        for i, (tag, value) in enumerate(sorted(unacked.items(), key=lambda kv: dict(index)[kv[0]])):
            self.out.raw(f"unacked_value_{i + 1}.json", value,
                         f"HGET unacked <delivery_tag> for tasks.sleep #{i + 1} held by an acks_late "
                         "worker (prefetch 2): JSON [envelope, exchange, routing_key]",
                         "celery worker with task_acks_late=True, worker_prefetch_multiplier=2, -c 1",
                         redis_key="unacked", hash_field=tag.decode())
        self.out.json("unacked_index.json",
                      [[t.decode(), s] for t, s in index],
                      "ZRANGE unacked_index 0 -1 WITHSCORES at the same moment: [delivery_tag, unix time of delivery]",
                      "same worker", redis_key="unacked_index")
        self.out.json("keyspace_worker_holding_unacked.json", keyspace(self.r),
                      "every key while the acks_late worker holds two messages", "same worker")
        # warm shutdown: the running task finishes, the reserved one is restored
        m = self.mon.mark()
        time.sleep(0.5)
        w.stop()
        lines = self.mon.since(m)
        self.out.transcript("monitor_warm_shutdown_restore.txt", lines,
                            "MONITOR transcript: SIGTERM to the acks_late worker holding one running and one "
                            "reserved message (warm shutdown: running one finishes+acks, reserved one restored)",
                            "same worker, SIGTERM")
        queued = self.r.lrange("celery", 0, -1)
        if queued:
            self.out.envelope("task_restored_at_shutdown", queued[-1],
                              "the reserved message as restored onto `celery` by a warm shutdown (RPUSH, "
                              "redelivered marked)", "same worker, SIGTERM", redis_key="celery")
        self.facts["warm_shutdown_requeued"] = len(queued)
        self.r.flushdb()

        # crash + visibility timeout restore
        w = Worker(self.tmp, self.url, "crash", env={"CELERIAC_PY_ACKS_LATE": "1",
                                                     "CELERIAC_PY_PREFETCH": "1"})
        r3 = self.app.send_task("tasks.sleep", (30,))
        wait_until(lambda: self.r.hlen("unacked") >= 1, 20, "unacked message")
        wait_until(lambda: f"[{r3.id}] received" in w.log_text(), 10, "received log")
        time.sleep(0.5)
        w.kill()
        from kombu import Connection
        time.sleep(1.2)
        m = self.mon.mark()
        with Connection(self.url, transport_options={"visibility_timeout": 1}) as conn:
            chan = conn.default_channel
            chan.qos.restore_visible(num=10, interval=1)
        lines = self.mon.since(m)
        self.out.transcript("monitor_restore_visible.txt", lines,
                            "MONITOR transcript: kombu QoS.restore_visible() with visibility_timeout=1 after "
                            "the worker holding a message was SIGKILLed",
                            "kombu Connection(url, transport_options={'visibility_timeout': 1})"
                            ".default_channel.qos.restore_visible(num=10, interval=1)")
        queued = self.r.lrange("celery", 0, -1)
        assert queued, "restore_visible did not requeue"
        self.out.envelope("task_restored_by_visibility_timeout", queued[-1],
                          "the message a SIGKILLed acks_late worker held, as requeued by restore_visible",
                          "kombu restore_visible", redis_key="celery")
        self.r.flushdb()

    # -- 4. result backend

    def results(self):
        app = self.app
        r = self.r
        w = Worker(self.tmp, self.url, "results")

        def meta_of(res, stem, desc):
            key = f"celery-task-meta-{res.id}"
            raw = wait_until(lambda: r.get(key), 30, key)
            self.out.raw(stem + ".json", raw, desc, "python client + default worker (result_extended=False)",
                         redis_key="celery-task-meta-<task id>", ttl_seconds=r.ttl(key))
            return raw

        m = self.mon.mark()
        res = app.send_task("tasks.add", (2, 3))
        assert res.get(timeout=20) == 5
        lines = self.mon.since(m)
        raw = meta_of(res, "result_success_int", "SUCCESS of tasks.add(2, 3)")
        pubs = [p[3] for _, p in lines if p[3][0].upper() == b"PUBLISH"
                and p[3][1] == f"celery-task-meta-{res.id}".encode()]
        if pubs:
            self.out.raw("result_success_int.publish.json", pubs[0][2],
                         "the PUBLISH payload on channel celery-task-meta-<id> for the same result",
                         "same", redis_key="channel celery-task-meta-<task id>")
            self.facts["publish_equals_stored"] = pubs[0][2] == raw
        self.out.transcript("monitor_result_get.txt", lines,
                            "MONITOR transcript: send_task + AsyncResult.get() (client subscribes, worker "
                            "stores with SETEX and publishes)", "python client + default worker")

        res = app.send_task("tasks.echo", ("héllo ☃",))
        res.get(timeout=20)
        meta_of(res, "result_success_str", "SUCCESS of tasks.echo('héllo ☃')")
        res = app.send_task("tasks.echo", ({"a": 1, "b": [1, 2], "c": None},))
        res.get(timeout=20)
        meta_of(res, "result_success_dict", "SUCCESS of tasks.echo({'a': 1, 'b': [1, 2], 'c': None})")
        res = app.send_task("tasks.echo", ([1, "two", 3.5, None, True],))
        res.get(timeout=20)
        meta_of(res, "result_success_list", "SUCCESS of tasks.echo([1, 'two', 3.5, None, True])")
        res = app.send_task("tasks.fail", ("bad value",))
        try:
            res.get(timeout=20)
        except ValueError:
            pass
        meta_of(res, "result_failure", "FAILURE of tasks.fail('bad value') (raises ValueError)")

        # RETRY: the meta is overwritten by the retried run, so poll for it
        res = app.send_task("tasks.retry_once", kwargs={"countdown": 4})
        key = f"celery-task-meta-{res.id}"
        raw = wait_until(lambda: (lambda v: v if v and b'"RETRY"' in v else None)(r.get(key)), 20, "RETRY")
        self.out.raw("result_retry.json", raw,
                      "RETRY state of tasks.retry_once(countdown=4) (self.retry(exc=ValueError('try again')))",
                      "python client + default worker", redis_key="celery-task-meta-<task id>")
        assert res.get(timeout=20) == 1
        meta_of(res, "result_success_after_retry", "SUCCESS of the same task after its one retry")

        # REVOKED via control.revoke before the eta
        res = app.send_task("tasks.echo", ("never",), countdown=3)
        app.control.revoke(res.id)
        meta_of(res, "result_revoked", "REVOKED: tasks.echo sent with countdown=3 then app.control.revoke(id)")
        # REVOKED because expired
        res = app.send_task("tasks.echo", ("late",),
                            expires=dt.datetime.now(UTC) - dt.timedelta(seconds=10))
        meta_of(res, "result_expired", "REVOKED (expired): tasks.echo sent with expires 10 s in the past")
        # ignore_result stores nothing
        res = app.send_task("tasks.add", (1, 1), ignore_result=True)
        time.sleep(1.5)
        self.facts["ignore_result_stores_nothing"] = r.get(f"celery-task-meta-{res.id}") is None
        # group / chord results
        from celery import chord
        res = chord([app.signature("tasks.add", (1, 1)), app.signature("tasks.add", (2, 2))])(
            app.signature("tasks.echo"))
        assert res.get(timeout=20) == [2, 4]
        meta_of(res, "result_chord_body", "SUCCESS of the chord body tasks.echo([2, 4])")
        self.out.json("keyspace_after_results.json", keyspace(r),
                      "every key after the result scenarios (shows TTLs and chord keys)",
                      "python client + default worker")
        w.stop()
        r.flushdb()

        # result_extended + track_started
        env = {"CELERIAC_PY_RESULT_EXTENDED": "1", "CELERIAC_PY_TRACK_STARTED": "1"}
        w = Worker(self.tmp, self.url, "extended", env=env)
        app.conf.result_extended = True
        P = "python client + worker with result_extended=True, task_track_started=True"
        res = app.send_task("tasks.sleep", (2,))
        key = f"celery-task-meta-{res.id}"
        raw = wait_until(lambda: (lambda v: v if v and b'"STARTED"' in v else None)(r.get(key)), 20, "STARTED")
        self.out.raw("result_extended_started.json", raw, "STARTED of tasks.sleep(2) (track_started)", P,
                     redis_key="celery-task-meta-<task id>")
        res.get(timeout=20)
        self.out.raw("result_extended_success_sleep.json", r.get(key), "SUCCESS of tasks.sleep(2)", P,
                     redis_key="celery-task-meta-<task id>")
        res = app.send_task("tasks.add", (2, 3))
        res.get(timeout=20)
        self.out.raw("result_extended_success.json", r.get(f"celery-task-meta-{res.id}"),
                     "SUCCESS of tasks.add(2, 3) with result_extended", P,
                     redis_key="celery-task-meta-<task id>")
        res = app.send_task("tasks.add", kwargs={"x": 2, "y": 3}, queue="celery")
        res.get(timeout=20)
        self.out.raw("result_extended_success_kwargs.json", r.get(f"celery-task-meta-{res.id}"),
                     "SUCCESS of tasks.add(x=2, y=3) with result_extended", P,
                     redis_key="celery-task-meta-<task id>")
        res = app.send_task("tasks.fail", ("bad value",))
        try:
            res.get(timeout=20)
        except ValueError:
            pass
        self.out.raw("result_extended_failure.json", r.get(f"celery-task-meta-{res.id}"),
                     "FAILURE of tasks.fail('bad value') with result_extended", P,
                     redis_key="celery-task-meta-<task id>")
        app.conf.result_extended = False
        w.stop()
        r.flushdb()

    # -- 5. events

    def events(self):
        app = self.app
        sub = PatternSubscriber(self.r, "/0.celeryev/*")
        sub.start()
        time.sleep(0.3)
        w = Worker(self.tmp, self.url, "events", args=("-E",))
        app.conf.task_send_sent_event = True
        r1 = app.send_task("tasks.add", (2, 3))
        r1.get(timeout=20)
        r2 = app.send_task("tasks.fail", ("bad value",))
        try:
            r2.get(timeout=20)
        except ValueError:
            pass
        r3 = app.send_task("tasks.retry_once", kwargs={"countdown": 1})
        r3.get(timeout=20)
        r4 = app.send_task("tasks.echo", ("never",), countdown=2)
        app.control.revoke(r4.id)
        time.sleep(5)  # heartbeats every 2 s
        app.conf.task_send_sent_event = False
        w.stop()
        time.sleep(1)
        sub.stop()
        msgs = sub.snapshot()
        seen = set()
        evlog = []
        for ts, channel, data in msgs:
            env = json.loads(data)
            body = json.loads(base64.b64decode(env["body"]))
            types = [e["type"] for e in body] if isinstance(body, list) else [body["type"]]
            evlog.append({"channel": channel.decode(), "types": types})
            ch = channel.decode()
            rk = ch.split("/", 2)[2]
            stem = "event_" + rk.replace(".", "_")
            if isinstance(body, list):
                stem += "_" + "_".join(t.replace("task-", "") for t in types)
            if stem in seen:
                continue
            seen.add(stem)
            self.out.envelope(stem, data,
                              f"raw PUBLISH payload on channel {ch} (event types: {', '.join(types)})",
                              "PSUBSCRIBE /0.celeryev/* while a worker with -E ran tasks.add, tasks.fail, "
                              "tasks.retry_once, a revoked tasks.echo; client with task_send_sent_event=True",
                              redis_key=ch)
        self.out.json("events_log.json", evlog,
                      "every event message seen, in order: channel and the event type(s) in its body",
                      "same")
        self.r.flushdb()

    # -- 6. pidbox

    def pidbox(self):
        app = self.app
        sub = PatternSubscriber(self.r, "/0.celery.pidbox*")
        sub.start()
        time.sleep(0.3)
        w = Worker(self.tmp, self.url, "pidbox")  # mingle broadcasts `hello` at startup
        time.sleep(1)
        env = dict(os.environ, PYTHONPATH=PYDIR, CELERIAC_TEST_REDIS_URL=self.url)

        def cli(*args):
            m = self.mon.mark()
            p = subprocess.run([sys.executable, "-m", "celery", "-A", "pytasks", *args],
                               cwd=PYDIR, env=env, capture_output=True, timeout=60)
            return p, self.mon.since(m)

        n_before = len(sub.snapshot())
        p, lines = cli("inspect", "ping")
        assert p.returncode == 0, p.stderr
        self.out.transcript("monitor_inspect_ping.txt", lines,
                            "MONITOR transcript of `celery -A pytasks inspect ping` against one worker",
                            "celery inspect ping")
        self.out.raw("pidbox_inspect_ping_cli_output.txt", p.stdout,
                     "stdout of `celery -A pytasks inspect ping`", "celery inspect ping")
        self._pidbox_from(sub, n_before, lines, "ping", "celery -A pytasks inspect ping")

        # give the inspect replies something to show: one active, one reserved,
        # two scheduled (eta) tasks; one of the scheduled ones gets revoked
        active = app.send_task("tasks.sleep", (30,))
        w.wait_for(re.escape(f"Task tasks.sleep[{active.id}] received"), 20)
        reserved = app.send_task("tasks.sleep", (1,))
        sched1 = app.send_task("tasks.echo", ("later",), countdown=300)
        sched2 = app.send_task("tasks.echo", ("revoked later",), countdown=300)
        w.wait_for(re.escape(f"Task tasks.echo[{sched2.id}] received"), 20)
        self.facts["pidbox_task_ids"] = {"active": active.id, "reserved": reserved.id,
                                         "scheduled": sched1.id, "scheduled_revoked": sched2.id}
        for method, call, produced in [
            ("enable_events", lambda: app.control.enable_events(), "app.control.enable_events()"),
            ("disable_events", lambda: app.control.disable_events(), "app.control.disable_events()"),
            ("revoke", lambda: app.control.revoke(sched2.id),
             "app.control.revoke(<id of a scheduled task>)"),
            ("revoke_terminate", lambda: app.control.revoke(
                "00000000-0000-0000-0000-000000000001", terminate=True, signal="SIGKILL"),
             "app.control.revoke('00000000-0000-0000-0000-000000000001', terminate=True, signal='SIGKILL')"),
            ("rate_limit", lambda: app.control.rate_limit("tasks.add", "10/m", reply=True, timeout=1),
             "app.control.rate_limit('tasks.add', '10/m', reply=True)"),
            ("ping_destination", lambda: app.control.ping(destination=[WORKER_NAME], timeout=1),
             f"app.control.ping(destination=['{WORKER_NAME}'])"),
        ]:
            n_before = len(sub.snapshot())
            m = self.mon.mark()
            call()
            self._pidbox_from(sub, n_before, self.mon.since(m), method, produced)
        for method, call in [
            ("stats", lambda i: i.stats()),
            ("active", lambda i: i.active()),
            ("reserved", lambda i: i.reserved()),
            ("scheduled", lambda i: i.scheduled()),
            ("registered", lambda i: i.registered()),
            ("active_queues", lambda i: i.active_queues()),
            ("revoked", lambda i: i.revoked()),
            ("conf", lambda i: i.conf()),
            ("query_task", lambda i: i.query_task(active.id, sched1.id)),
        ]:
            n_before = len(sub.snapshot())
            m = self.mon.mark()
            call(app.control.inspect(timeout=1.0))
            self._pidbox_from(sub, n_before, self.mon.since(m), method,
                              f"app.control.inspect(timeout=1.0).{method}()"
                              + (" with one active, one reserved and one scheduled task"
                                 if method in ("active", "reserved", "scheduled", "query_task", "stats")
                                 else ""))
        w.kill()  # the active task sleeps on; no need to wait for it
        time.sleep(0.5)
        sub.stop()
        # the mingle `hello` at worker startup is the first message seen
        for ts, channel, data in sub.snapshot():
            body = json.loads(base64.b64decode(json.loads(data)["body"]))
            if body.get("method") == "hello":
                self.out.envelope("pidbox_broadcast_hello_mingle", data,
                                  f"raw PUBLISH on {channel.decode()}: the mingle `hello` a starting worker "
                                  "broadcasts", "celery worker startup (mingle)", redis_key=channel.decode())
                break
        self.r.flushdb()

    def _pidbox_from(self, sub, n_before, lines, method, produced_by):
        wanted = method.replace("_terminate", "").replace("_destination", "")

        def find():
            for ts, channel, data in sub.snapshot()[n_before:]:
                body = json.loads(base64.b64decode(json.loads(data)["body"]))
                if body.get("method") == wanted:
                    return channel, data
            return None

        channel, data = wait_until(find, 5, f"pidbox broadcast for {method}")
        self.out.envelope(f"pidbox_broadcast_{method}", data,
                          f"raw PUBLISH payload on channel {channel.decode()} for `{method}`",
                          produced_by, redis_key=channel.decode())
        for _, p in lines:
            args = p[3]
            if args[0].upper() == b"LPUSH" and args[1].endswith(b".reply.celery.pidbox"):
                self.out.envelope(f"pidbox_reply_{method}", args[2],
                                  f"the worker's reply to `{method}`, as LPUSHed (value taken from MONITOR)",
                                  f"{WORKER_NAME} answering {produced_by}",
                                  redis_key=key_repr(args[1]), redis_command=args[0].decode())
                break


# --------------------------------------------------------------------------
# README generation

BEGIN = "<!-- BEGIN GENERATED (scripts/capture_celery_fixtures.py) -->"
END = "<!-- END GENERATED -->"


def md_escape(s: str) -> str:
    s = s.encode("unicode_escape").decode("ascii") if any(ord(c) < 32 for c in s) else s
    return s.replace("|", "\\|")


def write_readme(out: Out, versions, facts):
    path = os.path.join(out.folder, "README.md")
    lines = [BEGIN, "",
             f"Captured {dt.datetime.now(UTC).strftime('%Y-%m-%d')} with "
             + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
             "Every envelope `X.json` (task message, event, pidbox message) comes with `X.body.json`: "
             "its `body` base64-decoded, exact bytes. `manifest.json` lists every file, "
             "machine-readably.", "",
             "| file | what | produced by | redis key / channel |",
             "| --- | --- | --- | --- |"]
    for e in out.entries:
        if e["file"].endswith(".body.json"):
            continue  # every envelope X.json has its decoded body in X.body.json
        key = e.get("redis_key", "")
        extra = []
        if e.get("redis_command"):
            extra.append(e["redis_command"])
        if e.get("hash_field"):
            extra.append(f"field {e['hash_field']}")
        if e.get("ttl_seconds") is not None:
            extra.append(f"TTL {e['ttl_seconds']} s")
        keycell = f"`{md_escape(key)}`" if key else ""
        if extra:
            keycell += (" " if keycell else "") + "(" + ", ".join(extra) + ")"
        lines.append(f"| `{e['file']}` | {md_escape(e['description'])} | "
                     f"{md_escape(e['produced_by'])} | {keycell} |")
    lines += ["", "Observed during capture: `" + json.dumps(facts, sort_keys=True) + "`", "", END]
    block = "\n".join(lines)
    if os.path.exists(path):
        text = open(path, encoding="utf-8").read()
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            _, post = rest.split(END, 1)
            text = pre + block + post
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = "# Celery wire fixtures\n\n## Files\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--only", nargs="*", help="run only these scenarios (debugging; README not rewritten)")
    ap.add_argument("--readme-only", action="store_true",
                    help="only regenerate the README table from the folder's manifest.json")
    args = ap.parse_args()

    if args.readme_only:
        out = Out(args.out)
        manifest = json.load(open(os.path.join(args.out, "manifest.json"), encoding="utf-8"))
        out.entries = manifest["files"] + [{"file": "manifest.json",
                                            "description": "machine-readable list of the fixtures (this table)",
                                            "produced_by": "capture script"}]
        write_readme(out, manifest["versions"], manifest["facts"])
        return

    tmp = tempfile.mkdtemp(prefix="celeriac-capture.")
    out = Out(args.out)
    scenarios = ["task_messages", "worker_bindings", "unacked", "results", "events", "pidbox"]
    only = args.only or scenarios
    if not args.only:
        out.reset()
    cap = Capture(out, tmp)
    try:
        for name in only:
            log("scenario", name)
            getattr(cap, name)()
        versions = {"celery": md.version("celery"), "kombu": md.version("kombu"),
                    "redis-py": md.version("redis"), "billiard": md.version("billiard"),
                    "redis-server": cap.server.version,
                    "python": sys.version.split()[0]}
        out.json("manifest.json", {"versions": versions, "facts": cap.facts, "files": out.entries},
                 "machine-readable list of the fixtures (this table)", "capture script")
        if not args.only:
            write_readme(out, versions, cap.facts)
        log("versions", versions)
        log("facts", cap.facts)
    finally:
        cap.close()
        if args.keep_logs:
            log("logs kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    # skip interpreter teardown: pending AsyncResult finalizers would try to
    # talk to the redis-server that is gone by now
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
