"""The original worker's `tasks.py` as a producer sees it: the three tasks'
names and signatures (the bodies run on the Celeriac worker)."""
import os

from celery import Celery

REDIS_DB = os.environ["REDIS_DB"]
app = Celery("tasks", backend=REDIS_DB, broker=REDIS_DB)


@app.task
def query_posts_db(query):
    raise NotImplementedError("runs on the Celeriac worker")


@app.task
def substring_matches_by_platform(match, from_, to):
    raise NotImplementedError("runs on the Celeriac worker")


@app.task
def count_top_named_entities(k, from_, to, result_key):
    raise NotImplementedError("runs on the Celeriac worker")
