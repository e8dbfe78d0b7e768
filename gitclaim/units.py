"""Durations and counts as people write them, validated once for every surface. Pure."""

from __future__ import annotations

import re

from .errors import BadInput

_DURATION = re.compile(
    r"^\s*(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days)?\s*$"
)
_SCALE = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 366 * 86400


def seconds(value: int | str, option: str, *, allow_zero: bool = False) -> int:
    """``value`` as whole seconds: an integer, or text such as ``90``, ``90s``,
    ``15m``, ``2h`` or ``1d``. Raises :class:`BadInput` naming ``option``."""
    if isinstance(value, bool):
        raise BadInput(f"{option} takes a duration such as 90, 90s, 15m or 2h, got {value!r}", option=option)
    if isinstance(value, int):
        n = value
    else:
        m = _DURATION.match(value)
        if m is None:
            raise BadInput(
                f"{option} takes a duration such as 90, 90s, 15m or 2h, got {value!r}", option=option, value=value
            )
        n = int(m.group(1)) * _SCALE[(m.group(2) or "s")[0]]
    lowest = 0 if allow_zero else 1
    if not lowest <= n <= MAX_SECONDS:
        what = "0 (none) to" if allow_zero else "1 second to"
        raise BadInput(f"{option} must be {what} {MAX_SECONDS // 86400} days, got {value!r}", option=option, value=n)
    return n


def count(value: int, option: str, *, lowest: int = 1) -> int:
    """A whole number of at least ``lowest``. Raises :class:`BadInput` naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise BadInput(f"{option} must be a whole number of at least {lowest}, got {value!r}", option=option)
    return value
