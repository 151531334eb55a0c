"""Several `send --all` processes on one PostgreSQL send, with the rest of the world going on:
a sender killed mid-send among four, one-click unsubscribes through `newsletter serve` while
two senders run, and `newsletter stop` from a third process reaching every sender.

Every process is real (subprocesses, one throwaway server); one shared file outbox is the
evidence of who got a message. The sends are paced (`sending.rate_limit`, small batches) so
they last long enough for the other process to act in the middle on a busy two-core machine;
the assertions depend on the order of events, never on how long anything took."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from newsletter import tokens
from newsletter.config import load_settings
from newsletter.store import open_store

ISSUE = "issues/2011-05.yaml"
SLUG = "2011-05"
CLI = [sys.executable, "-m", "newsletter"]
WAIT = 120  # seconds: an upper bound for a stage on a loaded machine, never a measurement
ROOT = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment for a `newsletter` process, importing the package beside these
    tests (not whichever checkout the venv installed, e.g. from a git worktree)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def recipients(outbox: Path) -> list[str]:
    """Addresses of the .eml files (`<timestamp>-<n>-<email>.eml`)."""
    return [p.name.split("-", 2)[2].removesuffix(".eml")
            for p in (outbox / SLUG).glob("*.eml")]


def seeded(url: str, n: int) -> list[str]:
    """n active subscribers, in id order (which is the ledger's claim order)."""
    emails = [f"r{i:05d}@example.org" for i in range(n)]
    with open_store(url) as store:
        store.subscribers.add_many(((e, None) for e in emails), "test")
    return emails


def paced(project: Path, rate: int, batch: int) -> None:
    """Each sender at most `rate` messages a second, in batches of `batch`."""
    toml = project / "newsletter.toml"
    text = toml.read_text(encoding="utf-8")
    assert "rate_limit = 0" in text and "batch_size = 1000" in text
    toml.write_text(text.replace("rate_limit = 0", f"rate_limit = {rate}")
                    .replace("batch_size = 1000", f"batch_size = {batch}"), encoding="utf-8")


def sender(project: Path, outbox: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "send", ISSUE, "--all", "--yes", "--force", "--offline"], cwd=project,
        env=child_env(NEWSLETTER_OUTBOX=str(outbox)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def by_sender(url: str) -> dict[int, Counter]:
    """Ledger states per sending process (pid), from the rows each one stamped."""
    found: dict[int, Counter] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for pid, state, n in conn.execute(
                "SELECT r.pid, s.state, COUNT(*) FROM sends s JOIN senders r"
                " ON r.sender = s.sender WHERE s.issue = %s GROUP BY 1, 2", (SLUG,)):
            found.setdefault(pid, Counter())[state] = n
    return found


def counts(url: str) -> dict[str, int]:
    with open_store(url) as store:
        return store.ledger(SLUG).counts()


def wait_for(what: str, ready: Callable[[], bool], procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + WAIT
    while not ready():
        for proc in procs:
            assert proc.poll() is None, f"a sender ended before {what}: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=WAIT)
    return proc.returncode, out


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_four_senders_one_killed_the_rest_finish_and_a_later_one_recovers(
        project, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    emails = seeded(postgres_url, 2000)
    # 4 x 100/s: about 5 s. Batches of 25 each wait a quarter second in the pacer after
    # their claim, so a sender is nearly always holding a batch in flight.
    paced(project, rate=100, batch=25)
    box = project / "out"
    procs = [sender(project, box) for _ in range(4)]
    victim, survivors = procs[0], procs[1:]
    try:
        # All four have claimed (so none starts later and recovers the victim's rows while
        # the others run), about half is sent, and the victim has a batch in flight.
        def halfway() -> bool:
            seen = by_sender(postgres_url)
            return (all(p.pid in seen for p in procs)
                    and sum(c["sent"] for c in seen.values()) >= len(emails) // 2
                    and seen[victim.pid]["in_flight"] > 0)

        wait_for("all four senders run, half is sent, the victim has rows in flight",
                 halfway, procs)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        left = by_sender(postgres_url)[victim.pid]["in_flight"]  # fixed now: nobody takes them
        # `status` knows at once that these rows' sender is dead, while the others run.
        shown = subprocess.run([*CLI, "status", ISSUE, "--json"], cwd=project, env=child_env(),
                               capture_output=True, text=True, timeout=WAIT)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["ledger"]["interrupted"] == left
        for proc in survivors:
            code, out = finish(proc)
            assert code == 0, out  # they carried on and took every row nobody held
    finally:
        stop_all(procs)
    seen = by_sender(postgres_url)
    assert all(seen[p.pid]["sent"] > 0 for p in procs)  # four really shared the send
    state = counts(postgres_url)
    # The survivors left the victim's rows alone (it was alive when they started), and
    # nothing else: its in-flight batch is all that is not done.
    assert seen[victim.pid]["in_flight"] == left
    assert state["pending"] == 0 and state["in_flight"] == left
    assert 0 < left <= 25

    code, out = finish(sender(project, box))  # the victim is known dead: its lock is gone
    assert f"{left} were in flight when an earlier send stopped" in out, out
    state = counts(postgres_url)
    assert state["pending"] == state["in_flight"] == 0
    # Per-message outcomes: only the message the victim was writing can be unknown (unless
    # its complete .eml shows it was written); the rest of its batch went out now.
    assert state["unknown"] <= 1 and state["sent"] + state["unknown"] == len(emails)
    assert code == (1 if state["unknown"] else 0), out
    everyone = Counter(recipients(box))
    assert max(everyone.values()) == 1  # nobody twice, across five processes
    assert len(everyone) == state["sent"]
    with open_store(postgres_url) as store:
        unknown = set(store.ledger(SLUG).emails("unknown"))
    assert not unknown & set(everyone)  # an unknown row has no complete message


def start_serve(project: Path) -> tuple[subprocess.Popen, str]:
    """`newsletter serve --port 0` on 127.0.0.1; its base URL from the line it prints."""
    proc = subprocess.Popen([*CLI, "serve", "--port", "0", "--threads", "4"], cwd=project,
                            env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + WAIT
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if found:
            # Keep reading its output so the server never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, f"127.0.0.1:{found.group(1)}"
    proc.kill()
    raise AssertionError(f"serve did not start: {''.join(lines)}{proc.stdout.read()}")


def one_click(host: str, links: list[str]) -> list[int]:
    """RFC 8058: POST `List-Unsubscribe=One-Click` to each List-Unsubscribe URL (public
    address replaced by the local server) on one keep-alive connection; the statuses."""
    conn = http.client.HTTPConnection(host, timeout=60)
    statuses = []
    try:
        for url in links:
            parts = urllib.parse.urlsplit(url)
            conn.request("POST", f"{parts.path}?{parts.query}", body=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()
    return statuses


@pytest.mark.slow
def test_one_click_unsubscribes_through_serve_during_a_two_sender_send(
        project, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    emails = seeded(postgres_url, 1500)
    paced(project, rate=100, batch=10)  # 2 x 100/s: about 7 s
    settings = load_settings(project / "newsletter.toml")
    box = project / "out"
    server, host = start_serve(project)
    procs = [sender(project, box) for _ in range(2)]
    try:
        wait_for("both senders have sent", lambda: (
            len(seen := by_sender(postgres_url)) == 2
            and all(c["sent"] for c in seen.values())), procs)
        with open_store(postgres_url) as store:
            done = store.ledger(SLUG).emails("sent")
            queue = store.ledger(SLUG).emails("pending")
        # The 100 in the middle of the queue are seconds away from their claim (one sender
        # walks up from the first row, the other down from the last: they meet there); 20
        # readers who already have the issue unsubscribe too, and 40 next in line race with
        # the claims (either outcome is right, but only one). Two clients at once, like two
        # readers.
        middle = len(queue) // 2
        later, earlier, racing = queue[middle - 50:middle + 50], done[:20], queue[:40]
        assert not set(racing) & set(later)
        links = [tokens.unsubscribe_url(settings, e) for e in racing + later + earlier]
        results: list[list[int]] = [[], []]
        clients = [threading.Thread(target=lambda i=i: results[i].extend(
            one_click(host, links[i::2]))) for i in range(2)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(WAIT)
        assert results[0] + results[1] == [200] * len(links)
        # Recorded while their rows still waited: each claim of them comes after the
        # unsubscribe (a precondition of this test, not of the product).
        with open_store(postgres_url) as store:
            waiting = {r.email: r.state for r in store.ledger(SLUG).rows()}
        assert {waiting[e] for e in later} == {"pending"}, "the send reached them too soon"
        outputs = [finish(proc) for proc in procs]
    finally:
        stop_all(procs)
        server.terminate()
        server.wait(30)
    for code, out in outputs:
        assert code == 0, out
    with open_store(postgres_url) as store:
        status = {e: store.subscribers.get(e).status for e in racing + later + earlier}
        state = store.ledger(SLUG).counts()
        rows = {r.email: r.state for r in store.ledger(SLUG).rows()}
    assert set(status.values()) == {"unsubscribed"}  # every one-click was recorded
    everyone = Counter(recipients(box))
    assert max(everyone.values()) == 1  # nobody twice
    assert not set(later) & set(everyone)  # unsubscribed before their claim: no message
    assert set(earlier) <= set(everyone)  # they had it already, once
    assert not set(later) & set(rows)  # dropped from the ledger, so a rerun does not add them
    # A racing reader was either claimed first (sent: a message) or dropped at the claim (no
    # row, no message), never both or neither.
    for email in racing:
        assert rows.get(email) in ("sent", None), (email, rows.get(email))
        assert (rows.get(email) == "sent") == (email in everyone), email
    dropped = [e for e in racing + later if e not in rows]
    # Each sender counted the ones it dropped: together, every one dropped.
    skipped = [re.search(r"(\d+) skipped: unsubscribed", out) for _, out in outputs]
    assert sum(int(m.group(1)) for m in skipped if m) == len(dropped)
    assert state["sent"] == len(everyone) == len(emails) - len(dropped)
    assert state["pending"] == state["in_flight"] == state["unknown"] == 0


@pytest.mark.slow
def test_stop_reaches_every_sender_and_a_later_send_finishes(project, postgres_url,
                                                             monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    emails = seeded(postgres_url, 2000)
    paced(project, rate=50, batch=10)  # 2 x 50/s: 20 s unless stopped
    box = project / "out"
    procs = [sender(project, box) for _ in range(2)]
    try:
        # Both have sent: both watch for the request (a send starting later would clear it).
        wait_for("both senders have sent", lambda: (
            len(seen := by_sender(postgres_url)) == 2
            and all(c["sent"] for c in seen.values())), procs)
        stopper = subprocess.run([*CLI, "stop", ISSUE], cwd=project, env=child_env(),
                                 capture_output=True, text=True, timeout=WAIT)
        assert stopper.returncode == 0, stopper.stderr
        asked = time.monotonic()
        outputs = [finish(proc) for proc in procs]
        took = time.monotonic() - asked
    finally:
        stop_all(procs)
    for code, out in outputs:
        assert code == 1, out  # a stopped send is not a complete one
        assert "Stop requested by" in out and "stopped: the ledger is consistent" in out, out
    state = counts(postgres_url)
    # Both stopped long before the 20 s the rest would take (the watcher looks every 0.5 s).
    assert state["sent"] < len(emails) // 2, (took, state)
    assert state["in_flight"] == state["unknown"] == 0  # each finished its batch, then stopped
    assert state["sent"] + state["pending"] == len(emails)
    assert len(recipients(box)) == state["sent"]

    paced_toml = project / "newsletter.toml"
    paced_toml.write_text(paced_toml.read_text(encoding="utf-8").replace(
        "rate_limit = 50", "rate_limit = 0"), encoding="utf-8")  # the rest at full speed
    code, out = finish(sender(project, box))
    assert code == 0, out
    assert counts(postgres_url)["sent"] == len(emails)
    everyone = Counter(recipients(box))
    assert sorted(everyone) == emails and max(everyone.values()) == 1  # all, once each
