"""Ctrl-C (SIGINT) during `send --all`: the send stops after the current batch, the ledger holds
nothing in flight, and a rerun finishes the rest with nobody getting two copies."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from newsletter.store import open_store
from tests.support.sending import counts
from tests.support.smtp_server import SmtpPeer
from tests.test_send_integration import SEND_ALL, _cli, start_send_to_slow_peer


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_with_the_ledger_consistent(project, monkeypatch):
    with SmtpPeer() as peer:
        settings, emails, env, proc = start_send_to_slow_peer(
            project, monkeypatch, peer, subscribers=300, connections=1, until=50)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err  # stopped early is not success
        assert "Traceback" not in err
        c = counts(settings.db_path)
        assert c.get("in_flight", 0) == 0 and c.get("unknown", 0) == 0
        sent_first = len(peer.messages)
        assert 50 <= sent_first < 300, "stopped halfway"
        # Every message that reached the server is recorded as sent, and only those.
        assert c["sent"] == sent_first
        assert sent_first % 20 == 0, "stopped in the middle of a batch"

        rerun = _cli(project, *SEND_ALL, env=env)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        got = Counter(r for m in peer.messages for r in m.rcpt_tos)
        assert set(got) == set(emails)
        assert max(got.values()) == 1, "someone received two copies"
        conn = open_store(settings.db_path).conn
        assert {s for (s,) in conn.execute("SELECT state FROM sends")} == {"sent"}
