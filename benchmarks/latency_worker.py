"""Claim latency for benchmark (c), measured in a fresh interpreter.

    python latency_worker.py < job.json

The job names, per store size, a clone and the ids to claim (the first two
are warm-ups). Each size gets one long-lived ``Store``; the sizes take turns,
one claim each per round, rotating who goes first. Prints one JSON object:
per size, the claim times (seconds) and ``OpResult.retries``.

A separate process keeps the measurement clear of what the benchmark did
before (seeding 100,000 tasks leaves a large heap and libgit2 caches behind).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    job = json.load(sys.stdin)
    from gitclaim import Store

    sizes = [str(n) for n in job["sizes"]]
    stores = {n: Store(job["clones"][n], agent=job["agent"]) for n in sizes}
    pools = {n: list(job["ids"][n]) for n in sizes}
    out: dict[str, dict[str, list[float]]] = {n: {"times": [], "retries": []} for n in sizes}
    for n in sizes:
        for _ in range(2):  # warm-up: opens the repositories, fills libgit2's caches
            stores[n].claim(pools[n].pop(0))
    for r in range(job["samples"]):
        k = r % len(sizes)
        for n in sizes[k:] + sizes[:k]:
            task = pools[n].pop(0)
            t = time.perf_counter()
            got = stores[n].claim(task)
            out[n]["times"].append(time.perf_counter() - t)
            out[n]["retries"].append(got.retries)
            if not (got.changed and got.task.holder == job["agent"]):
                print(json.dumps({"error": f"claim of {task} did not take: {got.to_json()}"}))
                return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
