"""The tasks of pytasks.py with RabbitMQ as broker and Redis as result backend.

    celery -A amqp_app worker -l INFO -c 1 -n pyworker@%h

Configuration, from the environment (plus everything pytasks.py reads):

    CELERIAC_TEST_AMQP_URL          the broker, e.g. amqp://guest:guest@127.0.0.1:5690//
    CELERIAC_TEST_REDIS_URL         the result backend (and where tasks.mark writes)
    CELERIAC_PY_QUEUE_MAX_PRIORITY  task_queue_max_priority (x-max-priority of
                                    the queues this app declares); unset = none
"""

from __future__ import annotations

import json
import os

from pytasks import app  # noqa: F401  (registers the tasks)

_max_priority = os.environ.get("CELERIAC_PY_QUEUE_MAX_PRIORITY")
app.conf.update(
    broker_url=os.environ["CELERIAC_TEST_AMQP_URL"],
    task_queue_max_priority=int(_max_priority) if _max_priority else None,
    task_default_priority=None,
)


@app.task(name="tasks.record")
def record(key, value):
    """RPUSH key <value as JSON>: records execution order (the Rust twin's)."""
    from pytasks import _redis

    _redis().rpush(key, json.dumps(value))
    return value


@app.task(name="tasks.slow_mark")
def slow_mark(set_key, id, seconds):
    """Sleep, then tasks.mark (the Rust twin's): a task long enough to be caught holding."""
    import time

    from pytasks import mark

    time.sleep(seconds)
    return mark(set_key, id)
