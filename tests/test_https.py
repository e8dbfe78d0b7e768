"""The store over https: nginx with TLS (a private CA) and basic auth, in front
of ``git http-backend`` on loopback.

Credentials come from GITCLAIM_TOKEN or from git's own credential helpers;
the CA from GITCLAIM_CA_BUNDLE or git's ``http.sslCAInfo``. Each CLI call
is its own process, as an agent's would be: a CA trusted once stays trusted
for the life of a process (libgit2's TLS settings are global), so the tests
that expect an untrusted certificate must not share the pytest process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store

from .conftest import run_cli
from .servers import HTTPS_USERS, GitHttp, Remote, clone, git
from .test_race import assert_one_winner_per_round

pytestmark = pytest.mark.slow


def cli(path: Path, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    r = run_cli(*args, "--json", cwd=path, env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def _seeded(remote: Remote, git_https: GitHttp, tmp_path: Path) -> Path:
    """A store with task t1 on the https remote, and a fresh agent clone of it."""
    admin = clone(remote, tmp_path / "admin")
    env = {"GITCLAIM_TOKEN": HTTPS_USERS["x-access-token"], "GITCLAIM_CA_BUNDLE": str(git_https.ca)}
    assert cli(admin, "init", **env)[0] == 0
    assert cli(admin, "add", "over https", "--id", "t1", **env)[0] == 0
    return clone(remote, tmp_path / "agent")


def test_a_claim_over_https_with_a_token_and_a_ca_bundle(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path
) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    code, out = cli(agent, "claim", "t1", "--agent", "agent-7",
                    GITCLAIM_TOKEN=HTTPS_USERS["x-access-token"], GITCLAIM_CA_BUNDLE=str(git_https.ca))  # fmt: skip
    assert code == 0, out
    assert out["result"]["task"]["claim"]["holder"] == "agent-7"
    assert https_remote.ref() == out["result"]["commit"]


def test_the_user_named_in_the_url_goes_with_the_token(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path
) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    git("remote", "set-url", "origin", https_remote.url.replace("https://", "https://agent@"), cwd=agent)
    code, out = cli(agent, "claim", "t1", "--agent", "a",
                    GITCLAIM_TOKEN=HTTPS_USERS["agent"], GITCLAIM_CA_BUNDLE=str(git_https.ca))  # fmt: skip
    assert code == 0, out


def test_an_untrusted_certificate_is_refused_before_anything_is_sent(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path
) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    tip = https_remote.ref()
    # Only the system's CAs: the test CA is unknown, so the server may be anyone.
    code, out = cli(agent, "claim", "t1", "--agent", "a", GITCLAIM_TOKEN=HTTPS_USERS["x-access-token"])
    assert code == 18, out
    err = out["error"]
    assert err["details"]["reason"] == "certificate"
    assert "TLS certificate is not trusted" in err["message"] and "GITCLAIM_CA_BUNDLE" in err["hint"]
    assert "unknown" not in err["message"]  # refused before sending: it certainly did not land
    assert https_remote.ref() == tip


def test_a_missing_ca_bundle_is_bad_input(git_https: GitHttp, https_remote: Remote, tmp_path: Path) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    code, out = cli(agent, "claim", "t1", "--agent", "a", GITCLAIM_CA_BUNDLE=str(tmp_path / "no-such.pem"))
    assert code == 2, out
    assert "does not exist" in out["error"]["message"]


def test_no_credential_at_all_is_an_auth_failure(git_https: GitHttp, https_remote: Remote, tmp_path: Path) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    code, out = cli(agent, "claim", "t1", "--agent", "a", GITCLAIM_CA_BUNDLE=str(git_https.ca))
    assert code == 17, out
    assert out["error"]["details"]["reason"] == "auth"
    assert "no credentials were available" in out["error"]["message"]
    assert "credential.helper" in out["error"]["hint"]


def test_git_config_names_the_ca_and_git_credential_store_has_the_password(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path
) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    creds = tmp_path / "git-credentials"
    creds.write_text(f"https://agent:{HTTPS_USERS['agent']}@127.0.0.1:{git_https.port}\n")
    git("config", "http.sslCAInfo", str(git_https.ca), cwd=agent)
    git("config", "credential.helper", f"store --file={creds}", cwd=agent)
    code, out = cli(agent, "claim", "t1", "--agent", "agent-7")
    assert code == 0, out
    assert https_remote.ref() == out["result"]["commit"]
    assert f"agent:{HTTPS_USERS['agent']}@127.0.0.1" in creds.read_text()  # approved: kept


def test_a_credential_the_server_refuses_is_erased_from_the_helper(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path
) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    tip = https_remote.ref()
    creds = tmp_path / "git-credentials"
    creds.write_text(f"https://agent:wrong-password@127.0.0.1:{git_https.port}\n")
    git("config", "credential.helper", f"store --file={creds}", cwd=agent)
    code, out = cli(agent, "claim", "t1", "--agent", "a", GITCLAIM_CA_BUNDLE=str(git_https.ca))
    assert code == 17, out
    assert out["error"]["details"]["reason"] == "auth"
    assert "1 credential(s) refused" in out["error"]["message"]
    assert "wrong-password" not in creds.read_text()  # as git does: a refused credential is forgotten
    assert https_remote.ref() == tip


def test_helpers_are_asked_in_order_and_all_told_what_worked(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path
) -> None:
    """The first helper knows nothing, the second answers, the third (a store)
    is told to keep what the server accepted, exactly as git runs them."""
    agent = _seeded(https_remote, git_https, tmp_path)
    log = tmp_path / "asked"
    answer = tmp_path / "answer.sh"
    answer.write_text(
        f'#!/bin/sh\necho "$1" >> {log}\n'
        f'[ "$1" = get ] && printf "username=agent\\npassword={HTTPS_USERS["agent"]}\\n"\nexit 0\n'
    )
    answer.chmod(0o755)
    kept = tmp_path / "kept"
    git("config", "credential.helper", f"!echo nothing-here-{log.name} >/dev/null; true", cwd=agent)
    git("config", "--add", "credential.helper", str(answer), cwd=agent)
    git("config", "--add", f"credential.https://127.0.0.1:{git_https.port}.helper", f"store --file={kept}",
        cwd=agent)  # fmt: skip
    git("config", "--add", "credential.https://elsewhere.invalid.helper", "!exit 1", cwd=agent)
    code, out = cli(agent, "claim", "t1", "--agent", "a", GITCLAIM_CA_BUNDLE=str(git_https.ca))
    assert code == 0, out
    # a fetch then a push: the helpers are asked once a process, the credential remembered
    assert log.read_text().split() == ["get", "store"]
    assert f"agent:{HTTPS_USERS['agent']}@" in kept.read_text()


def test_a_helper_that_hangs_is_cut_off(git_https: GitHttp, https_remote: Remote, tmp_path: Path) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    git("config", "credential.helper", "!sleep 60; true", cwd=agent)
    r = subprocess.run(
        [sys.executable, "-m", "gitclaim", "claim", "t1", "--agent", "a", "--json"],
        cwd=agent,
        capture_output=True,
        text=True,
        env=dict(os.environ, GITCLAIM_CA_BUNDLE=str(git_https.ca), GITCLAIM_IO_TIMEOUT_MS="1500"),
        timeout=30,  # never a hang: the helper gets the I/O timeout, not forever
    )
    assert r.returncode == 17, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["details"]["reason"] == "auth"
    assert "did not answer within 1.5 s" in err["message"]


def test_sixteen_processes_one_task_over_https(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim race of test_race.py, through TLS and basic auth."""
    monkeypatch.setenv("GITCLAIM_TOKEN", HTTPS_USERS["x-access-token"])
    monkeypatch.setenv("GITCLAIM_CA_BUNDLE", str(git_https.ca))
    assert_one_winner_per_round(https_remote, tmp_path, rounds=3)


def test_an_in_process_store_over_https(
    git_https: GitHttp, https_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITCLAIM_TOKEN", HTTPS_USERS["x-access-token"])
    monkeypatch.setenv("GITCLAIM_CA_BUNDLE", str(git_https.ca))
    store = Store(clone(https_remote, tmp_path / "a"), agent="a")
    store.init()
    store.add("t", task_id="t1")
    assert store.claim("t1").task.holder == "a"
    assert store.heartbeat().holding == ("t1",)


def test_a_password_in_the_remote_url_never_shows(git_https: GitHttp, https_remote: Remote, tmp_path: Path) -> None:
    """A token kept in the remote's URL is used (as git does) but never printed:
    not in a message, not in --json details."""
    agent = _seeded(https_remote, git_https, tmp_path)
    secret = HTTPS_USERS["agent"]
    git("remote", "set-url", "origin", https_remote.url.replace("https://", f"https://agent:{secret}@"), cwd=agent)
    code, out = cli(agent, "claim", "t1", "--agent", "a")  # no CA: refused, and the error names the URL
    assert code == 18 and out["error"]["details"]["reason"] == "certificate", out
    assert secret not in json.dumps(out) and "https://***@127.0.0.1" in json.dumps(out)
    r = run_cli("claim", "t1", "--agent", "a", cwd=agent)  # the human form too
    assert r.returncode == 18 and secret not in r.stdout + r.stderr
    code, out = cli(agent, "claim", "t1", "--agent", "a", GITCLAIM_CA_BUNDLE=str(git_https.ca))
    assert code == 0, out
    assert secret not in json.dumps(out)


def test_offline_reads_need_no_ca_and_no_network(git_https: GitHttp, https_remote: Remote, tmp_path: Path) -> None:
    agent = _seeded(https_remote, git_https, tmp_path)
    env = {"GITCLAIM_TOKEN": HTTPS_USERS["x-access-token"], "GITCLAIM_CA_BUNDLE": str(git_https.ca)}
    assert cli(agent, "list", **env)[0] == 0  # fetched once
    code, out = cli(agent, "list", "--offline", GITCLAIM_CA_BUNDLE=str(tmp_path / "moved-away.pem"))
    assert code == 0 and [t["id"] for t in out["result"]["tasks"]] == ["t1"], out
