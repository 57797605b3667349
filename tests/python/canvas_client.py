"""Canvas from a real Python Celery producer, for Celeriac's interop tests.

    python canvas_client.py primitives   # each primitive once; prints JSON
    python canvas_client.py big_chord N  # a chord of N parts; prints JSON

Tasks run wherever the queues send them: the default queue `celery`, and
`py`, where only a Python worker listens (to put one link of a workflow on
a Python worker). CELERIAC_TEST_REDIS_URL names the broker and backend.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from celery import chain, chord, group

from pytasks import _redis, add, chord_sum, echo, errback_mark, fail

TIMEOUT = 30


def timed(fn):
    started = time.monotonic()
    try:
        value = fn()
        return {"value": value, "seconds": round(time.monotonic() - started, 3)}
    except Exception as exc:  # reported, the Rust side asserts
        return {
            "error": f"{type(exc).__module__}.{type(exc).__name__}: {exc}",
            "seconds": round(time.monotonic() - started, 3),
        }


def key(name: str) -> str:
    return f"canvas:{name}:{uuid.uuid4().hex}"


def primitives() -> dict:
    out = {}
    out["chain3"] = timed(lambda: chain(add.s(2, 2), add.s(4), add.s(8))().get(timeout=TIMEOUT))
    out["chain_python_middle"] = timed(
        lambda: chain(add.s(1, 1), add.s(10).set(queue="py"), add.s(100))().get(timeout=TIMEOUT)
    )
    out["group20"] = timed(
        lambda: group(add.s(i, i) for i in range(20))().get(timeout=TIMEOUT)
    )
    body_runs = key("celeriac-body")
    out["chord_celeriac_body"] = timed(
        lambda: chord([add.s(i, 100) for i in range(10)], chord_sum.s(body_runs))().get(
            timeout=TIMEOUT
        )
    )
    out["chord_celeriac_body"]["body_runs"] = int(_redis().get(body_runs) or 0)
    split_runs = key("split-body")
    header = [add.s(i, 1).set(queue="py" if i % 2 else "celery") for i in range(10)]
    out["chord_split_python_body"] = timed(
        lambda: chord(header, chord_sum.s(split_runs).set(queue="py"))().get(timeout=TIMEOUT)
    )
    out["chord_split_python_body"]["body_runs"] = int(_redis().get(split_runs) or 0)
    failed_runs = key("failed-body")

    def failed_chord():
        res = chord([add.s(1, 1), fail.s("part")], chord_sum.s(failed_runs))()
        try:
            res.get(timeout=TIMEOUT)
            raised = None
        except Exception as exc:  # Celery raises the failed parent's error
            raised = f"{type(exc).__module__}.{type(exc).__name__}"
        deadline = time.monotonic() + TIMEOUT
        meta = res.backend.get_task_meta(res.id)
        while meta["status"] != "FAILURE" and time.monotonic() < deadline:
            time.sleep(0.02)
            meta = res.backend.get_task_meta(res.id)
        exc = meta["result"]
        return {
            "raised": raised,
            "body_state": meta["status"],
            "body_exception": f"{type(exc).__module__}.{type(exc).__name__}",
            "body_message": str(exc),
        }

    out["chord_failed_part"] = timed(failed_chord)
    out["chord_failed_part"]["body_runs"] = int(_redis().get(failed_runs) or 0)

    def linked():
        parent = add.apply_async((1, 2), link=add.s(10))
        first = parent.get(timeout=TIMEOUT)
        children = parent.children or []
        return [first, [c.get(timeout=TIMEOUT) for c in children]]

    out["link"] = timed(linked)

    def errback():
        marks = key("errback")
        failing = fail.apply_async(("boom",), link_error=errback_mark.s(marks))
        try:
            failing.get(timeout=TIMEOUT)
        except ValueError:
            pass
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if _redis().sismember(marks, failing.id):
                return True
            time.sleep(0.02)
        return False

    out["link_error"] = timed(errback)
    out["chunks"] = timed(
        lambda: add.chunks(zip(range(10), range(10)), 5)().get(timeout=TIMEOUT)
    )
    out["starmap"] = timed(lambda: add.starmap([(1, 2), (3, 4)]).delay().get(timeout=TIMEOUT))
    out["map"] = timed(lambda: echo.map([1, "two", None]).delay().get(timeout=TIMEOUT))
    return out


def big_chord(n: int) -> dict:
    runs = key("big-chord")
    result = timed(
        lambda: chord([add.s(i, 0) for i in range(n)], chord_sum.s(runs))().get(timeout=120)
    )
    value = result.get("value") or {}
    return {
        "in_order": value.get("values") == list(range(n)),
        "sum": value.get("sum"),
        "body_runs": int(_redis().get(runs) or 0),
        "seconds": result["seconds"],
        "error": result.get("error"),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["primitives"]:
        print(json.dumps(primitives()))
    elif argv[:1] == ["big_chord"] and len(argv) == 2:
        print(json.dumps(big_chord(int(argv[1]))))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
