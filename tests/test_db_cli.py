"""`newsletter db migrate` / `db copy`, and how a database that cannot be reached is reported."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.store import open_store
from newsletter.store.postgres import SCHEMA_VERSION


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def fill(where: str | Path) -> dict[str, object]:
    """A small newsletter's worth of everything; returns what a copy must reproduce."""
    with open_store(where) as store:
        store.subscribers.add("ann@example.org", "Ann", consent_source="form",
                              consent_ip="192.0.2.7", consent_form="home")
        store.subscribers.add("bob@example.org", "Bøb")
        store.subscribers.unsubscribe("bob@example.org", "clicked the link")
        store.subscribers.add("cy@example.org")
        ledger = store.ledger("2011-05")
        ledger.seed()
        claimed, _, _ = ledger.claim(1)
        ledger.record([("sent", "m1", None, claimed)])
        store.approvals.record("2011-05", "hash", ["rev@example.org"])
        store.events.add(ProviderEvent(provider="sendgrid", event_id="e1",
                                       kind=EventKind.DELIVERED, email="ann@example.org",
                                       issue="2011-05"))
        store.schedules.add(issue="2011-06", issue_path="issues/2011-06.yaml",
                            at=dt.datetime(2031, 6, 1, 9, 0, tzinfo=dt.UTC),
                            content_hash="h", scheduled_by="ann")
        store.schedules.request_stop("2011-05", "bob")
        return snapshot(store)


def snapshot(store) -> dict[str, object]:
    return {
        "subscribers": [(s.id, s.email, s.name, s.status, s.status_reason, s.consent_at,
                         s.consent_source, s.consent_ip, s.consent_form, s.unsubscribed_at)
                        for s in store.subscribers.list()],
        "ledger": [(r.email, r.state, r.message_id, r.attempts) for r in
                   store.ledger("2011-05").rows()],
        "approval": store.approvals.last("2011-05"),
        "events": store.events.counts("2011-05"),
        "schedules": store.schedules.all(),
    }


@pytest.mark.slow
def test_db_migrate_reports_the_schema_version(project, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    result = run("db", "migrate")
    assert result.exit_code == 0, result.output
    assert f"from version 0 to {SCHEMA_VERSION}" in result.output
    assert "@127.0.0.1:" in result.output and postgres_url.split(":")[2].split("@")[0] \
        not in result.output  # the password never shows
    again = run("db", "migrate")
    assert "up to date" in again.output


def test_db_migrate_on_sqlite(project):
    result = run("db", "migrate")
    assert result.exit_code == 0, result.output
    assert "migrated from version 0" in result.output
    assert "up to date" in run("db", "migrate").output


def test_copy_sqlite_to_postgresql_and_back(project, postgres_url, monkeypatch):
    source = project / "old.db"
    expected = fill(source)
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    result = run("db", "copy", str(source))
    assert result.exit_code == 0, result.output
    assert "subscribers" in result.output and "3 rows" in result.output
    assert "schedules" in result.output and "stop_requests" in result.output
    with open_store(postgres_url) as store:
        assert snapshot(store) == expected
        store.subscribers.add("new@example.org")  # ids continue after the copied ones
        assert store.subscribers.get("new@example.org").id == 4

    back = project / "back.db"
    monkeypatch.setenv("NEWSLETTER_DB", str(back))
    result = run("db", "copy", postgres_url)
    assert result.exit_code == 0, result.output
    with open_store(back) as store:
        assert snapshot(store)["ledger"] == expected["ledger"]
        assert snapshot(store)["schedules"] == expected["schedules"]
        assert len(snapshot(store)["subscribers"]) == 4


def test_copy_refuses_a_target_that_is_not_empty(project, postgres_url, monkeypatch):
    source = project / "old.db"
    fill(source)
    fill(postgres_url)
    monkeypatch.setenv("NEWSLETTER_DB", postgres_url)
    result = run("db", "copy", str(source))
    assert result.exit_code == 1
    assert "not empty" in result.output and "Traceback" not in result.output


def test_copy_of_a_missing_file(project):
    result = run("db", "copy", "nowhere.db")
    assert result.exit_code == 1
    assert "nowhere.db: no such database file" in result.output


@pytest.mark.parametrize("mangle, expected", [
    (lambda url, pw: url.replace(pw, "wrong-password"), "refused the password"),
    (lambda url, pw: url.rsplit("/", 1)[0] + "/no_such_db", "no database 'no_such_db'"),
    (lambda url, pw: url.replace("127.0.0.1:", "127.0.0.1:1").rsplit(":", 1)[0]
     + ":1/x", "cannot be reached"),
    (lambda url, pw: url.replace("127.0.0.1", "[bad"), "not a valid PostgreSQL URL"),
])
def test_a_database_that_cannot_be_used_is_one_line(project, postgres_url, monkeypatch,
                                                    mangle, expected):
    password = postgres_url.split(":")[2].split("@")[0]
    monkeypatch.setenv("NEWSLETTER_DB", mangle(postgres_url, password))
    result = run("subscribers", "list")
    assert result.exit_code == 1
    assert expected in result.output
    assert password not in result.output and "wrong-password" not in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    if "valid" not in expected:
        assert "@127.0.0.1" in result.output
