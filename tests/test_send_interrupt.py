"""Ctrl-C (SIGINT) during `send --all`: the send stops after the current batch, the ledger holds
nothing in flight, and a rerun finishes the rest with nobody getting two copies."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from newsletter import store
from tests.support.sending import add_subscribers, counts
from tests.support.smtp_server import SmtpPeer
from tests.test_send_integration import ISSUE, _cli, _slow, fresh_settings


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_with_the_ledger_consistent(project, monkeypatch):
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("batch_size = 1000",
                                                             "batch_size = 20"),
                    encoding="utf-8")
    with SmtpPeer() as peer:
        _slow(peer, 0.01)
        env = {"NEWSLETTER_PROVIDER": "smtp", "SMTP_URL": peer.url(),
               "NEWSLETTER_CONNECTIONS": "1"}
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
        monkeypatch.setenv("SMTP_URL", peer.url())
        settings = fresh_settings(project)
        emails = add_subscribers(settings.db_path, 300)
        args = ("send", ISSUE, "--all", "--yes", "--force", "--offline")
        proc = _cli(project, *args, env=env)
        deadline = time.monotonic() + 60
        while len(peer.messages) < 50 and proc.poll() is None:
            assert time.monotonic() < deadline, "the send did not get going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err  # stopped early is not success
        assert "Traceback" not in err
        c = counts(project / "newsletter.db")
        assert c.get("in_flight", 0) == 0 and c.get("unknown", 0) == 0
        sent_first = len(peer.messages)
        assert 50 <= sent_first < 300, "stopped halfway"
        # Every message that reached the server is recorded as sent, and only those.
        assert c["sent"] == sent_first
        assert sent_first % 20 == 0, "stopped in the middle of a batch"

        rerun = _cli(project, *args, env=env)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        got = Counter(r for m in peer.messages for r in m.rcpt_tos)
        assert set(got) == set(emails)
        assert max(got.values()) == 1, "someone received two copies"
        conn = store.connect(settings.db_path)
        assert {s for (s,) in conn.execute("SELECT state FROM sends")} == {"sent"}
