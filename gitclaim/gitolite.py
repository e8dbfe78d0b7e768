"""gitolite as the host of the server hook: recognising it, reading its rc, what the admin adds.

gitolite owns the ``hooks`` folder of every repository it manages: ``update``
is a symlink to its access check and, once a repository has repo-specific
hooks, ``pre-receive`` is a symlink to its multi-hook driver. Every compile
(each push of gitolite-admin) puts those back and deletes every
``hooks/pre-receive.*`` it did not make. So gitclaim never touches that folder
here. Its hook goes where gitolite looks for site code (``LOCAL_CODE``), as a
repo-specific hook or as a VREF, and the admin switches it on with the lines
:class:`GitoliteSetup` names. Written against Debian's gitolite3 3.6.12
(``/usr/share/gitolite3``: ``triggers/repo-specific-hooks``,
``lib/Gitolite/Hooks/Update.pm``, ``lib/Gitolite/Rc.pm``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BadInput

if TYPE_CHECKING:
    from .install import Installed

HOOK_NAME = "gitclaim-pre-receive"  # under LOCAL_CODE/hooks/repo-specific/, named in `option hook.pre-receive`
VREF_NAME = "GITCLAIM"  # LOCAL_CODE/VREF/GITCLAIM, named in `- VREF/GITCLAIM = @all`
LOCAL_CODE_LINE = 'LOCAL_CODE => "$rc{GL_ADMIN_BASE}/local",'  # gitolite's own suggestion for repo-specific hooks
ENABLE_LINE = "'repo-specific-hooks',"
MODES = ("hook", "vref")


@dataclass(frozen=True)
class Site:
    """One gitolite-managed repository and the installation around it."""

    home: Path  # the hosting user's home: .gitolite.rc and .gitolite/ live here
    repo: str  # the repository's name in gitolite.conf
    local_code: Path | None  # LOCAL_CODE as the rc sets it, or None
    enabled: frozenset[str]  # the names in the rc's ENABLE list
    evidence: tuple[str, ...]  # what showed that gitolite manages it

    @property
    def rc_file(self) -> Path:
        return self.home / ".gitolite.rc"

    @property
    def owner(self) -> tuple[int, int]:
        """uid and gid of the hosting user (the owner of ``~/.gitolite``)."""
        st = (self.home / ".gitolite").stat()
        return st.st_uid, st.st_gid


@dataclass(frozen=True)
class GitoliteSetup:
    """What ``hooks install --server`` did on a gitolite repository, and what the admin adds."""

    mode: str  # "hook" (repo-specific pre-receive) or "vref"
    repo: str
    home: str
    local_code: str
    rc_file: str
    rc_settings: tuple[str, ...]  # lines to add inside the rc's %RC = ( ... ); empty when there
    rc_enable: tuple[str, ...]  # entries to add to the rc's ENABLE list; empty when there
    conf: tuple[str, ...]  # lines to add to gitolite.conf, after the repository's own rules
    active: bool  # gitolite already runs gitclaim's hook for this repository
    detected_by: tuple[str, ...]
    notes: tuple[str, ...]  # warnings, and an old gitclaim hook taken out of hooks/

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "repo": self.repo,
            "home": self.home,
            "local_code": self.local_code,
            "rc_file": self.rc_file,
            "rc_settings": list(self.rc_settings),
            "rc_enable": list(self.rc_enable),
            "conf": list(self.conf),
            "active": self.active,
            "detected_by": list(self.detected_by),
            "notes": list(self.notes),
        }


# --- recognising gitolite ---------------------------------------------------------


def _says(path: Path, text: bytes) -> bool:
    try:
        return text in path.read_bytes()[:65536]
    except OSError:
        return False


def _evidence(git_dir: Path) -> tuple[list[str], Path | None]:
    """What in the repository says gitolite manages it, and the admin folder
    (``~/.gitolite``) its update hook links into, if it does."""
    found: list[str] = []
    admin_base = None
    update = git_dir / "hooks" / "update"
    target = Path(os.path.realpath(update))
    if update.is_symlink() and _says(target, b"Gitolite::Hooks::Update"):
        found.append(f"hooks/update links to gitolite's update hook {target}")
        if target.parent.parent.name == "hooks":  # <GL_ADMIN_BASE>/hooks/common/update
            admin_base = target.parents[2]
    driver = git_dir / "hooks" / "pre-receive"
    if driver.is_symlink() and _says(Path(os.path.realpath(driver)), b"for h in $0.*"):
        found.append(f"hooks/pre-receive links to gitolite's multi-hook driver {os.path.realpath(driver)}")
    if (git_dir / "gl-conf").is_file():
        found.append("gl-conf (gitolite's rules for the repository) is in it")
    return found, admin_base


def _homes(git_dir: Path, admin_base: Path | None) -> list[Path]:
    """Where the hosting user's home may be, most telling first."""
    out = [admin_base.parent] if admin_base is not None else []
    with contextlib.suppress(KeyError, OSError):  # an owner with no passwd entry
        out.append(Path(pwd.getpwuid(git_dir.stat().st_uid).pw_dir))
    return out + list(git_dir.resolve().parents)


def detect(git_dir: Path) -> Site | None:
    """The gitolite installation managing the bare repository at ``git_dir``, or None.

    Raises :class:`BadInput` when the repository is gitolite's but its home
    (``.gitolite.rc``) cannot be found or its rc cannot be read.
    """
    evidence, admin_base = _evidence(git_dir)
    outside = None  # a gitolite home that was found, whose GL_REPO_BASE does not hold the repository
    for home in _homes(git_dir, admin_base):
        if not ((home / ".gitolite.rc").is_file() and (home / ".gitolite").is_dir()):
            continue
        text = _uncommented((home / ".gitolite.rc").read_text(errors="replace"))
        base = _setting(text, "GL_REPO_BASE", home) or home / "repositories"
        try:
            rel = str(git_dir.resolve().relative_to(base.resolve()))
        except ValueError:
            outside = outside or base
            continue  # without evidence: a repository near a gitolite home, not one of its own
        found = evidence or [f"it is under GL_REPO_BASE of the gitolite home {home}"]
        name = rel[: -len(".git")] if rel.endswith(".git") else rel
        return Site(home, name, _setting(text, "LOCAL_CODE", home), _enabled(text), tuple(found))
    if evidence:
        why = f"it is not under GL_REPO_BASE ({outside})" if outside else "no home with .gitolite.rc was found"
        raise BadInput(
            f"gitolite manages {git_dir} ({evidence[0]}), but {why}",
            hint="run the install as the gitolite hosting user, on the repository's path under its GL_REPO_BASE",
            path=str(git_dir),
        )
    return None


# --- reading .gitolite.rc (Perl: only the forms gitolite's own rc uses) ------------


def _uncommented(text: str) -> str:
    return "\n".join(re.sub(r"(^|\s)#.*$", r"\1", line) for line in text.splitlines())


def _setting(text: str, key: str, home: Path) -> Path | None:
    """``KEY => "..."`` inside %RC, or ``$RC{KEY} = "..."``; the last one wins, as in Perl."""
    found = re.findall(rf"(?:\b{key}\s*=>|\$RC\{{{key}\}}\s*=)\s*(\"[^\"]*\"|'[^']*')", text)
    if not found:
        return None
    raw = found[-1]
    value = raw[1:-1]
    if raw[0] == '"':
        value = value.replace("$ENV{HOME}", str(home)).replace("$rc{GL_ADMIN_BASE}", str(home / ".gitolite"))
    if "$" in value or not value.startswith("/"):
        raise BadInput(
            f"cannot read {key} from {home / '.gitolite.rc'}: {raw}",
            hint=f"write it as an absolute path, or with $ENV{{HOME}} or $rc{{GL_ADMIN_BASE}}: {LOCAL_CODE_LINE}",
        )
    return Path(value)


def _enabled(text: str) -> frozenset[str]:
    """The feature names of the ENABLE list (``'renice 10'`` counts as ``renice``)."""
    blocks = re.findall(r"\bENABLE\s*=>\s*\[(.*?)\]", text, re.S)
    blocks += re.findall(r"push\s*@\{\s*\$RC\{ENABLE\}\s*\}\s*,(.*?);", text, re.S)
    words = [w for b in blocks for w in re.findall(r"\"([^\"]*)\"|'([^']*)'", b)]
    return frozenset(s.split()[0] for pair in words for s in pair if s.strip())


# --- installing -------------------------------------------------------------------


def script(mode: str, python: str) -> str:
    """The hook gitolite runs: a thin shell stub that calls :mod:`gitclaim.hook`."""
    if mode == "hook":
        how, kind = "a repo-specific pre-receive hook: gitolite's multi-hook driver runs it", "pre-receive"
    else:
        how, kind = "a VREF: gitolite's update hook runs it for each ref a push updates", "vref"
    return (
        "#!/bin/sh\n"
        f"# gitclaim for gitolite, {how}.\n"
        "# Checks every push of the store branch against its rules. Installed by\n"
        "# `gitclaim hooks install --server`, which leaves gitolite's own hooks as they are.\n"
        "# Set GITCLAIM_PYTHON to change the interpreter.\n"
        f'exec "${{GITCLAIM_PYTHON:-{python}}}" -m gitclaim.hook {kind} "$@"\n'
    )


def install(site: Site, git_dir: Path, mode: str, python: str = sys.executable) -> Installed:
    """Write the hook into ``LOCAL_CODE`` and say what the admin adds to the rc and the conf.

    Never touches anything in ``git_dir/hooks``: that folder is gitolite's.
    Raises :class:`BadInput` rather than overwrite a file gitclaim did not write.
    """
    from .install import MARKER, Installed

    local_code = site.local_code or site.home / ".gitolite" / "local"
    target = local_code / "hooks" / "repo-specific" / HOOK_NAME if mode == "hook" else local_code / "VREF" / VREF_NAME
    updated = target.exists() or target.is_symlink()
    if updated and MARKER not in (target.read_text(errors="replace") if target.is_file() else ""):
        raise BadInput(f"{target} exists and gitclaim did not write it; it will not overwrite it", path=str(target))
    for directory in (target.parent, local_code / "hooks" / "repo-specific"):  # gitolite's trigger needs the latter
        _make_dirs(directory, site.owner)
    target.write_text(script(mode, python))
    target.chmod(0o755)
    _give(target, site.owner)
    notes = [*_old_stub(git_dir, mode, MARKER), *_unreachable(python, site.owner)]
    setup = GitoliteSetup(
        mode=mode,
        repo=site.repo,
        home=str(site.home),
        local_code=str(local_code),
        rc_file=str(site.rc_file),
        rc_settings=() if site.local_code else (LOCAL_CODE_LINE,),
        rc_enable=(ENABLE_LINE,) if mode == "hook" and "repo-specific-hooks" not in site.enabled else (),
        conf=conf_lines(site.repo, mode),
        active=_active(git_dir, mode, target),
        detected_by=site.evidence,
        notes=tuple(notes),
    )
    return Installed(str(target), None, updated, setup)


def conf_lines(repo: str, mode: str) -> tuple[str, ...]:
    """The gitolite.conf lines that switch gitclaim's hook on for ``repo``."""
    rule = f"option hook.pre-receive = {HOOK_NAME}" if mode == "hook" else f"- VREF/{VREF_NAME} = @all"
    return (f"repo {repo}", f"    {rule}")


def _active(git_dir: Path, mode: str, target: Path) -> bool:
    if mode == "vref":
        return _says(git_dir / "gl-conf", f"VREF/{VREF_NAME}".encode())
    hooks = git_dir / "hooks"
    links = hooks.glob(f"pre-receive.h*-{HOOK_NAME}") if hooks.is_dir() else iter(())
    return (hooks / "pre-receive").exists() and any(os.path.realpath(p) == os.path.realpath(target) for p in links)


def _old_stub(git_dir: Path, mode: str, marker: str) -> list[str]:
    """A note on what an older ``hooks install --server`` left in a gitolite repository.

    Left as it is: until the admin's lines are in, it is what checks the store.
    """
    hook, chained = git_dir / "hooks" / "pre-receive", git_dir / "hooks" / "pre-receive.chained"
    if hook.is_symlink() or not hook.is_file() or marker not in hook.read_text(errors="replace"):
        return []
    kept = chained.exists() or chained.is_symlink()
    moved = f" and gitolite's own is {chained.name}, where it runs no other hook" if kept else ""
    if mode == "hook":
        then = "the compile after the conf line puts gitolite's back and deletes the rest"
    else:
        then = "once the VREF is in, delete it" + (f" and rename {chained.name} back" if kept else "")
    return [f"{hook} is an older gitclaim hook{moved}; {then}"]


def _make_dirs(directory: Path, owner: tuple[int, int]) -> None:
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for d in missing:
        _give(d, owner)


def _give(path: Path, owner: tuple[int, int]) -> None:
    """Run as root, files written for gitolite belong to its hosting user."""
    if os.geteuid() == 0 and path.stat().st_uid != owner[0]:
        os.chown(path, *owner)


def _unreachable(python: str, owner: tuple[int, int]) -> list[str]:
    """Warnings for the interpreter and the package, if the hosting user cannot read them."""
    package = Path(__file__).resolve().parent
    out = []
    for what, path in (("the Python", Path(python)), ("the gitclaim package", package)):
        if not _usable_by(path, owner):
            out.append(f"the hosting user (uid {owner[0]}) cannot read {what} at {path}: the hook would fail")
    return out


def _usable_by(path: Path, owner: tuple[int, int]) -> bool:
    """Whether ``owner`` can reach and read ``path`` (a symlink: and its target) by the mode bits, ACLs aside."""
    uid, gid = owner
    if uid == 0:
        return True
    try:
        groups = set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        groups = {gid}

    def allows(p: Path, bits: int) -> bool:  # bits: S_I?OTH, shifted to the class owner falls in
        st = p.stat()
        shift = 6 if st.st_uid == uid else 3 if st.st_gid in groups else 0
        return st.st_mode & (bits << shift) == bits << shift

    try:
        chain = {*path.absolute().parents, *Path(os.path.realpath(path)).parents}
        return all(allows(d, stat.S_IXOTH) for d in chain) and allows(path, stat.S_IROTH | stat.S_IXOTH)
    except OSError:
        return False
