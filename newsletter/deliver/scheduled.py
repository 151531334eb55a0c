"""Running scheduled sends: what `run-scheduled` does once and `serve` does every half minute.

For each schedule whose time has come (`deliver/schedule.py` decides wait / start / missed):
1. claim it (scheduled -> running, one conditional UPDATE: exactly one process wins);
2. render the issue again; if it is not byte for byte the content approved when it was
   scheduled, or the checks now find errors, nothing goes to subscribers: the state says
   why (`refused-changed`, `refused-checks`) and the reviewers get a short email;
3. send it as `send --all --yes` does (resumable ledger, stop requests honoured);
4. tell the reviewers how it went (sent, failed, unknown).
A schedule not started within 6 hours of its time becomes `missed` and the reviewers are told.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from zoneinfo import ZoneInfo

from newsletter.checks import run_checks
from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue
from newsletter.deliver import sender
from newsletter.deliver.campaign import Kind, Recipient, Status, make_campaign
from newsletter.deliver.preflight import preflight
from newsletter.deliver.providers import get_provider
from newsletter.deliver.schedule import (
    GRACE,
    Clock,
    Due,
    State,
    decide,
    describe,
    utc_now,
    who,
    zone_of,
)
from newsletter.deliver.stopping import watching
from newsletter.errors import NewsletterError
from newsletter.store import Schedule, Store, open_store

log = logging.getLogger("newsletter.deliver.scheduled")

POLL_INTERVAL = 30.0  # seconds between looks for due schedules in `serve`
MAX_LISTED = 5  # check errors quoted in a refusal


@dataclass(frozen=True)
class Outcome:
    schedule: Schedule
    state: State
    detail: str
    reviewers_told: bool


def zone(settings) -> ZoneInfo:
    """The newsletter's time zone (`newsletter.timezone`)."""
    return zone_of(settings.timezone)


def create(settings, rendered, issue_path: str, at: dt.datetime, *, offline: bool = False,
           force: bool = False, by: str | None = None) -> Schedule:
    """Record a scheduled send of `rendered` (already through the send's preflight) at `at`."""
    with open_store(settings) as store:
        return store.schedules.add(issue=rendered.slug, issue_path=str(issue_path), at=at,
                                   content_hash=sender.content_hash(rendered),
                                   scheduled_by=by or who(), offline=offline, force=force)


def runner_name() -> str:
    return f"{who()}:{os.getpid()}"


def _dead_here(runner: str | None) -> bool:
    """Is `runner` (user@host:pid) a process of this machine that no longer exists? (One
    on another machine cannot be checked from here: it is left alone.)"""
    name, _, pid = (runner or "").rpartition(":")
    if name.partition("@")[2] != who().partition("@")[2] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def run_due(settings, *, clock: Clock = utc_now, send: Callable | None = None,
            checks: Callable | None = None, stop: threading.Event | None = None
            ) -> list[Outcome]:
    """Start (or mark missed) every schedule that is due now; returns what became of each
    one this process handled. Schedules another process claimed first are skipped.

    `send` and `checks` default to sender.send_all and checks.run_checks; `stop` (set when
    the process shuts down) ends a running send after its batch."""
    with open_store(settings) as store:
        table = store.schedules
        now = clock()
        outcomes = []
        for item in table.running():
            if _dead_here(item.runner):
                detail = (f"the process sending it ({item.runner}) ended before it finished:"
                          " `newsletter send --all` resumes it")
                if table.settle(item.id, State.FAILED, detail, expect=State.RUNNING):
                    outcomes.append(_told(settings, item, State.FAILED, detail))
        for item in table.due(now):
            decision = decide(item.at, now)
            if decision is Due.MISS:
                detail = (f"not started within {GRACE.seconds // 3600} hours of its time"
                          f" ({describe(item.at, zone(settings))}): nothing was sent; send it"
                          " by hand with `newsletter send --all` if it is still wanted")
                if table.settle(item.id, State.MISSED, detail, expect=State.SCHEDULED):
                    outcomes.append(_told(settings, item, State.MISSED, detail))
            elif decision is Due.START and table.claim(item.id, runner_name(), now):
                outcomes.append(_run_one(settings, store, item, send or sender.send_all,
                                         checks, stop))
        return outcomes


def _run_one(settings, store: Store, item: Schedule, send: Callable, checks: Callable | None,
             stop: threading.Event | None) -> Outcome:
    def settle(state: State, detail: str) -> Outcome:
        store.schedules.settle(item.id, state, detail, expect=State.RUNNING)
        return _told(settings, item, state, detail)

    try:
        rendered = render_issue(load_issue(item.issue_path), settings)
    except NewsletterError as exc:
        return settle(State.REFUSED_CHANGED, f"the issue no longer renders ({exc}): nothing"
                      " was sent")
    if sender.content_hash(rendered) != item.content_hash:
        return settle(State.REFUSED_CHANGED, "the issue changed after it was scheduled (it no"
                      " longer renders to the approved content): nothing was sent; test-send"
                      " it again and schedule it anew")
    try:
        findings = (checks or run_checks)(rendered, settings, offline=item.offline)
        found = preflight(rendered, settings, offline=item.offline, findings=findings)
    except NewsletterError as exc:
        return settle(State.FAILED, f"the checks could not run ({exc}): nothing was sent")
    # The approval that counts is the content hash recorded when it was scheduled (compared
    # above), not the latest test send: those two rules of a send now are left out here.
    fatal = found.blocking(force=True)
    if fatal:
        return settle(State.FAILED, "; ".join(p.message for p in fatal)
                      + ": nothing was sent")
    errors = found.check_errors
    if errors and not item.force:
        listed = "; ".join(f"{f.category}: {f.message}" for f in errors[:MAX_LISTED])
        return settle(State.REFUSED_CHECKS, f"the checks found {len(errors)} error(s) at send"
                      f" time ({listed}): nothing was sent")
    try:
        with watching(settings, rendered.slug, also=stop) as watch:
            report = send(rendered, settings, stop=watch.event)
    except NewsletterError as exc:
        return settle(State.FAILED, f"the send stopped on an error: {exc}; run `newsletter"
                      " send --all` to resume it")
    except Exception as exc:  # a bug must not leave the schedule `running` for ever
        log.exception("scheduled send of %s failed", item.issue)
        return settle(State.FAILED, f"the send stopped on an unexpected error: {exc!r}")
    summary = (f"sent {report.sent + report.queued}, failed {report.failed}, unknown"
               f" {report.unknown_total}, rejected {report.rejected}"
               f" ({report.already_done} done by earlier runs)")
    if report.stopped:
        why = (f"stopped by `newsletter stop` (requested by {watch.requested})"
               if watch.requested else "stopped: the process sending it was shut down")
        return settle(State.STOPPED, f"{why}: {summary}; `newsletter send --all` resumes it")
    return settle(State.DONE, summary)


SUBJECTS = {
    State.DONE: "Scheduled send of {issue} finished",
    State.STOPPED: "Scheduled send of {issue} was stopped",
    State.FAILED: "Scheduled send of {issue} FAILED",
    State.MISSED: "Scheduled send of {issue} was MISSED (not sent)",
    State.REFUSED_CHANGED: "Scheduled send of {issue} NOT SENT: the issue changed",
    State.REFUSED_CHECKS: "Scheduled send of {issue} NOT SENT: checks failed",
}


def _told(settings, item: Schedule, state: State, detail: str) -> Outcome:
    when = describe(item.at, zone(settings))
    body = (f"The send of {item.issue} scheduled for {when} by {item.scheduled_by}"
            f" is {state.value}:\n\n{detail}\n\nSee `newsletter schedule list` and"
            f" `newsletter status issues/{item.issue}.yaml`.\n")
    told = True
    try:
        tell_reviewers(settings, SUBJECTS[state].format(issue=item.issue), body)
    except NewsletterError as exc:
        told = False
        log.error("could not tell the reviewers about %s: %s", item.issue, exc)
    log.info("scheduled send of %s: %s: %s", item.issue, state.value, detail)
    return Outcome(item, state, detail, told)


def tell_reviewers(settings, subject: str, text: str, provider=None) -> list[str]:
    """A short plain message to the reviewers through the configured provider, as
    transactional mail (belongs to no issue, no unsubscribe headers). Returns who accepted
    it."""
    reviewers = sender.validate_addresses(settings.reviewers, "sender.reviewers")
    if not reviewers:
        return []
    campaign = make_campaign(
        settings, kind=Kind.TRANSACTIONAL, slug="schedule",
        subject=f"[{settings.name}] {subject}",
        html=f"<html><body><pre style=\"white-space: pre-wrap; font-family: sans-serif\">"
             f"{escape(text)}</pre></body></html>", text=text)
    own = provider is None
    provider = provider or get_provider(settings)
    try:
        results = provider.send_batch(campaign, [Recipient(email) for email in reviewers])
    finally:
        if own:
            provider.close()
    return [r.email for r in results if r.status in (Status.SENT, Status.QUEUED)]


class Poller:
    """`serve`'s background thread: run_due every `interval` seconds until stopped."""

    def __init__(self, settings, interval: float = POLL_INTERVAL, clock: Clock = utc_now):
        self.settings = settings
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scheduled-sends", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                run_due(self.settings, clock=self.clock, stop=self._stop)
            except Exception:  # keep serving; the next round tries again
                log.exception("looking for scheduled sends failed")
            if self._stop.wait(self.interval):
                return

    def stop(self, timeout: float | None = None) -> None:
        """End the loop; a send it is running stops after its current batch."""
        self._stop.set()
        self._thread.join(timeout)
