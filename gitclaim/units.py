"""Durations and counts as people write them, validated once for every surface. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


_AGE = re.compile(r"^\s*(\d+)\s*(m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks)\s*$")
_AGE_SCALE = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def moment(value: str, option: str, now: datetime) -> datetime:
    """A point in time as people write it: an ISO date (``2026-01-31``, midnight
    UTC), an ISO date and time (``2026-01-31T12:00Z``; UTC when no offset is
    given), or an age before ``now`` (``30d``, ``2w``, ``12h``, ``90m``).
    Raises :class:`BadInput` naming ``option``."""
    text = value.strip() if isinstance(value, str) else ""
    m = _AGE.match(text)
    if m is not None:
        n = int(m.group(1)) * _AGE_SCALE[m.group(2)[0]]
        if n > 100 * 366 * 86400:
            raise BadInput(f"{option}: {value!r} is more than a hundred years", option=option, value=value)
        return now - timedelta(seconds=n)
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadInput(
            f"{option} takes a date (2026-01-31), a date and time (2026-01-31T12:00Z) or an age (30d, 2w, 12h),"
            f" got {value!r}",
            option=option,
            value=str(value),
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
