"""All git access: nothing outside this package imports pygit2.

The layers above speak in commit ids (hex strings), paths and bytes. This
package owns finding the repository, reading blobs and folders at a commit,
writing a commit that touches only the files it must, and the transports
that fetch the store branch and push it with compare-and-swap semantics.
One concern a module, as httpx keeps its transports:

* :mod:`.repo`: the clone, its config, objects, trees and commits.
* :mod:`.transport`: what every transport does; shared constants and timeouts.
* :mod:`.local`: a remote on a local path or ``file://`` URL. libgit2 would
  write the remote ref itself and check the old value only on the client, so
  concurrent pushes lose updates: the new objects are copied into the bare
  repository and its ref moves inside a libgit2 reference transaction (lock
  the ref, compare it with the expected old tip, set it, unlock).
* :mod:`.network`: any network remote (git://, ssh, http): a non-forced push
  through the server's receive-pack, which compares the old value under its
  own lock. ``push_negotiation`` refuses to send anything if the remote's
  advertised tip is not the one we built on (what ``--force-with-lease``
  does), and a refusal reported by the server arrives in ``push_update_reference``.
* :mod:`.callbacks`: host keys, credentials and the push checks, as libgit2's callbacks.
* :mod:`.failures`: libgit2's errors as gitclaim's, with secrets scrubbed.
* :mod:`.tls`, :mod:`.credentials`, :mod:`.sshconfig`: private CAs, git's
  credential helpers, and ``~/.ssh/config``, loaded only when the network needs them.
* :mod:`.files`: the few of git's own files a warm read needs (where the git
  folder is, one ref, whether the config changed), read without libgit2.

The names below load on first use, so that :mod:`.files` costs no pygit2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .failures import scrub
    from .repo import CommitInfo, Repo, Tree
    from .transport import ALIVE_PREFIX, ZERO, BranchMoved, Transport, require

_HOME = {
    "scrub": "failures",
    "CommitInfo": "repo",
    "Repo": "repo",
    "Tree": "repo",
    "ALIVE_PREFIX": "transport",
    "ZERO": "transport",
    "BranchMoved": "transport",
    "Transport": "transport",
    "require": "transport",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


__all__ = ["ALIVE_PREFIX", "ZERO", "BranchMoved", "CommitInfo", "Repo", "Transport", "Tree", "require", "scrub"]
