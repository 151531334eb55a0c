"""Recovery of a dead sender's in-flight rows: only what can have been on the wire becomes
unknown; provider evidence (events, complete .eml files) settles it; `status` tells the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.deliver.campaign import Campaign, Recipient
from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.deliver.providers.file import FileProvider
from newsletter.deliver.recovery import in_flight_now, recover, split_in_flight
from newsletter.errors import NewsletterError
from newsletter.store import InFlight, open_store
from newsletter.subscribers import lifecycle
from tests.support.sending import add_subscribers, counts

ISSUE = "2011-05"


@pytest.fixture
def store(tmp_path):
    """SQLite here: the PostgreSQL backend's liveness and durability epoch are its own
    (these tests use the SQLite lock, boot id and path)."""
    opened = open_store(tmp_path / "store" / "newsletter.db")
    yield opened
    opened.close()


def _dead_sender(store, *, per_message: bool, epoch: str | None = None) -> str:
    """A senders row of a process that is gone (pid of a finished child)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    sender = store.sender_records.start(ISSUE, "this-host", child.pid,
                                 epoch or store.durability_epoch(), per_message)
    return sender.id


def _claim(store, sender_id: str, n: int):
    ledger = store.ledger(ISSUE)
    ledger.sender = sender_id
    claimed, _, _ = ledger.claim(n)
    return ledger, claimed


def _state(store) -> dict[str, str]:
    return {r.email: r.state for r in store.ledger(ISSUE).rows()}


def test_split_first_row_of_each_exact_batch_may_be_on_the_wire():
    rows = [InFlight("a", "s1", 1, 1), InFlight("b", "s1", 1, 2), InFlight("c", "s1", 1, 3),
            InFlight("d", "s1", 4, 5), InFlight("e", "s1", 4, 4),
            InFlight("f", "s2", 6, 6), InFlight("g", "s2", 6, 7), InFlight("h", None, None, None)]
    maybe, never = split_in_flight(rows, lambda sid: sid == "s1")
    assert sorted(maybe) == ["a", "e", "f", "g", "h"]
    assert sorted(never) == ["b", "c", "d"]


def test_same_boot_per_message_only_the_first_in_flight_row_is_unknown(store):
    emails = add_subscribers(store.backend.path, 10)
    store.ledger(ISSUE).seed()
    sid = _dead_sender(store, per_message=True)
    ledger, claimed = _claim(store, sid, 10)
    fast = type(ledger)(store.backend.connect(durable=False), ISSUE)
    for c in claimed[:3]:  # three answered and recorded before the kill
        fast.record_one(c.email, "sent", "m", None)
    out = recover(store, ISSUE)
    assert (out.unknown, out.requeued, out.settled) == (1, 6, 0)
    state = _state(store)
    assert [state[e] for e in emails] == ["sent"] * 3 + ["unknown"] + ["pending"] * 6


def test_another_boot_makes_every_in_flight_row_unknown(store):
    add_subscribers(store.backend.path, 5)
    store.ledger(ISSUE).seed()
    sid = _dead_sender(store, per_message=True, epoch="this-host/an-earlier-boot")
    _claim(store, sid, 5)
    out = recover(store, ISSUE)
    assert (out.unknown, out.requeued) == (5, 0)
    assert set(_state(store).values()) == {"unknown"}


def test_a_request_provider_leaves_its_whole_request_unknown(store):
    add_subscribers(store.backend.path, 5)
    store.ledger(ISSUE).seed()
    _claim(store, _dead_sender(store, per_message=False), 5)
    assert recover(store, ISSUE).unknown == 5


def test_an_accepted_event_received_before_recovery_settles_the_row(store):
    emails = add_subscribers(store.backend.path, 4)
    store.ledger(ISSUE).seed()
    _claim(store, _dead_sender(store, per_message=False), 4)
    lifecycle.apply_events(store, [ProviderEvent("sendgrid", "e1", EventKind.QUEUED,
                                                 emails[1], ISSUE)])
    out = recover(store, ISSUE)
    assert (out.unknown, out.settled) == (3, 1)
    assert _state(store)[emails[1]] == "sent"


def test_events_settle_unknown_rows_and_bounces_still_suppress(store):
    emails = add_subscribers(store.backend.path, 4)
    store.ledger(ISSUE).seed()
    _claim(store, _dead_sender(store, per_message=False), 4)
    recover(store, ISSUE)
    out = lifecycle.apply_events(store, [
        ProviderEvent("sendgrid", "e1", EventKind.DELIVERED, emails[0], ISSUE),
        ProviderEvent("sendgrid", "e2", EventKind.BOUNCED, emails[1], ISSUE, reason="550"),
        ProviderEvent("sendgrid", "e3", EventKind.OPENED, emails[2], ISSUE),  # not acceptance
        ProviderEvent("sendgrid", "e4", EventKind.DELIVERED, emails[3], "another-issue"),
    ])
    assert out.settled == 2 and out.suppressed == 1
    state = _state(store)
    assert [state[e] for e in emails] == ["sent", "sent", "unknown", "unknown"]
    assert store.subscribers.status(emails[1]) == "suppressed"


def test_file_evidence_counts_a_complete_eml_and_removes_dead_temporaries(tmp_path):
    outbox = tmp_path / "outbox"
    provider = FileProvider(outbox)
    campaign = Campaign(ISSUE, "Subject", "<p>{{unsubscribe_url}}</p>", "{{unsubscribe_url}}",
                        "news@example.org", "News")
    provider.send_batch(campaign, [Recipient("ann@example.org", None, "https://x.org/u?t=1"),
                                   Recipient("b-ann@example.org", None, "https://x.org/u?t=2")])
    folder = outbox / ISSUE
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (folder / f".{child.pid}-abc.part").write_bytes(b"half a mess")
    (folder / f".{os.getpid()}-live.part").write_bytes(b"being written")
    found, notes, conclusive = provider.recover(ISSUE, ["ann@example.org", "cid@example.org"])
    assert found == {"ann@example.org"} and conclusive
    assert not (folder / f".{child.pid}-abc.part").exists()
    assert (folder / f".{os.getpid()}-live.part").exists()  # a live writer's: left alone
    assert len(notes) == 1 and "removed 1 unfinished temporary file" in notes[0]


def test_status_says_interrupted_lists_unknown_and_prints_json(project, settings):
    emails = add_subscribers(settings.db_path, 6)
    with open_store(settings.db_path) as store:
        store.ledger(ISSUE).seed()
        sid = _dead_sender(store, per_message=False)
        ledger, _ = _claim(store, sid, 3)
        assert in_flight_now(store, ISSUE) == (0, 3)
        with store.send_lock():  # a live send holds the lock: its rows are in flight
            pass
    runner = CliRunner()
    out = runner.invoke(main, ["status", "issues/2011-05.yaml"])
    assert out.exit_code == 0, out.output
    assert "interrupted" in out.output and "a send is running now" not in out.output
    data = json.loads(runner.invoke(main, ["status", "issues/2011-05.yaml", "--json"]).output)
    assert data["ledger"]["interrupted"] == 3 and data["ledger"]["in_flight"] == 0
    assert data["ledger"]["pending"] == 3
    with open_store(settings.db_path) as store:
        recover(store, ISSUE)
    listed = runner.invoke(main, ["status", "issues/2011-05.yaml", "--unknown"])
    assert listed.exit_code == 0 and listed.output.splitlines() == emails[:3]
    assert counts(settings.db_path)["unknown"] == 3


@pytest.mark.slow
def test_status_says_in_flight_while_a_send_holds_the_lock(project, settings):
    add_subscribers(settings.db_path, 2)
    with open_store(settings.db_path) as store:
        store.ledger(ISSUE).seed()
    # Another process holds the send lock and has a row in flight.
    code = (
        "import sys, time, os, socket\n"
        "from newsletter.store import open_store\n"
        f"s = open_store({str(settings.db_path)!r})\n"
        "with s.send_lock():\n"
        f"    me = s.sender_records.start({ISSUE!r}, socket.gethostname(), os.getpid(),"
        " s.durability_epoch(), True)\n"
        f"    l = s.ledger({ISSUE!r}); l.sender = me.id; l.claim(1)\n"
        "    print('ready', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    try:
        assert proc.stdout.readline().strip() == "ready"
        out = CliRunner().invoke(main, ["status", "issues/2011-05.yaml"])
        assert "a send is running now" in out.output and "interrupted" not in out.output
        # A second send on SQLite is refused with a clear message.
        with open_store(settings.db_path) as store:
            start = time.monotonic()
            try:
                with store.send_lock():
                    raise AssertionError("a second send got the lock")
            except NewsletterError as exc:
                assert "another `newsletter send --all` is running" in str(exc)
            assert time.monotonic() - start < 3
    finally:
        proc.kill()
        proc.wait()
    with open_store(settings.db_path) as store:
        assert in_flight_now(store, ISSUE) == (0, 1)


class _PerMessage:
    """A per-message provider that, before each message, reads the ledger from another
    connection: the previous message's outcome must already be there."""

    name = "per-message"
    max_batch = 10
    per_message = True

    def __init__(self, db_path) -> None:
        self.db_path = db_path
        self.seen: list[tuple[str, str]] = []  # (previous address, its state then)

    def send_batch(self, campaign, recipients, on_result=None):
        from newsletter.deliver.campaign import Result, Status

        results = []
        for r in recipients:
            if results:
                with open_store(self.db_path) as other:
                    state = {x.email: x.state for x in other.ledger(ISSUE).rows()}
                self.seen.append((results[-1].email, state[results[-1].email]))
            result = Result(r.email, Status.SENT, message_id="m")
            results.append(result)
            on_result(result)
        return results

    def close(self) -> None:
        pass


def test_each_outcome_is_in_the_ledger_before_the_next_message_starts(project, settings):
    from newsletter.deliver.sender import send_all
    from tests.support.sending import rendered

    add_subscribers(settings.db_path, 12)
    provider = _PerMessage(settings.db_path)
    report = send_all(rendered(), settings, provider)
    assert report.sent == 12 and counts(settings.db_path)["sent"] == 12
    assert len(provider.seen) == 10 and {s for _, s in provider.seen} == {"sent"}
    with open_store(settings.db_path) as store:
        (sender,) = store.sender_records.get(
            [r[0] for r in store.conn.execute("SELECT sender FROM senders")]).values()
        assert sender.per_message and sender.epoch == store.durability_epoch()
