"""One agent process for the race tests: a clone of its own, driven over stdin.

Each stdin line is a JSON command; each answer is one JSON line on stdout.
The parent writes the same command to every worker at once, so the workers'
operations start within microseconds of each other.
"""

from __future__ import annotations

import json
import sys

from gitclaim import RetryPolicy, Store
from gitclaim.errors import GitclaimError, NothingReady


def main() -> None:
    path, agent = sys.argv[1], sys.argv[2]
    # These tests prove exclusivity and no lost update, not fairness: a hot
    # loop with no work between claims lets the last winner go first, so give
    # the losers time enough rather than a production deadline.
    store = Store(path, agent=agent, policy=RetryPolicy(max_attempts=100_000, deadline=600))
    store.transport.fetch()  # warm: objects local, like an agent that has been running
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        out: dict[str, object]
        if cmd["op"] == "claim":
            try:
                r = store.claim(cmd["task"])
                out = {"ok": True, "commit": r.commit, "changed": r.changed, "retries": r.retries}
            except GitclaimError as e:
                out = {"ok": False, **e.to_json()}
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
