"""One agent of benchmark (b), run as its own process on its own clone.

    python agent_worker.py CLONE AGENT MAX_CLAIMS [WORK_SECONDS [LOOP]]

Opens the store and fetches, prints ``ready``, waits for ``go`` on stdin, then
loops ``next()``, an optional sleep standing for the work (default 0: a
hot loop), ``done(id)``, until nothing is ready (at most MAX_CLAIMS
times, and a bounded number of errors). LOOP ``chain`` (default ``pair``):
one ``next()``, then ``done(id, next=True)`` (one commit and one push that
finish a task and claim the next) until it claims nothing. Prints one JSON object on stdout:
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
    chain = len(sys.argv) > 5 and sys.argv[5] == "chain"
    from gitclaim import Store
    from gitclaim.errors import GitclaimError, NothingReady

    # Every call says how many of its pushes were refused: a result's retries,
    # or an error's details (NothingReady after losing races, RetriesExhausted).
    refused = [0]
    store = Store(clone, agent=agent)
    store.transport.fetch()  # every agent starts from the current tip
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    start = time.monotonic()
    claims: list[dict[str, object]] = []
    errors: list[str] = []
    final: dict[str, object] = {}
    writes: list[int] = []  # the retries of every write (next, done) that returned
    got = None  # chain: the task the last done(next=True) claimed
    got_retries = 0
    for _ in range(max_claims + 20):  # bounded: every turn claims a task or errs
        if len(claims) >= max_claims or len(errors) > 20:
            break
        t0 = time.monotonic()
        before = refused[0]
        if got is None:
            try:
                r = store.next()
            except NothingReady as e:
                refused[0] += int(e.details.get("retries", 0))
                final = {"s": time.monotonic() - t0, "retries": refused[0] - before}
                break
            except GitclaimError as e:  # e.g. RetriesExhausted: counted, then try again
                refused[0] += int(e.details.get("retries", 0))
                errors.append(f"next: {e.code}: {e}")
                continue
            refused[0] += r.retries
            got, got_retries = r.task.id, r.retries
            writes.append(r.retries)
        t1 = time.monotonic()
        if work > 0:
            time.sleep(work)
            t1 = time.monotonic()
        following = None
        try:
            d = store.done(got, next=chain)
            refused[0] += d.retries
            done_retries = d.retries
            writes.append(d.retries)
            if d.next is not None:
                following = d.next.task.id
            elif chain:
                final = {"s": time.monotonic() - t1, "retries": refused[0] - before}
        except GitclaimError as e:  # e.g. RetriesExhausted: counted, then finish it again
            refused[0] += int(e.details.get("retries", 0))
            errors.append(f"done {got}: {e.code}: {e}")
            continue
        t2 = time.monotonic()
        claims.append(
            {"task": got, "retries": got_retries, "done_retries": done_retries, "next_s": t1 - t0, "done_s": t2 - t1}
        )
        got, got_retries = following, done_retries
        if chain and got is None:
            break
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
                "writes": writes,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
