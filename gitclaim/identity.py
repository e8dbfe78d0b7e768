"""Who the caller is: the agent name, resolved in one place."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Mapping

from .ids import slugify_agent, validate_agent

AGENT_ENV = "GITCLAIM_AGENT"


def resolve_agent(explicit: str | None, env: Mapping[str, str], config: Callable[[str], str | None]) -> str:
    """The agent name, in this order: explicit, $GITCLAIM_AGENT, git config
    ``gitclaim.agent``, then ``<user>-<host>`` made safe. Raises :class:`BadInput`.
    """
    if explicit is not None:
        return validate_agent(explicit)
    if env.get(AGENT_ENV):
        return validate_agent(env[AGENT_ENV])
    configured = config("gitclaim.agent")
    if configured:
        return validate_agent(configured)
    try:
        user = getpass.getuser()
    except Exception:
        user = "agent"
    return slugify_agent(f"{user}-{socket.gethostname().split('.')[0]}")


def agent_email(agent: str) -> str:
    return f"{agent}@gitclaim.invalid"
