"""The `sendgrid` provider against a local endpoint that answers like `/v3/mail/send` and
validates every body against SendGrid's published schema (tests/support/fake_sendgrid.py)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from newsletter.deliver.campaign import Campaign, Kind, Recipient, Status
from newsletter.deliver.providers.base import RetryableError
from newsletter.deliver.providers.sendgrid import HTML_KEY, TEXT_KEY, SendGridProvider
from newsletter.errors import ConfigError, ProviderAuthError
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.smtp_server import free_port

KEY = "SG.test-key-DO-NOT-PRINT.abcdef"
SUBJECT = "Πόλεις της Μετανάστευσης – مدن الهجرة"
CAMPAIGN = Campaign(
    slug="2011-05", subject=SUBJECT,
    html=f'<p>{"Montréal " * 50}</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a>',
    text=f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n",
    from_email="newsletter@citiesofmigration.ca", from_name="Cities of Migration",
    reply_to="info@citiesofmigration.ca", list_id="cities-of-migration",
)


def url(i: int) -> str:
    return f"https://newsletter.example.org/unsubscribe?t=tok{i}.sig"


def recipients(n: int) -> list[Recipient]:
    return [Recipient(f"r{i}@example.org", f"Ζωή {i}", url(i)) for i in range(n)]


@pytest.fixture
def sg(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeSendGrid(api_key=KEY, hang_seconds=1.0) as fake:
        yield fake
    assert fake.invalid == [], [r.problems for r in fake.invalid]  # every body was valid


def provider(host: str, key: str = KEY, timeout: float = 5) -> SendGridProvider:
    return SendGridProvider(key, host=host, timeout=timeout)


def test_one_personalization_per_recipient_with_own_url(sg) -> None:
    p = provider(sg.url)
    results = p.send_batch(CAMPAIGN, recipients(3))
    assert [r.status for r in results] == [Status.SENT] * 3
    [request] = sg.requests
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert len({r.message_id for r in results}) == 1 and results[0].message_id
    body = request.body
    assert body["subject"] == SUBJECT
    assert body["from"] == {"email": "newsletter@citiesofmigration.ca",
                            "name": "Cities of Migration"}
    assert body["reply_to"] == {"email": "info@citiesofmigration.ca"}
    assert body["categories"] == ["2011-05"]
    assert body["custom_args"] == {"issue": "2011-05"}
    assert body["headers"] == {"List-Id": "<cities-of-migration.citiesofmigration.ca>"}
    text, html = body["content"]
    assert text == {"type": "text/plain", "value": CAMPAIGN.text}  # rendered once, not per person
    assert html["type"] == "text/html" and HTML_KEY in html["value"]
    assert UNSUBSCRIBE_PLACEHOLDER not in html["value"]
    assert len(body["personalizations"]) == 3
    for i, pers in enumerate(body["personalizations"]):
        assert pers["to"] == [{"email": f"r{i}@example.org", "name": f"Ζωή {i}"}]  # only them
        assert pers["substitutions"] == {TEXT_KEY: url(i), HTML_KEY: url(i)}
        assert pers["headers"] == {"List-Unsubscribe": f"<{url(i)}>",
                                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def test_html_url_is_escaped_and_names_cleaned(sg) -> None:
    odd = Recipient("a@example.org", "Smith, John; Jr", "https://n.example/u?t=x&y=1")
    provider(sg.url).send_batch(CAMPAIGN, [odd])
    pers = sg.requests[0].body["personalizations"][0]
    assert pers["substitutions"][HTML_KEY] == "https://n.example/u?t=x&amp;y=1"
    assert pers["substitutions"][TEXT_KEY] == "https://n.example/u?t=x&y=1"
    assert pers["to"][0]["name"] == "Smith  John  Jr"  # SendGrid refuses ";" and "," in names


def test_test_send_has_no_list_unsubscribe_headers(sg) -> None:
    test = Campaign(**{**CAMPAIGN.__dict__, "subject": "[TEST] " + SUBJECT, "kind": Kind.TEST})
    provider(sg.url).send_batch(test, [Recipient("editor@example.org")])
    body = sg.requests[0].body
    assert body["subject"] == "[TEST] " + SUBJECT
    assert "headers" not in body["personalizations"][0]
    # marked, so the Event Webhook does not count reviewers' copies as the issue's
    assert body["custom_args"] == {"issue": "2011-05", "test": "1"}


def test_2500_recipients_in_three_requests(sg) -> None:
    p = provider(sg.url)
    everyone = [Recipient(f"s{i}@example.org", None, url(i)) for i in range(2500)]
    results = []
    for start in range(0, len(everyone), p.max_batch):
        results += p.send_batch(CAMPAIGN, everyone[start:start + p.max_batch])
    assert len(results) == 2500 and all(r.status is Status.SENT for r in results)
    assert [len(r.body["personalizations"]) for r in sg.requests] == [1000, 1000, 500]
    sent_to = [pp["to"][0]["email"] for r in sg.requests for pp in r.body["personalizations"]]
    assert sent_to == [r.email for r in everyone]  # each once, in order
    with pytest.raises(ValueError):
        p.send_batch(CAMPAIGN, everyone[:1001])


def test_unwritable_and_repeated_addresses_are_rejected_alone(sg) -> None:
    batch = [Recipient("ζωή@example.org", None, url(0)), *recipients(2),
             Recipient("R1@example.org", None, url(9))]
    results = provider(sg.url).send_batch(CAMPAIGN, batch)
    assert [r.status for r in results] == [
        Status.REJECTED, Status.SENT, Status.SENT, Status.REJECTED]
    assert [pp["to"][0]["email"] for pp in sg.requests[0].body["personalizations"]] == [
        "r0@example.org", "r1@example.org"]


@pytest.mark.parametrize(("mode", "options", "wait"), [
    ("429", {"retry_after": 7}, 7.0),
    ("429", {"reset_in": 30}, 30.0),
    ("500", {}, None),
])
def test_rate_limit_and_server_errors_are_retryable(sg, mode, options, wait) -> None:
    sg.fail_next(mode, **options)
    p = provider(sg.url)
    with pytest.raises(RetryableError) as caught:
        p.send_batch(CAMPAIGN, recipients(2))
    assert caught.value.status == int(mode)
    if wait is None:
        assert caught.value.retry_after is None or caught.value.retry_after <= 2
    else:
        assert caught.value.retry_after == pytest.approx(wait, abs=2)
    # The same batch again goes through.
    assert [r.status for r in p.send_batch(CAMPAIGN, recipients(2))] == [Status.SENT] * 2


@pytest.mark.parametrize("code", ["401", "403"])
def test_refused_key_stops_without_printing_it(sg, caplog, code) -> None:
    caplog.set_level(logging.DEBUG)
    sg.fail_next(code)
    with pytest.raises(ProviderAuthError) as caught:
        provider(sg.url).send_batch(CAMPAIGN, recipients(1))
    assert caught.value.status == int(code)
    assert "SENDGRID_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in caplog.text  # python_http_client logs headers at DEBUG: silenced


def test_wrong_key_is_refused(sg) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        provider(sg.url, key="SG.wrong-key-xyz").send_batch(CAMPAIGN, recipients(1))
    assert "SG.wrong-key-xyz" not in str(caught.value)
    sg.requests.clear()  # the fake recorded the refused request as a problem on purpose


def test_other_client_errors_fail_every_recipient(sg) -> None:
    sg.fail_next("400")
    results = provider(sg.url).send_batch(CAMPAIGN, recipients(2))
    assert [r.status for r in results] == [Status.FAILED] * 2
    assert "400" in results[0].error and "from.email" in results[0].error


def test_no_answer_after_sending_is_unknown(sg) -> None:
    sg.fail_next("hang")
    started = time.monotonic()
    results = provider(sg.url, timeout=0.3).send_batch(CAMPAIGN, recipients(2))
    assert time.monotonic() - started < 1.0
    assert [r.status for r in results] == [Status.UNKNOWN] * 2
    assert "may have accepted" in results[0].error
    assert len(sg.requests) == 1  # it did arrive: retrying blindly would send twice


def test_connection_dropped_after_sending_is_unknown(sg) -> None:
    sg.fail_next("drop")
    results = provider(sg.url).send_batch(CAMPAIGN, recipients(2))
    assert [r.status for r in results] == [Status.UNKNOWN] * 2


def test_connection_refused_is_retryable() -> None:
    p = provider(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableError, match="cannot reach"):
        p.send_batch(CAMPAIGN, recipients(1))


def test_from_settings() -> None:
    def settings(**env):
        return SimpleNamespace(getenv=lambda k, d=None: env.get(k, d))

    with pytest.raises(ConfigError) as caught:
        SendGridProvider.from_settings(settings())
    assert caught.value.field == "SENDGRID_API_KEY"
    for bad in ("soon", "0", "-1", "nan", "inf"):
        with pytest.raises(ConfigError) as caught:
            SendGridProvider.from_settings(settings(SENDGRID_API_KEY=KEY, SENDGRID_TIMEOUT=bad))
        assert caught.value.field == "SENDGRID_TIMEOUT"
    p = SendGridProvider.from_settings(settings(
        SENDGRID_API_KEY=KEY, SENDGRID_API_HOST="http://127.0.0.1:9/", SENDGRID_TIMEOUT="2.5"))
    assert (p.host, p.timeout) == ("http://127.0.0.1:9", 2.5)
    assert KEY not in repr(p)
    assert SendGridProvider.from_settings(settings(SENDGRID_API_KEY=KEY)).host == \
        "https://api.sendgrid.com"


def test_the_fake_refuses_what_sendgrid_refuses(sg) -> None:
    """The contract check is not vacuous: bad bodies are caught by the schema and the limits."""
    import json
    import urllib.error
    import urllib.request

    def post(body: dict) -> int:
        request = urllib.request.Request(
            sg.url + "/v3/mail/send", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    good, _ = provider(sg.url).build_body(CAMPAIGN, recipients(2))
    assert post(good) == 202
    two_in_one = dict(good, personalizations=[{"to": [{"email": "a@x.org"},
                                                       {"email": "A@x.org"}]}])
    bad_bodies = [
        {k: v for k, v in good.items() if k != "from"},  # schema: required
        dict(good, categories=[str(i) for i in range(11)]),  # schema: maxItems
        dict(good, personalizations=[]),  # limit: at least one
        two_in_one,  # limit: each address once
        dict(good, custom_args={"issue": 5}),  # string values only
        dict(good, personalizations=[{"to": [{"email": "not-an-email"}]}]),  # format: email
    ]
    assert [post(b) for b in bad_bodies] == [400] * len(bad_bodies)
    assert len(sg.invalid) == len(bad_bodies)
    sg.requests.clear()


def test_transactional_mail_is_neither_a_test_nor_the_issues(sg) -> None:
    confirm = Campaign(**{**CAMPAIGN.__dict__, "slug": "confirm",
                          "kind": Kind.TRANSACTIONAL})
    results = provider(sg.url).send_batch(confirm, [Recipient("new@example.org")])
    assert [r.status for r in results] == [Status.SENT]
    body = sg.requests[0].body
    assert "headers" not in body["personalizations"][0]  # no List-Unsubscribe
    assert body["custom_args"] == {"transactional": "confirm"}  # no test=1, no issue


def test_a_local_endpoint_bypasses_a_proxy_without_touching_the_environment(
        sg, monkeypatch) -> None:
    import os

    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nobody listens
    before = dict(os.environ)
    results = provider(sg.url).send_batch(CAMPAIGN, recipients(2))
    assert [r.status for r in results] == [Status.SENT] * 2
    assert dict(os.environ) == before
