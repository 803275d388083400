"""Times in status and on route objects (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta


def timestamp_ms(now: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: step times must be finer than conditions' seconds."""
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def later(when: datetime, delta: timedelta) -> datetime:
    """``when + delta``, clamped: a 999999-day duration must not overflow the calendar."""
    try:
        return when + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=when.tzinfo)
