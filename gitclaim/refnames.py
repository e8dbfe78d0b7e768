"""git's rules for the names of refs (``git help check-ref-format``). Pure.

Every name gitclaim turns into a ref (the store branch, an agent's liveness
ref, a remote's tracking refs) is checked here before anything is written,
on every transport: a name git refuses would otherwise land in the shared
repository and break every clone's fetch, and ``git gc`` there.
"""

from __future__ import annotations

from .errors import BadInput

DEFAULT_REMOTE = "origin"
DEFAULT_BRANCH = "gitclaim"
_FORBIDDEN = set(" ~^:?*[\\")


def refname_problem(name: str) -> str | None:
    """Why git would refuse ``name`` as a full ref name, or None if it would not."""
    if not name:
        return "it is empty"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "it contains a control character"
    bad = sorted(_FORBIDDEN.intersection(name))
    if bad:
        return "it contains " + " ".join(repr(ch) for ch in bad)
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{'"
    if name == "@":
        return "it is '@'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it begins or ends with '/', or has '//'"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"the part {part!r} begins with '.'"
        if part.endswith(".lock"):
            return f"the part {part!r} ends with '.lock'"
    return None


def validate_branch(name: object) -> str:
    """The store branch's name, if git takes ``refs/heads/<name>``; raise :class:`BadInput`."""
    if not isinstance(name, str):
        raise BadInput(f"illegal branch name {name!r}", branch=repr(name))
    why = refname_problem(f"refs/heads/{name}") if name else "it is empty"
    if why is None and (name.startswith("-") or name == "HEAD"):
        why = "git refuses a branch named so"
    if why is not None:
        raise BadInput(f"illegal branch name {name!r}: {why} (see `git help check-ref-format`)", branch=name)
    return name


def validate_remote(name: object) -> str:
    """A remote's name, if git can keep ``refs/remotes/<name>/...``; raise :class:`BadInput`."""
    if not isinstance(name, str):
        raise BadInput(f"illegal remote name {name!r}", remote=repr(name))
    why = refname_problem(f"refs/remotes/{name}/x") if name else "it is empty"
    if why is None and name.startswith("-"):
        why = "it begins with '-'"
    if why is not None:
        raise BadInput(f"illegal remote name {name!r}: {why}", remote=name)
    return name
