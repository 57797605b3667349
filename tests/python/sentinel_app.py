"""Python Celery on Redis Sentinel, for Celeriac's sentinel interop test
(crates/celeriac-interop/tests/sentinel_interop.rs).

Broker and result backend both go through the sentinels, configured as a
Celery user would:

    broker_url = result_backend = CELERIAC_TEST_SENTINEL_URL  (sentinel://127.0.0.1:PORT)
    broker_transport_options = {'master_name': CELERIAC_TEST_MASTER_NAME}
    result_backend_transport_options = {'master_name': CELERIAC_TEST_MASTER_NAME}

Worker:    celery -A sentinel_app worker -Q QUEUE …   (runs tasks.add)
Producer:  python sentinel_app.py send QUEUE N
           sends tasks.add(i, 10 * i) for i in 0..N to QUEUE, waits for every
           result (60 s each at most) and prints {"ids": [...], "values": [...]}.
"""

from __future__ import annotations

import json
import os
import sys

from celery import Celery

URL = os.environ["CELERIAC_TEST_SENTINEL_URL"]
MASTER = os.environ["CELERIAC_TEST_MASTER_NAME"]

app = Celery("sentinel_app", broker=URL, backend=URL)
app.conf.update(
    broker_transport_options={"master_name": MASTER},
    result_backend_transport_options={"master_name": MASTER},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    enable_utc=True,
    timezone="UTC",
    broker_connection_retry_on_startup=True,
)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


def send(queue: str, n: int) -> dict:
    results = [add.apply_async((i, 10 * i), queue=queue) for i in range(n)]
    values = [r.get(timeout=60) for r in results]
    return {"ids": [r.id for r in results], "values": values}


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "send":
        out = send(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
