"""One agent of benchmark (b), run as its own process on its own clone.

    python agent_worker.py CLONE AGENT MAX_CLAIMS [WORK_SECONDS]

Opens the store and fetches, prints ``ready``, waits for ``go`` on stdin, then
loops ``next()``, an optional sleep standing for the work (default 0: a
hot loop), ``done(id)``, until nothing is ready (at most MAX_CLAIMS
times, and a bounded number of errors). Prints one JSON object on stdout:
every claim with its retries and times, the last ``next()`` (the one that
found nothing ready: its time and retries), every refused push, errors, and
when it finished
(``time.monotonic()``, which is one clock for all processes on Linux).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    clone, agent, max_claims = sys.argv[1], sys.argv[2], int(sys.argv[3])
    work = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    from gitclaim import RetryPolicy, Store
    from gitclaim.errors import GitclaimError, NothingReady

    # The loop sleeps once per refused push: counting the sleeps counts the
    # retries of every call, also of calls that end without a result
    # (NothingReady after losing races), which OpResult.retries cannot show.
    refused = [0]

    def sleep(seconds: float) -> None:
        refused[0] += 1
        time.sleep(seconds)

    store = Store(clone, agent=agent, policy=RetryPolicy(sleep=sleep))
    store.transport.fetch()  # every agent starts from the current tip
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    start = time.monotonic()
    claims: list[dict[str, object]] = []
    errors: list[str] = []
    final: dict[str, object] = {}
    for _ in range(max_claims + 20):  # bounded: every turn claims a task or errs
        if len(claims) >= max_claims or len(errors) > 20:
            break
        t0 = time.monotonic()
        before = refused[0]
        try:
            got = store.next()
        except NothingReady:
            final = {"s": time.monotonic() - t0, "retries": refused[0] - before}
            break
        except GitclaimError as e:  # e.g. RetriesExhausted: counted, then try again
            errors.append(f"next: {e.code}: {e}")
            continue
        t1 = time.monotonic()
        if work > 0:
            time.sleep(work)
            t1 = time.monotonic()
        done_retries = -1
        try:
            done_retries = store.done(got.task.id).retries
        except GitclaimError as e:
            errors.append(f"done {got.task.id}: {e.code}: {e}")
        t2 = time.monotonic()
        claims.append(
            {
                "task": got.task.id,
                "retries": got.retries,
                "done_retries": done_retries,
                "next_s": t1 - t0,
                "done_s": t2 - t1,
            }
        )
    end = time.monotonic()
    print(
        json.dumps(
            {
                "agent": agent,
                "start": start,
                "end": end,
                "claims": claims,
                "errors": errors,
                "final": final,
                "refused": refused[0],
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
