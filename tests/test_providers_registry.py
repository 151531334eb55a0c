"""The provider registry: which provider the settings choose, what each says about itself, and
that a new provider is one registered class (nothing else to edit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from newsletter.deliver import sender
from newsletter.deliver.campaign import Campaign, Recipient, Result, Status
from newsletter.deliver.providers import REGISTRY, chosen, get_provider, provider_class
from newsletter.deliver.providers.base import NoWebhook
from newsletter.errors import ConfigError
from tests.support.sending import add_subscribers, counts


def with_env(settings, **env: str):
    return replace(settings, env={**settings.env, **env})


def test_choice_rule(settings) -> None:
    assert chosen(settings) == "file"
    assert chosen(with_env(settings, SMTP_URL="smtp://127.0.0.1:25")) == "smtp"
    assert chosen(with_env(settings, SENDGRID_API_KEY="SG.x")) == "sendgrid"
    assert chosen(with_env(settings, SENDGRID_API_KEY="SG.x",
                           SMTP_URL="smtp://127.0.0.1:25")) == "sendgrid"
    assert chosen(with_env(settings, NEWSLETTER_PROVIDER=" SMTP ")) == "smtp"
    assert chosen(with_env(settings, NEWSLETTER_PROVIDER="file", SENDGRID_API_KEY="SG.x")) \
        == "file"
    # set but empty: as if unset
    assert chosen(with_env(settings, NEWSLETTER_PROVIDER="", SMTP_URL="smtp://h")) == "smtp"


def test_unknown_provider_is_named(settings) -> None:
    with pytest.raises(ConfigError) as info:
        chosen(with_env(settings, NEWSLETTER_PROVIDER="mailgun"))
    assert str(info.value) == ("NEWSLETTER_PROVIDER: unknown provider 'mailgun' "
                               "(expected one of: file, sendgrid, smtp)")


def test_connections_descriptions_and_problems(settings) -> None:
    smtp = with_env(settings, NEWSLETTER_PROVIDER="smtp",
                    SMTP_URL="smtps://ana:s3cret@mail.example.org")
    assert sender.default_connections(smtp) == 4
    assert sender.default_connections(with_env(settings, SENDGRID_API_KEY="SG.x")) == 1
    assert sender.default_connections(settings) == 1
    assert provider_class(smtp).describe(smtp) == "through the SMTP server mail.example.org:465"
    assert "s3cret" not in provider_class(smtp).describe(smtp)
    assert provider_class(smtp).usable(smtp) is None
    sg = with_env(settings, SENDGRID_API_KEY="SG.secret-key")
    assert provider_class(sg).describe(sg) == "through SendGrid"
    assert provider_class(settings).describe(settings).startswith("into ")
    assert "SMTP_URL" in REGISTRY["smtp"].usable(with_env(settings, NEWSLETTER_PROVIDER="smtp"))
    bad = with_env(settings, NEWSLETTER_PROVIDER="smtp", SMTP_URL="smtp://a:s3cret@h:99999")
    assert "s3cret" not in REGISTRY["smtp"].usable(bad)
    assert "SENDGRID_API_KEY" in REGISTRY["sendgrid"].usable(settings)
    assert REGISTRY["file"].usable(settings) is None


class PigeonProvider(NoWebhook):
    """A provider defined outside the package: registering it is all it takes."""

    name = "pigeon"
    max_batch = 2
    default_connections = 1
    selected_by = "PIGEON_LOFT"
    flown: list[str] = []

    @classmethod
    def from_settings(cls, settings) -> PigeonProvider:
        if not settings.getenv("PIGEON_LOFT"):
            raise ConfigError("not set", field="PIGEON_LOFT")
        return cls()

    @classmethod
    def usable(cls, settings) -> str | None:
        return None if settings.getenv("PIGEON_LOFT") else "PIGEON_LOFT: not set"

    @classmethod
    def describe(cls, settings) -> str:
        return "by pigeon"

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        assert campaign.to_subscribers and all(r.unsubscribe_url for r in recipients)
        self.flown.extend(r.email for r in recipients)
        return [Result(r.email, Status.SENT) for r in recipients]

    def close(self) -> None:
        pass


def test_a_registered_provider_is_chosen_and_sends(settings, monkeypatch, seed_issue) -> None:
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue

    monkeypatch.setitem(REGISTRY, "pigeon", PigeonProvider)
    live = with_env(settings, PIGEON_LOFT="roof")
    assert chosen(live) == "pigeon"
    assert isinstance(get_provider(live), PigeonProvider)
    emails = add_subscribers(settings.db_path, 5)
    report = sender.send_all(render_issue(load_issue(seed_issue), live), live)
    assert report.sent == 5 and sorted(PigeonProvider.flown) == sorted(emails)
    assert counts(settings.db_path)["sent"] == 5
