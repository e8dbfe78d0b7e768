"""Trailers are labels: they must agree with what the change did. Pure.

The validator classifies every commit from its diff (:class:`gitclaim.validate.TaskMove`,
task before -> task after). A commit's ``Gitclaim-*`` trailers (its
:class:`gitclaim.audit.Record`) only name that move; :func:`disagreements`
lists every way they say something else: another agent than the author,
another operation, other states, other holders, a task the commit does not
change or a changed task they do not name. gitclaim, the pre-push hook, the
server hook and ``verify`` refuse such a commit (rule ``trailers``), and the
views report the classified move, never an unconfirmed trailer.

A commit with no trailers at all (a plain ``git commit``) disagrees with
nothing: the views report what its diff did and who authored it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .audit import Record
from .validate import TaskMove

RULE = "trailers"

# Operations whose one task moves by the verb of the same name.
_SINGLE = frozenset(
    {
        "claim",
        "takeover",
        "release",
        "done",
        "handoff",
        "wait",
        "resume",
        "review",
        "fail",
        "cancel",
        "reopen",
        "reset",
        "retry",
        "edit",
        "note",
    }
)
# Operations that change no task file.
NO_TASKS = frozenset({"init", "signers", "access"})
KNOWN = _SINGLE | NO_TASKS | {"add", "reap", "archive"}


POLICY_OPS = frozenset({"signers", "access"})


def disagreements(
    record: Record, moves: Sequence[TaskMove], author: str, *, about: str | None = None, policy: Sequence[str] = ()
) -> list[str]:
    """Every way ``record`` disagrees with ``moves`` made by ``author`` (empty: it agrees).

    ``about``: only what the record says about that one task (``moves`` then
    hold its move alone), for a view of one task's history.
    """
    out: list[str] = []
    if about is not None:
        if about not in record.tasks:
            moved = [m for m in moves if m.task == about]
            out += [f"the commit changes {about} ({m.text()}), which its trailers do not name" for m in moved]
            return [*_agent(record, author), *out]
        record = _about(record, about)
    out += _agent(record, author)
    if record.op not in KNOWN:
        return [*out, f"the trailers name an operation gitclaim does not know: {record.op!r}"]
    by_task = {m.task: m for m in moves}
    named = set(record.tasks)
    out += [
        f"the commit changes {t} ({by_task[t].text()}), which its trailers do not name"
        for t in by_task
        if t not in named
    ]
    out += [f"the trailers name {t}, which the commit does not change" for t in sorted(named - by_task.keys())]
    if record.op in _SINGLE:
        out += _single(record, by_task)
    elif record.op == "add":
        out += [f"{m.task}: the trailers say add, but the change is {m.text()}" for m in moves if m.verb != "add"]
    elif record.op == "archive":
        out += [
            f"{m.task}: the trailers say archive, but the change is {m.text()}" for m in moves if m.verb != "archive"
        ]
    elif record.op in NO_TASKS and moves:
        out.append(f"{record.op} changes no task, but the commit does: {_phrase(moves)}")
    out += _then(record, by_task)
    out += _cleared(record, by_task)
    if policy and record.op not in POLICY_OPS | {"init"}:
        out.append(f"the commit changes {', '.join(policy)}, which {record.op} does not")
    if record.op in POLICY_OPS and not policy and about is None:
        out.append(f"the trailers say {record.op}, but the commit changes no policy file")
    return out


# The moves a commit may make second, after its first (``done --next`` claims the next task).
THEN_OPS = frozenset({"claim", "takeover"})


def _then(record: Record, by_task: dict[str, TaskMove]) -> list[str]:
    """A second move (``Then-*`` trailers) names another task, by the same
    agent, and is checked as a commit of its own would be."""
    then = record.then
    if then is None:
        return []
    if then.op not in THEN_OPS or record.op not in _SINGLE or record.task is None:
        return [f"the trailers name a second move ({then.op}) after {record.op}; only a claim follows one task's move"]
    if then.task is None or then.task == record.task:
        return [f"the second move ({then.op}) must name a task other than {record.task}"]
    if then.then is not None:
        return ["the trailers name more than two moves"]
    return _single(then, by_task)


def _about(record: Record, task: str) -> Record:
    from dataclasses import replace

    record = record.about(task)  # a commit of two moves: the one of this task
    cleared = tuple(c for c in record.cleared if c.task == task)
    if record.task == task:
        return replace(record, added=(), cleared=cleared)
    if task in record.added:
        return replace(record, task=None, added=(task,), cleared=())
    if task in record.archived:
        return replace(record, task=None, archived=(task,), cleared=())
    if cleared:  # checked as reap checks its own: a claim of that holder cleared
        return replace(record, op="reap", task=None, added=(), cleared=cleared)
    return record


def _agent(record: Record, author: str) -> list[str]:
    if record.agent != author:
        return [f"the trailers name {record.agent} as the agent, but the commit's author is {author}"]
    return []


def _single(record: Record, by_task: dict[str, TaskMove]) -> list[str]:
    m = by_task.get(record.task) if record.task is not None else None
    if m is None:
        return [] if record.task is not None else [f"{record.op} names no task"]
    out = []
    if record.op not in m.verbs:
        out.append(f"{m.task}: the trailers say {record.op}, but the change is {m.text()}")
    if record.from_state is not None and record.from_state != m.from_state:
        out.append(f"{m.task}: the trailers say from {record.from_state}, but it was {m.from_state}")
    if record.to_state is not None and record.to_state != m.to_state:
        out.append(f"{m.task}: the trailers say to {record.to_state}, but it is now {m.to_state}")
    if record.previous_holder is not None and record.previous_holder != m.holder_before:
        out.append(f"{m.task}: the trailers name {record.previous_holder} as the holder before, not {m.holder_before}")
    if record.to_agent is not None and record.to_agent != m.holder_after:
        out.append(f"{m.task}: the trailers hand it to {record.to_agent}, but the holder is now {m.holder_after}")
    if (record.result is not None) != m.result_set:
        said = "record a result" if record.result is not None else "record no result"
        out.append(f"{m.task}: the trailers {said}, but the change {'does' if m.result_set else 'does not'}")
    return out


def _cleared(record: Record, by_task: dict[str, TaskMove]) -> list[str]:
    out = []
    for c in record.cleared:
        m = by_task.get(c.task)
        if m is None:
            continue  # reported as "does not change"
        if m.holder_before != c.holder or m.holder_after is not None:
            out.append(f"{c.task}: the trailers say a claim of {c.holder} was cleared, but the change is {m.text()}")
    if record.op == "reap":
        cleared = {c.task for c in record.cleared}
        out += [f"{m.task}: reap only clears stale claims, but the change is {m.text()}" for m in by_task.values()
                if m.task in cleared and "reset" not in m.verbs]  # fmt: skip
    return out


def _phrase(moves: Iterable[TaskMove]) -> str:
    return "; ".join(m.text() for m in moves)


def summary(moves: Sequence[TaskMove]) -> str | None:
    """The one verb that describes a commit's moves, or None when they differ."""
    verbs = {m.verb for m in moves}
    return verbs.pop() if len(verbs) == 1 else None
