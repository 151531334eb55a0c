"""Several `send --all` processes sharing one send on PostgreSQL: claims skip each other's rows
(FOR UPDATE SKIP LOCKED), nobody gets two messages, and a sender killed with kill -9 leaves
only its own in-flight rows behind, which become unknown once no sender is alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.store import open_store

ISSUE = "issues/2011-05.yaml"


def recipients(outbox: Path) -> list[str]:
    """Addresses of the .eml files (`<timestamp>-<n>-<email>.eml`)."""
    return [p.name.split("-", 2)[2].removesuffix(".eml")
            for p in (outbox / "2011-05").glob("*.eml")]


def sender(project: Path, outbox: Path) -> subprocess.Popen:
    env = dict(os.environ, NEWSLETTER_OUTBOX=str(outbox))
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", ISSUE, "--all", "--yes", "--force",
         "--offline"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def seeded(url: str, n: int) -> list[str]:
    emails = [f"r{i:05d}@example.org" for i in range(n)]
    with open_store(url) as store:
        store.subscribers.add_many(((e, None) for e in emails), "test")
    return emails


@pytest.mark.slow
def test_two_senders_share_one_send_nobody_twice(project, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    emails = seeded(postgres_url, 3000)
    boxes = [project / "out-a", project / "out-b"]
    procs = [sender(project, box) for box in boxes]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    got = [recipients(box) for box in boxes]
    everyone = Counter(got[0] + got[1])
    assert sorted(everyone) == emails and max(everyone.values()) == 1  # all, once each
    with open_store(postgres_url) as store:
        assert store.ledger("2011-05").counts()["sent"] == 3000
        assert len(store.sender_records.seeded("2011-05")) == 1  # one seeded, one joined


@pytest.mark.slow
def test_a_killed_sender_leaves_only_its_own_rows_unknown(project, postgres_url,
                                                          monkeypatch):
    """One outbox for all (the file outbox is the recovery's evidence, as in real use)."""
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    emails = seeded(postgres_url, 4000)
    box = project / "out"
    a = sender(project, box)
    b = sender(project, box)
    deadline = time.monotonic() + 120
    while len(recipients(box)) < 1000:  # both well under way
        assert time.monotonic() < deadline and a.poll() is None, "sender A never got going"
        time.sleep(0.02)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out  # B carried on, and took the rows A never claimed
    with open_store(postgres_url) as store:
        counts = store.ledger("2011-05").counts()
        assert counts["pending"] == 0
        # B started while A was alive: A's in-flight rows were left to A.
        left = counts["in_flight"]
    assert 0 < left <= 1000  # at most A's batch in flight (the ledger's batch size today)
    c = sender(project, box)  # A is known dead (its own lock ended with its session)
    out, _ = c.communicate(timeout=300)
    assert f"{left} were in flight when an earlier send stopped" in out, out
    with open_store(postgres_url) as store:
        counts = store.ledger("2011-05").counts()
    # Per-message outcomes, same server: only the message A was on can be unknown (unless
    # its complete .eml shows it went out); the rest of A's batch was sent by C.
    assert counts["in_flight"] == counts["pending"] == 0 and counts["unknown"] <= 1
    assert c.returncode == (1 if counts["unknown"] else 0), out
    assert counts["sent"] + counts["unknown"] == len(emails)
    everyone = Counter(recipients(box))
    assert max(everyone.values()) == 1 and len(everyone) == counts["sent"]  # nobody twice


def test_senders_are_counted_by_their_live_sessions(postgres_url):
    with open_store(postgres_url) as store, open_store(postgres_url) as other:
        assert store.senders() == 0
        with store.send_lock() as first:
            assert first is True  # alone: rows in flight are a dead sender's
            with other.send_lock() as second:
                assert second is False  # another sender is alive: leave its rows alone
                assert store.senders() == 2
            assert store.senders() == 1
        assert store.senders() == 0


@pytest.mark.slow
def test_sqlite_still_refuses_a_second_sender(tmp_path):
    from newsletter.errors import NewsletterError

    with open_store(tmp_path / "n.db") as store, open_store(tmp_path / "n.db") as other:
        assert store.senders() is None
        with store.send_lock(), pytest.raises(NewsletterError, match="another"):
            with other.send_lock():
                pass


# Recovery on PostgreSQL: each sender holds a lock of its own, so its liveness is known per
# sender, and the durability epoch is the server's (postmaster start, stats reset, cluster).

def _claimed(store, sender_id: str, n: int) -> list[str]:
    ledger = store.ledger("2011-05")
    ledger.sender = sender_id
    return [c.email for c in ledger.claim(n)[0]]


def _states(store) -> dict[str, str]:
    return {r.email: r.state for r in store.ledger("2011-05").rows()}


def _dead(url: str, *, per_message: bool, epoch: str | None = None) -> str:
    """A sender that registered, held its lock, and is gone (its session closed)."""
    with open_store(url) as gone, gone.send_lock():
        me = gone.sender_records.start("2011-05", "elsewhere", 1,
                                       epoch or gone.durability_epoch(), per_message)
        gone.hold_sender(me)
        assert gone.sender_alive(me)
    return me.id


def test_postgres_epoch_is_stable_and_fast_connections_skip_the_wal_flush(postgres_url):
    with open_store(postgres_url) as store:
        assert store.durability_epoch() == store.durability_epoch()
        fast = store.connect_fast()
        assert fast is not None
        assert fast.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        assert fast.execute("SELECT source FROM pg_settings"
                            " WHERE name = 'synchronous_commit'").fetchone()[0] == "session"


def test_postgres_same_epoch_per_message_only_the_first_in_flight_row_is_unknown(postgres_url):
    from newsletter.deliver.recovery import recover

    seeded(postgres_url, 10)
    sid = _dead(postgres_url, per_message=True)
    with open_store(postgres_url) as store:
        store.ledger("2011-05").seed()
        claimed = _claimed(store, sid, 10)
        fast = type(store.ledger("2011-05"))(store.connect_fast(), "2011-05")
        for email in claimed[:3]:
            fast.record_one(email, "sent", "m", None)
        out = recover(store, "2011-05")
        assert (out.unknown, out.requeued) == (1, 6)
        state = _states(store)
    assert [state[e] for e in claimed] == ["sent"] * 3 + ["unknown"] + ["pending"] * 6


def test_postgres_another_epoch_makes_every_in_flight_row_unknown(postgres_url):
    from newsletter.deliver.recovery import recover

    seeded(postgres_url, 5)
    sid = _dead(postgres_url, per_message=True, epoch="an-earlier/server-start")
    with open_store(postgres_url) as store:
        store.ledger("2011-05").seed()
        _claimed(store, sid, 5)
        assert recover(store, "2011-05").unknown == 5
        assert set(_states(store).values()) == {"unknown"}


def test_postgres_a_dead_senders_rows_recover_beside_a_live_one(postgres_url):
    from newsletter.deliver.recovery import in_flight_now, recover

    seeded(postgres_url, 8)
    dead = _dead(postgres_url, per_message=False)
    with open_store(postgres_url) as store, open_store(postgres_url) as live:
        store.ledger("2011-05").seed()
        with live.send_lock():
            me = live.sender_records.start("2011-05", "here", os.getpid(),
                                           live.durability_epoch(), False)
            live.hold_sender(me)
            theirs = _claimed(store, me.id, 4)
            gone = _claimed(store, dead, 4)
            with store.send_lock() as alone:
                assert alone is False and store.knows_each_sender
                assert store.sender_alive(me)
                assert not store.sender_alive(store.sender_records.get([dead])[dead])
                assert in_flight_now(store, "2011-05") == (4, 4)
                assert recover(store, "2011-05").unknown == 4
            state = _states(store)
            assert {state[e] for e in gone} == {"unknown"}
            assert {state[e] for e in theirs} == {"in_flight"}  # the live sender's, untouched
        # Its session released the lock: now it is dead too.
        assert not store.sender_alive(me)


@pytest.mark.slow
def test_postgres_epoch_changes_when_the_server_reinitialises_after_a_crashed_backend():
    """A backend killed with kill -9 makes the server drop its shared memory (WAL buffers of
    commits made with synchronous_commit off included) without restarting the postmaster."""
    import psycopg

    from tests.support import postgres

    bindir = postgres.find_bindir()
    if bindir is None:
        pytest.skip(postgres.missing_reason())
    with postgres.Cluster.start(bindir) as cluster, cluster.database() as url:
        with open_store(url) as store:
            before = store.durability_epoch()
            victim = psycopg.connect(url)
            os.kill(victim.execute("SELECT pg_backend_pid()").fetchone()[0], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while True:
                try:
                    after = store.durability_epoch()
                    break
                except Exception:  # the server is reinitialising
                    assert time.monotonic() < deadline, "the server did not come back"
                    time.sleep(0.2)
            assert after != before
            assert after == store.durability_epoch()


def test_postgres_epoch_works_for_a_role_without_privileges(postgres_url):
    import psycopg

    with open_store(postgres_url) as store:
        full = store.durability_epoch()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("CREATE ROLE plain_reader LOGIN PASSWORD 'pw'")
            admin.execute("GRANT SELECT ON newsletter_schema TO plain_reader")  # opening it
            admin.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
        try:
            url = postgres_url.replace(postgres_url.split("@")[0], "postgresql://plain_reader:pw")
            with open_store(url) as plain:
                epoch = plain.durability_epoch()
            assert epoch == f"cluster/{full.split('/', 1)[1]}"  # same server state, no id
        finally:
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC")
                admin.execute("DROP OWNED BY plain_reader")
                admin.execute("DROP ROLE plain_reader")


# The seed: where senders share a send, one seeds (in the background, under the seed lock)
# and the others follow it or join the send it seeded, instead of adding everyone again.

def _register(store, issue: str = "2011-05"):
    me = store.sender_records.start(issue, "host", os.getpid(), store.durability_epoch(), False)
    store.hold_sender(me)
    return me


def _until_seeded(seeder) -> None:
    """As the claims of a send that has taken everything do: wait for chunks until the end."""
    while not seeder.over:
        seeder.wait(seeder.chunks)


def test_postgres_one_sender_seeds_and_the_others_join(postgres_url):
    from newsletter.deliver.sender import _Seeder, _SeedingElsewhere, _start_seeding

    emails = seeded(postgres_url, 2500)
    with open_store(postgres_url) as a, open_store(postgres_url) as b:
        with a.send_lock(), b.send_lock():
            me_a, me_b = _register(a), _register(b)
            assert a.try_seed_lock("2011-05")  # as if A were seeding now
            joined = _start_seeding(b, b.ledger("2011-05"), me_b)
            assert isinstance(joined, _SeedingElsewhere) and b.seeding_elsewhere("2011-05")
            a.seed_unlock("2011-05")
            seeder = _start_seeding(a, a.ledger("2011-05"), me_a)
            assert isinstance(seeder, _Seeder)
            _until_seeded(seeder)
            seeder.join()
            assert seeder.error is None and seeder.chunks == 3  # 1,000 a chunk
            assert a.ledger("2011-05").counts()["pending"] == len(emails)
            assert [s.id for s in a.sender_records.seeded("2011-05")] == [me_a.id]
            assert not a.seeding_elsewhere("2011-05")  # the seed lock was let go
            # B's claims follow A's seeding: it is over, so B's next claim walks everything.
            assert not joined.over
            joined.wait(0)
            assert joined.over
            # A third sender while A is alive: the ledger is seeded, it joins as it is.
            with open_store(postgres_url) as c, c.send_lock():
                me_c = _register(c)
                assert _start_seeding(c, c.ledger("2011-05"), me_c) is None
        # A is gone: a later sender seeds again (adding only people who joined since).
        with open_store(postgres_url) as d, d.send_lock():
            later = _start_seeding(d, d.ledger("2011-05"), _register(d))
            assert isinstance(later, _Seeder)
            _until_seeded(later)
            later.join()
            assert later.error is None and later.chunks == 0


def test_postgres_the_seed_lock_is_let_go_when_its_sender_dies(postgres_url):
    with open_store(postgres_url) as a, open_store(postgres_url) as b:
        with b.send_lock():
            with a.send_lock():
                assert a.try_seed_lock("2011-05")
                assert not b.try_seed_lock("2011-05") and b.seeding_elsewhere("2011-05")
            # A's send lock session ended (as when its process is killed)
            assert not b.seeding_elsewhere("2011-05") and b.try_seed_lock("2011-05")


def test_postgres_a_seed_cut_short_by_the_end_of_the_send_leaves_the_rest_to_the_next(
        postgres_url):
    from newsletter.deliver.sender import _start_seeding

    seeded(postgres_url, 5000)
    with open_store(postgres_url) as a:
        with a.send_lock():
            me = _register(a)
            seeder = _start_seeding(a, a.ledger("2011-05"), me)
            seeder.wait(0)  # the first chunk is in
            seeder.join()  # the send stopped: the seed stops after its chunk
            assert seeder.error is None and not a.seeding_elsewhere("2011-05")
            added = a.ledger("2011-05").counts()["pending"]
            assert 1000 <= added < 5000 and a.sender_records.seeded("2011-05") == []
        with a.send_lock():
            again = _start_seeding(a, a.ledger("2011-05"), _register(a))
            _until_seeded(again)
            again.join()
            assert a.ledger("2011-05").counts()["pending"] == 5000
