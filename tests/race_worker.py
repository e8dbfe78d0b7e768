"""One agent process for the race tests: a clone of its own, driven over stdin.

Each stdin line is a JSON command; each answer is one JSON line on stdout.
The parent writes the same command to every worker at once, so the workers'
operations start within microseconds of each other.

Commands: ``{"op": "claim", "task": ID}`` (optional ``"ttl"`` and ``"now"``,
an ISO time the worker's clock reads for this command: how a test makes a
lease look expired without sleeping), ``{"op": "done", "task": ID}``,
``{"op": "heartbeat"}`` (optional ``"now"``), ``{"op": "fetch"}`` (bring the
clone up to date, so that the next command decides on the current tip) and
``{"op": "drain"}`` (``next`` until nothing is ready).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from gitclaim import RetryPolicy, Store
from gitclaim.errors import GitclaimError, NothingReady
from gitclaim.model import _iso


def main() -> None:
    path, agent = sys.argv[1], sys.argv[2]
    # The clock reads the command's "now" when it gives one, the real time otherwise.
    injected: list[datetime | None] = [None]
    store = Store(
        path,
        agent=agent,
        # These tests prove exclusivity and no lost update, not fairness: a hot
        # loop with no work between claims lets the last winner go first, so give
        # the losers time enough rather than a production deadline.
        policy=RetryPolicy(max_attempts=100_000, deadline=600),
        clock=lambda: injected[0] or datetime.now(UTC),
    )
    store.transport.fetch()  # warm: objects local, like an agent that has been running
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        out: dict[str, object]
        injected[0] = datetime.fromisoformat(cmd["now"]) if cmd.get("now") else None
        if cmd["op"] == "claim":
            try:
                r = store.claim(cmd["task"], ttl=cmd.get("ttl"))
                out = {"ok": True, "commit": r.commit, "changed": r.changed, "retries": r.retries}
                out.update(op=r.op, previous_holder=r.previous_holder)
            except GitclaimError as e:
                out = {"ok": False, **e.to_json()}
        elif cmd["op"] == "done":
            try:
                r = store.done(cmd["task"])
                out = {"ok": True, "commit": r.commit, "changed": r.changed, "retries": r.retries}
            except GitclaimError as e:
                out = {"ok": False, **e.to_json()}
        elif cmd["op"] == "heartbeat":
            try:
                h = store.heartbeat()
                out = {"ok": True, "at": _iso(h.at), "holding": list(h.holding)}
            except GitclaimError as e:
                out = {"ok": False, **e.to_json()}
        elif cmd["op"] == "fetch":
            out = {"ok": True, "tip": store.transport.fetch()}
        elif cmd["op"] == "drain":
            won = []
            while True:
                try:
                    r = store.next()
                except NothingReady:
                    break
                except GitclaimError as e:
                    won.append({"error": e.to_json()})
                    break
                won.append({"task": r.task.id, "commit": r.commit, "retries": r.retries})
            out = {"ok": True, "won": won}
        else:
            out = {"ok": False, "message": f"unknown op {cmd['op']}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
