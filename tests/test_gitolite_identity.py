"""Identity through gitolite (issue 12): the key is the identity.

Every gitolite user here may push anything (``RW+ = @all``), so each refusal
below is gitclaim's server hook, installed with ``hooks install --server`` and
the rc and conf lines it prints, judging the pusher gitolite names in
``GL_USER``. One gitolite user per agent, named like the agent: agent-b's key
may not push a commit authored as agent-a (rule ``pusher``) nor move agent-a's
liveness ref (``liveness``); taking over an expired lease stays open to all;
resetting another's claim is an operator's move (``operator``) once the store
has a policy, and that first policy is anchored on the server
(``gitclaim.adminPusher``, rule ``trust``). The forged pushes are plain git:
gitclaim refuses some of them itself before pushing, the server must refuse
them all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitclaim.ids import task_path
from gitclaim.model import State, Task, dump_task, parse_task
from gitclaim.rules import apply_claim

from .conftest import GITOLITE_AGENTS, Site, make_site
from .servers import Gitolite
from .test_race import Workers, assert_one_winner, claims_in_history

pytestmark = pytest.mark.slow


@pytest.fixture
def armed(gitolite: Gitolite, tmp_path: Path) -> Site:
    """A store on gitolite, open to every user, with gitclaim's check as its repo-specific pre-receive hook."""
    site = make_site(gitolite, tmp_path, {"@all": "RW+"})
    g = site.install()["gitolite"]
    assert (g["mode"], g["active"]) == ("hook", False), g
    gitolite.add_rc(g["rc_settings"], g["rc_enable"])  # as the admin applies what was printed
    gitolite.add_conf(g["conf"])
    return site


def rewrite(task_id: str, change: Callable[[Task], Task]) -> Callable[[Path], None]:
    """An edit of a checkout: ``change`` applied to one task's file, as any tool could write it."""

    def edit(wc: Path) -> None:
        f = wc / task_path(task_id)
        f.write_bytes(dump_task(change(parse_task(f.read_bytes(), expected_id=task_id, path=task_path(task_id)))))

    return edit


def refused(err: dict[str, Any], rule: str, text: str) -> None:
    """A push the server's hook refused: push_rejected, the hook's words in the message and the details."""
    assert (err["code"], err["exit"]) == ("push_rejected", 15), err
    said = err["details"]["server_output"]
    assert said.startswith("gitclaim: push refused") and f"[{rule}] {text}" in said, err
    assert said in err["message"], err


def test_a_key_cannot_push_commits_authored_as_another_agent(armed: Site) -> None:
    tip = armed.tip()
    claim_as_a = rewrite("one", lambda t: apply_claim(t, "agent-a", datetime.now(UTC)))
    wc = armed.commit("agent-b", claim_as_a, "claim one", author="agent-a")
    pushed = armed.git("agent-b", "push", "origin", "gitclaim", cwd=wc)
    assert pushed.returncode != 0
    assert "[pusher] pushed by agent-b, who may not act as agent-a" in pushed.stderr, pushed.stderr
    assert armed.tip() == tip
    # The very same commit is fine from agent-a's key: the pusher was all that was wrong.
    assert armed.git("agent-a", "push", "origin", "gitclaim", cwd=wc).returncode == 0
    landed = armed.tip()
    assert landed != tip and landed == armed.git("agent-b", "rev-parse", "HEAD", cwd=wc).stdout.strip()


def test_gitclaim_with_one_key_and_another_agents_name_is_refused_by_the_server(armed: Site) -> None:
    tip = armed.tip()
    code, out = armed.gitclaim("agent-b", "claim", "one", "--agent", "agent-a")
    refused(out["error"], "pusher", "pushed by agent-b, who may not act as agent-a")
    assert armed.tip() == tip
    code, out = armed.gitclaim("agent-b", "show", "one")
    assert code == 0 and out["result"]["task"]["claim"] is None, out


def test_only_the_agents_own_key_moves_its_liveness_ref(armed: Site) -> None:
    alive = "refs/gitclaim/alive/agent-a"
    assert armed.gitclaim("agent-a", "heartbeat")[0] == 0
    beat = armed.tip(alive)
    assert beat is not None

    code, out = armed.gitclaim("agent-b", "heartbeat", "--agent", "agent-a")
    refused(out["error"], "liveness", "agent-b may not renew the lease of agent-a")
    wc = armed.work_copy("agent-b")
    forged = armed.git("agent-b", "push", "origin", f"+HEAD:{alive}", cwd=wc)
    assert forged.returncode != 0 and "[liveness] agent-b may not renew the lease of agent-a" in forged.stderr
    deleted = armed.git("agent-a", "push", "origin", f":{alive}", cwd=armed.work_copy("agent-a"))
    assert deleted.returncode != 0, deleted.stderr
    assert "[liveness] only an operator deletes the liveness ref of agent-a" in deleted.stderr, deleted.stderr
    assert armed.tip(alive) == beat  # three refusals, not one move

    code, out = armed.gitclaim("agent-a", "heartbeat")
    assert code == 0, out
    when = armed.server.run_as("git", "-C", str(armed.remote.path), "log", "-1", "--format=%cI", alive).stdout
    assert datetime.fromisoformat(when.strip()) == datetime.fromisoformat(out["result"]["at"])


def test_any_agent_takes_over_an_expired_lease_through_gitolite(armed: Site) -> None:
    ttl = 8  # long enough for agent-b's first try to land inside the lease on a loaded machine (ssh, a process)
    code, out = armed.gitclaim("agent-a", "claim", "one", "--ttl", str(ttl))
    assert code == 0, out
    claimed_at = datetime.fromisoformat(out["result"]["task"]["claim"]["claimed_at"])
    code, out = armed.gitclaim("agent-b", "claim", "one")
    assert code == 4 and out["error"]["details"]["holder"] == "agent-a", out  # still live

    time.sleep(max(0.0, (claimed_at - datetime.now(UTC)).total_seconds() + ttl + 0.5))
    code, out = armed.gitclaim("agent-b", "claim", "one")
    assert code == 0, out
    assert out["result"]["previous_holder"] == "agent-a" and out["result"]["task"]["claim"]["holder"] == "agent-b"
    log = armed.server.run_as("git", "-C", str(armed.remote.path), "log", "-1", "--format=%an %s", "gitclaim")
    assert log.stdout.startswith("agent-b take over one from agent-a by agent-b"), log.stdout


def test_the_first_policy_is_anchored_and_only_an_operator_resets(armed: Site) -> None:
    tip = armed.tip()
    code, out = armed.gitclaim("admin", "access", "grant", "operator", "admin")
    refused(out["error"], "trust", "sets the store's first policy (admins: admin)")  # no anchor on the server yet
    assert armed.tip() == tip

    set_anchor = ("git", "-C", str(armed.remote.path), "config", "gitclaim.adminPusher", "admin")
    armed.server.run_as(*set_anchor, check=True)  # as the hosting user: the repository stays theirs
    code, out = armed.gitclaim("agent-b", "access", "grant", "operator", "agent-b")
    refused(out["error"], "trust", "sets the store's first policy (admins: agent-b)")  # anchored for admin alone
    code, out = armed.gitclaim("admin", "access", "grant", "operator", "admin")
    assert code == 0, out

    assert armed.gitclaim("agent-a", "claim", "one")[0] == 0
    assert armed.gitclaim("agent-a", "heartbeat")[0] == 0
    held = armed.tip()
    code, out = armed.gitclaim("agent-b", "reset", "one")  # gitclaim knows the policy: it does not even push
    assert (out["error"]["code"], out["error"]["details"]["rule"]) == ("not_allowed", "operator"), out
    reset = rewrite("one", lambda t: t.evolve(state=State.TODO, claim=None, waiting_for=None))
    wc = armed.commit("agent-b", reset, "reset one")
    forged = armed.git("agent-b", "push", "origin", "gitclaim", cwd=wc)
    assert forged.returncode != 0
    assert "[operator] one: clearing agent-a's claim is an operator move; agent-b is not an operator" in forged.stderr
    assert armed.tip() == held

    code, out = armed.gitclaim("admin", "reset", "one")
    assert code == 0 and out["result"]["task"]["claim"] is None and out["result"]["to"] == "todo", out
    alive = "refs/gitclaim/alive/agent-a"
    assert armed.git("admin", "push", "origin", f":{alive}", cwd=armed.work_copy("admin")).returncode == 0
    assert armed.tip(alive) is None  # an operator may delete a liveness ref


def test_sixteen_keys_race_for_one_task_through_gitolite(armed: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """One gitolite user, one key and one agent name per process (docs/identity.md)."""
    workers = Workers(armed.remote, armed.root / "racers", names=GITOLITE_AGENTS, env=armed.env)
    try:
        winner = assert_one_winner(workers.all({"op": "claim", "task": "one"}), "through gitolite")
    finally:
        workers.close()
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")  # the repository is the hosting user's: let this git read it
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "*")
    history = claims_in_history(armed.remote)
    assert [(task, agent) for _, task, agent in history] == [("one", winner)]
    assert Counter(h[0] for h in history) == {armed.tip(): 1}  # the claim is the tip: nothing after it
