"""The team case on PostgreSQL, through the command line: one database shared by two project
folders (two "machines") and `serve`."""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter import tokens
from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.store import open_store
from newsletter.web.app import create_app
from tests.support.serve import call, running

ISSUE = "issues/2011-05.yaml"


def machine(root: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in project folder `root` (its own settings and outbox) on the shared database."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(root / "newsletter.toml"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(root / "outbox"))
    monkeypatch.setenv("NEWSLETTER_DB", url)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.slow
def test_a_laptops_test_send_approves_the_servers_send(project, postgres_url, tmp_path,
                                                       monkeypatch):
    laptop, server = project, tmp_path / "server"
    shutil.copytree(project, server)
    machine(laptop, postgres_url, monkeypatch)
    (laptop / "subs.csv").write_text(
        "email,name\nann@example.org,Ann\nbob@example.org,Bob\ncarol@example.org,Carol\n")
    result = run("subscribers", "import", "subs.csv")
    assert result.exit_code == 0, result.output

    machine(server, postgres_url, monkeypatch)
    refused = run("send", ISSUE, "--all", "--yes", "--offline")  # nobody has reviewed it yet
    assert refused.exit_code == 1 and "test send" in refused.output

    machine(laptop, postgres_url, monkeypatch)
    result = run("send", ISSUE, "--test")
    assert result.exit_code == 0, result.output

    # Carol unsubscribes through `serve` (one click) before the send starts.
    settings = load_settings(server / "newsletter.toml")
    app = create_app(settings)
    try:
        with running(app) as base:
            link = tokens.unsubscribe_url(settings, "carol@example.org")
            token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["t"][0]
            reply = call(base, "POST", "/unsubscribe?t=" + token,
                         "List-Unsubscribe=One-Click")
            assert reply.status == 200
    finally:
        app.close()

    machine(server, postgres_url, monkeypatch)
    result = run("send", ISSUE, "--all", "--yes", "--offline")
    assert result.exit_code == 0, result.output
    assert "Reviewers saw exactly this content" in result.output  # the laptop's test send
    sent = sorted(p.read_text() for p in (server / "outbox" / "2011-05").glob("*.eml"))
    assert len(sent) == 2
    assert not any("carol@example.org" in m for m in sent)
    with open_store(postgres_url) as store:
        assert store.ledger("2011-05").counts()["sent"] == 2
        assert store.subscribers.get("carol@example.org").status == "unsubscribed"
    again = run("send", ISSUE, "--all", "--yes", "--offline")  # once each
    assert again.exit_code == 0
    assert len(list((server / "outbox" / "2011-05").glob("*.eml"))) == 2


def test_status_shows_the_live_senders(project, postgres_url, monkeypatch):
    machine(project, postgres_url, monkeypatch)
    with open_store(postgres_url) as store:
        store.subscribers.add("ann@example.org")
        store.ledger("2011-05").seed()
        with store.send_lock():  # a sender running elsewhere
            result = run("status", ISSUE)
            assert result.exit_code == 0, result.output
            assert "1 sender(s) running on this database now" in result.output
    assert "sender(s) running" not in run("status", ISSUE).output  # it ended
