"""The Python Celery side of `celeriac bench --compare-celery`: a no-op task
under the same name the Celeriac bench uses, configured for throughput.

    celery -A benchtasks worker -P solo --without-gossip --without-mingle --without-heartbeat
"""

import os

from celery import Celery

URL = os.environ.get("CELERIAC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("benchtasks", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=os.environ.get("CELERIAC_BENCH_ACKS_LATE") == "1",
    task_ignore_result=os.environ.get("CELERIAC_BENCH_IGNORE_RESULT") == "1",
    worker_prefetch_multiplier=int(os.environ.get("CELERIAC_BENCH_PREFETCH", "64")),
    broker_connection_retry_on_startup=True,
)


@app.task(name="tasks.noop")
def noop(*args, **kwargs):
    return None
