"""The original post-history worker's four tests, as its team ran them, now
against a Celeriac worker: a Python Celery producer, the tasks' results
compared with what the original's Python code computes from the same
database (POSTS_DB_PATH), and the exceptions and timestamps its callers
rely on (`sqlite3.OperationalError`, naive-UTC `datetime.utcnow()`
arithmetic)."""
import json
import os
import sqlite3
from datetime import datetime

import pytest
import redis

from tasks import REDIS_DB, count_top_named_entities, query_posts_db, substring_matches_by_platform

FROM, TO = "2017-05-31", "2017-06-01"
TIMEOUT = 30


def posts_db():
    return sqlite3.connect(os.environ["POSTS_DB_PATH"])


def test_query_posts_db():
    query = f"SELECT platform, post_blob FROM posts WHERE created_at BETWEEN '{FROM}' AND '{TO}';"
    rows = query_posts_db.delay(query).get(timeout=TIMEOUT)
    with posts_db() as conn:
        expected = conn.execute(query).fetchall()
    assert len(rows) > 0
    assert [tuple(row) for row in rows] == expected
    assert all(json.loads(blob)["text"] for _, blob in rows)


def test_query_posts_db_invalid_sql_raises_sqlite3_error():
    with pytest.raises(sqlite3.OperationalError) as raised:
        query_posts_db.delay("SELECT foo FROM bar;").get(timeout=TIMEOUT)
    assert "no such table: bar" in str(raised.value)


def test_substring_matches_by_platform():
    counts = substring_matches_by_platform.delay("trump", FROM, TO).get(timeout=TIMEOUT)
    # What the original computed: lower-cased text containing the substring,
    # per platform, over the posts created in the window.
    expected = {}
    total = 0
    with posts_db() as conn:
        for platform, blob in conn.execute(
            "SELECT platform, post_blob FROM posts WHERE created_at BETWEEN ? AND ?", (FROM, TO)
        ):
            total += 1
            if "trump" in json.loads(blob)["text"].lower():
                expected[platform] = expected.get(platform, 0) + 1
    expected["total_rows"] = total
    assert counts == expected
    assert sum(v for k, v in counts.items() if k != "total_rows") > 0


def test_count_top_named_entities():
    result_key = "my_worker:test:top_named_entities"
    assert count_top_named_entities.delay(3, FROM, TO, result_key).get(timeout=TIMEOUT) is True
    r = redis.Redis.from_url(REDIS_DB)
    stored = r.get(result_key)
    assert stored is not None
    r.delete(result_key)
    assert r.get(result_key) is None
    record = json.loads(stored)
    top = record["top_named_entities"]
    assert 0 < len(top) <= 3
    assert all(isinstance(entity, str) and count > 0 for entity, count in top)
    assert [count for _, count in top] == sorted((count for _, count in top), reverse=True)
    # The original's consumers: naive UTC on both sides.
    age = datetime.utcnow() - datetime.fromisoformat(record["timestamp"])
    assert 0 <= age.total_seconds() < 60
