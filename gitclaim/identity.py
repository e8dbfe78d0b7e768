"""Who the caller is: the agent name, resolved in one place."""

from __future__ import annotations

import getpass
import random
import socket
from collections.abc import Callable, Mapping

from .ids import AGENT_MAX, generate_id, slugify_agent, validate_agent

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
