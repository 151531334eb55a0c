"""`newsletter send`, `status` and `subscribers`: CliRunner tests of each command and error.

The file provider is the default (outbox inside tmp via the `project` fixture).
"""

from __future__ import annotations

import email
import socket
from email import policy

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.store import open_store
from tests.support.sending import add_subscribers, counts

ISSUE = "issues/2011-05.yaml"


def run(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(main, list(args), input=input, env=env)


def one_line_error(result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def outbox(project) -> list[email.message.EmailMessage]:
    folder = project / "outbox"
    files = sorted(folder.rglob("*.eml")) if folder.exists() else []
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["send"], ["status"], ["subscribers"], ["subscribers", "import"], ["subscribers", "list"],
    ["subscribers", "remove"], ["subscribers", "show"],
])
def test_every_command_has_help_with_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    example = result.stdout.split("Example:\n", 1)[1]
    assert example.lstrip().startswith("newsletter " + " ".join(command))


# -- send --test ---------------------------------------------------------------------------


def test_send_test_to_reviewers_lands_in_outbox(project, settings):
    result = run("send", ISSUE, "--test")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "editor@citiesofmigration.ca" in result.stdout and "outbox" in result.stdout
    messages = outbox(project)
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == sorted(settings.reviewers)
    assert all(m["Subject"].startswith("[TEST] Cities of Migration") for m in messages)
    assert all(m.get_content_type() == "multipart/alternative" for m in messages)
    assert open_store(settings.db_path).approvals.last("2011-05") is not None


def test_send_test_to_given_address(project):
    result = run("send", ISSUE, "--test", "--to", "Me@Example.org")
    assert result.exit_code == 0, result.stderr
    assert [m["To"].addresses[0].addr_spec for m in outbox(project)] == ["me@example.org"]


def test_send_test_invalid_to(project):
    line = one_line_error(run("send", ISSUE, "--test", "--to", "not an address"))
    assert line.startswith("--to: invalid address 'not an address'")
    assert outbox(project) == []


def test_send_needs_a_mode(project):
    assert run("send", ISSUE).exit_code == 2
    assert run("send", ISSUE, "--all", "--to", "a@example.org").exit_code == 2


def test_test_and_all_together_is_a_usage_error_not_a_send_to_everyone(project, settings):
    add_subscribers(settings.db_path, 3)
    for args in (("--test", "--all"), ("--all", "--test")):
        result = run("send", ISSUE, *args, "--yes", "--force", "--offline")
        assert result.exit_code == 2 and "choose one of --test" in result.stderr
    assert outbox(project) == []
    assert counts(settings.db_path)["sent"] == 0


def test_missing_issue_file(project):
    line = one_line_error(run("send", "issues/nope.yaml", "--test"))
    assert "nope.yaml" in line


# -- provider configuration errors ---------------------------------------------------------


def test_unknown_provider(project):
    line = one_line_error(run("send", ISSUE, "--test", env={"NEWSLETTER_PROVIDER": "pigeon"}))
    assert "NEWSLETTER_PROVIDER" in line and "pigeon" in line


def test_malformed_smtp_url(project):
    env = {"NEWSLETTER_PROVIDER": "smtp", "SMTP_URL": "http//nonsense"}
    line = one_line_error(run("send", ISSUE, "--test", env=env))
    assert "SMTP_URL" in line


def test_missing_sendgrid_key(project):
    line = one_line_error(run("send", ISSUE, "--test", env={"NEWSLETTER_PROVIDER": "sendgrid"}))
    assert "SENDGRID_API_KEY" in line


@pytest.mark.slow
def test_unreachable_smtp_server(project, settings):
    add_subscribers(settings.db_path, 3)
    env = {"NEWSLETTER_PROVIDER": "smtp", "SMTP_URL": f"smtp://127.0.0.1:{closed_port()}"}
    line = one_line_error(run("send", ISSUE, "--test", env=env))
    assert "127.0.0.1" in line or "connect" in line.lower()
    result = run("send", ISSUE, "--all", "--yes", "--force", "--offline", env=env)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    c = counts(settings.db_path)
    assert c["sent"] == 0 and c["in_flight"] == 0


@pytest.mark.parametrize(("env", "named"), [
    ({"NEWSLETTER_PROVIDER": "sendgrid"}, "SENDGRID_API_KEY"),
    ({"NEWSLETTER_PROVIDER": "smtp"}, "SMTP_URL"),
])
def test_provider_settings_are_checked_before_asking(project, settings, env, named):
    """A missing key is said at once, not after the checks ran and the user typed "y"."""
    add_subscribers(settings.db_path, 2)
    run("send", ISSUE, "--test")
    result = run("send", ISSUE, "--all", "--offline", env=env, input="y\n")
    assert result.exit_code == 1
    assert named in result.stderr and "Send now?" not in result.stdout
    assert "Reviewers saw" not in result.stdout


@pytest.mark.parametrize("public", [None, "http://newsletter.example.org"])
def test_send_all_needs_an_https_public_address(project, settings, public):
    """Without links.public every unsubscribe link would point nowhere that answers."""
    toml = project / "newsletter.toml"
    line = 'public = "https://newsletter.citiesofmigration.ca"'
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace(line, f'public = "{public}"' if public else ""),
                    encoding="utf-8")
    add_subscribers(settings.db_path, 2)
    run("send", ISSUE, "--test")
    error = one_line_error(run("send", ISSUE, "--all", "--yes", "--force", "--offline"))
    assert error.startswith(f"{toml}: links.public: must be the https:// address")
    assert counts(settings.db_path)["sent"] == 0


def test_missing_secret_for_all(project, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_SECRET")
    line = one_line_error(run("send", ISSUE, "--all", "--yes", "--force"))
    assert "NEWSLETTER_SECRET" in line


# -- send --all ----------------------------------------------------------------------------


def test_send_all_without_subscribers(project, settings):
    line = one_line_error(run("send", ISSUE, "--all", "--yes", "--force", "--offline"))
    assert line.startswith("no active subscribers in ") and "subscribers import" in line


def test_send_all_refused_without_a_test_send(project, settings):
    add_subscribers(settings.db_path, 3)
    line = one_line_error(run("send", ISSUE, "--all", "--yes", "--offline"))
    assert line.startswith("refusing to send: no test send of this issue yet")
    assert counts(settings.db_path)["sent"] == 0 and outbox(project) == []


def test_send_all_after_test_send_then_refused_when_changed(project, settings):
    emails = add_subscribers(settings.db_path, 5)
    assert run("send", ISSUE, "--test").exit_code == 0
    result = run("send", ISSUE, "--all", "--yes", "--offline")
    assert result.exit_code == 0, result.stderr
    assert "Reviewers saw exactly this content" in result.stdout
    assert "5 of 5 answered this run (5 sent)" in result.stdout
    to = sorted(m["To"].addresses[0].addr_spec for m in outbox(project)
                if not m["Subject"].startswith("[TEST]"))
    assert to == emails
    # Plain progress lines when not a terminal.
    assert "sent 5, other 0 (5/5" in result.stderr

    path = project / ISSUE
    path.write_text(path.read_text(encoding="utf-8").replace("Calgary: Talking Mentoring",
                                                           "Calgary: Talking Mentors", 1),
                    encoding="utf-8")
    line = one_line_error(run("send", ISSUE, "--all", "--yes", "--offline"))
    assert "content changed since the last test send" in line
    assert "reviewers have not seen exactly this content" in line
    result = run("send", ISSUE, "--all", "--yes", "--offline", "--force")
    assert result.exit_code == 0 and "warning (--force)" in result.stderr


def test_rerun_sends_nothing_new(project, settings):
    add_subscribers(settings.db_path, 4)
    run("send", ISSUE, "--test")
    assert run("send", ISSUE, "--all", "--yes", "--offline").exit_code == 0
    before = len(outbox(project))
    result = run("send", ISSUE, "--all", "--yes", "--offline")
    assert result.exit_code == 0
    assert "0 of 0 answered" in result.stdout and "4 done by earlier runs" in result.stdout
    assert len(outbox(project)) == before


def test_confirmation(project, settings):
    add_subscribers(settings.db_path, 2)
    run("send", ISSUE, "--test")
    result = run("send", ISSUE, "--all", "--offline", input="")  # no answer: no
    assert result.exit_code == 1
    assert "Subject: Cities of Migration" in result.stdout
    assert "Recipients: 2 of 2 active subscribers into outbox/" in result.stdout
    assert "not confirmed: nothing was sent" in result.stderr
    assert counts(settings.db_path)["sent"] == 0
    result = run("send", ISSUE, "--all", "--offline", input="n\n")
    assert result.exit_code == 1 and counts(settings.db_path)["sent"] == 0
    result = run("send", ISSUE, "--all", "--offline", input="y\n")
    assert result.exit_code == 0 and counts(settings.db_path)["sent"] == 2
    add_subscribers(settings.db_path, 1, start=2)
    result = run("send", ISSUE, "--all", "--offline", input="n\n")
    assert "Recipients: 1 of 3 active subscribers (2 already have it)" in result.stdout


def test_unsubscribed_not_sent(project, settings):
    emails = add_subscribers(settings.db_path, 3)
    assert run("subscribers", "remove", emails[1]).exit_code == 0
    run("send", ISSUE, "--test")
    assert run("send", ISSUE, "--all", "--yes", "--offline").exit_code == 0
    to = {m["To"].addresses[0].addr_spec for m in outbox(project)}
    assert emails[0] in to and emails[2] in to and emails[1] not in to


def test_unknown_reported_then_retry_unknown(project, settings):
    emails = add_subscribers(settings.db_path, 4)
    run("send", ISSUE, "--test")
    ledger = open_store(settings.db_path).ledger("2011-05")
    ledger.seed()
    claimed, _, _ = ledger.claim(2)  # e.g. an SMTP connection lost after the data was sent
    ledger.record([("unknown", None, "connection lost after the message was sent", claimed)])
    result = run("send", ISSUE, "--all", "--yes", "--offline")
    assert result.exit_code == 1
    assert "2 recipient(s) with an unknown outcome" in result.stderr
    assert emails[0] in result.stderr and emails[1] in result.stderr
    assert "--retry-unknown" in result.stderr
    status = run("status", ISSUE)
    assert "unknown" in status.stdout and emails[0] in status.stdout
    sent_to = [m["To"].addresses[0].addr_spec for m in outbox(project)]
    assert emails[0] not in sent_to and emails[2] in sent_to
    result = run("send", ISSUE, "--all", "--yes", "--offline", "--retry-unknown")
    assert result.exit_code == 0, result.stderr
    sent_to = [m["To"].addresses[0].addr_spec for m in outbox(project)]
    assert sorted(e for e in sent_to if e.startswith("reader")) == emails
    assert counts(settings.db_path)["sent"] == 4


def test_status_of_a_misspelt_issue_is_an_error(project, settings):
    assert one_line_error(run("status", "issues/2011-5.yaml")) == (
        "issues/2011-5.yaml: file not found (and no send of '2011-5' in the ledger)")
    result = run("status", ISSUE)  # exists, never sent: all zero
    assert result.exit_code == 0 and "0 recipient(s)" in result.stdout


def test_status_counts_and_events(project, settings):
    add_subscribers(settings.db_path, 3)
    run("send", ISSUE, "--test")
    run("send", ISSUE, "--all", "--yes", "--offline")
    result = run("status", ISSUE)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "2011-05: 3 recipient(s) in the send ledger"
    assert lines[1].split() == ["sent", "3"] and lines[2].split() == ["queued", "0"]
    assert [line.split()[0] for line in lines[1:7]] == [
        "sent", "queued", "failed", "rejected", "unknown", "pending"]
    after = result.stdout.split("After sending (provider events and unsubscribes):\n")[1]
    assert [line.split()[-1] for line in after.splitlines()] == ["0"] * 7
    with open_store(settings.db_path) as db:
        for event_id, email, kind in [
            ("e1", "reader000000@example.org", EventKind.DELIVERED),
            ("e2", "reader000001@example.org", EventKind.DELIVERED),
            ("e3", "reader000001@example.org", EventKind.OPENED),
            ("e4", "reader000002@example.org", EventKind.BOUNCED),
            ("e5", "reader000001@example.org", EventKind.CLICKED),
            ("e6", "reader000001@example.org", EventKind.UNSUBSCRIBED),
        ]:
            db.events.add(ProviderEvent("sendgrid", event_id, kind, email, "2011-05"))
    out = run("status", ISSUE).stdout
    found = {line.rsplit(None, 1)[0].strip(): int(line.split()[-1])
             for line in out.split("After sending (provider events and unsubscribes):")[1]
             .strip().splitlines()}
    assert found["delivered"] == 2 and found["bounced"] == 1 and found["opened"] == 1
    assert found["clicked"] == 1 and found["unsubscribed"] == 1


# -- subscribers ---------------------------------------------------------------------------


def test_subscribers_import_list_show_remove(project, settings):
    (project / "members.csv").write_text(
        "email,name\nann@example.org,Ann\nbad-address,Bob\nchen@example.org,Chen\n",
        encoding="utf-8")
    result = run("subscribers", "import", "members.csv")
    assert result.exit_code == 0
    assert "2 added" in result.stdout and "1 skipped" in result.stdout
    assert "members.csv:3: email: skipped: 'bad-address'" in result.stderr
    result = run("subscribers", "list")
    assert result.stdout.splitlines() == ["ann@example.org\tactive\tAnn",
                                          "chen@example.org\tactive\tChen"]
    result = run("subscribers", "show", "ANN@example.org")
    assert result.exit_code == 0
    assert "consent_source:  import:members.csv" in result.stdout
    assert "status:          active" in result.stdout
    assert run("subscribers", "remove", "ann@example.org").exit_code == 0
    assert "status:          unsubscribed" in run("subscribers", "show", "ann@example.org").stdout
    assert run("subscribers", "list", "--status", "active").stdout == \
        "chen@example.org\tactive\tChen\n"
    # Re-import keeps the unsubscribed address unsubscribed.
    result = run("subscribers", "import", "members.csv")
    assert "1 kept unsubscribed" in result.stdout
    line = one_line_error(run("subscribers", "show", "nobody@example.org"))
    assert line == "nobody@example.org: not a subscriber"


def test_import_without_email_column(project):
    (project / "m.csv").write_text("mail,name\na@example.org,A\n", encoding="utf-8")
    line = one_line_error(run("subscribers", "import", "m.csv"))
    assert line == ("m.csv:1: no 'email' column (found: 'mail', 'name'; "
                    "say which with --email-column)")


def test_import_not_utf8(project, settings):
    (project / "m.csv").write_bytes("email,name\nzoe@example.org,Zoë\n".encode("latin-1"))
    line = one_line_error(run("subscribers", "import", "m.csv"))
    assert line.startswith("m.csv:2: not UTF-8 text")
    assert open_store(settings.db_path).subscribers.counts()["active"] == 0


def test_import_resubscribe_flag(project, settings):
    (project / "m.csv").write_text("email\nann@example.org\n", encoding="utf-8")
    run("subscribers", "import", "m.csv")
    run("subscribers", "remove", "ann@example.org")
    result = run("subscribers", "import", "m.csv", "--resubscribe")
    assert "1 resubscribed" in result.stdout
    assert "status:          active" in run("subscribers", "show", "ann@example.org").stdout


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(monkeypatch):
    import io
    import sys

    from newsletter.cli.send import _progress_reporter
    from newsletter.deliver.sender import SendReport

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    report = SendReport(issue="2011-05", to_send=10, sent=5, elapsed=1.0)
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    update, finish = _progress_reporter()
    update(report)
    finish()
    assert "sending" in term.getvalue() and "5/10" in term.getvalue()

    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    update, finish = _progress_reporter()
    update(report)
    finish()
    assert pipe.getvalue() == "sent 5, other 0 (5/10, 5/s)\n"


def test_recipients_that_failed_make_the_send_exit_1(project, settings):
    """A recipient the server refused for now (4xx) was not sent: the command says so and
    exits 1 (a script must not take it for a complete send); a rerun sends it."""
    from tests.support.smtp_server import SmtpPeer

    emails = add_subscribers(settings.db_path, 3)
    with SmtpPeer(reject={emails[1]: "450 4.7.1 try again later"}) as peer:
        env = {"NEWSLETTER_PROVIDER": "smtp", "SMTP_URL": peer.url(),
               "NEWSLETTER_CONNECTIONS": "1"}  # one batch of 3, not 3 batches of 1
        result = run("send", ISSUE, "--all", "--yes", "--force", "--offline", env=env)
        assert result.exit_code == 1, result.stdout
        assert "1 recipient(s) failed" in result.stderr
        assert "run the same command again" in result.stderr
        assert counts(settings.db_path)["failed"] == 1
        peer.handler.reject.clear()
        result = run("send", ISSUE, "--all", "--yes", "--force", "--offline", env=env)
        assert result.exit_code == 0, result.stderr
        assert sorted(r for m in peer.messages for r in m.rcpt_tos) == emails
