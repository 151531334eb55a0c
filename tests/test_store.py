"""The SQLite store: schema, subscribers, and the send ledger's state machine."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import tracemalloc

import pytest

from newsletter import store
from newsletter.errors import StoreError


@pytest.fixture
def conn(tmp_path):
    c = store.connect(tmp_path / "sub" / "dir" / "n.db")  # parent folders are created
    yield c
    c.close()


def add(conn, n: int, start: int = 0) -> list[str]:
    emails = [f"user{i:06d}@example.org" for i in range(start, start + n)]
    with store.transaction(conn):
        for e in emails:
            conn.execute(
                "INSERT INTO subscribers (email, name, status) VALUES (?, ?, 'active')", (e, e[:8])
            )
    return emails


def test_connect_sets_wal_schema_version_and_pragmas(tmp_path):
    c = store.connect(tmp_path / "a.db")
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert c.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"subscribers", "sends", "test_sends", "events"} <= tables
    c.close()
    # Reopening does not migrate twice (it would fail on CREATE TABLE).
    store.connect(tmp_path / "a.db").close()


def test_agreed_columns_exist(conn):
    def cols(table):
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]

    assert cols("subscribers") == [
        "id", "email", "name", "status", "status_reason", "created_at", "updated_at",
        "unsubscribed_at", "consent_at", "consent_source", "consent_ip", "consent_form",
        "confirmed_at",
    ]
    assert cols("sends") == [
        "issue", "email", "state", "message_id", "last_error", "attempts", "updated_at",
    ]
    assert cols("test_sends") == ["id", "issue", "content_hash", "recipients", "sent_at"]
    assert cols("events") == [
        "sg_event_id", "issue", "email", "event", "timestamp", "reason", "received_at",
    ]


def test_not_a_database_is_a_store_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        store.connect(bad)


def test_normalise_email():
    assert store.normalise_email("  Ann.Smith@Example.ORG ") == "ann.smith@example.org"
    with pytest.raises(ValueError):
        store.normalise_email("not-an-address")
    with pytest.raises(ValueError):
        store.normalise_email("a@b@c.org")


def test_normalise_email_idna_domain_is_one_address(conn):
    # The providers send to the IDNA (xn--) form and SendGrid's webhook reports that form:
    # both spellings must be the one subscriber row (else two copies, or a bounce that
    # suppresses nobody).
    assert store.normalise_email("d@xn--bcher-kva.example") == "d@bücher.example"
    assert store.normalise_email("d@bücher.example") == "d@bücher.example"
    from newsletter.subscribers import lifecycle
    store.add_subscriber(conn, store.normalise_email("d@bücher.example"))
    with store.transaction(conn):
        applied = lifecycle.apply_events(conn, [{"sg_event_id": "e1", "event": "bounce",
                                                 "email": "d@xn--bcher-kva.example",
                                                 "timestamp": 1, "issue": "2011-05"}])
    assert applied.suppressed == 1
    assert store.get_subscriber(conn, "d@bücher.example").status == "suppressed"


def test_add_get_unsubscribe(conn):
    s = store.add_subscriber(conn, "a@example.org", "Ann", consent_source="form")
    assert s.status == "active" and s.consent_source == "form" and s.consent_at
    with pytest.raises(StoreError, match="already"):
        store.add_subscriber(conn, "a@example.org")
    assert store.unsubscribe(conn, "a@example.org", "clicked the link")
    s = store.get_subscriber(conn, "a@example.org")
    assert s.status == "unsubscribed" and s.status_reason == "clicked the link"
    assert s.unsubscribed_at
    assert store.unsubscribe(conn, "a@example.org")  # idempotent
    assert not store.unsubscribe(conn, "nobody@example.org")
    store.set_status(conn, "a@example.org", "suppressed", "bounce")
    store.unsubscribe(conn, "a@example.org")
    assert store.get_subscriber(conn, "a@example.org").status == "suppressed"


def test_active_batches_are_keyset_pages_in_id_order(conn):
    emails = add(conn, 25)
    store.unsubscribe(conn, emails[3])
    batches = list(store.active_batches(conn, batch=10))
    assert [len(b) for b in batches] == [10, 10, 4]
    got = [s.email for b in batches for s in b]
    assert got == [e for e in emails if e != emails[3]]
    assert [s.email for s in store.list_subscribers(conn, status="unsubscribed")] == [emails[3]]


def test_active_batches_memory_is_flat(conn):
    add(conn, 20_000)
    tracemalloc.start()
    n = 0
    for batch in store.active_batches(conn, batch=500):
        n += len(batch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 20_000
    assert peak < 2_000_000  # one page, not 20,000 rows


def test_ledger_seed_claim_record_cycle(conn):
    emails = add(conn, 5)
    assert store.seed(conn, "2011-05", chunk=2) == 5
    assert store.seed(conn, "2011-05") == 0  # INSERT OR IGNORE: never twice
    claimed, skipped = store.claim(conn, "2011-05", 3)
    assert [c.email for c in claimed] == emails[:3] and skipped == 0
    counts = store.ledger_counts(conn, "2011-05")
    assert counts["in_flight"] == 3 and counts["pending"] == 2
    store.record(conn, "2011-05", [(emails[0], "sent", "m1", None),
                                   (emails[1], "rejected", None, "bad mailbox"),
                                   (emails[2], "unknown", None, "timeout")])
    counts = store.ledger_counts(conn, "2011-05")
    assert [counts[s] for s in ("sent", "rejected", "unknown", "in_flight")] == [1, 1, 1, 0]
    row = conn.execute("SELECT * FROM sends WHERE email = ?", (emails[0],)).fetchone()
    assert row["message_id"] == "m1" and row["attempts"] == 1 and row["updated_at"]
    # Recording twice does nothing: only in-flight rows take an outcome.
    store.record(conn, "2011-05", [(emails[0], "failed", None, "late")])
    assert store.ledger_counts(conn, "2011-05")["sent"] == 1


def test_claim_skips_and_drops_inactive(conn):
    emails = add(conn, 4)
    store.seed(conn, "i")
    store.unsubscribe(conn, emails[1])
    claimed, skipped = store.claim(conn, "i", 10)
    assert [c.email for c in claimed] == [emails[0], emails[2], emails[3]]
    assert skipped == 1
    assert store.seed(conn, "i") == 0  # not re-added while unsubscribed
    assert sum(store.ledger_counts(conn, "i").values()) == 3


def test_recover_in_flight_becomes_unknown_and_requeue(conn):
    emails = add(conn, 3)
    store.seed(conn, "i")
    store.claim(conn, "i", 2)
    assert store.recover_in_flight(conn, "i") == 2
    assert store.ledger_emails(conn, "i", "unknown") == emails[:2]
    assert store.requeue(conn, "i", ["unknown"]) == 2
    assert store.ledger_counts(conn, "i")["pending"] == 3
    with pytest.raises(StoreError):
        store.requeue(conn, "i", ["sent"])


def test_release_returns_rows_to_pending(conn):
    emails = add(conn, 2)
    store.seed(conn, "i")
    store.claim(conn, "i", 2)
    store.release(conn, "i", emails)
    assert store.ledger_counts(conn, "i")["pending"] == 2


def test_test_sends_and_events(conn):
    assert store.last_test_send(conn, "i") is None
    store.record_test_send(conn, "i", "h1", ["a@example.org"])
    store.record_test_send(conn, "i", "h2", ["a@example.org", "b@example.org"])
    row = store.last_test_send(conn, "i")
    assert row["content_hash"] == "h2" and "b@example.org" in row["recipients"]
    conn.execute("INSERT INTO events VALUES ('e1','i','a@example.org','delivered',1,NULL,'t')")
    conn.execute("INSERT INTO events VALUES ('e2','i','a@example.org','open',2,NULL,'t')")
    assert store.event_counts(conn, "i") == {"delivered": 1, "open": 1}


def test_another_process_can_write_during_a_claim_cycle(tmp_path):
    """The web app unsubscribes someone from another process while the ledger is busy."""
    path = tmp_path / "n.db"
    conn = store.connect(path)
    emails = add(conn, 50)
    store.seed(conn, "i")
    script = (
        "import sys; from newsletter import store\n"
        "c = store.connect(sys.argv[1])\n"
        "for e in sys.argv[2:]: store.unsubscribe(c, e, 'web')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), *emails[10:20]])
    total = 0
    while True:
        claimed, _ = store.claim(conn, "i", 5)
        if not claimed:
            break
        total += len(claimed)
        store.record(conn, "i", [(c.email, "sent", None, None) for c in claimed])
    assert proc.wait(timeout=30) == 0
    assert 40 <= total <= 50
    assert store.count_subscribers(conn)["unsubscribed"] == 10


def test_schema_enforces_states(conn):
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO sends (issue, email, state) VALUES ('i', 'a', 'bogus')")


def test_migrates_a_version_1_database(tmp_path):
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.executescript(store._MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    raw.execute("INSERT INTO sends (issue, email, state) VALUES ('i', 'a@example.org', 'sent')")
    raw.commit()
    raw.close()
    conn = store.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 3
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"sends_pending", "sends_unknown"} <= indexes and "sends_issue_state" not in indexes
    assert store.ledger_counts(conn, "i")["sent"] == 1


def test_ledger_writes_outcomes_by_rowid_or_by_address_after_another_writer(tmp_path):
    """Ledger writes a batch's outcomes by rowid only while no other connection committed
    since the claim; after one did (here an unsubscribe), by address: same result."""
    path = tmp_path / "n.db"
    conn = store.connect(path)
    emails = add(conn, 6)
    store.seed(conn, "i")
    ledger = store.Ledger(conn, "i")
    first, skipped, made = ledger.claim(3)
    assert [c.email for c in first] == emails[:3] and skipped == 0 and made is None
    other = store.connect(path)
    store.unsubscribe(other, emails[4])  # another connection commits meanwhile
    other.close()
    second, skipped, _ = ledger.claim(3, [("sent", "m1", None, first[:2]),
                                         ("rejected", None, "bad", first[2:])])
    assert [c.email for c in second] == [emails[3], emails[5]] and skipped == 1
    ledger.record([("sent", "m2", None, second)])  # nobody else wrote: by rowid
    rows = dict(conn.execute("SELECT email, state || ':' || IFNULL(message_id, '') FROM sends"))
    assert rows == {emails[0]: "sent:m1", emails[1]: "sent:m1", emails[2]: "rejected:",
                    emails[3]: "sent:m2", emails[5]: "sent:m2"}
    ledger.record([("failed", None, "late", second)])  # only in-flight rows take an outcome
    assert store.ledger_counts(conn, "i")["sent"] == 4


def test_ledger_claim_meanwhile_returns_only_once_committed(tmp_path):
    """claim(meanwhile=f): f gets the claimed rows while the outcomes are written and the
    transaction commits in a helper thread; when claim returns, another connection sees the
    batch in_flight and the previous outcomes. A failing write or commit raises and keeps
    nothing of the transaction (the new batch is still pending)."""
    path = tmp_path / "n.db"
    conn = store.connect(path)
    emails = add(conn, 4)
    store.seed(conn, "i")
    ledger = store.Ledger(conn, "i")
    try:
        first, _, made = ledger.claim(2, meanwhile=lambda rows: [c.email for c in rows])
        assert made == emails[:2]
        second, _, made = ledger.claim(2, [("sent", "m", None, first)],
                                       meanwhile=lambda rows: len(rows))
        assert made == 2 and [c.email for c in second] == emails[2:]
        other = store.connect(path)
        states = dict(other.execute("SELECT email, state FROM sends"))
        assert states == {emails[0]: "sent", emails[1]: "sent",
                          emails[2]: "in_flight", emails[3]: "in_flight"}
        other.close()
        store.add_subscriber(conn, "late@example.org")
        store.seed(conn, "i")  # one more pending row for the next claim
        with pytest.raises(sqlite3.IntegrityError):  # CHECK (state IN ...) in the helper
            ledger.claim(2, [("bogus", None, None, second)], meanwhile=lambda rows: rows)
        assert not conn.in_transaction
        counts = store.ledger_counts(conn, "i")
        assert counts["in_flight"] == 2 and counts["pending"] == 1  # all rolled back

        def interrupted(rows):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):  # the outcomes stay written, the batch pending
            ledger.claim(2, [("sent", "m", None, second)], meanwhile=interrupted)
        counts = store.ledger_counts(conn, "i")
        assert counts["sent"] == 4 and counts["in_flight"] == 0 and counts["pending"] == 1
    finally:
        ledger.close()


def test_ledger_claim_interrupted_while_waiting_for_the_commit(tmp_path, monkeypatch):
    """A Ctrl-C (KeyboardInterrupt in the main thread) that arrives while claim waits for
    the helper's commit: claim waits for the helper to finish, then puts the new batch back
    to pending (nothing of it was sent), instead of leaving it in_flight (reported unknown
    by the next run) with the helper still inside a transaction on the connection."""
    import signal
    import threading

    path = tmp_path / "n.db"
    conn = store.connect(path)
    emails = add(conn, 4)
    store.seed(conn, "i")
    ledger = store.Ledger(conn, "i")
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
        assert not conn.in_transaction
        states = dict(conn.execute("SELECT email, state FROM sends"))
        assert states == {emails[0]: "sent", emails[1]: "sent",
                          emails[2]: "pending", emails[3]: "pending"}
    finally:
        ledger.close()
