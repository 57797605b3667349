"""Run `celeriac bench ... --json` several times and print the median of
every figure, with the runs' values and the load average around each run.

    python3 bench/worker/medians.py [--runs 3] [--celeriac target/release/celeriac] -- BENCH_ARGS...

e.g. `python3 bench/worker/medians.py -- --broker redis://127.0.0.1:6379/1
--backend redis://127.0.0.1:6379/1 --compare-celery redis://127.0.0.1:6379/2`.
Only the standard library; run from the repository root (so that
`--compare-celery` finds bench/python/ and the .venv).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def leaves(value, path=()):
    """(path, number) for every number in a JSON document; lists of objects
    are keyed by their `preset` (the Celery runs) or their index."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            key = item.get("preset", str(i)) if isinstance(item, dict) else str(i)
            yield from leaves(item, path + (key,))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--celeriac", default="target/release/celeriac")
    p.add_argument("bench_args", nargs="*")
    a = p.parse_args()
    runs = []
    for i in range(a.runs):
        out = subprocess.run([a.celeriac, "bench", *a.bench_args, "--json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return 1
        runs.append(dict(leaves(json.loads(out.stdout))))
        print(f"run {i + 1}/{a.runs} done", file=sys.stderr)
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    skip = {"tasks_per_phase", "workers", "chunk", "paced_at", "concurrency", "prefetch", "tasks"}
    for key in keys:
        if key[-1] in skip:
            continue
        values = [r[key] for r in runs]
        shown = " / ".join(f"{v:,.2f}" for v in values)
        print(f"{'.'.join(key):<55} median {statistics.median(values):>12,.2f}   ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
