"""A minimal Python Celery 5.x app for Celeriac's interop tests and fixture capture.

The tasks have explicit names and mirror the Rust test tasks, so a Python
worker can run what a Rust client sends and the other way round:

    tasks.add(x, y)          -> x + y
    tasks.echo(x)            -> x
    tasks.fail(msg)          -> raises ValueError(msg)
    tasks.sleep(s)           -> sleeps s seconds, returns s
    tasks.mark(set_key, id)  -> SADD set_key id on CELERIAC_TEST_REDIS_URL, returns id
    tasks.retry_once(countdown=1)
                             -> first run: self.retry(countdown=countdown,
                                exc=ValueError("try again")); second run: returns
                                the retry count (1)
    tasks.echo_kwargs(**kw)  -> kw
    tasks.chord_sum(values, key)
                             -> {"sum": sum(values), "values": values}; INCR key
                                (how many times a chord body ran)
    tasks.xsum(values)       -> sum(values) (a chord body; shipped by `celeriac worker` too)
    tasks.errback_mark(task_id, set_key)
                             -> SADD set_key task_id (an old-style errback)

Run a worker (from this directory, or with it on PYTHONPATH):

    celery -A pytasks worker -l INFO -c 1 -n pyworker@%h

Configuration, all from the environment:

    CELERIAC_TEST_REDIS_URL        broker and result backend (default redis://127.0.0.1:6379/0)
    CELERIAC_PY_RESULT_EXTENDED=1  result_extended = True
    CELERIAC_PY_ACKS_LATE=1        task_acks_late = True
    CELERIAC_PY_TRACK_STARTED=1    task_track_started = True
    CELERIAC_PY_PREFETCH=N         worker_prefetch_multiplier = N (default 4)
    CELERIAC_PY_TRANSPORT_OPTIONS  JSON object merged into broker_transport_options,
                                   e.g. '{"visibility_timeout": 5}'
    CELERIAC_PY_SEND_SENT_EVENT=1  task_send_sent_event = True (client side)
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery import Celery

REDIS_URL = os.environ.get("CELERIAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


app = Celery("pytasks", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    enable_utc=True,
    timezone="UTC",
    result_extended=_flag("CELERIAC_PY_RESULT_EXTENDED"),
    task_acks_late=_flag("CELERIAC_PY_ACKS_LATE"),
    task_track_started=_flag("CELERIAC_PY_TRACK_STARTED"),
    task_send_sent_event=_flag("CELERIAC_PY_SEND_SENT_EVENT"),
    worker_prefetch_multiplier=int(os.environ.get("CELERIAC_PY_PREFETCH", "4")),
    broker_connection_retry_on_startup=True,
    broker_transport_options=json.loads(
        os.environ.get("CELERIAC_PY_TRANSPORT_OPTIONS") or "{}"
    ),
)

_redis_client = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(REDIS_URL)
    return _redis_client


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.echo")
def echo(x):
    return x


@app.task(name="tasks.echo_kwargs")
def echo_kwargs(**kwargs):
    return kwargs


@app.task(name="tasks.fail")
def fail(msg="bad value"):
    raise ValueError(msg)


@app.task(name="tasks.sleep")
def sleep(s):
    time.sleep(s)
    return s


@app.task(name="tasks.mark")
def mark(set_key, id):
    _redis().sadd(set_key, id)
    return id


@app.task(name="tasks.chord_sum")
def chord_sum(values, key):
    _redis().incr(key)
    return {"sum": sum(values), "values": values}


@app.task(name="tasks.xsum")
def xsum(values):
    return sum(values)


@app.task(name="tasks.errback_mark")
def errback_mark(task_id, set_key):
    _redis().sadd(set_key, task_id)
    return task_id


@app.task(name="tasks.retry_once", bind=True, max_retries=3)
def retry_once(self, countdown=1):
    if self.request.retries < 1:
        raise self.retry(countdown=countdown, exc=ValueError("try again"))
    return self.request.retries
