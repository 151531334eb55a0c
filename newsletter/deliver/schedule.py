"""Scheduled sends: what `send --at` accepts, the states a schedule goes through, and when one
is due. Pure logic with an injected clock; the store keeps the schedules, the runner
(`deliver/scheduled.py`) acts on them.

Times are kept in UTC. A time the user types without an offset is read in the newsletter's
time zone (`newsletter.timezone`); two wall-clock times need a decision there:

- a time that does not exist (in the spring-forward gap, e.g. 02:30 on the March change in
  America/Toronto) is refused: there is no right guess between "an hour early" and "an hour
  late" for a send people planned around;
- a time that happens twice (in the fall-back hour, e.g. 01:30 on the November change) is
  refused too, naming both offsets, so the user picks one by writing it
  (`2026-11-01T01:30-04:00` is the first, `-05:00` the second).

A schedule is started only within `GRACE` (6 hours) of its time. One that nobody started by
then (the server was down, the timer was off) becomes `missed` and is never started late by
surprise: an issue announcing a webinar "tomorrow" must not go out two days later.
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
import socket
from collections.abc import Callable
from enum import StrEnum
from zoneinfo import ZoneInfo

from newsletter.compose.issue import zone
from newsletter.errors import NewsletterError

GRACE = dt.timedelta(hours=6)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class State(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time
    RUNNING = "running"  # claimed by one process, which is sending it
    DONE = "done"  # the send finished (its summary says how many were sent, failed, unknown)
    CANCELLED = "cancelled"  # `schedule cancel` before it started
    MISSED = "missed"  # not started within GRACE of its time: never started late
    REFUSED_CHANGED = "refused-changed"  # the issue no longer renders to the approved content
    REFUSED_CHECKS = "refused-checks"  # the checks found errors at send time
    FAILED = "failed"  # the send started and stopped on an error (rerun `send --all` by hand)
    STOPPED = "stopped"  # `newsletter stop` during the send (`send --all` resumes it)


OPEN_STATES = frozenset({State.SCHEDULED})  # may still start; cancel applies to these
FINAL_STATES = frozenset(State) - {State.SCHEDULED, State.RUNNING}


class ScheduleError(NewsletterError):
    """A `--at` time or a schedule operation the user has to correct."""


class Due(StrEnum):
    WAIT = "wait"
    START = "start"
    MISS = "miss"


def decide(at: dt.datetime, now: dt.datetime, grace: dt.timedelta = GRACE) -> Due:
    """What to do now with a schedule for `at` (both aware): wait, start, or mark it missed."""
    if now < at:
        return Due.WAIT
    if now - at < grace:
        return Due.START
    return Due.MISS


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone `name`, or ScheduleError naming the setting."""
    try:
        return zone(name)
    except ValueError as exc:
        raise ScheduleError(str(exc), field="newsletter.timezone") from None


# A date alone ("2026-11-03", "20261103", "2026-W45-2"): a send needs a time too.
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}|\d{4}-?W\d{2}-?\d|\d{4}-?\d{3}")


def parse_at(text: str, zone: ZoneInfo | str, *, now: dt.datetime | None = None,
             option: str = "--at") -> dt.datetime:
    """The UTC instant meant by `text` (ISO 8601 date and time: `2026-11-03 09:00`,
    `2026-11-03T09:00:30`, `2026-11-03T09:00-05:00`, `...Z`); ScheduleError when it is not
    a date and time, does not exist or is ambiguous in `zone`, or is not after `now`."""
    if isinstance(zone, str):
        zone = zone_of(zone)
    value = text.strip()
    if _DATE_ONLY.fullmatch(value):
        raise ScheduleError(f"{text!r} is a date without a time: give both, e.g."
                            f" \"{value} 09:00\"", field=option)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{text!r} is not an ISO 8601 date and time such as"
                            " \"2026-11-03 09:00\" or \"2026-11-03T09:00-05:00\"",
                            field=option) from None
    if parsed.tzinfo is None:
        parsed = localize(parsed, zone, option=option)
    at = parsed.astimezone(dt.UTC)
    now = now or utc_now()
    if at <= now:
        raise ScheduleError(
            f"{text!r} ({describe(at, zone)}) is in the past (now: {describe(now, zone)})",
            field=option)
    return at


def localize(wall: dt.datetime, zone: ZoneInfo, *, option: str = "--at") -> dt.datetime:
    """`wall` (naive) as an aware time in `zone`; ScheduleError for a time in a
    daylight-saving gap or overlap (see the module's docstring)."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    shown = wall.strftime("%Y-%m-%d %H:%M")
    # zoneinfo gives a nonexistent wall time a UTC instant that reads back differently.
    if first.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != wall:
        # (for a time in the gap, fold=0 carries the offset before the change, fold=1 after)
        raise ScheduleError(
            f"{shown} does not exist in {zone.key}: the clocks jump forward that night"
            f" (from {first.tzname()} to {second.tzname()}); choose another time",
            field=option)
    raise ScheduleError(
        f"{shown} happens twice in {zone.key} (the clocks go back that night): add the offset"
        f" you mean, {_offset(first)} ({first.tzname()}, the first) or {_offset(second)}"
        f" ({second.tzname()}, the second), e.g. {wall.strftime('%Y-%m-%dT%H:%M')}"
        f"{_offset(first)}", field=option)


def _offset(value: dt.datetime) -> str:
    text = value.strftime("%z")  # -0400
    return f"{text[:3]}:{text[3:]}"


def describe(at: dt.datetime, zone: ZoneInfo) -> str:
    """`2026-11-03 09:00 EST (-05:00)`: a UTC instant as the team reads it."""
    local = at.astimezone(zone)
    seconds = ":%S" if local.second else ""
    return f"{local.strftime('%Y-%m-%d %H:%M' + seconds)} {local.tzname()} ({_offset(local)})"


def who() -> str:
    """`user@host` of whoever scheduled or cancelled a send (the OS user, not a login)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
