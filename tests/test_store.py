"""The store: subscribers, the send ledger's state machine, events, test sends.

Most tests use the `store` fixture and only the Store's public interface, so they hold for
any backend; the SQLite backend's own guarantees (pragmas, migrations, data_version) are at
the end.
"""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.errors import StoreError
from newsletter.store import Store, normalise_email, open_store
from newsletter.store.sqlite import MIGRATIONS, SCHEMA_VERSION, GroupCommit
from newsletter.store.subscribers import Subscribers
from newsletter.subscribers import lifecycle


def add(store: Store, n: int, start: int = 0) -> list[str]:
    emails = [f"user{i:06d}@example.org" for i in range(start, start + n)]
    assert store.subscribers.add_many(((e, e[:8]) for e in emails), "test") == n
    return emails


def states(store: Store, issue: str) -> dict[str, str]:
    return {row.email: row.state for row in store.ledger(issue).rows()}


def event(event_id: str, kind: EventKind, email: str, issue: str | None = "2011-05",
          **more) -> ProviderEvent:
    return ProviderEvent("sendgrid", event_id, kind, email, issue, **more)


# -- addresses and subscribers -------------------------------------------------------------


def test_open_store_creates_parent_folders(tmp_path):
    with open_store(tmp_path / "sub" / "dir" / "n.db") as store:
        assert store.subscribers.counts() == {
            "pending": 0, "active": 0, "unsubscribed": 0, "suppressed": 0}


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        open_store(bad)


def test_normalise_email():
    assert normalise_email("  Ann.Smith@Example.ORG ") == "ann.smith@example.org"
    with pytest.raises(ValueError):
        normalise_email("not-an-address")
    with pytest.raises(ValueError):
        normalise_email("a@b@c.org")


def test_normalise_email_idna_domain_is_one_address(store):
    # The providers send to the IDNA (xn--) form and the provider's webhook reports that form:
    # both spellings must be the one subscriber row (else two copies, or a bounce that
    # suppresses nobody).
    assert normalise_email("d@xn--bcher-kva.example") == "d@bücher.example"
    assert normalise_email("d@bücher.example") == "d@bücher.example"
    store.subscribers.add(normalise_email("d@bücher.example"))
    applied = lifecycle.apply_events(store, [
        event("e1", EventKind.BOUNCED, "d@xn--bcher-kva.example")])
    assert applied.suppressed == 1
    assert store.subscribers.get("d@bücher.example").status == "suppressed"


def test_add_get_unsubscribe_suppress(store):
    s = store.subscribers.add("a@example.org", "Ann", consent_source="form")
    assert s.status == "active" and s.consent_source == "form" and s.consent_at
    with pytest.raises(StoreError, match="already"):
        store.subscribers.add("a@example.org")
    assert store.subscribers.unsubscribe("a@example.org", "clicked the link")
    s = store.subscribers.get("a@example.org")
    assert s.status == "unsubscribed" and s.status_reason == "clicked the link"
    assert s.unsubscribed_at
    assert not store.subscribers.unsubscribe("a@example.org", "again")  # idempotent
    assert store.subscribers.get("a@example.org").status_reason == "clicked the link"
    assert store.subscribers.set_status("a@example.org", "suppressed", "bounce")
    assert not store.subscribers.unsubscribe("a@example.org", "link")
    assert store.subscribers.get("a@example.org").status == "suppressed"
    assert not store.subscribers.set_status("nobody@example.org", "active")
    with pytest.raises(StoreError):
        store.subscribers.set_status("a@example.org", "bogus")


def test_the_one_unsubscribe_records_an_unknown_address(store):
    done = lifecycle.unsubscribe(store, "New@Example.org", "removed")
    assert (done.email, done.outcome) == ("new@example.org", "recorded")
    s = store.subscribers.get("new@example.org")
    assert s.status == "unsubscribed" and s.unsubscribed_at and s.status_reason == "removed"
    store.subscribers.add("on@example.org")
    assert lifecycle.unsubscribe(store, "on@example.org", "link", "one-click").outcome == \
        "unsubscribed"
    assert store.subscribers.get("on@example.org").status_reason == "link (one-click)"
    assert lifecycle.unsubscribe(store, "on@example.org", "link").outcome == "already"


def test_suppress_acts_on_active_and_pending_only(store):
    store.subscribers.add("a@example.org")
    store.subscribers.add("p@example.org", status="pending")
    store.subscribers.add("u@example.org", status="unsubscribed")
    assert store.subscribers.suppress("a@example.org", "bounced")
    assert store.subscribers.suppress("p@example.org", "complained")
    assert not store.subscribers.suppress("u@example.org", "bounced")
    assert not store.subscribers.suppress("nobody@example.org", "bounced")
    assert store.subscribers.counts() == {
        "pending": 0, "active": 0, "unsubscribed": 1, "suppressed": 2}
    with pytest.raises(StoreError):
        store.subscribers.suppress("a@example.org", "x", status="active")


def test_pages_are_keyset_pages_in_id_order(store):
    emails = add(store, 25)
    store.subscribers.unsubscribe(emails[3], "test")
    pages = list(store.subscribers.pages("active", batch=10))
    assert [len(p) for p in pages] == [10, 10, 4]
    assert [s.email for p in pages for s in p] == [e for e in emails if e != emails[3]]
    assert [s.email for s in store.subscribers.list(status="unsubscribed")] == [emails[3]]


@pytest.mark.slow
def test_listing_memory_is_flat(store):
    add(store, 20_000)
    tracemalloc.start()
    n = sum(len(page) for page in store.subscribers.pages("active", batch=500))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 20_000
    assert peak < 2_000_000  # one page, not 20,000 rows


def test_a_failed_transaction_keeps_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.subscribers.add("a@example.org")
        raise RuntimeError("boom")
    assert store.subscribers.get("a@example.org") is None


def test_write_commits_and_returns_the_result(store):
    got = store.write(lambda tx: tx.subscribers.add("a@example.org").email)
    assert got == "a@example.org" and store.subscribers.get(got).status == "active"
    with pytest.raises(StoreError):
        store.write(lambda tx: tx.subscribers.add("a@example.org"))


# -- the send ledger -----------------------------------------------------------------------


def test_ledger_seed_claim_record_cycle(store):
    emails = add(store, 5)
    ledger = store.ledger("2011-05")
    assert ledger.seed(chunk=2) == 5
    assert ledger.seed() == 0  # never twice
    claimed, skipped, made = ledger.claim(3)
    assert [c.email for c in claimed] == emails[:3] and skipped == 0 and made is None
    counts = ledger.counts()
    assert counts["in_flight"] == 3 and counts["pending"] == 2
    ledger.record([("sent", "m1", None, claimed[:1]),
                   ("rejected", None, "bad mailbox", claimed[1:2]),
                   ("unknown", None, "timeout", claimed[2:])])
    counts = ledger.counts()
    assert [counts[s] for s in ("sent", "rejected", "unknown", "in_flight")] == [1, 1, 1, 0]
    first = ledger.rows()[0]
    assert (first.email, first.message_id, first.attempts) == (emails[0], "m1", 1)
    assert first.updated_at
    # Recording twice does nothing: only in-flight rows take an outcome.
    ledger.record([("failed", None, "late", claimed[:1])])
    assert ledger.counts()["sent"] == 1
    assert store.ledger("another").counts()["pending"] == 0  # issues are separate


def test_seed_reports_each_chunk_and_the_count_to_send_while_seeding(store):
    """What a send that seeds in the background relies on: a call after each chunk that added
    rows (claims may take them at once), and the count to send in one statement."""
    emails = add(store, 7)
    store.subscribers.unsubscribe(emails[3], "test")
    ledger = store.ledger("2011-05")
    assert ledger.to_seed_and_pending() == 6  # nothing seeded yet: the active ones
    seen: list[int] = []
    assert ledger.seed(chunk=2, on_chunk=lambda: seen.append(ledger.counts()["pending"])) == 6
    assert seen == [2, 3, 5, 6]  # the chunk of ids 3-4 added one, every chunk committed first
    claimed, _, _ = ledger.claim(4)
    assert ledger.to_seed_and_pending() == 2
    add(store, 2, start=7)  # subscribed since: to be added by the next seed
    assert ledger.to_seed_and_pending() == 4
    assert ledger.seed(on_chunk=lambda: None) == 2 and ledger.to_seed_and_pending() == 4


def test_claims_walk_on_and_still_find_rows_put_back_behind_them(store):
    emails = add(store, 6)
    ledger = store.ledger("i")
    ledger.seed()
    first, _, _ = ledger.claim(2)
    second, _, _ = ledger.claim(2)
    ledger.release(first)  # back to pending, behind where the claims have got to
    third, _, _ = ledger.claim(2)
    assert [c.email for c in third] == emails[4:]
    last, _, _ = ledger.claim(5)
    assert sorted(c.email for c in last) == emails[:2]  # found by a walk from the start
    assert ledger.claim(5)[0] == []


def test_a_walk_from_the_end_meets_one_from_the_start_and_batches_stay_in_row_order(store):
    emails = add(store, 9)
    up, down = store.ledger("i"), store.ledger("i")
    up.seed()
    down.from_the_end()
    top, _, _ = down.claim(3)
    assert [c.email for c in top] == emails[6:]  # the highest rows, sent in row order
    bottom, _, _ = up.claim(3)
    assert [c.email for c in bottom] == emails[:3]
    down.release(top[:1])  # put back above where the walk down has got to
    middle, _, _ = down.claim(5)
    assert [c.email for c in middle] == emails[3:6]
    assert [c.email for c in down.claim(5)[0]] == emails[6:7]  # found by a walk from the top
    assert up.claim(5)[0] == [] and down.claim(5)[0] == []
    assert store.ledger("i").counts()["in_flight"] == 9


def test_while_a_seed_goes_on_claims_do_not_walk_back_until_asked(store):
    """rewind=False: an empty claim does not walk back over the rows passed (that walk per
    claim made a send wait quadratically for its seed); the rewinding claim finds them."""
    emails = add(store, 8)
    for ledger in (store.ledger("up"), store.ledger("down")):
        seeded = ledger.seed(chunk=4)
        if ledger.issue == "down":
            ledger.from_the_end()
        first, _, _ = ledger.claim(3, rewind=False)
        ledger.release(first)  # put back behind the walk
        rest, _, _ = ledger.claim(20, rewind=False)
        assert len(rest) == seeded - 3 and ledger.claim(10, rewind=False)[0] == []
        store.subscribers.add_many([(f"new{ledger.issue}@example.org", None)], "test")
        ledger.seed()  # rows added while the walk waits: found without walking back
        assert [c.email for c in ledger.claim(10, rewind=False)[0]] == [
            f"new{ledger.issue}@example.org"]
        assert ledger.claim(10, rewind=False)[0] == []
        again, _, _ = ledger.claim(10)  # rewind: the rows put back
        assert sorted(c.email for c in again) == sorted(c.email for c in first)
        assert ledger.claim(10)[0] == [] and ledger.counts()["pending"] == 0
    assert len(emails) == 8


def test_walks_begun_before_the_seed_find_its_rows(store):
    up, down = store.ledger("i"), store.ledger("i")
    down.from_the_end()
    for ledger in (up, down):  # claims that came before the seed's first chunk
        assert ledger.claim(5, rewind=False)[0] == []
    emails = add(store, 6)
    up.seed()
    got = [c.email for c in down.claim(3, rewind=False)[0]]
    got += [c.email for c in up.claim(3, rewind=False)[0]]
    assert sorted(got) == emails
    assert down.claim(3)[0] == [] and up.claim(3)[0] == []


def test_claim_skips_and_drops_inactive(store):
    emails = add(store, 4)
    ledger = store.ledger("i")
    ledger.seed()
    store.subscribers.unsubscribe(emails[1], "test")
    claimed, skipped, _ = ledger.claim(10)
    assert [c.email for c in claimed] == [emails[0], emails[2], emails[3]]
    assert skipped == 1
    assert ledger.seed() == 0  # not re-added while unsubscribed
    assert sum(ledger.counts().values()) == 3


def test_recover_in_flight_becomes_unknown_and_requeue(store):
    emails = add(store, 3)
    ledger = store.ledger("i")
    ledger.seed()
    ledger.claim(2)
    assert ledger.recover_in_flight() == 2
    assert ledger.emails("unknown") == emails[:2] and ledger.unknown_count() == 2
    assert ledger.emails("unknown", limit=1) == emails[:1]
    assert ledger.requeue(["unknown"]) == 2
    assert ledger.counts()["pending"] == 3
    with pytest.raises(StoreError):
        ledger.requeue(["sent"])
    with pytest.raises(StoreError):
        ledger.emails("bogus")


def test_release_returns_rows_to_pending(store):
    add(store, 2)
    ledger = store.ledger("i")
    ledger.seed()
    claimed, _, _ = ledger.claim(2)
    ledger.release(claimed)
    assert ledger.counts()["pending"] == 2


def test_active_done_counts_only_active_subscribers(store):
    emails = add(store, 3)
    ledger = store.ledger("i")
    ledger.seed()
    claimed, _, _ = ledger.claim(3)
    ledger.record([("sent", None, None, claimed)])
    store.subscribers.unsubscribe(emails[0], "test")
    assert ledger.active_done(["sent"]) == 2 and ledger.active_done(["unknown"]) == 0


def test_ledger_claim_meanwhile_returns_only_once_committed(store, tmp_path):
    """claim(meanwhile=f): f gets the claimed rows while the outcomes are written and the
    transaction commits in a helper thread; when claim returns, another connection sees the
    batch in_flight and the previous outcomes. A failing write or commit raises and keeps
    nothing of the transaction (the new batch is still pending)."""
    emails = add(store, 4)
    ledger = store.ledger("i")
    ledger.seed()
    try:
        first, _, made = ledger.claim(2, meanwhile=lambda rows: [c.email for c in rows])
        assert made == emails[:2]
        second, _, made = ledger.claim(2, [("sent", "m", None, first)],
                                       meanwhile=lambda rows: len(rows))
        assert made == 2 and [c.email for c in second] == emails[2:]
        other = threading.Thread(target=lambda: seen.update(states(store, "i")))
        seen: dict[str, str] = {}
        other.start()  # another thread: another connection
        other.join()
        assert seen == {emails[0]: "sent", emails[1]: "sent",
                        emails[2]: "in_flight", emails[3]: "in_flight"}
        store.subscribers.add("late@example.org")
        ledger.seed()  # one more pending row for the next claim
        with pytest.raises(Exception, match="(?i)check"):  # a state the schema refuses
            ledger.claim(2, [("bogus", None, None, second)], meanwhile=lambda rows: rows)
        assert not ledger.conn.in_transaction
        counts = ledger.counts()
        assert counts["in_flight"] == 2 and counts["pending"] == 1  # all rolled back

        def interrupted(rows):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):  # the outcomes stay written, the batch pending
            ledger.claim(2, [("sent", "m", None, second)], meanwhile=interrupted)
        counts = ledger.counts()
        assert counts["sent"] == 4 and counts["in_flight"] == 0 and counts["pending"] == 1
    finally:
        ledger.close()


@pytest.mark.slow
def test_ledger_claim_interrupted_while_waiting_for_the_commit(store, monkeypatch):
    """A Ctrl-C (KeyboardInterrupt in the main thread) that arrives while claim waits for
    the helper's commit: claim waits for the helper to finish, then puts the new batch back
    to pending (nothing of it was sent), instead of leaving it in_flight (reported unknown
    by the next run) with the helper still inside a transaction on the connection."""
    emails = add(store, 4)
    ledger = store.ledger("i")
    ledger.seed()
    real_write = ledger._write

    def slow_write(outcomes, by_rowid):  # runs in the helper thread
        time.sleep(0.6)
        real_write(outcomes, by_rowid)

    try:
        first, _, _ = ledger.claim(2, meanwhile=len)
        monkeypatch.setattr(ledger, "_write", slow_write)
        main = threading.main_thread().ident
        timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            ledger.claim(2, [("sent", "m", None, first)], meanwhile=len)
        timer.join()
        assert not ledger.conn.in_transaction
        assert states(store, "i") == {emails[0]: "sent", emails[1]: "sent",
                                      emails[2]: "pending", emails[3]: "pending"}
    finally:
        ledger.close()


def test_another_process_can_write_during_a_claim_cycle(tmp_path):
    """The web app unsubscribes someone from another process while the ledger is busy."""
    path = tmp_path / "n.db"
    store = open_store(path)
    emails = add(store, 50)
    ledger = store.ledger("i")
    ledger.seed()
    script = (
        "import sys; from newsletter.store import open_store\n"
        "s = open_store(sys.argv[1])\n"
        "for e in sys.argv[2:]: s.subscribers.unsubscribe(e, 'web')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), *emails[10:20]])
    total = 0
    outcomes: list = []
    while True:
        claimed, _, _ = ledger.claim(5, outcomes)
        if not claimed:
            break
        total += len(claimed)
        outcomes = [("sent", None, None, claimed)]
    assert proc.wait(timeout=30) == 0
    assert 40 <= total <= 50
    assert store.subscribers.counts()["unsubscribed"] == 10
    store.close()


# -- events and test sends -----------------------------------------------------------------


def test_test_sends(store):
    assert store.approvals.last("i") is None
    store.approvals.record("i", "h1", ["a@example.org"])
    store.approvals.record("i", "h2", ["a@example.org", "b@example.org"])
    last = store.approvals.last("i")
    assert last.content_hash == "h2" and "b@example.org" in last.recipients


def test_events_are_kept_once_per_provider_and_id_and_counted(store):
    when = dt.datetime(2011, 5, 3, 12, 0, tzinfo=dt.UTC)
    assert store.events.add(event("e1", EventKind.DELIVERED, "a@example.org", timestamp=when))
    assert not store.events.add(event("e1", EventKind.OPENED, "a@example.org"))  # a replay
    other = ProviderEvent("postmark", "e1", EventKind.OPENED, "a@example.org", "2011-05")
    assert store.events.add(other)  # another provider's e1 is another event
    store.events.add(event("e2", EventKind.OPENED, "a@example.org"))
    store.events.add(event("e3", EventKind.OPENED, "b@example.org", issue="2011-06"))
    counts = store.events.counts("2011-05")
    assert {k: (c.events, c.addresses) for k, c in counts.items()} == {
        EventKind.DELIVERED: (1, 1), EventKind.OPENED: (2, 1)}
    assert store.events.total() == 4


def test_apply_events_suppresses_on_bounce_rejection_complaint_and_unsubscribes(store):
    for name in ("bounced", "temporary", "rejected", "complained", "unsub", "opened"):
        store.subscribers.add(f"{name}@example.org")
    batch = [
        event("1", EventKind.BOUNCED, "bounced@example.org", reason="550 no such user"),
        event("2", EventKind.BOUNCED, "temporary@example.org", temporary=True),
        event("3", EventKind.REJECTED, "rejected@example.org"),
        event("4", EventKind.COMPLAINED, "complained@example.org"),
        event("5", EventKind.UNSUBSCRIBED, "unsub@example.org"),
        event("6", EventKind.OPENED, "opened@example.org"),
        event("7", EventKind.OPENED, "not an address"),
    ]
    out = lifecycle.apply_events(store, batch, invalid=2)
    assert out.as_dict() == {"received": 9, "new": 6, "duplicates": 0, "invalid": 3,
                             "suppressed": 4, "settled": 0}
    status = {s.email.split("@")[0]: s.status for s in store.subscribers.list()}
    assert status == {"bounced": "suppressed", "temporary": "active",
                      "rejected": "suppressed", "complained": "suppressed",
                      "unsub": "unsubscribed", "opened": "active"}
    assert store.subscribers.get("bounced@example.org").status_reason == \
        "bounced: 550 no such user"
    again = lifecycle.apply_events(store, batch[:6])  # a replayed batch changes nothing
    assert again.duplicates == 6 and again.new == 0 and again.suppressed == 0


def test_issue_stats_counts_events_and_later_unsubscribes(store):
    for e in ("a@example.org", "b@example.org", "c@example.org"):
        store.subscribers.add(e)
    ledger = store.ledger("2011-05")
    ledger.seed()
    claimed, _, _ = ledger.claim(3)
    ledger.record([("sent", None, None, claimed)])
    lifecycle.unsubscribe(store, "a@example.org", "link", "one-click")
    lifecycle.apply_events(store, [
        event("1", EventKind.OPENED, "b@example.org"),
        event("2", EventKind.OPENED, "b@example.org"),
        event("3", EventKind.CLICKED, "b@example.org"),
        event("4", EventKind.OPENED, "b@example.org", issue="2011-06"),
        event("5", EventKind.UNSUBSCRIBED, "c@example.org"),
    ])
    stats = lifecycle.issue_stats(store, "2011-05")
    assert stats.ledger["sent"] == 3
    assert stats.count(EventKind.OPENED) == 2 and stats.events[EventKind.OPENED].addresses == 1
    assert stats.count(EventKind.CLICKED) == 1 and stats.count(EventKind.BOUNCED) == 0
    assert stats.unsubscribed == 2  # a by link, c by provider event


# -- the SQLite backend ------------------------------------------------------------------


def test_sqlite_sets_wal_schema_version_and_pragmas(tmp_path):
    with open_store(tmp_path / "a.db") as store:
        raw = store.conn.raw
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"subscribers", "sends", "test_sends", "events"} <= tables
    open_store(tmp_path / "a.db").close()  # reopening does not migrate twice


def test_the_schema_enforces_states(store):
    with pytest.raises(Exception, match="(?i)check constraint"):
        store.conn.execute("INSERT INTO sends (issue, email, state) VALUES ('i', 'a', 'bogus')")


def test_sqlite_migrates_a_version_1_database_and_converts_its_events(tmp_path):
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    raw.execute("INSERT INTO sends (issue, email, state) VALUES ('i', 'a@example.org', 'sent')")
    raw.executemany("INSERT INTO events VALUES (?, '2011-05', ?, ?, ?, ?, 't')", [
        ("sg1", "a@example.org", "processed", 1304424000, None),
        ("sg2", "a@example.org", "bounce", 1304424001, "550 unknown user"),
        ("sg3", "b@example.org", "bounce", None, "blocked"),
        ("sg4", "b@example.org", "dropped", None, None),
        ("sg5", "b@example.org", "open", None, None),
        ("sg6", "b@example.org", "spamreport", None, None),
        ("sg7", "b@example.org", "group_unsubscribe", None, None),
        ("sg8", "b@example.org", "click", None, None),
        ("sg9", "b@example.org", "delivered", None, None),
    ])
    raw.commit()
    raw.close()
    with open_store(path) as store:
        conn = store.conn.raw
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"sends_pending", "sends_unknown"} <= indexes and "sends_issue_state" not in indexes
        assert store.ledger("i").counts()["sent"] == 1
        rows = conn.execute("SELECT provider, event_id, kind, timestamp, provider_type, temporary"
                            " FROM events ORDER BY id").fetchall()
        assert rows[0] == ("sendgrid", "sg1", "queued", "2011-05-03T12:00:00Z", "processed", 0)
        assert [r[2] for r in rows] == ["queued", "bounced", "bounced", "rejected", "opened",
                                        "complained", "unsubscribed", "clicked", "delivered"]
        assert [r[5] for r in rows] == [0, 0, 1, 0, 0, 0, 0, 0, 0]  # "blocked": temporary
        # The converted rows keep their identity: the same event arriving again is a replay.
        assert not store.events.add(event("sg2", EventKind.BOUNCED, "a@example.org"))


def test_sqlite_ledger_writes_by_rowid_or_by_address_after_another_writer(tmp_path):
    """The ledger writes a batch's outcomes by rowid only while no other connection committed
    since the claim (PRAGMA data_version); after one did (here an unsubscribe), by address:
    the same result."""
    path = tmp_path / "n.db"
    store = open_store(path)
    emails = add(store, 6)
    ledger = store.ledger("i")
    ledger.seed()
    first, skipped, made = ledger.claim(3)
    assert [c.email for c in first] == emails[:3] and skipped == 0 and made is None
    with open_store(path) as other:
        other.subscribers.unsubscribe(emails[4], "web")  # another connection commits meanwhile
    assert not ledger._fresh()
    second, skipped, _ = ledger.claim(3, [("sent", "m1", None, first[:2]),
                                         ("rejected", None, "bad", first[2:])])
    assert [c.email for c in second] == [emails[3], emails[5]] and skipped == 1
    ledger.record([("sent", "m2", None, second)])  # nobody else wrote: by rowid
    rows = {r.email: f"{r.state}:{r.message_id or ''}" for r in ledger.rows()}
    assert rows == {emails[0]: "sent:m1", emails[1]: "sent:m1", emails[2]: "rejected:",
                    emails[3]: "sent:m2", emails[5]: "sent:m2"}
    ledger.record([("failed", None, "late", second)])  # only in-flight rows take an outcome
    assert ledger.counts()["sent"] == 4
    store.close()


def test_sqlite_group_commit_one_failing_write_does_not_undo_the_others(tmp_path):
    store = open_store(tmp_path / "group.db")
    group = GroupCommit(store.backend.connection)
    outcomes: dict[str, object] = {}

    def write(email: str, fail: bool) -> None:
        def fn(conn):
            Subscribers(conn).add(email)
            if fail:
                raise ValueError("this one fails")
            return email
        try:
            outcomes[email] = group.run(fn)
        except ValueError as exc:
            outcomes[email] = exc

    group._commit.acquire()  # hold the commit so all three queue up and commit together
    threads = [threading.Thread(target=write, args=(f"w{i}@example.org", i == 1))
               for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(group._queue) == 3
    group._commit.release()
    for t in threads:
        t.join(10)
    assert group.batches == 1  # one transaction, one fsync
    assert outcomes["w0@example.org"] == "w0@example.org"
    assert outcomes["w2@example.org"] == "w2@example.org"
    assert isinstance(outcomes["w1@example.org"], ValueError)
    assert {s.email for s in store.subscribers.list()} == {"w0@example.org", "w2@example.org"}
    store.close()


def test_store_write_of_many_threads_each_committed(store):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.write(lambda tx: tx.subscribers.add(f"w{i % 7}@example.org"))
        except StoreError as exc:  # w0 twice: one of them is refused, alone
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1
    assert {s.email for s in store.subscribers.list()} == {f"w{i}@example.org" for i in range(7)}


@pytest.mark.slow
def test_sqlite_one_send_lock_per_database(tmp_path):
    first, second = open_store(tmp_path / "n.db"), open_store(tmp_path / "." / "n.db")
    with first.send_lock():
        with pytest.raises(Exception, match="another `newsletter send --all` is running"):
            with second.send_lock():
                pass
    with second.send_lock():
        pass
    first.close()
    second.close()
