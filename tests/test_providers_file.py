"""The `file` provider: one complete .eml per message in the outbox, and get_provider."""

from __future__ import annotations

import email
import email.policy

import pytest

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from newsletter.deliver.campaign import Campaign, Kind, Recipient, Status
from newsletter.deliver.providers import get_provider
from newsletter.deliver.providers.file import FileProvider
from newsletter.errors import ConfigError

CAMPAIGN = Campaign(
    slug="2011-05",
    subject="Cities of Migration – مدن الهجرة",
    html=f'<p>{"x" * 3000}</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a>',
    text=f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n",
    from_email="newsletter@citiesofmigration.ca",
    from_name="Cities of Migration",
    reply_to="info@citiesofmigration.ca",
)


def url(i: int) -> str:
    return f"https://newsletter.example.org/unsubscribe?t=tok{i}"


def test_writes_one_eml_per_recipient(tmp_path) -> None:
    provider = FileProvider(tmp_path / "outbox")
    recipients = [Recipient(f"r{i}@example.org", f"R {i}", url(i)) for i in range(3)]
    results = provider.send_batch(CAMPAIGN, recipients)
    provider.close()
    assert [r.status for r in results] == [Status.SENT] * 3
    files = sorted((tmp_path / "outbox" / "2011-05").iterdir())
    assert len(files) == 3
    assert all(f.suffix == ".eml" for f in files)
    by_to = {}
    for f in files:
        msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        by_to[msg["To"].addresses[0].addr_spec] = (f, msg)
    for i, result in enumerate(results):
        f, msg = by_to[f"r{i}@example.org"]
        assert f.name.endswith(f"-r{i}@example.org.eml")
        assert msg["Message-ID"] == result.message_id
        assert msg["Subject"] == CAMPAIGN.subject
        assert msg["List-Unsubscribe"] == f"<{url(i)}>"
        text, html = (p.get_content() for p in msg.iter_parts())
        assert url(i) in text and url(i) in html


def test_names_are_safe_and_nothing_half_written(tmp_path) -> None:
    provider = FileProvider(tmp_path)
    weird = Campaign(**{**CAMPAIGN.__dict__, "slug": "../escape"})
    results = provider.send_batch(weird, [Recipient("a/../b@example.org", None, url(1)),
                                          Recipient("ζ@example.org", None, url(2))])
    assert results[0].status is Status.SENT  # "/" is legal in a local part, not in a file name
    assert results[1].status is Status.REJECTED and "SMTPUTF8" in results[1].error
    assert not (tmp_path.parent / "escape").exists()
    written = list(tmp_path.rglob("*"))
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in written)
    assert not [p for p in written if p.name.endswith(".part")]
    [eml] = tmp_path.rglob("*.eml")
    assert eml.parent == tmp_path / "_escape" and eml.name.endswith("-a_.._b@example.org.eml")


def test_test_send_without_url(tmp_path) -> None:
    test = Campaign(**{**CAMPAIGN.__dict__, "subject": "[TEST] x", "kind": Kind.TEST})
    [result] = FileProvider(tmp_path).send_batch(test, [Recipient("editor@example.org")])
    assert result.status is Status.SENT
    [path] = tmp_path.rglob("*.eml")
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg["List-Unsubscribe"] is None and msg["Subject"] == "[TEST] x"


def test_get_provider_defaults_to_file(settings, project) -> None:
    provider = get_provider(settings)
    assert provider.name == "file" and provider.max_batch >= 1
    provider.send_batch(CAMPAIGN, [Recipient("a@example.org", None, url(1))])
    assert len(list((project / "outbox" / "2011-05").glob("*.eml"))) == 1


def test_get_provider_names_missing_settings(project, monkeypatch) -> None:
    from newsletter.config import load_settings

    monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
    with pytest.raises(ConfigError, match="SMTP_URL"):
        get_provider(load_settings())
    monkeypatch.setenv("NEWSLETTER_PROVIDER", "sendgrid")
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        get_provider(load_settings())
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    assert get_provider(load_settings()).name == "sendgrid"
    monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
    monkeypatch.setenv("SMTP_URL", "smtp://u:p@127.0.0.1:2525")
    assert get_provider(load_settings()).name == "smtp"


def test_bad_unsubscribe_url_fails_the_batch_before_anything_is_written(tmp_path) -> None:
    batch = [Recipient("a@example.org", None, url(1)),
             Recipient("b@example.org", None, "https://x.example/u?t=a b")]
    with pytest.raises(ValueError, match="b@example.org"):
        FileProvider(tmp_path).send_batch(CAMPAIGN, batch)
    assert not list(tmp_path.rglob("*.eml"))
