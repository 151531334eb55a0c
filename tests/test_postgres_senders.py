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


@pytest.mark.slow
def test_a_killed_sender_leaves_only_its_own_rows_unknown(project, postgres_url,
                                                          monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    emails = seeded(postgres_url, 4000)
    a_box, b_box, c_box = project / "out-a", project / "out-b", project / "out-c"
    a = sender(project, a_box)
    b = sender(project, b_box)
    deadline = time.monotonic() + 120
    while len(recipients(a_box)) < 500:  # halfway through its share
        assert time.monotonic() < deadline and a.poll() is None, "sender A never got going"
        time.sleep(0.02)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out  # B carried on, and took the rows A never claimed
    with open_store(postgres_url) as store:
        counts = store.ledger("2011-05").counts()
        assert counts["pending"] == 0
        # B was not alone when it started: A's in-flight rows were left to A.
        left = counts["in_flight"]
    c = sender(project, c_box)  # alone now: A is known dead (its session ended with it)
    out, _ = c.communicate(timeout=300)
    assert f"{left} were in flight when an earlier send stopped" in out  # exit 1: unknowns
    with open_store(postgres_url) as store:
        counts = store.ledger("2011-05").counts()
    assert counts["in_flight"] == 0 and counts["unknown"] == left
    assert 0 < left <= 1000  # at most A's batch in flight (the ledger's batch size today)
    everyone = Counter(recipients(a_box) + recipients(b_box) + recipients(c_box))
    assert max(everyone.values()) == 1  # nobody twice
    assert counts["sent"] + counts["unknown"] == len(emails)


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


def test_sqlite_still_refuses_a_second_sender(tmp_path):
    from newsletter.errors import NewsletterError

    with open_store(tmp_path / "n.db") as store, open_store(tmp_path / "n.db") as other:
        assert store.senders() is None
        with store.send_lock(), pytest.raises(NewsletterError, match="another"):
            with other.send_lock():
                pass
