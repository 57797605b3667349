"""Python side of Celeriac's interop tests: a Celery client that drives a
Celeriac (or Python) worker and prints what it saw as one JSON object.

    python interop_client.py basics        # args, kwargs, unicode, 1 MB, failure, countdown, eta
    python interop_client.py send-records KEY P:VALUE ...   # tasks.record with priorities
    python interop_client.py send-marks SET N [--countdown S]

Broker and backend: CELERIAC_TEST_REDIS_URL.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone

from celery import Celery
import os

URL = os.environ["CELERIAC_TEST_REDIS_URL"]
app = Celery("interop_client", broker=URL, backend=URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])

TIMEOUT = 20


def basics() -> dict:
    out: dict = {}
    out["add"] = app.send_task("tasks.add", (2, 3)).get(timeout=TIMEOUT)
    out["kwargs"] = app.send_task("tasks.add", kwargs={"x": 2, "y": 40}).get(timeout=TIMEOUT)
    text = "héllo wörld ✓ 😀 日本語"
    out["unicode_equal"] = app.send_task("tasks.echo", (text,)).get(timeout=TIMEOUT) == text
    big = "x" * 1_000_000
    out["megabyte_equal"] = app.send_task("tasks.echo", (big,)).get(timeout=TIMEOUT) == big
    out["echo_kwargs"] = app.send_task("tasks.echo_kwargs", kwargs={"a": 1, "b": [1, 2]}).get(timeout=TIMEOUT)
    try:
        app.send_task("tasks.fail", ("rust says no",)).get(timeout=TIMEOUT)
        out["failure"] = None
    except Exception as exc:  # the reconstructed remote exception
        out["failure"] = {"type": type(exc).__name__, "message": str(exc)}
    try:
        app.send_task("tasks.nope", ()).get(timeout=TIMEOUT)
        out["unknown"] = None
    except Exception as exc:
        out["unknown"] = {"type": type(exc).__name__, "message": str(exc)}
    start = time.monotonic()
    app.send_task("tasks.add", (1, 1), countdown=1.5).get(timeout=TIMEOUT)
    out["countdown_elapsed"] = time.monotonic() - start
    start = time.monotonic()
    eta = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    app.send_task("tasks.add", (1, 1), eta=eta).get(timeout=TIMEOUT)
    out["eta_elapsed"] = time.monotonic() - start
    return out


def send_records(key: str, items: list[str]) -> dict:
    ids = []
    for item in items:
        priority, value = item.split(":", 1)
        ids.append(app.send_task("tasks.record", (key, value), priority=int(priority)).id)
    return {"ids": ids}


def send_marks(set_key: str, n: int, countdown: float | None) -> dict:
    ids = []
    for i in range(n):
        ids.append(app.send_task("tasks.mark", (set_key, f"m{i}"), countdown=countdown).id)
    return {"ids": ids}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "basics":
        result = basics()
    elif command == "send-records":
        result = send_records(rest[0], rest[1:])
    elif command == "send-marks":
        countdown = float(rest[3]) if len(rest) > 3 and rest[2] == "--countdown" else None
        result = send_marks(rest[0], int(rest[1]), countdown)
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
