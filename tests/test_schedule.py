"""The pure schedule logic: reading `--at` times (America/Toronto across its daylight-saving
changes), and the due / missed decision with an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest

from newsletter.deliver import schedule
from newsletter.deliver.schedule import GRACE, Due, ScheduleError, State, decide, parse_at

TORONTO = schedule.zone_of("America/Toronto")
NOW = dt.datetime(2026, 10, 20, 12, 0, tzinfo=dt.UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize("text", [
    "2026-11-03 09:00", "2026-11-03T09:00", "2026-11-03 09:00:00", "2026-11-03T09:00:00",
    "  2026-11-03 09:00 ", "20261103T0900",
])
def test_spellings_of_one_local_time(text: str) -> None:
    # 9:00 EST (after the change on November 1) is 14:00 UTC
    assert parse_at(text, TORONTO, now=NOW) == utc(2026, 11, 3, 14, 0)


def test_seconds_are_kept() -> None:
    assert parse_at("2026-11-03 09:00:30", TORONTO, now=NOW) == utc(2026, 11, 3, 14, 0, 30)


@pytest.mark.parametrize("text,expected", [
    ("2026-11-03T09:00-04:00", utc(2026, 11, 3, 13, 0)),  # an explicit offset wins over the zone
    ("2026-11-03T09:00Z", utc(2026, 11, 3, 9, 0)),
    ("2026-11-03 09:00+00:00", utc(2026, 11, 3, 9, 0)),
    ("2026-11-03T15:30+05:30", utc(2026, 11, 3, 10, 0)),
])
def test_an_offset_in_the_text_wins(text: str, expected: dt.datetime) -> None:
    assert parse_at(text, TORONTO, now=NOW) == expected


def test_toronto_across_the_november_2026_change() -> None:
    # Saturday before the change: EDT (-4); Tuesday after it: EST (-5)
    assert parse_at("2026-10-31 09:00", TORONTO, now=NOW) == utc(2026, 10, 31, 13, 0)
    assert parse_at("2026-11-03 09:00", TORONTO, now=NOW) == utc(2026, 11, 3, 14, 0)
    # the day of the change: before it EDT, after it EST
    assert parse_at("2026-11-01 00:30", TORONTO, now=NOW) == utc(2026, 11, 1, 4, 30)
    assert parse_at("2026-11-01 02:30", TORONTO, now=NOW) == utc(2026, 11, 1, 7, 30)
    assert schedule.describe(utc(2026, 11, 3, 14, 0), TORONTO) == "2026-11-03 09:00 EST (-05:00)"
    assert schedule.describe(utc(2026, 10, 31, 13, 0), TORONTO) == "2026-10-31 09:00 EDT (-04:00)"


def test_a_time_in_the_fall_back_hour_is_ambiguous_and_names_both_offsets() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_at("2026-11-01 01:30", TORONTO, now=NOW)
    message = str(caught.value)
    assert message.startswith("--at: 2026-11-01 01:30 happens twice in America/Toronto")
    assert "-04:00 (EDT, the first)" in message and "-05:00 (EST, the second)" in message
    # either one, written out, is accepted
    assert parse_at("2026-11-01T01:30-04:00", TORONTO, now=NOW) == utc(2026, 11, 1, 5, 30)
    assert parse_at("2026-11-01T01:30-05:00", TORONTO, now=NOW) == utc(2026, 11, 1, 6, 30)


def test_a_time_in_the_spring_forward_gap_does_not_exist() -> None:
    with pytest.raises(ScheduleError, match=r"2027-03-14 02:30 does not exist in "
                                            r"America/Toronto.*from EST to EDT"):
        parse_at("2027-03-14 02:30", TORONTO, now=NOW)
    # the minutes either side are fine
    assert parse_at("2027-03-14 01:59", TORONTO, now=NOW) == utc(2027, 3, 14, 6, 59)
    assert parse_at("2027-03-14 03:00", TORONTO, now=NOW) == utc(2027, 3, 14, 7, 0)


def test_utc_is_never_ambiguous() -> None:
    assert parse_at("2026-11-01 01:30", "UTC", now=NOW) == utc(2026, 11, 1, 1, 30)


@pytest.mark.parametrize("text", ["2026-10-20 07:59", "2026-10-20T12:00Z", "2011-06-01 09:00"])
def test_a_time_not_in_the_future_is_an_error(text: str) -> None:
    # NOW is 08:00 EDT in Toronto; exactly now counts as past too
    with pytest.raises(ScheduleError, match="is in the past"):
        parse_at(text, TORONTO, now=NOW)


@pytest.mark.parametrize("text,why", [
    ("2026-11-03", "a date without a time"),
    ("tomorrow 9am", "not an ISO 8601 date and time"),
    ("2026-13-03 09:00", "not an ISO 8601"),
    ("2026-11-03 25:00", "not an ISO 8601"),
    ("", "not an ISO 8601"),
])
def test_bad_times_say_what_is_expected(text: str, why: str) -> None:
    with pytest.raises(ScheduleError, match=why) as caught:
        parse_at(text, TORONTO, now=NOW)
    assert caught.value.field == "--at"


def test_unknown_zone_names_the_setting() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_at("2026-11-03 09:00", "America/Toronot", now=NOW)
    assert caught.value.field == "newsletter.timezone"


def test_due_decision_with_an_injected_clock() -> None:
    at = utc(2026, 11, 3, 14, 0)
    assert decide(at, at - dt.timedelta(seconds=1)) is Due.WAIT
    assert decide(at, at) is Due.START
    assert decide(at, at + GRACE - dt.timedelta(seconds=1)) is Due.START
    # 6 hours late: never started by surprise
    assert decide(at, at + GRACE) is Due.MISS
    assert decide(at, at + dt.timedelta(days=2)) is Due.MISS


def test_states_are_the_documented_words() -> None:
    assert [s.value for s in State] == [
        "scheduled", "running", "done", "cancelled", "missed", "refused-changed",
        "refused-checks", "failed", "stopped"]
    assert State.SCHEDULED in schedule.OPEN_STATES
    assert State.RUNNING not in schedule.FINAL_STATES and State.MISSED in schedule.FINAL_STATES


def test_who_is_user_at_host() -> None:
    user, _, host = schedule.who().partition("@")
    assert user and host
