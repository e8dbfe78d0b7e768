"""Who the caller is: the agent name, resolved in one place."""

from __future__ import annotations

import getpass
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .errors import LocalIOError
from .ids import AGENT_MAX, generate_id, slugify_agent, validate_agent

if TYPE_CHECKING:
    from .git import Repo

AGENT_ENV = "GITCLAIM_AGENT"
AGENT_KEY = "gitclaim.agent"
_SUFFIX = 4  # random characters that keep two clones of one user on one host apart


def resolve_agent(
    explicit: str | None,
    env: Mapping[str, str],
    config: Callable[[str], str | None],
    remember: Callable[[str], str] | None = None,
    rng: random.Random | None = None,
) -> str:
    """The agent name, in this order: explicit, $GITCLAIM_AGENT, git config
    ``gitclaim.agent``, then a name made once for this clone.

    That last one is ``<user>-<host>-<4 random characters>``, made safe, and
    ``remember`` keeps it in the clone's config (it returns the name the config
    holds afterwards, which a concurrent first run may have written first): two
    agents in two clones on one host are never one agent, and every later
    command in the clone is the same one. Raises :class:`BadInput`.
    """
    if explicit is not None:
        return validate_agent(explicit)
    if env.get(AGENT_ENV):
        return validate_agent(env[AGENT_ENV])
    configured = config(AGENT_KEY)
    if configured:
        return validate_agent(configured)
    try:
        user = getpass.getuser()
    except Exception:
        user = "agent"
    base = slugify_agent(f"{user}-{socket.gethostname().split('.')[0]}")[: AGENT_MAX - _SUFFIX - 1]
    name = validate_agent(f"{base.rstrip('-.+')}-{generate_id(rng or random.SystemRandom(), _SUFFIX, '')}")
    return validate_agent(remember(name)) if remember is not None else name


def agent_email(agent: str) -> str:
    return f"{agent}@gitclaim.invalid"


def remember_agent(repo: Repo, name: str) -> str:
    """Keep a made-up agent name in the clone's config, once: the first of two
    processes starting at the same moment in one clone names it for both."""
    lock = repo.common_dir / "gitclaim" / "agent.lock"
    deadline = time.monotonic() + 2.0
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    lock.unlink(missing_ok=True)  # left by a killed process
                time.sleep(0.01)
    except OSError:
        return name  # a read-only clone: this command uses the name, none is kept
    try:
        kept = repo.config_get(AGENT_KEY)
        if kept:
            return kept
        repo.config_set(AGENT_KEY, name)
        return name
    except LocalIOError:
        return name  # a config that cannot be written: this command uses the name, none is kept
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)
