"""One error hierarchy with stable exit codes.

Every expected failure is a :class:`GitclaimError`. Each class carries its own
exit code and a machine-readable ``code`` string; :func:`gitclaim.cli.main` is
the one place that turns them into output and an exit status. Scripts and
agents may rely on both the numbers and the strings: they are documented in
``docs/cli.md`` and never reused for another meaning.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    NOT_FOUND = 3
    LOST_RACE = 4
    NOT_CLAIMABLE = 5
    BLOCKED = 6
    NOTHING_READY = 7
    REMOTE_UNREACHABLE = 8
    RETRIES_EXHAUSTED = 9
    STORE_CORRUPT = 10
    NOT_INITIALIZED = 11
    SCHEMA_TOO_NEW = 12
    NOT_HOLDER = 13
    ALREADY_EXISTS = 14
    PUSH_REJECTED = 15
    LOCAL_IO = 16
    AUTH_FAILED = 17
    UNTRUSTED_REMOTE = 18
    STORE_LOCKED = 19
    STORE_VANISHED = 20
    VERIFY_FAILED = 21
    NOT_ALLOWED = 22
    STORE_REWRITTEN = 23
    INTERRUPTED = 130  # SIGINT (Ctrl-C), by the shell's convention 128 + 2
    PIPE_CLOSED = 141  # the reader closed our output: 128 + SIGPIPE, as git exits


class GitclaimError(Exception):
    """Base of every expected failure. ``details`` is JSON-safe."""

    exit_code: ExitCode = ExitCode.INTERNAL
    code: str = "internal"
    meaning: ClassVar[str] = "a bug in gitclaim; rerun with `GITCLAIM_DEBUG=1` for a traceback"
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.details: dict[str, Any] = details

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "exit": int(self.exit_code),
            "message": self.message,
            "hint": self.hint or None,
            "details": self.details,
        }


class BadInput(GitclaimError):
    """The caller's input is invalid (an illegal id, agent name, field, file)."""

    exit_code = ExitCode.BAD_INPUT
    code = "bad_input"
    meaning = (
        "an argument is invalid (an illegal id or agent name, a bad option, an unknown state, an unreadable "
        "batch file, no such remote name, a dependency cycle); details name it: fix the call"
    )


class NotFound(GitclaimError):
    exit_code = ExitCode.NOT_FOUND
    code = "not_found"
    meaning = "no task has that id"


class LostRace(GitclaimError):
    """The task is held by another agent (whether by a millisecond or an hour)."""

    exit_code = ExitCode.LOST_RACE
    code = "lost_race"
    meaning = (
        "another agent holds the task, whether it won by a millisecond or an hour ago (details: `holder`, "
        "`claimed_at`, `commit`): pick another task"
    )
    hint = "pick another task (gitclaim next), or ask the holder to release it"


class NotClaimable(GitclaimError):
    """The task's state refuses the operation."""

    exit_code = ExitCode.NOT_CLAIMABLE
    code = "not_claimable"
    meaning = "the task's state refuses the operation (details: `state`); the message names the legal verbs"


class Blocked(GitclaimError):
    """Dependencies of the task are not done."""

    exit_code = ExitCode.BLOCKED
    code = "blocked"
    meaning = "some dependencies are not done (details: `blockers`, each with `id` and `state`)"


class NothingReady(GitclaimError):
    exit_code = ExitCode.NOTHING_READY
    code = "nothing_ready"
    meaning = "no task is claimable now"


class RemoteUnreachable(GitclaimError):
    """Fetch or push failed for a transport reason. Nothing was changed."""

    exit_code = ExitCode.REMOTE_UNREACHABLE
    code = "remote_unreachable"
    meaning = (
        "fetch or push failed for a network reason (details: `reason`); nothing changed, or the message says "
        "it cannot tell yet: run the same command again (claim ID and the verbs on one task recognise their "
        "own landed change)"
    )
    hint = "check the remote URL and the network, then run the same command again"


class AuthFailed(RemoteUnreachable):
    """The server refused every credential offered, none was available, or it
    refused access outright (HTTP 403). Nothing was sent; retrying will not help
    until the credentials or the server's permissions change."""

    exit_code = ExitCode.AUTH_FAILED
    code = "auth_failed"
    meaning = (
        "the server refused the credentials, had none offered, or refused access (details: `reason`: `auth` "
        "or `forbidden`); nothing was sent: a person must fix it, retrying will not help"
    )
    hint = "check the credentials gitclaim can find for this remote (docs/remotes.md)"


class UntrustedRemote(RemoteUnreachable):
    """The server could not prove it is the server: an unknown or changed ssh
    host key, or a TLS certificate no trusted CA signed. Nothing was sent."""

    exit_code = ExitCode.UNTRUSTED_REMOTE
    code = "untrusted_remote"
    meaning = (
        "the server's identity could not be checked: an unknown or changed ssh host key, an untrusted TLS "
        "certificate (details: `reason`: `host_key` or `certificate`); nothing was sent"
    )
    hint = "check the server's identity, then trust it (known_hosts, or a CA bundle: docs/remotes.md)"


class RetriesExhausted(GitclaimError):
    """The branch kept moving under us; bounded tries and time ran out."""

    exit_code = ExitCode.RETRIES_EXHAUSTED
    code = "retries_exhausted"
    meaning = (
        "the store branch kept moving under the call; bounded tries and time ran out; nothing changed: run it again"
    )
    hint = "the store is very busy; run the same command again"


class StoreCorrupt(GitclaimError):
    """Data on the store branch cannot be read (malformed TOML, unknown state...)."""

    exit_code = ExitCode.STORE_CORRUPT
    code = "store_corrupt"
    meaning = "a file on the store branch cannot be read (details: `path`)"
    hint = "fix the named file on the store branch (gitclaim never rewrites it blindly)"


class NotInitialized(GitclaimError):
    exit_code = ExitCode.NOT_INITIALIZED
    code = "not_initialized"
    meaning = "the remote has no store branch: run `gitclaim init`"
    hint = "run `gitclaim init` in a clone of the shared repository"


class SchemaTooNew(GitclaimError):
    exit_code = ExitCode.SCHEMA_TOO_NEW
    code = "schema_too_new"
    meaning = "the store was written by a newer gitclaim: upgrade"
    hint = "upgrade gitclaim"


class NotHolder(GitclaimError):
    """Only the holder of a claim may do this."""

    exit_code = ExitCode.NOT_HOLDER
    code = "not_holder"
    meaning = "only the holder may do this (details: `holder`)"


class AlreadyExists(GitclaimError):
    exit_code = ExitCode.ALREADY_EXISTS
    code = "already_exists"
    meaning = "a task with that id exists"


class PushRejected(GitclaimError):
    """The remote refused the push for a reason other than a moved branch (a hook)."""

    exit_code = ExitCode.PUSH_REJECTED
    code = "push_rejected"
    meaning = (
        "the remote refused the push for another reason than a moved branch (a hook); its text is in the "
        "details; nothing changed"
    )


class StoreLocked(GitclaimError):
    """A lock file on the shared repository blocks every update of the store branch."""

    exit_code = ExitCode.STORE_LOCKED
    code = "store_locked"
    meaning = (
        "a lock file on the shared repository, left by a writer that was killed, blocks every change to the"
        " store branch (details: `lock`); nothing changed"
    )
    hint = "if no git or gitclaim process is writing the shared repository, delete the lock file, then run it again"

    @classmethod
    def naming(cls, lock: str, branch: str) -> StoreLocked:
        return cls(
            f"the store branch {branch!r} cannot be updated: {lock} is in the way (left by a writer that was"
            " killed, or held by one that never lets go); nothing was changed",
            lock=lock,
        )


class StoreVanished(GitclaimError):
    """The remote no longer has the store branch this clone saw: it was deleted, not emptied."""

    exit_code = ExitCode.STORE_VANISHED
    code = "store_vanished"
    meaning = (
        "the store branch is gone from the remote, though this clone saw it (details: `last_tip`): someone"
        " deleted it; nothing was changed, and no new store is started over it"
    )
    hint = "put it back, history intact, with `gitclaim restore`; then find out who deleted it"

    @classmethod
    def of(cls, branch: str, remote: str, last: str) -> StoreVanished:
        return cls(
            f"the store branch {branch!r} is gone from {remote}, though this clone saw it at {last[:10]}:"
            " someone deleted it (a plain `git push --mirror` from a clone without it does); nothing was changed",
            branch=branch,
            remote=remote,
            last_tip=last,
        )


class StoreRewritten(GitclaimError):
    """The remote's store branch was replaced by a history that does not hold the
    tip this clone saw, and the replacement is not an honest compaction."""

    exit_code = ExitCode.STORE_REWRITTEN
    code = "store_rewritten"
    meaning = (
        "the store branch on the remote was force-pushed with a history that drops what this clone saw"
        " (details: `last_tip`, `tip`, `reason`), and it is not a compaction gitclaim accepts; nothing was changed"
    )
    hint = (
        "the history this clone saw is kept under refs/gitclaim/last/; ask an operator to put it back"
        " (`git push REMOTE LAST_TIP:refs/heads/BRANCH` after a look at both) and to protect the branch"
        " with gitclaim's server hook (docs/enforcement.md)"
    )

    @classmethod
    def of(cls, branch: str, remote: str, last: str, tip: str, reason: str) -> StoreRewritten:
        return cls(
            f"the store branch {branch!r} on {remote} was rewritten: {tip[:10]} replaces {last[:10]}, which this"
            f" clone saw, and {reason}; nothing was changed",
            branch=branch,
            remote=remote,
            last_tip=last,
            tip=tip,
            reason=reason,
        )


class VerifyFailed(GitclaimError):
    """``verify`` found commits that break the store's rules."""

    exit_code = ExitCode.VERIFY_FAILED
    code = "verify_failed"
    meaning = (
        "the store branch's history breaks its rules (details: `violations`, each with its `commit`, `rule`,"
        " `author` and what the change `did`)"
    )
    hint = "find who pushed each commit named; reset or repair what it did with gitclaim, never by rewriting history"


class NotAllowed(GitclaimError):
    """The store's policy does not let this agent make this change (signature, role, admin)."""

    exit_code = ExitCode.NOT_ALLOWED
    code = "not_allowed"
    meaning = (
        "the store's policy refuses the change (details: `rule`): it must be signed by a listed key, or made"
        " by an admin or an operator; nothing was pushed"
    )
    hint = "see `gitclaim signers list` for the keys and roles, and docs/identity.md for signing"


class Interrupted(GitclaimError):
    """Ctrl-C (SIGINT) stopped the command part way.

    A change being pushed at that moment may or may not have landed; running
    the same ``claim ID`` or verb on a task again recognises it as the caller's
    own (docs/cli.md, "Running a command again").
    """

    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"
    meaning = (
        "Ctrl-C (SIGINT) stopped the command; a change being pushed at that moment may have landed: run the "
        "same command again"
    )
    hint = (
        "run the same command again: claim ID and the verbs on one task recognise a change of theirs that "
        "landed; after next, see `gitclaim list --holder AGENT` first"
    )


class LocalIOError(GitclaimError):
    """The clone itself could not be written (disk full, read-only, permissions).

    Nothing was pushed: the shared store is unchanged.
    """

    exit_code = ExitCode.LOCAL_IO
    code = "local_io"
    meaning = "the clone itself cannot be written (disk full, read-only, a lock file left behind); nothing was pushed"
    hint = "free disk space or fix the permissions of the clone's .git folder, then run the same command again"


# --- the catalogue ---------------------------------------------------------------


def catalogue() -> list[type[GitclaimError]]:
    """Every error class, by exit status: the one source of the exit-code table
    in docs/cli.md, the MCP tool descriptions and the CLI's output."""
    found: list[type[GitclaimError]] = [GitclaimError]
    todo = [GitclaimError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return sorted(found, key=lambda c: int(c.exit_code))


#: What any operation may answer besides the errors it names: the network, the
#: clone, the store itself, Ctrl-C and bugs.
ANY_OPERATION: tuple[type[GitclaimError], ...] = (
    RemoteUnreachable,
    StoreVanished,
    AuthFailed,
    UntrustedRemote,
    LocalIOError,
    NotInitialized,
    StoreCorrupt,
    SchemaTooNew,
    Interrupted,
    GitclaimError,
)

#: What any change may answer besides those: a busy store, a refusing hook.
ANY_CHANGE: tuple[type[GitclaimError], ...] = (RetriesExhausted, PushRejected, StoreLocked)


def markdown_table() -> str:
    """The exit-code table of docs/cli.md."""
    rows = ["| exit | code | meaning |", "| --- | --- | --- |", "| 0 | | success |"]
    rows += [f"| {int(c.exit_code)} | `{c.code}` | {c.meaning} |" for c in catalogue()]
    closed = "the reader closed the output early (`gitclaim log \\| head`): no message, as git does"
    rows.append(f"| {int(ExitCode.PIPE_CLOSED)} | | {closed} |")
    return "\n".join(rows) + "\n"
