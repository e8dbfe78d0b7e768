"""Task ids and agent names: validation, generation, and where a task's file lives.

Pure functions; no I/O. Randomness comes in as a parameter.
"""

from __future__ import annotations

import hashlib
import random
import re

from .errors import BadInput

# Lowercase only: a store checked out on a case-insensitive file system must
# not see two ids as one file.
_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
_AGENT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9_])?$")
ID_MAX = 64
AGENT_MAX = 64

# Crockford-ish: no 0/o/1/l/i, so a human can read an id aloud.
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
GENERATED_PREFIX = "gc-"
GENERATED_MIN_LEN = 4

TASKS_DIR = "tasks"
ARCHIVE_DIR = "archive"  # finished tasks moved out of the live folder (gitclaim archive), never changed again
STORE_FILE = "gitclaim.toml"
ARCHIVE_PREFIX = "refs/gitclaim/archive/"  # create-only refs: the histories compactions replaced


def validate_id(task_id: object) -> str:
    """Return ``task_id`` if it is a legal task id; raise :class:`BadInput`."""
    if not isinstance(task_id, str) or not task_id:
        raise BadInput("a task id must be a non-empty string", id=repr(task_id))
    if not _ID_RE.fullmatch(task_id) or ".." in task_id:
        raise BadInput(
            f"illegal task id {task_id!r}: use 1-{ID_MAX} characters of a-z, 0-9, '.', '_'"
            " and '-', starting and ending with a letter or digit, no '..'",
            id=task_id,
        )
    return task_id


def is_valid_id(task_id: object) -> bool:
    try:
        validate_id(task_id)
    except BadInput:
        return False
    return True


def validate_agent(name: object) -> str:
    """Return ``name`` if it is a legal agent name; raise :class:`BadInput`.

    An agent name is part of a ref (``refs/gitclaim/alive/<agent>``), so it
    also obeys every rule of ``git check-ref-format``.
    """
    from .refnames import refname_problem

    if not isinstance(name, str) or not _AGENT_RE.fullmatch(name):
        raise BadInput(
            f"illegal agent name {name!r}: use 1-{AGENT_MAX} characters of A-Z, a-z, 0-9,"
            " '.', '_', '+' and '-' (no spaces, no control characters), starting with a"
            " letter or digit",
            agent=repr(name),
        )
    why = refname_problem(f"refs/gitclaim/alive/{name}")
    if why is not None:
        raise BadInput(f"illegal agent name {name!r}: {why}, which git refuses in a ref name", agent=name)
    return name


def slugify_agent(raw: str) -> str:
    """Turn an arbitrary string (a user or host name) into a legal agent name."""
    s = re.sub(r"[^A-Za-z0-9._+-]+", "-", raw)
    s = re.sub(r"\.{2,}", ".", s).replace(".lock", "-lock").lstrip("-.+_")[:AGENT_MAX].rstrip("-.+")
    return s if _AGENT_RE.fullmatch(s) else "agent"


def generate_id(rng: random.Random, length: int = GENERATED_MIN_LEN, prefix: str = GENERATED_PREFIX) -> str:
    return prefix + "".join(rng.choice(_ALPHABET) for _ in range(length))


def fanout(task_id: str) -> str:
    """The fan-out folder of a task: two hex digits of a hash of its id.

    256 folders keep every tree a commit rewrites small (about 400 entries at
    100,000 tasks) and spread slugs evenly, which a prefix of the id would not.
    """
    return hashlib.sha1(task_id.encode()).hexdigest()[:2]


def task_path(task_id: str) -> str:
    return f"{TASKS_DIR}/{fanout(task_id)}/{task_id}.toml"


def archive_path(task_id: str) -> str:
    """Where ``gitclaim archive`` moves a finished task: the same fan-out under ``archive/``."""
    return f"{ARCHIVE_DIR}/{fanout(task_id)}/{task_id}.toml"
