"""``run``: claim a task, run COMMAND on it, keep the lease while it lives, and
settle the task by how COMMAND ended.

* COMMAND gets the task in its environment: ``GITCLAIM_TASK`` (the id),
  ``GITCLAIM_AGENT`` and ``GITCLAIM_TASK_FILE`` (the task as JSON).
* A thread of its own (with its own :class:`Store`: libgit2 objects never cross
  threads) sends a heartbeat every third of the lease by the monotonic clock,
  and looks whether the task is still ours. When another agent took it over
  (or reset or cancelled it), COMMAND is stopped and ``run`` says so.
* Exit 0: done. Non-zero: failed, the status as the reason. SIGINT or SIGTERM
  to ``run``: forwarded to COMMAND, then the task is released. COMMAND that
  moved the task itself (``gitclaim review $GITCLAIM_TASK``) is left as it did.
* COMMAND runs in a process group of its own (signals reach its children), and
  on Linux it gets SIGTERM when ``run`` dies (SIGKILL): nobody works on a task
  whose lease is about to lapse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import BadInput, GitclaimError, NotClaimable, NothingReady, NotHolder
from ..model import State
from ..results import OpResult, Ran, RunResult
from . import history
from .leases import beat
from .poll import Poller

if TYPE_CHECKING:
    from ..api import Store
    from ..model import Task

GRACE = 10.0  # seconds COMMAND has to stop after a forwarded signal, before SIGKILL
UNLEASED_CHECK = 5.0  # how often a claim without a lease is looked at (a reset, a takeover by an operator)
Say = Callable[[str], None]


def _stderr(text: str) -> None:
    sys.stderr.write(f"gitclaim run: {text}\n")
    sys.stderr.flush()


def run(
    store: Store,
    command: Sequence[str],
    task_id: str | None,
    pick_next: bool,
    ttl: int | str | None,
    loop: bool,
    agent: str | None,
    *,
    say: Say = _stderr,
    stdout: IO[Any] | None = None,
) -> RunResult:
    """Run COMMAND on one task, or (``loop``) on one after another until nothing
    is ready; see :meth:`gitclaim.api.Store.run`."""
    if not command:
        raise BadInput("give the COMMAND to run after --", hint="gitclaim run --next -- make test")
    if (task_id is None) == (not pick_next):
        raise BadInput("give a task ID or --next (not both)", hint="gitclaim run --next -- COMMAND...")
    if loop and task_id is not None:
        raise BadInput("--loop takes tasks one after another: give --next, not an ID")
    who = store.whoami(agent)
    runs: list[Ran] = []
    with Signals() as signals:
        while signals.received is None:
            try:
                got = store.next(agent=who, ttl=ttl) if task_id is None else store.claim(task_id, agent=who, ttl=ttl)
            except NothingReady:
                if loop:
                    break
                raise
            runs.append(_one(store, got, list(command), who, signals, say, stdout))
            if not loop:
                break
    if loop:
        status = next((r.status for r in reversed(runs) if r.status != 0), 0)
    else:
        status = runs[-1].status if runs else 128 + (signals.received or 0)
    return RunResult(who, tuple(runs), status)


class Signals:
    """SIGINT and SIGTERM, while run runs: remembered, and forwarded to COMMAND's group."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.at = 0.0
        self.child: subprocess.Popen[bytes] | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    def _on(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received, self.at = signum, time.monotonic()
        if self.child is not None:
            send(self.child, signum)


def send(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal COMMAND's whole process group (it leads its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _one(
    store: Store, got: OpResult, command: list[str], who: str, signals: Signals, say: Say, stdout: IO[Any] | None
) -> Ran:
    task = got.task
    lease = task.claim.lease_seconds if task.claim is not None else None
    folder = Path(tempfile.mkdtemp(prefix="gitclaim-run-"))
    start = time.monotonic()
    keeper = Keeper(store, who, task.id, lease, say)
    try:
        if signals.received is not None:  # a signal while claiming: do not start
            return _settle(store, task, who, None, signals, keeper, start)
        (folder / "task.json").write_text(json.dumps(task.to_json(), ensure_ascii=False), encoding="utf-8")
        env = {
            **store.env,
            "GITCLAIM_TASK": task.id,
            "GITCLAIM_AGENT": who,
            "GITCLAIM_TASK_FILE": str(folder / "task.json"),
        }
        try:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=stdout,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # our threads: none yet
            )
        except OSError as e:
            store.release(task.id, agent=who)
            raise BadInput(
                f"cannot start {command[0]!r}: {e.strerror or e}; {task.id} was released",
                hint="check the command after --",
                task=task.id,
            ) from None
        signals.child = keeper.child = proc
        keeper.start()
        try:
            code = _wait(proc, signals, keeper)
        finally:
            signals.child = None
            keeper.finish()
        return _settle(store, task, who, code, signals, keeper, start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait(proc: subprocess.Popen[bytes], signals: Signals, keeper: Keeper) -> int:
    """COMMAND's return code; SIGKILL for one that outlives a forwarded signal by GRACE."""
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            asked = signals.at if signals.received is not None else keeper.lost_at
            if asked and time.monotonic() - asked > GRACE:
                send(proc, signal.SIGKILL)


def _status(code: int | None, signals: Signals) -> tuple[int, str | None]:
    if code is None:  # never started
        return 128 + (signals.received or 0), None
    if code < 0:
        return 128 - code, signal.Signals(-code).name
    return code, None


def _settle(
    store: Store, task: Task, who: str, code: int | None, signals: Signals, keeper: Keeper, start: float
) -> Ran:
    status, sig = _status(code, signals)
    seconds = time.monotonic() - start

    def ran(outcome: str, now: Task, commit: str | None = None) -> Ran:
        return Ran(task, outcome, status, commit, keeper.renewals, seconds, now.state.value, now.holder, sig)

    now = _current(store, task.id) or task
    if keeper.lost is not None or (now.holder not in (None, who)):
        return ran("lost", now)
    if now.state is not State.ACTIVE or now.holder != who:
        return ran("left", now)  # COMMAND moved the task itself
    try:
        if signals.received is not None:
            verb, out = "released", store.release(task.id, agent=who)
        elif code == 0:
            verb, out = "done", store.done(task.id, agent=who)
        else:
            what = f"killed by {sig}" if sig else f"exited with status {status}"
            verb, out = "failed", store.fail(task.id, f"{command_name(keeper)} {what}", agent=who)
    except (NotHolder, NotClaimable):
        now = _current(store, task.id) or task
        return ran("lost" if now.holder not in (None, who) else "left", now)
    return ran(verb, out.task, out.commit)


def command_name(keeper: Keeper) -> str:
    args = keeper.child.args if keeper.child is not None else None
    if isinstance(args, list | tuple) and args:
        return f"command {Path(str(args[0])).name!r}"
    return "command"


def _current(store: Store, task_id: str) -> Task | None:
    tip = store.transport.fetch()
    return None if tip is None else store.snapshot(tip).task(task_id)


class Keeper(threading.Thread):
    """Renews the lease at a third of its length, and stops COMMAND if the task is lost."""

    def __init__(self, store: Store, who: str, task_id: str, lease: int | None, say: Say) -> None:
        super().__init__(name=f"gitclaim-renew-{task_id}", daemon=True)
        self.store, self.who, self.task_id, self.lease, self.say = store, who, task_id, lease, say
        # A third of the lease; less the second that whole-second times (claimed_at, a
        # heartbeat's commit time) may lose: a 2 s lease claimed at 10.9 s runs out at 12.
        self.interval = max(0.2, (lease - 1) / 3) if lease else UNLEASED_CHECK
        self.renewals = 0
        self.lost: str | None = None  # who took it (or reset it)
        self.lost_at = 0.0
        self.child: subprocess.Popen[bytes] | None = None
        self._halt = threading.Event()

    def finish(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        mine = replace(self.store)  # a Store (and libgit2 repository) of this thread's own
        poll = Poller(mine, tip=mine.transport.local_tip())
        failing = False
        last_ok = time.monotonic()
        while not self._halt.wait(self.interval):
            try:
                if self.lease:
                    beat(mine, self.who)
                    self.renewals += 1
                    last_ok = time.monotonic()
                if poll.moved() is not None and self._taken(mine, poll):
                    return
            except GitclaimError as e:
                if not failing:
                    self.say(f"cannot renew the lease on {self.task_id} (trying again): {e.message}")
                failing = True
                if self.lease and time.monotonic() - last_ok > self.lease:
                    self.say(f"the lease on {self.task_id} ran out by this clock; another agent may take it over")
                    last_ok = float("inf")  # said once
                continue
            if failing:
                self.say(f"renewing the lease on {self.task_id} again")
                failing = False

    def _taken(self, mine: Store, poll: Poller) -> bool:
        """After the branch moved: is the task someone else's now? Then stop COMMAND."""
        tip = mine.transport.fetch()
        poll.tip = tip
        task = mine.snapshot(tip).task(self.task_id) if tip is not None else None
        if task is not None and task.holder == self.who:
            return False
        by = task.holder if task is not None else None
        if task is not None and by is None:
            last = history.last_change(mine, poll.tip or "", self.task_id)
            if last is None or last.agent == self.who:
                return False  # COMMAND settled the task itself
            by = last.agent
        by = by or "another agent"
        self.lost, self.lost_at = by, time.monotonic()
        self.say(f"lost {self.task_id}: {by} has it now ({task.state.value if task else 'gone'}); stopping COMMAND")
        if self.child is not None:
            send(self.child, signal.SIGTERM)
        return True
