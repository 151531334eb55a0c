"""`newsletter stop` from another process stops a running `send --all` after its current batch
(the ledger consistent), and `send --all` resumes: everyone gets exactly one copy."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from newsletter.deliver import sender
from newsletter.deliver.stopping import request_stop, watching
from newsletter.store import open_store
from tests.support.sending import RecordingProvider, add_subscribers, counts, rendered

CLI = [sys.executable, "-m", "newsletter"]


@pytest.mark.slow
def test_a_stop_request_reaches_the_send_loop_between_batches(settings):
    add_subscribers(settings.db_path, 50)
    requested = threading.Event()

    def stop_after_second_batch(recipients):
        request_stop(settings, "2011-05", by="bob@desk")
        requested.set()

    def slow(recipients):
        time.sleep(0.3)  # the watcher looks every 0.1 s: it sees the request meanwhile

    provider = RecordingProvider(max_batch=5, script={1: stop_after_second_batch,
                                                      2: slow, 3: slow, 4: slow})
    with watching(settings, "2011-05", interval=0.1) as watch:
        report = sender.send_all(rendered(), settings, provider, stop=watch.event)
    assert requested.is_set() and report.stopped
    assert watch.requested and watch.requested.startswith("bob@desk at ")
    state = counts(settings.db_path)
    assert state["in_flight"] == 0 and state["sent"] == len(provider.delivered) < 50
    assert state["sent"] + state["pending"] == 50
    # resuming clears the request and sends only the rest
    with watching(settings, "2011-05", interval=0.1) as watch:
        rest = sender.send_all(rendered(), settings, provider, stop=watch.event)
    assert not rest.stopped and counts(settings.db_path)["sent"] == 50
    assert set(Counter(provider.delivered).values()) == {1}
    with open_store(settings) as store:
        assert store.schedules.stop_requested("2011-05") is None


@pytest.mark.slow
def test_stop_from_another_process(project, settings):
    # 1,000 readers at 100 a second in batches of 10: ten seconds, time enough for the stop
    # (a new process) to arrive on a busy machine
    toml = project / "newsletter.toml"
    unlimited = toml.read_text(encoding="utf-8")
    toml.write_text(unlimited.replace("rate_limit = 0", "rate_limit = 100")
                    .replace("batch_size = 1000", "batch_size = 10"), encoding="utf-8")
    add_subscribers(settings.db_path, 1000)
    env = dict(os.environ)
    sending = subprocess.Popen([*CLI, "send", "issues/2011-05.yaml", "--all", "--yes",
                                "--force", "--offline"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while counts(settings.db_path)["sent"] < 50:
            assert sending.poll() is None, sending.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopper = subprocess.run([*CLI, "stop", "issues/2011-05.yaml"], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert stopper.returncode == 0, stopper.stderr
        out, err = sending.communicate(timeout=30)
    finally:
        if sending.poll() is None:
            sending.kill()
    assert sending.returncode == 1
    assert "Stop requested by" in err and "stopped: the ledger is consistent" in err
    state = counts(settings.db_path)
    assert state["in_flight"] == 0 and state["unknown"] == 0
    assert 50 <= state["sent"] < 1000 and state["sent"] + state["pending"] == 1000
    assert len(list((project / "outbox").rglob("*.eml"))) == state["sent"]

    toml.write_text(unlimited, encoding="utf-8")  # the rest at full speed
    resumed = subprocess.run([*CLI, "send", "issues/2011-05.yaml", "--all", "--yes", "--force",
                              "--offline"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert counts(settings.db_path)["sent"] == 1000
    assert len(list((project / "outbox").rglob("*.eml"))) == 1000
