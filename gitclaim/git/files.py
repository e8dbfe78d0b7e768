"""The few of git's own files a warm read needs, read without libgit2.

Where the git folder of a work tree is, the value of one ref, and a stamp of
the configuration files (so that a cached answer to "which remote and branch
hold the store" is used only while none of them changed). Anything this
module does not understand (a symbolic or reftable ref, GIT_DIR, config
from the environment) is None: the caller then asks libgit2.
"""

from __future__ import annotations

import os
from pathlib import Path

HEX = frozenset("0123456789abcdef")
# Variables that change which repository or configuration git reads.
_ENV_OVERRIDES = (
    "GIT_DIR",
    "GIT_COMMON_DIR",
    "GIT_WORK_TREE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)


def git_dirs(start: str) -> tuple[Path, Path] | None:
    """(git folder, common git folder) of the work tree holding ``start``, or None."""
    if any(v in os.environ for v in _ENV_OVERRIDES) or "GIT_CEILING_DIRECTORIES" in os.environ:
        return None
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        dot = folder / ".git"
        if dot.is_dir():
            gitdir = dot
        elif dot.is_file():
            text = dot.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            gitdir = (folder / text[len("gitdir:") :].strip()).resolve()
        else:
            continue
        try:
            common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
        except OSError:
            common = gitdir
        return gitdir, common
    return None


def ref(common: Path, name: str) -> str | None:
    """The commit a ref names, from its loose file or packed-refs; None when unsure."""
    if (common / "reftable").exists():
        return None
    value: str | None
    try:
        value = (common / name).read_text().strip()
    except FileNotFoundError:
        value = _packed(common, name)
    except OSError:
        return None
    return value if value is not None and len(value) == 40 and set(value) <= HEX else None


def _packed(common: Path, name: str) -> str | None:
    try:
        with open(common / "packed-refs") as f:
            for line in f:
                if line.endswith(f" {name}\n"):
                    return line.split(" ", 1)[0]
    except OSError:
        pass
    return None


def config_stamp(gitdir: Path, common: Path) -> list[object]:
    """What must be unchanged for a cached reading of the configuration to hold:
    each config file git reads (size and time, or absent) and the variables naming them."""
    home = os.environ.get("HOME", "")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = [common / "config", gitdir / "config.worktree", Path(home) / ".gitconfig", Path(xdg) / "git" / "config"]
    if not os.environ.get("GIT_CONFIG_NOSYSTEM"):
        files.append(Path(os.environ.get("GIT_CONFIG_SYSTEM", "/etc/gitconfig")))
    stamp: list[object] = [os.environ.get("GIT_CONFIG_GLOBAL"), os.environ.get("GIT_CONFIG_NOSYSTEM")]
    for f in files:
        try:
            st = f.stat()
            stamp.append([str(f), st.st_size, st.st_mtime_ns, st.st_ino])
        except OSError:
            stamp.append([str(f), None])
    return stamp
