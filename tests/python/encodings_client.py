"""Python side of Celeriac's encodings suite: a real Celery 5 producer sends
every body encoding it can choose, and messages a worker must refuse, then
waits on each result with a 5 s timeout and prints what it saw as one JSON
object: {case: {"value": ...} | {"type", "module", "message"}, plus
"elapsed" seconds}.

    python encodings_client.py run

Broker and backend: CELERIAC_TEST_REDIS_URL. The worker is expected to
run with a 65536-byte message limit.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid

import redis
from celery import Celery
from celery.result import AsyncResult

URL = os.environ["CELERIAC_TEST_REDIS_URL"]
app = Celery("encodings_client", broker=URL, backend=URL)
# Results are JSON whatever the task serializer (Celery's result_serializer).
app.conf.update(result_serializer="json", accept_content=["json"])

TIMEOUT = 5


def sent(**options):
    """Send through Celery itself, returning the AsyncResult."""

    def send(name, args):
        return app.send_task(name, args, **options)

    return send


def raw(envelope_edit=None, headers_edit=None, body=None, content_type="application/json"):
    """Push a hand-made envelope (what a producer could put on the queue),
    shaped as kombu writes it, and return an AsyncResult for its id."""

    def send(name, args):
        task_id = str(uuid.uuid4())
        data = body if body is not None else json.dumps([list(args), {}, {}]).encode()
        headers = {"lang": "py", "task": name, "id": task_id, "root_id": task_id,
                   "retries": 0, "eta": None, "expires": None}
        if headers_edit:
            headers.update(headers_edit)
        env = {
            "body": base64.b64encode(data).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": headers,
            "properties": {"correlation_id": task_id, "reply_to": str(uuid.uuid4()),
                           "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                           "delivery_tag": str(uuid.uuid4()),
                           "delivery_info": {"exchange": "", "routing_key": "celery"}},
        }
        if envelope_edit:
            envelope_edit(env)
        redis.Redis.from_url(URL).lpush("celery", json.dumps(env))
        return AsyncResult(task_id, app=app)

    return send


def set_priority(value):
    def edit(env):
        env["properties"]["priority"] = value
    return edit


# (case, how it is sent, task, args)
CASES = [
    ("gzip", sent(compression="gzip"), "tasks.add", (2, 3)),
    ("zlib", sent(compression="zlib"), "tasks.add", (4, 5)),
    ("bzip2", sent(compression="bzip2"), "tasks.add", (6, 7)),
    ("msgpack", sent(serializer="msgpack"), "tasks.echo", ({"a": [1, 2.5, "é"], "b": None},)),
    ("msgpack_bytes", sent(serializer="msgpack"), "tasks.echo", (b"hi \xff",)),
    ("msgpack_gzip", sent(serializer="msgpack", compression="gzip"), "tasks.add", (10, 20)),
    ("retry_bzip2_msgpack", sent(serializer="msgpack", compression="bzip2"), "tasks.retry_once", (0.2,)),
    ("priority_300", sent(priority=300), "tasks.add", (1, 2)),
    ("priority_text", raw(envelope_edit=set_priority("high")), "tasks.add", (1, 3)),
    # Refused, each with a FAILURE the caller sees at once.
    ("pickle", sent(serializer="pickle"), "tasks.add", (1, 1)),
    ("yaml", raw(body=b"- [1, 1]\n- {}\n- {}\n", content_type="application/x-yaml"), "tasks.add", (1, 1)),
    ("lzma", sent(compression="lzma"), "tasks.add", (1, 1)),
    ("nan", sent(), "tasks.echo", (float("nan"),)),
    ("infinity", sent(), "tasks.echo", ([1.0, float("-inf")],)),
    ("oversized", sent(), "tasks.echo", ("x" * 70_000,)),
    # Celery's own send_task parses a string eta first, so these are hand-made.
    ("eta_not_a_date", raw(headers_edit={"eta": "not-a-date"}), "tasks.mark", ("never", "eta")),
    ("eta_year_99999", raw(headers_edit={"eta": "99999-01-01T00:00:00"}), "tasks.mark",
     ("never", "eta99999")),
    ("expires_not_a_date", raw(headers_edit={"expires": "not-a-date"}), "tasks.mark",
     ("never", "expires")),
    ("eta_a_number", raw(headers_edit={"eta": 12}), "tasks.mark", ("never", "eta-number")),
    ("garbage_body", raw(body=b"\x00\x01 not json"), "tasks.mark", ("never", "garbage")),
    ("corrupt_gzip", raw(body=b"not zlib", headers_edit={"compression": "application/x-gzip"}),
     "tasks.mark", ("never", "corrupt")),
]


def outcome(result: AsyncResult, started: float) -> dict:
    try:
        value = result.get(timeout=TIMEOUT)
        out = {"value": value.decode("latin-1") if isinstance(value, bytes) else value,
               "bytes": isinstance(value, bytes)}
    except Exception as exc:  # the reconstructed remote exception, or a timeout
        out = {"type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc)}
    out["elapsed"] = time.monotonic() - started
    out["id"] = result.id
    return out


def run() -> dict:
    seen = {}
    for case, send, name, args in CASES:
        started = time.monotonic()
        seen[case] = outcome(send(name, args), started)
    return seen


def main(argv: list[str]) -> int:
    if argv != ["run"]:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(run()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
