"""The send loop against an in-process provider: ledger states, retries, stops, test sends.

Integration tests against the real providers and their loopback peers are in
tests/test_send_integration.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from newsletter.deliver import sender
from newsletter.deliver.campaign import Result, Status
from newsletter.deliver.providers.base import RetryableError
from newsletter.errors import ConfigError, NewsletterError, ProviderAuthError, ProviderError
from newsletter.store import open_store
from newsletter.tokens import read_token
from tests.support.sending import RecordingProvider, add_subscribers, counts, rendered


def test_send_all_sends_each_active_subscriber_once(settings):
    emails = add_subscribers(settings.db_path, 2500)
    provider = RecordingProvider()
    seen = []
    report = sender.send_all(rendered(), settings, provider, progress=lambda r: seen.append(r.done))
    assert len(provider.calls) == 3  # 1000 + 1000 + 500
    assert Counter(provider.delivered) == Counter(emails)
    assert report.sent == 2500 and report.to_send == 2500 and report.unknown == 0
    assert seen == [0, 1000, 2000, 2500]
    assert counts(settings.db_path)["sent"] == 2500
    campaign, recipients = provider.calls[0]
    assert campaign.subject == "Cities of Migration – May 2011" and not campaign.test
    assert campaign.from_email == settings.from_email and campaign.reply_to == settings.reply_to
    # Each recipient has their own signed unsubscribe link and their name.
    r = recipients[7]
    token = r.unsubscribe_url.split("t=", 1)[1]
    assert r.unsubscribe_url.startswith(settings.public_url + "/unsubscribe?t=")
    assert read_token(token, purpose="unsubscribe", list_id=settings.list_id,
                      secrets=settings.secrets) == r.email
    assert r.name == "Reader 7"
    assert not provider.closed  # a provider passed in belongs to the caller


def test_rerun_sends_nothing_new_but_new_subscribers(settings):
    add_subscribers(settings.db_path, 30)
    sender.send_all(rendered(), settings, RecordingProvider())
    again = RecordingProvider()
    report = sender.send_all(rendered(), settings, again)
    assert again.calls == [] and report.sent == 0 and report.already_done == 30
    new = add_subscribers(settings.db_path, 2, start=30)
    third = RecordingProvider()
    sender.send_all(rendered(), settings, third)
    assert third.delivered == new


def test_batch_size_is_capped_by_provider_and_settings(settings):
    add_subscribers(settings.db_path, 25)
    provider = RecordingProvider(max_batch=10)
    sender.send_all(rendered(), settings, provider)
    assert [len(rs) for _, rs in provider.calls] == [10, 10, 5]


def test_unsubscribed_are_skipped_even_during_a_send(settings):
    emails = add_subscribers(settings.db_path, 30)
    db = open_store(settings.db_path)
    db.subscribers.unsubscribe(emails[0], "test")
    db.subscribers.suppress(emails[1], "bounce")

    def unsubscribe_later(_):  # the web app, while batch 0 is in flight
        db.subscribers.unsubscribe(emails[25], "clicked")

    provider = RecordingProvider(max_batch=10, script={0: unsubscribe_later})
    report = sender.send_all(rendered(), settings, provider)
    assert emails[0] not in provider.delivered and emails[1] not in provider.delivered
    assert emails[25] not in provider.delivered
    assert len(provider.delivered) == 27 and report.skipped == 1
    assert counts(settings.db_path)["sent"] == 27


def test_unknown_is_reported_not_resent_until_asked(settings):
    emails = add_subscribers(settings.db_path, 20)

    def die(_):
        raise KeyboardInterrupt  # Ctrl-C while the request is on the wire

    provider = RecordingProvider(max_batch=5, script={1: die})
    report = sender.send_all(rendered(), settings, provider)
    assert report.stopped and report.sent == 5 and report.unknown == 5
    assert report.unknown_total == 5 and report.unknown_sample == emails[5:10]
    c = counts(settings.db_path)
    assert (c["sent"], c["unknown"], c["pending"], c["in_flight"]) == (5, 5, 10, 0)
    # Rerun: the rest, not the unknowns.
    second = RecordingProvider()
    report = sender.send_all(rendered(), settings, second)
    assert second.delivered == emails[10:] and report.unknown_total == 5
    # On purpose.
    third = RecordingProvider()
    report = sender.send_all(rendered(), settings, third, retry_unknown=True)
    assert third.delivered == emails[5:10] and report.requeued_unknown == 5
    assert counts(settings.db_path)["sent"] == 20 and report.unknown_total == 0


def test_rows_left_in_flight_by_a_dead_process_become_unknown(settings):
    emails = add_subscribers(settings.db_path, 6)
    ledger = open_store(settings.db_path).ledger("2011-05")
    ledger.seed()
    ledger.claim(2)  # ... and then the process was killed
    provider = RecordingProvider()
    report = sender.send_all(rendered(), settings, provider)
    assert report.recovered_unknown == 2 and provider.delivered == emails[2:]
    assert report.unknown_sample == emails[:2]


def test_provider_unknown_results_are_recorded(settings):
    add_subscribers(settings.db_path, 3)
    report = sender.send_all(rendered(), settings, RecordingProvider(status=Status.UNKNOWN))
    assert report.unknown == 3 and counts(settings.db_path)["unknown"] == 3


def test_retryable_errors_back_off_then_succeed(settings):
    emails = add_subscribers(settings.db_path, 4)
    failures = iter([RetryableError("429 too many", provider="x", status=429, retry_after=0.3),
                     RetryableError("500", provider="x", status=500)])

    def flaky(_):
        raise next(failures)

    provider = RecordingProvider(script={0: flaky, 1: flaky})
    start = time.monotonic()
    report = sender.send_all(rendered(), settings, provider, backoff=0.01)
    assert time.monotonic() - start >= 0.3  # Retry-After honoured
    assert report.requests == 3 and report.sent == 4
    assert provider.calls[2][1] == provider.calls[0][1]  # the same batch again
    assert counts(settings.db_path)["sent"] == 4 and len(emails) == 4


def test_retryable_exhausted_marks_failed_and_next_run_retries(settings):
    add_subscribers(settings.db_path, 4)

    def down(_):
        raise RetryableError("503 unavailable", provider="x", status=503)

    provider = RecordingProvider(script=dict.fromkeys(range(3), down))
    with pytest.raises(ProviderError, match="gave up after 3 attempts.*4 marked failed"):
        sender.send_all(rendered(), settings, provider, max_attempts=3, backoff=0.01)
    c = counts(settings.db_path)
    assert c["failed"] == 4 and c["sent"] == 0 and c["in_flight"] == 0
    conn = open_store(settings.db_path).conn
    assert "503" in conn.execute("SELECT last_error FROM sends").fetchone()[0]
    report = sender.send_all(rendered(), settings, RecordingProvider())
    assert report.sent == 4


def test_auth_error_stops_at_once_and_releases_the_batch(settings):
    add_subscribers(settings.db_path, 30)

    def refused(_):
        raise ProviderAuthError("the API key was refused (HTTP 401)", provider="sendgrid",
                                status=401)

    provider = RecordingProvider(max_batch=10, script={0: refused})
    with pytest.raises(ProviderAuthError, match="refused.*nothing more was sent"):
        sender.send_all(rendered(), settings, provider)
    assert len(provider.calls) == 1
    c = counts(settings.db_path)
    assert c["pending"] == 30 and c["sent"] == 0 and c["in_flight"] == 0


def test_stop_event_ends_after_the_current_batch(settings):
    add_subscribers(settings.db_path, 30)
    stop = threading.Event()
    provider = RecordingProvider(max_batch=10, script={0: lambda _: stop.set()})
    report = sender.send_all(rendered(), settings, provider, stop=stop)
    assert report.stopped and report.sent == 10 and len(provider.calls) == 1
    c = counts(settings.db_path)
    assert (c["sent"], c["pending"], c["in_flight"]) == (10, 20, 0)


@pytest.mark.slow
def test_rate_limit(settings):
    import dataclasses

    add_subscribers(settings.db_path, 100)
    limited = dataclasses.replace(settings, rate_limit=50.0)
    provider = RecordingProvider()
    start = time.monotonic()
    sender.send_all(rendered(), limited, provider)
    assert time.monotonic() - start >= 0.95
    assert [len(rs) for _, rs in provider.calls] == [50, 50]


def test_missing_secret_fails_before_claiming(settings):
    import dataclasses

    add_subscribers(settings.db_path, 3)
    env = {k: v for k, v in settings.env.items() if k != "NEWSLETTER_SECRET"}
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET"):
        sender.send_all(rendered(), dataclasses.replace(settings, env=env), RecordingProvider())
    assert counts(settings.db_path)["in_flight"] == 0


@pytest.mark.slow
def test_a_second_send_at_once_is_refused(settings):
    add_subscribers(settings.db_path, 3)
    box = {}

    def nested(_):
        with pytest.raises(NewsletterError, match="another .* is running") as err:
            sender.send_all(rendered(), settings, RecordingProvider())
        box["err"] = err

    sender.send_all(rendered(), settings, RecordingProvider(script={0: nested}))
    assert "err" in box


# -- test sends ----------------------------------------------------------------------------


def test_send_test_to_reviewers_records_hash(settings):
    provider = RecordingProvider()
    results = sender.send_test(rendered(), settings, provider=provider)
    assert [r.email for r in results] == list(settings.reviewers)
    campaign, recipients = provider.calls[0]
    assert campaign.subject == "[TEST] Cities of Migration – May 2011" and campaign.test
    last = open_store(settings.db_path).approvals.last("2011-05")
    assert last.content_hash == sender.content_hash(rendered())
    assert last.recipients == ", ".join(settings.reviewers)


def test_send_test_to_given_addresses_validated(settings):
    provider = RecordingProvider()
    sender.send_test(rendered(), settings, to=["Me@Example.org", "me@example.org"],
                     provider=provider)
    assert provider.delivered == ["me@example.org"]
    with pytest.raises(NewsletterError, match="--to: invalid address 'nope'"):
        sender.send_test(rendered(), settings, to=["nope"], provider=provider)


def test_send_test_not_recorded_when_nothing_accepted(settings):
    sender.send_test(rendered(), settings, provider=RecordingProvider(status=Status.REJECTED))
    assert open_store(settings.db_path).approvals.last("2011-05") is None


def test_content_hash_changes_with_any_part():
    import dataclasses

    base = rendered()
    h = sender.content_hash(base)
    assert len(h) == 64 and h == sender.content_hash(rendered())
    for change in ({"html": base.html + " "}, {"text": base.text + " "}, {"subject": "x"}):
        assert sender.content_hash(dataclasses.replace(base, **change)) != h


def test_parallel_connections_send_each_once(settings):
    """Several providers (here the file provider) claim their own batches from the ledger."""
    emails = add_subscribers(settings.db_path, 230)
    report = sender.send_all(rendered(), settings, connections=3)
    assert report.sent == 230 and report.batches >= 3
    files = list(settings.outbox.rglob("*.eml"))
    assert len(files) == 230
    to = Counter()
    for path in files:
        for line in path.read_bytes().splitlines():
            if line.startswith(b"To: "):
                to[line[4:].decode().strip("<>").split("<")[-1].rstrip(">")] += 1
    assert sorted(to) == emails and set(to.values()) == {1}


def test_connections_setting(settings):
    import dataclasses

    def with_env(**env):
        return dataclasses.replace(settings, env={**settings.env, **env})

    assert sender.default_connections(settings) == 1  # file
    assert sender.default_connections(with_env(NEWSLETTER_PROVIDER="smtp")) == 4
    assert sender.default_connections(with_env(NEWSLETTER_CONNECTIONS="2")) == 2
    with pytest.raises(ConfigError, match="NEWSLETTER_CONNECTIONS"):
        sender.default_connections(with_env(NEWSLETTER_CONNECTIONS="lots"))


def test_a_batch_refused_whole_stops_the_send(settings):
    add_subscribers(settings.db_path, 30)
    provider = RecordingProvider(max_batch=10, status=Status.FAILED)
    with pytest.raises(ProviderError, match="refused a whole batch.*10 marked failed"):
        sender.send_all(rendered(), settings, provider)
    assert len(provider.calls) == 1
    c = counts(settings.db_path)
    assert (c["failed"], c["pending"], c["in_flight"]) == (10, 20, 0)


def test_a_refused_batch_of_one_does_not_stop_the_send(settings):
    """With tiny batches one greylisted (450) recipient is that recipient's answer, not the
    provider refusing everything: the others are still sent, the one is retried next run."""
    emails = add_subscribers(settings.db_path, 3)

    class GreylistOne(RecordingProvider):
        def send_batch(self, campaign, recipients):
            results = super().send_batch(campaign, recipients)
            return [Result(r.email, Status.FAILED, error="450 greylisted")
                    if r.email == emails[0] else r for r in results]

    report = sender.send_all(rendered(), settings, GreylistOne(max_batch=1))
    assert (report.sent, report.failed) == (2, 1)
    assert counts(settings.db_path)["failed"] == 1


def test_unsubscribe_urls_are_unsubscribe_url(settings):
    """The sender's prepared signer gives exactly tokens.unsubscribe_url's links, and they
    verify, for any key length and address."""
    from newsletter import tokens
    for secret in ("k", "x" * 64, "y" * 65, "z" * 300, "sécret"):
        make = tokens.token_maker(purpose=tokens.UNSUBSCRIBE, list_id="news", secret=secret)
        for email in ("a@b.org", "reader1@example.org", "ünï@exämple.org", "x" * 200 + "@e.org"):
            token = make(email)
            assert token == tokens.make_token(email, purpose=tokens.UNSUBSCRIBE, list_id="news",
                                              secret=secret)
            assert tokens.read_token(token, purpose=tokens.UNSUBSCRIBE, list_id="news",
                                     secrets=[secret]) == email
    url_of = tokens.unsubscribe_urls(settings)
    assert url_of("ann@example.org") == tokens.unsubscribe_url(settings, "ann@example.org")


def test_a_test_send_that_cannot_be_recorded_does_not_go_out(settings, project, monkeypatch):
    """The database is opened before sending: reviewers never get a copy that `send --all`
    would not know they saw."""
    from newsletter.config import load_settings
    from newsletter.errors import StoreError

    blocker = project / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("NEWSLETTER_DB", str(blocker / "newsletter.db"))
    with pytest.raises(StoreError, match="cannot create the database folder"):
        sender.send_test(rendered(), load_settings(project / "newsletter.toml"))
    assert not (project / "outbox").exists()


def test_interrupt_while_waiting_for_the_rate_limit_puts_the_batch_back(settings):
    """A second Ctrl-C (KeyboardInterrupt) while the sender waits for its rate limit: the
    batch it had claimed was certainly not sent, so it goes back to pending instead of
    staying in_flight (which the next run would report as unknown)."""
    import dataclasses
    import signal

    add_subscribers(settings.db_path, 15)
    limited = dataclasses.replace(settings, rate_limit=5.0)  # batches of 5, one a second
    provider = RecordingProvider()
    main = threading.main_thread().ident
    timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        sender.send_all(rendered(), limited, provider)
    timer.join()
    assert len(provider.delivered) == 5
    c = counts(settings.db_path)
    assert (c["sent"], c["pending"], c["in_flight"], c["unknown"]) == (5, 10, 0, 0)
