"""`kill -9` of `send --all` at random points, each followed by a rerun, through each provider
to its real loopback peer: nobody gets two copies, everyone ends sent or listed by
`status --unknown`, and each kill leaves at most one message per connection (smtp, file) or
one request (sendgrid) unknown. SendGrid's unknowns are then settled by signed webhook events
posted to `serve`. The seed of each run is printed so a failure can be replayed."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.deliver.recovery import in_flight_now
from newsletter.store import open_store
from newsletter.web.app import create_app
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.sending import add_subscribers, counts
from tests.support.serve import call, keypair, running, signed_headers
from tests.support.smtp_server import SmtpPeer
from tests.test_send_integration import SEND_ALL, _cli, _slow, recipients_of

ISSUE = "2011-05"
KILLS = 20
KEY = "SG.test-key-recovery"


def _batch(project: Path, size: int) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "batch_size = 1000", f"batch_size = {size}"), encoding="utf-8")


def _kill_chain(project: Path, env: dict, progress: Callable[[], int], *, per_kill: int,
                step: int, seed: int) -> list[int]:
    """KILLS runs, each killed at a random point (mostly after a random number of messages
    more, sometimes at a random moment, start-up and recovery included). Returns the unknown
    count left by each kill's recovery; asserts that after every kill `status` says
    interrupted, never in flight."""
    rng = random.Random(seed)
    db = project / "newsletter.db"
    unknown_after: list[int] = []
    for _ in range(KILLS):
        proc = _cli(project, *SEND_ALL, env=env)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            target = progress() + rng.randint(1, step)
            deadline = time.monotonic() + 30
            while progress() < target and proc.poll() is None:
                assert time.monotonic() < deadline, "the send did not get going"
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.01))
        if proc.poll() is not None:
            break  # finished before the kill point
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with open_store(db) as store:
            live, _ = in_flight_now(store, ISSUE)
        assert live == 0, "a dead send's rows reported as in flight"
        unknown_after.append(counts(db)["unknown"])
    # The last rerun settles the last kill and finishes (unknowns make it exit 1).
    final = _cli(project, *SEND_ALL, env=env)
    out, err = final.communicate(timeout=120)
    assert "Traceback" not in err and final.returncode in (0, 1), err
    unknown_after.append(counts(db)["unknown"])
    added = [b - a for a, b in zip([0, *unknown_after], unknown_after, strict=False)]
    # Kill k's recovery happened in run k+1: its unknowns are the growth until the next kill.
    assert max(added) <= per_kill, (seed, added)
    return added


def _check_final(project: Path, got: Counter, emails: list[str]) -> list[str]:
    """Nobody twice; every subscriber sent (received exactly once) or unknown (listed by
    status --unknown, received at most once). Returns the unknown addresses."""
    assert max(got.values()) == 1, "someone received two copies"
    with open_store(project / "newsletter.db") as store:
        state = {r.email: r.state for r in store.ledger(ISSUE).rows()}
    assert set(state) == set(emails)
    assert set(state.values()) <= {"sent", "unknown"}, Counter(state.values())
    assert all(got[e] == 1 for e, s in state.items() if s == "sent")
    listed = CliRunner().invoke(main, ["status", f"issues/{ISSUE}.yaml", "--unknown"])
    unknown = sorted(e for e, s in state.items() if s == "unknown")
    assert sorted(listed.output.split()) == unknown
    return unknown


@pytest.mark.slow
def test_smtp_random_kills_leave_at_most_one_unknown_per_connection(project, monkeypatch):
    seed = random.randrange(1 << 30)
    print("seed", seed)
    with SmtpPeer() as peer:
        _slow(peer, 0.004)
        _batch(project, 20)
        env = {"NEWSLETTER_PROVIDER": "smtp", "SMTP_URL": peer.url(),
               "NEWSLETTER_CONNECTIONS": "2"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        emails = add_subscribers(project / "newsletter.db", 300)
        _kill_chain(project, env, lambda: len(peer.messages), per_kill=2, step=12, seed=seed)
        got = Counter(r for m in peer.messages for r in m.rcpt_tos)
        unknown = _check_final(project, got, emails)
        # What is left unknown is what may really have reached the server: resent on purpose,
        # only those can have two copies.
        final = _cli(project, *SEND_ALL, "--retry-unknown", env=env)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
        got = Counter(r for m in peer.messages for r in m.rcpt_tos)
        assert set(got) == set(emails)
        assert {e for e, n in got.items() if n > 1} <= set(unknown)


@pytest.mark.slow
def test_file_random_kills_complete_files_count_as_sent(project, monkeypatch):
    seed = random.randrange(1 << 30)
    print("seed", seed)
    _batch(project, 20)
    env = {"NEWSLETTER_PROVIDER": "file", "NEWSLETTER_OUTBOX": str(project / "outbox")}
    emails = add_subscribers(project / "newsletter.db", 400)
    folder = project / "outbox" / ISSUE

    def files() -> list[Path]:
        return list(folder.glob("*.eml")) if folder.is_dir() else []

    _kill_chain(project, env, lambda: len(files()), per_kill=1, step=15, seed=seed)
    got = Counter(p.name.split("-", 2)[2].removesuffix(".eml") for p in files())
    unknown = _check_final(project, got, emails)
    # A complete file is evidence (sent); the file being written at a kill may stay unknown
    # (at most one per kill, checked per kill). No temporary file of a dead writer is left.
    assert set(got) | set(unknown) == set(emails) and not set(got) & set(unknown)
    assert list(folder.glob(".*.part")) == []


@pytest.mark.slow
def test_sendgrid_random_kills_then_webhook_events_settle_the_unknowns(project, monkeypatch):
    seed = random.randrange(1 << 30)
    print("seed", seed)
    private, public = keypair()
    with FakeSendGrid(api_key=KEY) as sg:
        sg.fail_next("hang", times=10_000, seconds=0.03)  # each request held 30 ms: killable
        _batch(project, 20)
        env = {"NEWSLETTER_PROVIDER": "sendgrid", "SENDGRID_API_KEY": KEY,
               "SENDGRID_API_HOST": sg.url}
        for k, v in {**env, "SENDGRID_WEBHOOK_PUBLIC_KEY": public}.items():
            monkeypatch.setenv(k, v)
        emails = add_subscribers(project / "newsletter.db", 800)
        added = _kill_chain(project, env, lambda: len(sg.requests), per_kill=20, step=3,
                            seed=seed)
        got = Counter(recipients_of(sg))
        unknown = _check_final(project, got, emails)
        assert len(unknown) == sum(added)
        # SendGrid reports what it accepted: `processed` events, signed, posted to serve.
        received = [e for e in unknown if got[e]]
        events = [{"sg_event_id": f"ev-{i}", "event": "processed", "email": e,
                   "timestamp": int(time.time()), "issue": ISSUE}
                  for i, e in enumerate(received)]
        settings = load_settings(project / "newsletter.toml")
        with running(create_app(settings)) as base:
            body = json.dumps(events).encode()
            reply = call(base, "POST", "/webhooks/sendgrid", body,
                         signed_headers(private, body, str(int(time.time()))))
        assert reply.status == 200 and json.loads(reply.body)["settled"] == len(received)
        listed = CliRunner().invoke(main, ["status", f"issues/{ISSUE}.yaml", "--unknown"])
        assert sorted(listed.output.split()) == sorted(set(unknown) - set(received))
        # --retry-unknown resends only those still unknown: now everyone has exactly one.
        final = _cli(project, *SEND_ALL, "--retry-unknown", env=env)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
        got = Counter(recipients_of(sg))
        assert set(got) == set(emails) and max(got.values()) == 1
