"""The server hook on a gitolite repository: gitolite's own hooks stay gitolite's.

``hooks install --server`` on a repository gitolite manages writes gitclaim's
check into gitolite's LOCAL_CODE (a repo-specific hook, or a VREF) and prints
the rc and conf lines; the tests apply those lines as an admin would (the
fixture's add_rc / add_conf, then a compile, which is what a push of
gitolite-admin runs) and push through gitolite over ssh. The install runs as
the hosting user, as an admin would run it, with a Python that user can run.

The first half needs the session's gitolite server; the second works on a
fake gitolite home (the files gitolite leaves, no gitolite) and is quick.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitclaim.errors import BadInput
from gitclaim.gitolite import HOOK_NAME, LOCAL_CODE_LINE, VREF_NAME, detect
from gitclaim.hook import pusher
from gitclaim.install import install, install_server
from tests.conftest import Site, run_cli
from tests.servers import git, make_bare


def hooks_of(bare: Path) -> dict[str, str]:
    """Every entry of the repository's hooks folder: a symlink's target, or a file's hash."""
    out = {}
    for p in sorted((bare / "hooks").iterdir()):
        out[p.name] = f"-> {os.readlink(p)}" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("mode", ["hook", "vref"])
def test_gitolite_runs_the_check_and_keeps_its_own_hooks(site: Site, mode: str) -> None:
    flag = ("--vref",) if mode == "vref" else ()
    before = hooks_of(site.remote.path)
    first = site.install(*flag)
    assert hooks_of(site.remote.path) == before  # not one file renamed, written or relinked
    g = first["gitolite"]
    name = site.remote.url.rsplit("/", 1)[1]
    rule = f"option hook.pre-receive = {HOOK_NAME}" if mode == "hook" else f"- VREF/{VREF_NAME} = @all"
    assert (g["mode"], g["repo"], g["conf"], g["active"]) == (mode, name, [f"repo {name}", f"    {rule}"], False)
    where = ("hooks", "repo-specific", HOOK_NAME) if mode == "hook" else ("VREF", VREF_NAME)
    assert first["path"] == str(Path(g["local_code"], *where)) and first["chained"] is None
    assert Path(first["path"]).stat().st_uid == site.server.uid and os.access(first["path"], os.X_OK)
    assert g["notes"] == [], g["notes"]

    site.server.add_rc(g["rc_settings"], g["rc_enable"])  # the admin applies what was printed
    site.server.add_conf(g["conf"])
    if mode == "vref":
        assert hooks_of(site.remote.path) == before  # a VREF needs nothing in the repository

    refused = site.delete_task("agent-a")
    assert refused.returncode != 0, refused.stderr
    assert "gitclaim: push refused" in refused.stderr and "[deleted] task one must not be deleted" in refused.stderr
    if mode == "vref":
        assert f"VREF/{VREF_NAME}" in refused.stderr and "DENIED" in refused.stderr
    code, out = site.gitclaim("agent-a", "claim", "one")
    assert code == 0 and out["result"]["task"]["claim"]["holder"] == "agent-a", out

    site.server.compile()  # another admin push: gitolite puts its hooks back, ours stays
    refused = site.delete_task("agent-b")
    assert refused.returncode != 0 and "[deleted] task one must not be deleted" in refused.stderr, refused.stderr
    code, out = site.gitclaim("agent-a", "done", "one")
    assert code == 0, out

    second, third = site.install(*flag), site.install(*flag)  # idempotent
    assert second == third
    now = {**g, "rc_settings": [], "rc_enable": [], "active": True}
    if mode == "hook":  # gitolite's driver is one more sign of gitolite now
        driver = second["gitolite"]["detected_by"][1]
        assert driver.startswith("hooks/pre-receive links to gitolite's multi-hook driver"), driver
        now["detected_by"] = [g["detected_by"][0], driver, *g["detected_by"][1:]]
    assert second == {**first, "updated": True, "gitolite": now}


def test_the_hook_sees_the_pusher_gitolite_names(site: Site) -> None:
    """GL_USER reaches a repo-specific hook through gitolite's multi-hook driver."""
    g = site.install()["gitolite"]
    site.server.add_rc(g["rc_settings"], g["rc_enable"])
    seen = Path(g["local_code"]) / "hooks" / "repo-specific" / "who"
    log = site.server.home / f"pushers-{site.remote.path.name}"
    seen.write_text(f"#!/bin/sh\ncat >/dev/null\n{site.server.hosting_python()} -c "
                    f"'from gitclaim.hook import pusher; print(pusher())' >>{log}\n")  # fmt: skip
    seen.chmod(0o755)
    name = site.remote.url.rsplit("/", 1)[1]
    site.server.add_conf([f"repo {name}", f"    option hook.pre-receive = {HOOK_NAME} who"])
    assert site.gitclaim("agent-b", "claim", "one")[0] == 0
    assert set(log.read_text().split()) == {"agent-b"}


def test_vref_is_refused_without_a_gitolite_repository(tmp_path: Path) -> None:
    bare = make_bare(tmp_path / "plain.git")
    r = run_cli("hooks", "install", "--server", str(bare), "--vref", "--json", cwd=tmp_path)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "bad_input", r.stdout
    assert not (bare / "hooks" / "pre-receive").exists()
    r = run_cli("hooks", "install", "--server", str(bare), "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["result"]["gitolite"] is None, r.stdout


# --- without a server: the files gitolite leaves -----------------------------------

RC = """%RC = (
    UMASK                           =>  0077,
    # LOCAL_CODE                =>  "$ENV{HOME}/local",
{settings}
    ENABLE => [
            'help',
            # 'repo-specific-hooks',
{enable}
    ],
);
1;
"""


@pytest.fixture
def fake(tmp_path: Path) -> Callable[..., Path]:
    """fake(settings=..., enable=...): a bare repository in a home laid out as gitolite's."""

    def make(settings: str = "", enable: str = "", name: str = "team/work") -> Path:
        home = tmp_path / "git"
        (home / ".gitolite" / "hooks" / "common").mkdir(parents=True)
        update = home / ".gitolite" / "hooks" / "common" / "update"
        update.write_text("#!/usr/bin/perl\nuse lib $ENV{GL_LIBDIR};\nuse Gitolite::Hooks::Update;\nupdate();\n")
        (home / ".gitolite.rc").write_text(RC.replace("{settings}", settings).replace("{enable}", enable))
        bare = make_bare(home / "repositories" / f"{name}.git")
        (bare / "hooks" / "update").symlink_to(update)
        (bare / "gl-conf").write_text("%one_repo = ();\n")
        return bare

    return make


def test_detection_names_the_repository_and_reads_the_rc(fake: Callable[..., Path]) -> None:
    bare = fake(settings='    LOCAL_CODE => "$ENV{HOME}/site",', enable="            'repo-specific-hooks',")
    found = detect(bare)
    assert found is not None
    assert (found.repo, found.local_code) == ("team/work", bare.parents[2] / "site")
    assert "repo-specific-hooks" in found.enabled and "help" in found.enabled
    assert [e.split()[0] for e in found.evidence] == ["hooks/update", "gl-conf"]
    assert detect(make_bare(bare.parents[2] / "elsewhere.git")) is None  # near gitolite, not one of its repositories


def test_commented_settings_are_not_settings(fake: Callable[..., Path]) -> None:
    out = install_server(fake()).to_json()["gitolite"]
    assert isinstance(out, dict)
    assert (out["rc_settings"], out["rc_enable"]) == ([LOCAL_CODE_LINE], ["'repo-specific-hooks',"])
    assert out["local_code"] == str(Path(out["home"]) / ".gitolite" / "local")


def test_a_gitolite_repository_whose_home_is_gone_is_refused(tmp_path: Path) -> None:
    bare = make_bare(tmp_path / "orphan.git")
    (bare / "gl-conf").write_text("%one_repo = ();\n")
    with pytest.raises(BadInput, match="gitolite manages"):
        install_server(bare)
    assert not (bare / "hooks" / "pre-receive").exists()


def test_a_file_gitclaim_did_not_write_is_not_overwritten(fake: Callable[..., Path]) -> None:
    bare = fake()
    theirs = bare.parents[2] / ".gitolite" / "local" / "VREF" / VREF_NAME
    theirs.parent.mkdir(parents=True)
    theirs.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(BadInput, match="did not write"):
        install_server(bare, vref=True)
    assert theirs.read_text() == "#!/bin/sh\nexit 0\n"


def test_an_older_gitclaim_hook_in_a_gitolite_repository_is_named_not_moved(fake: Callable[..., Path]) -> None:
    bare = fake()
    driver = bare.parents[2] / ".gitolite" / "local" / "hooks" / "multi-hook-driver"
    driver.parent.mkdir(parents=True)
    driver.write_text('#!/bin/sh\nfor h in $0.*; do\n  echo "$stdin" | $h\ndone\n')
    (bare / "hooks" / "pre-receive").symlink_to(driver)
    install(bare / "hooks", "pre-receive")  # what install_server did before it knew gitolite
    before = hooks_of(bare)
    out = install_server(bare).to_json()["gitolite"]
    assert isinstance(out, dict)
    assert hooks_of(bare) == before
    assert len(out["notes"]) == 1 and "older gitclaim hook" in out["notes"][0], out["notes"]


def test_pusher_reads_the_hosts_variables_in_order() -> None:
    env = {"REMOTE_USER": "http", "GITEA_PUSHER_NAME": "gitea", "GL_USERNAME": "gitlab", "GL_USER": "gitolite"}
    assert pusher(env) == "gitolite"
    assert pusher({**env, "GL_USER": ""}) == "gitlab"
    assert pusher({"GITEA_PUSHER_NAME": "gitea", "REMOTE_USER": "http"}) == "gitea"
    assert pusher({"REMOTE_USER": "http"}) == "http"
    assert pusher({}) is None


def test_a_repository_of_another_user_is_bad_input_naming_the_owner(tmp_path: Path) -> None:
    """As root on gitolite's repository: git's ownership check, said as such (it was an internal error)."""
    if os.geteuid() != 0:
        pytest.fail("needs root, to give the repository to another user")
    bare = make_bare(tmp_path / "theirs.git")
    for d, _, files in os.walk(bare):
        for p in [d, *(os.path.join(d, f) for f in files)]:
            os.chown(p, 65534, 65534)
    with pytest.raises(BadInput, match="belongs to another user") as e:
        install_server(bare)
    assert "hosting user" in e.value.hint


@pytest.mark.parametrize("mode", ["hook", "vref"])
def test_a_compaction_passes_gitolite_and_a_plain_force_push_does_not(site: Site, mode: str) -> None:
    """The repo-specific hook sees the archive ref and the branch in one run; the
    VREF sees them one at a time, the archive ref first (gitclaim pushes it first)."""
    g = site.install(*(("--vref",) if mode == "vref" else ()))["gitolite"]
    site.server.add_rc(g["rc_settings"], g["rc_enable"])
    site.server.add_conf(g["conf"])
    assert site.gitclaim("agent-a", "claim", "one")[0] == 0
    old = site.tip()
    assert old is not None

    wc = site.work_copy("agent-b")
    git("checkout", "-q", "--orphan", "rewrite", cwd=wc)
    assert site.git("agent-b", "commit", "-qm", "a new root", cwd=wc).returncode == 0
    pushed = site.git("agent-b", "push", "origin", "+rewrite:gitclaim", cwd=wc)
    assert pushed.returncode != 0 and "never force-pushed" in pushed.stderr, pushed.stderr
    assert site.tip() == old

    code, out = site.gitclaim("agent-a", "compact")
    assert code == 0, out
    assert site.tip() == out["result"]["tip"] != old
    assert site.tip(out["result"]["archive"]) == old
    code, out = site.gitclaim("agent-b", "show", "one")
    assert code == 0 and [e["op"] for e in out["result"]["history"]] == ["claim", "add"], out
