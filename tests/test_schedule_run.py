"""Scheduled sends run by `run_due` with an injected clock (no sleeping): started once when
due, missed after 6 hours, refused when the issue changed or its checks fail, reviewers told;
and the CLI around them (`send --at`, `schedule list|cancel`, `run-scheduled`)."""

from __future__ import annotations

import datetime as dt
import email
import functools
import subprocess
import threading
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.checks import run_checks
from newsletter.checks.findings import Finding
from newsletter.cli import main
from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue
from newsletter.config import load_settings
from newsletter.deliver import scheduled
from newsletter.deliver.schedule import State, who
from newsletter.store import open_store
from tests.support.sending import add_subscribers, counts

AT = dt.datetime(2026, 11, 3, 14, 0, tzinfo=dt.UTC)
REVIEWERS = {"editor@citiesofmigration.ca", "comms@citiesofmigration.ca"}
fast_checks = functools.partial(run_checks, spam=False)  # SpamAssassin takes seconds


def at(**delta: float):
    """A clock stopped at AT + delta."""
    return lambda: AT + dt.timedelta(**delta)


def mails(project: Path) -> list[email.message.EmailMessage]:
    folder = project / "outbox"
    files = sorted(folder.rglob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if (
        folder.exists()) else []
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]


def to_reviewers(project: Path) -> list[email.message.EmailMessage]:
    """The messages to the reviewers: one each, all alike (checked here)."""
    found = [m for m in mails(project)
             if m["To"] and m["To"].addresses[0].addr_spec in REVIEWERS]
    if found:
        assert {m["To"].addresses[0].addr_spec for m in found} == REVIEWERS
        assert len(found) == len(REVIEWERS) and len({m["Subject"] for m in found}) == 1
    return found


@pytest.fixture
def planned(project, settings, seed_issue):
    """Five subscribers and the seed issue scheduled for AT (offline checks)."""
    add_subscribers(settings.db_path, 5)
    rendered = render_issue(load_issue(seed_issue), settings)
    return scheduled.create(settings, rendered, str(seed_issue), AT, offline=True,
                            by="ann@laptop")


def state_of(settings, schedule_id: int):
    with open_store(settings) as store:
        return store.schedules.get(schedule_id)


def test_nothing_happens_before_its_time(settings, planned):
    assert scheduled.run_due(settings, clock=at(seconds=-1), checks=fast_checks) == []
    assert state_of(settings, planned.id).state == "scheduled"
    assert counts(settings.db_path)["sent"] == 0


def test_due_send_goes_out_once_and_reviewers_get_a_summary(project, settings, planned):
    [outcome] = scheduled.run_due(settings, clock=at(minutes=1), checks=fast_checks)
    assert outcome.state is State.DONE and outcome.reviewers_told
    assert counts(settings.db_path)["sent"] == 5
    row = state_of(settings, planned.id)
    assert row.state == "done" and row.detail.startswith("sent 5, failed 0, unknown 0")
    assert row.runner and row.started_at == AT + dt.timedelta(minutes=1)
    summary = to_reviewers(project)[0]
    assert "finished" in summary["Subject"] and "sent 5" in summary.get_body(
        ("plain",)).get_content()
    # a second look (another timer, another serve) finds nothing to do
    assert scheduled.run_due(settings, clock=at(minutes=2), checks=fast_checks) == []
    assert counts(settings.db_path)["sent"] == 5


def test_a_schedule_is_claimed_by_exactly_one_of_many(settings, planned):
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        with open_store(settings) as store:  # a connection of its own, as another process
            barrier.wait()
            results.append(store.schedules.claim(planned.id, threading.current_thread().name,
                                                 AT))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_six_hours_late_it_is_missed_never_sent(project, settings, planned):
    [outcome] = scheduled.run_due(settings, clock=at(hours=6), checks=fast_checks)
    assert outcome.state is State.MISSED
    assert counts(settings.db_path)["sent"] == 0 and counts(settings.db_path)["pending"] == 0
    assert "MISSED" in to_reviewers(project)[0]["Subject"]
    # just under six hours is still on time
    assert scheduled.decide(AT, AT + dt.timedelta(hours=5, minutes=59)).value == "start"


def test_an_issue_edited_after_approval_is_not_sent(project, settings, planned, seed_issue):
    seed_issue.write_text(seed_issue.read_text(encoding="utf-8").replace(
        "Calgary", "Calgary (edited)", 1), encoding="utf-8")
    [outcome] = scheduled.run_due(settings, clock=at(minutes=1), checks=fast_checks)
    assert outcome.state is State.REFUSED_CHANGED
    assert "changed after it was scheduled" in state_of(settings, planned.id).detail
    assert counts(settings.db_path)["sent"] == 0
    told = to_reviewers(project)[0]
    assert "NOT SENT: the issue changed" in told["Subject"]


def test_an_issue_whose_checks_now_fail_is_not_sent(project, settings, planned):
    def failing(rendered, settings, offline):
        return [Finding("error", "links", "https://example.org/gone answered 404")]

    [outcome] = scheduled.run_due(settings, clock=at(minutes=1), checks=failing)
    assert outcome.state is State.REFUSED_CHECKS
    assert "404" in state_of(settings, planned.id).detail
    assert counts(settings.db_path)["sent"] == 0
    assert "checks failed" in to_reviewers(project)[0]["Subject"]


def test_a_deleted_issue_file_is_refused(settings, planned, seed_issue):
    seed_issue.unlink()
    [outcome] = scheduled.run_due(settings, clock=at(minutes=1), checks=fast_checks)
    assert outcome.state is State.REFUSED_CHANGED and "no longer renders" in outcome.detail


def test_a_schedule_left_running_by_a_dead_process_is_marked_failed(project, settings, planned):
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open_store(settings) as store:
        assert store.schedules.claim(planned.id, f"{who()}:{dead.pid}", AT)
        assert store.schedules.claim(planned.id, "x@y:1", AT) is False
    [outcome] = scheduled.run_due(settings, clock=at(minutes=1), checks=fast_checks)
    assert outcome.state is State.FAILED and f":{dead.pid}) ended" in outcome.detail
    assert counts(settings.db_path)["sent"] == 0
    assert "FAILED" in to_reviewers(project)[0]["Subject"]


def test_a_running_schedule_of_a_live_process_is_left_alone(settings, planned):
    with open_store(settings) as store:
        assert store.schedules.claim(planned.id, scheduled.runner_name(), AT)
        assert store.schedules.claim(planned.id, "else@where.example:1", AT) is False
    assert scheduled.run_due(settings, clock=at(minutes=1), checks=fast_checks) == []
    assert state_of(settings, planned.id).state == "running"


def test_cancelled_before_its_time_never_runs(settings, planned):
    with open_store(settings) as store:
        assert store.schedules.cancel("2011-05", "bob@desk").state == "cancelled"
        assert store.schedules.cancel("2011-05", "bob@desk") is None
    assert scheduled.run_due(settings, clock=at(minutes=1), checks=fast_checks) == []
    assert counts(settings.db_path)["sent"] == 0


# -- the CLI ---------------------------------------------------------------------------------

def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_send_at_checks_then_schedules_and_list_and_cancel(project, settings):
    add_subscribers(settings.db_path, 3)
    assert run("send", "issues/2011-05.yaml", "--test").exit_code == 0
    result = run("send", "issues/2011-05.yaml", "--all", "--offline",
                 "--at", "2099-06-01T09:00-04:00")
    assert result.exit_code == 0, result.output
    assert "Scheduled 2011-05 for 2099-06-01 09:00 EDT (-04:00)" in result.stdout  # Toronto
    assert counts(settings.db_path)["sent"] == 0  # nothing sent now
    listed = run("schedule", "list")
    assert listed.exit_code == 0
    assert "2011-05" in listed.stdout and "scheduled" in listed.stdout and "@" in listed.stdout
    # a second schedule for the same issue is refused
    again = run("send", "issues/2011-05.yaml", "--all", "--offline", "--at", "2099-06-02 09:00")
    assert again.exit_code == 1 and "already scheduled" in again.stderr
    assert run("schedule", "cancel", "issues/2011-05.yaml").exit_code == 0
    assert "cancelled" in run("schedule", "list").stdout
    gone = run("schedule", "cancel", "issues/2011-05.yaml")
    assert gone.exit_code == 1 and "no scheduled send waiting" in gone.stderr


def test_send_at_refuses_what_send_all_refuses(project, settings):
    add_subscribers(settings.db_path, 3)
    # no test send yet: reviewers have not seen it, so it is not scheduled either
    result = run("send", "issues/2011-05.yaml", "--all", "--offline", "--at", "2099-06-01 09:00")
    assert result.exit_code == 1 and "reviewers have not seen it" in result.stderr
    assert "No scheduled sends" in run("schedule", "list").stdout


@pytest.mark.parametrize("when,message", [
    ("2011-06-01 09:00", "is in the past"),
    ("next tuesday", "not an ISO 8601 date and time"),
])
def test_send_at_bad_times_are_one_line_errors(project, settings, when, message):
    result = run("send", "issues/2011-05.yaml", "--all", "--at", when)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_scheduled_with_nothing_due(project):
    result = run("run-scheduled")
    assert result.exit_code == 0 and "Nothing due" in result.stdout


def test_new_commands_have_help_with_an_example(project):
    for command in (["schedule", "list"], ["schedule", "cancel"], ["run-scheduled"], ["stop"]):
        result = run(*command, "--help")
        assert result.exit_code == 0
        assert "newsletter " + " ".join(command) in result.stdout.split("Example", 1)[1]


def test_times_are_read_and_shown_in_newsletter_timezone(project, seed_issue):
    settings = load_settings(project / "newsletter.toml")
    assert settings.timezone == "America/Toronto"  # the project's setting
    # read before anything slow: the fall-back hour is ambiguous in Toronto
    result = run("send", "issues/2011-05.yaml", "--all", "--at", "2099-11-01 01:30")
    assert result.exit_code == 1 and "happens twice in America/Toronto" in result.stderr
    rendered = render_issue(load_issue(seed_issue), settings)
    scheduled.create(settings, rendered, str(seed_issue), dt.datetime(2099, 11, 3, 14, 0,
                                                                     tzinfo=dt.UTC))
    assert "2099-11-03 09:00 EST (-05:00)" in run("schedule", "list").stdout
