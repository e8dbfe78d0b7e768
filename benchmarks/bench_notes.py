"""What schema 2's fields cost to read and to validate, against a schema 1 task in the same run.

    python benchmarks/bench_notes.py [--tasks N] [--runs N]

Parses N distinct task files (no cache: each blob is new) of three kinds: a
schema 1 task (the baseline), a schema 2 task with a parent, a result and 5
notes, and one with 50 notes; then classifies N one-task commits: an edit of
the baseline task (baseline) and a note appended to a task with 50 notes.
Prints medians over runs and each one's ratio to its baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gitclaim.ids import task_path
from gitclaim.model import Note, Result, Task, dump_task, parse_task
from gitclaim.validate import classify_commit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _task(i: int, notes: int, extra: bool) -> Task:
    base = Task(f"t{i}", f"Task number {i}", priority=i % 10, tags=("web",), created_at=T0, created_by="planner",
                description="Some longer text.\nOn two lines.")  # fmt: skip
    if not extra:
        return base
    text = "note {k} on task {i}: tried X, then Y"
    ns = tuple(Note(T0 + timedelta(minutes=k), "agent-7", text.format(k=k, i=i)) for k in range(notes))
    return base.evolve(parent="epic", result=Result(f"https://example.invalid/pr/{i}", "agent-7", T0), notes=ns)


def _median(fn: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    n = a.tasks
    salt = iter(range(1 << 30))

    def blobs(notes: int, extra: bool) -> list[bytes]:
        s = next(salt)  # new bytes every run: the parse cache never answers
        return [dump_task(_task(i, notes, extra).evolve(title=f"Task {i} run {s}")) for i in range(n)]

    def parse(notes: int, extra: bool) -> Callable[[], None]:
        data: list[bytes] = []

        def run() -> None:
            for i, b in enumerate(data):
                parse_task(b, expected_id=f"t{i}", path="p")

        def timed() -> None:
            data[:] = blobs(notes, extra)
            start = time.perf_counter()
            run()
            timed.took = time.perf_counter() - start  # type: ignore[attr-defined]

        return timed

    results: dict[str, float] = {}
    kinds = (("schema 1", 0, False), ("schema 2, 5 notes", 5, True), ("schema 2, 50 notes", 50, True))
    for name, notes, extra in kinds:
        fn = parse(notes, extra)
        samples = []
        for _ in range(a.runs):
            fn()
            samples.append(fn.took)  # type: ignore[attr-defined]
        results[name] = statistics.median(samples)
    base = results["schema 1"]
    print(f"parse {n} task files, median of {a.runs} runs:")
    for name, t in results.items():
        print(f"  {name:<20} {t * 1e6 / n:8.1f} us/task  x{t / base:.2f}")

    def commits(kind: str) -> Callable[[], None]:
        def run() -> None:
            s = next(salt)
            for i in range(n):
                old = _task(i, 50, True) if kind == "note" else _task(i, 0, False)
                old = old.evolve(title=f"Task {i} run {s}")
                new = (old.evolve(notes=(*old.notes, Note(T0, "agent-8", "one more"))) if kind == "note"
                       else old.evolve(priority=(old.priority + 1) % 10))  # fmt: skip
                changes = {task_path(old.id): (dump_task(old), dump_task(new))}
                v = classify_commit(changes, agent="agent-8", lookup=lambda _: None, now=T0, last_seen={})
                assert not v.violations and v.moves[0].verb == ("note" if kind == "note" else "edit")

        return run

    edit, note = _median(commits("edit"), a.runs), _median(commits("note"), a.runs)
    print(f"validate {n} one-task commits (dump + classify), median of {a.runs} runs:")
    print(f"  {'edit, schema 1':<20} {edit * 1e6 / n:8.1f} us/commit  x1.00")
    print(f"  {'note on 50 notes':<20} {note * 1e6 / n:8.1f} us/commit  x{note / edit:.2f}")


if __name__ == "__main__":
    main()
