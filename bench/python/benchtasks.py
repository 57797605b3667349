"""The Python Celery side of `celeriac bench --compare-celery`: the tasks the
Celeriac bench sends, under the same names, with Celery's own defaults
(nothing here changes the prefetch multiplier, the pool or the acks; the
`tuned` preset of celery_bench.py passes its options on the command line).

    celery -A benchtasks worker -Q celeriac.bench
"""

import os

from celery import Celery

URL = os.environ.get("CELERIAC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("benchtasks", broker=URL, backend=URL)
app.conf.update(
    accept_content=["json"],
    task_acks_late=os.environ.get("CELERIAC_BENCH_ACKS_LATE") == "1",
    broker_connection_retry_on_startup=True,
)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.noop")
def noop(*args, **kwargs):
    return None
