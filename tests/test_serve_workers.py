"""`newsletter serve --workers N`: several processes on one port, one database; a worker that
dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter import tokens
from newsletter.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.add(int(entry))
    return found


def _three_children(pid: int, without: int | None = None) -> set[int] | None:
    found = _children(pid)
    return found if len(found) == 3 and without not in found else None


def _wait_for(condition, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := condition()):
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _post(base: str, path: str) -> int:
    request = urllib.request.Request(base + path, data=b"List-Unsubscribe=One-Click",
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status


@pytest.mark.slow
def test_workers_share_the_port_are_replaced_and_stop_together(
        project: Path, settings, store_target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_DB", str(store_target))
    people = [f"reader{i:03d}@example.org" for i in range(120)]
    with open_store(store_target) as store:
        store.subscribers.add_many(((e, None) for e in people), "test")
    paths = []
    for email in people:
        url = urlsplit(tokens.unsubscribe_url(settings, email))
        paths.append(f"{url.path}?{url.query}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", "0", "--workers", "2",
         "--threads", "2"], cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+) \(2 processes\)", line).group(1))
        base = f"http://127.0.0.1:{port}"
        # Two workers and the scheduled-send poller.
        first = _wait_for(lambda: _three_children(proc.pid))
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda p: _post(base, p), paths[:60]))
        assert statuses == [200] * 60

        # A worker killed outright is replaced, and the service goes on meanwhile.
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        again = _wait_for(lambda: _three_children(proc.pid, without=victim))
        assert len(again - first) == 1
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda p: _post(base, p), paths[60:]))
        assert statuses == [200] * 60
        with open_store(store_target) as store:
            assert store.subscribers.counts()["unsubscribed"] == 120

        proc.send_signal(signal.SIGTERM)  # as systemd stops it
        assert proc.wait(20) == 0
        assert not _children(proc.pid) and all(not Path(f"/proc/{p}").exists() or
                                               "Z" in Path(f"/proc/{p}/stat").read_text()
                                               for p in again)
        err = proc.stderr.read()
        assert "Traceback" not in err and "starting another" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_workers_report_a_port_in_use(project: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--workers",
             "2"], cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
