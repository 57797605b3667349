"""The Python producer side of Celeriac's RabbitMQ interop tests (amqp_interop.rs).

    python amqp_client.py roundtrip QUEUE
        add(2, 3), fail("boom"), add(4, 3) with countdown=2 on QUEUE; prints
        {"add": 5, "fail": ["ValueError", "boom"], "countdown": [7, seconds]}
    python amqp_client.py priorities QUEUE KEY N
        N tasks.record(KEY, "low-i") at priority 1, then N tasks.record(KEY,
        "high-i") at priority 9, on QUEUE (declared with x-max-priority 10
        when CELERIAC_PY_QUEUE_MAX_PRIORITY=10); prints {"sent": 2N}
    python amqp_client.py marks QUEUE KEY N
        N tasks.mark(KEY, i) on QUEUE; prints {"sent": N}

Environment as amqp_app.py.
"""

from __future__ import annotations

import json
import sys
import time

import amqp_app  # noqa: F401  (configures the app)
from pytasks import app


def roundtrip(queue: str) -> dict:
    out = {}
    out["add"] = app.send_task("tasks.add", (2, 3), queue=queue).get(timeout=30)
    try:
        app.send_task("tasks.fail", ("boom",), queue=queue).get(timeout=30)
        out["fail"] = None
    except Exception as exc:  # the remote ValueError, rebuilt by Celery
        out["fail"] = [type(exc).__name__, str(exc)]
    sent = time.monotonic()
    value = app.send_task("tasks.add", (4, 3), queue=queue, countdown=2).get(timeout=30)
    out["countdown"] = [value, time.monotonic() - sent]
    return out


def priorities(queue: str, key: str, n: int) -> dict:
    for i in range(n):
        app.send_task("tasks.record", (key, f"low-{i}"), queue=queue, priority=1, ignore_result=True)
    for i in range(n):
        app.send_task("tasks.record", (key, f"high-{i}"), queue=queue, priority=9, ignore_result=True)
    return {"sent": 2 * n}


def marks(queue: str, key: str, n: int) -> dict:
    for i in range(n):
        app.send_task("tasks.mark", (key, i), queue=queue, ignore_result=True)
    return {"sent": n}


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "roundtrip":
        out = roundtrip(args[0])
    elif command == "priorities":
        out = priorities(args[0], args[1], int(args[2]))
    elif command == "marks":
        out = marks(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
