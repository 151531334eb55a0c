"""End to end: `send --all --at` schedules, a running `newsletter serve` starts the send by itself
when it is due, the reviewers get the summary."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.store import open_store
from tests.support.sending import add_subscribers, counts

ROOT = Path(__file__).resolve().parent.parent


def serve(project: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "newsletter", "serve", *args], cwd=project,
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, timeout: float = 60, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)
    return found


def the_schedule(settings):
    with open_store(settings) as store:
        return store.schedules.all()[-1]


@pytest.mark.slow
def test_a_running_serve_starts_a_due_send(project, settings):
    add_subscribers(settings.db_path, 12)
    runner = CliRunner()
    assert runner.invoke(main, ["send", "issues/2011-05.yaml", "--test"]).exit_code == 0
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = runner.invoke(main, ["send", "issues/2011-05.yaml", "--all", "--offline",
                                  "--at", soon])
    assert result.exit_code == 0, result.output
    assert the_schedule(settings).state == "scheduled"
    outbox_before = len(list((project / "outbox").rglob("*.eml")))  # the test copies

    proc = serve(project, "--port", "0", "--threads", "2", "--poll", "0.3")
    try:
        assert re.search(r"http://127\.0\.0\.1:\d+", proc.stderr.readline())
        done = wait_for(lambda: (s := the_schedule(settings)).state not in (
            "scheduled", "running") and s)
        assert done.state == "done", done.detail
        assert done.detail.startswith("sent 12, failed 0, unknown 0")
        assert counts(settings.db_path)["sent"] == 12
        # 12 subscribers + the summary to the 2 reviewers
        assert len(list((project / "outbox").rglob("*.eml"))) == outbox_before + 14
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
