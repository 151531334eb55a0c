"""Settings: newsletter.toml plus environment, each bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.errors import ConfigError


def test_project_settings_load(settings) -> None:
    assert settings.name == "Cities of Migration"
    assert settings.reviewers
    assert settings.view_online_for("2011-05").endswith("/2011-05.html")
    assert settings.theme.logo is not None and settings.theme.logo.alt


def test_provider_defaults_to_file_then_sendgrid_when_key_set(project: Path) -> None:
    toml = project / "newsletter.toml"
    assert load_settings(toml, environ={}).provider == "file"
    assert load_settings(toml, environ={"SENDGRID_API_KEY": "SG.x"}).provider == "sendgrid"
    assert load_settings(toml, environ={"NEWSLETTER_PROVIDER": "SMTP"}).provider == "smtp"


def test_unknown_provider_is_named(project: Path) -> None:
    settings = load_settings(project / "newsletter.toml",
                             environ={"NEWSLETTER_PROVIDER": "mailgun"})
    with pytest.raises(ConfigError) as info:
        _ = settings.provider
    assert str(info.value) == ("NEWSLETTER_PROVIDER: unknown provider 'mailgun' "
                               "(expected one of: sendgrid, smtp, file)")


def test_environment_wins_over_dotenv(project: Path) -> None:
    (project / ".env").write_text("NEWSLETTER_SECRET=from-dotenv\nNEWSLETTER_DB=x.db\n")
    settings = load_settings(project / "newsletter.toml", environ={"NEWSLETTER_SECRET": "env"})
    assert settings.secret == "env"
    assert settings.db_path == project / "x.db"


def test_missing_secret_names_the_variable(project: Path) -> None:
    settings = load_settings(project / "newsletter.toml", environ={})
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET: not set"):
        _ = settings.secret


def test_rotation_keeps_previous_secret(project: Path) -> None:
    settings = load_settings(project / "newsletter.toml", environ={
        "NEWSLETTER_SECRET": "new", "NEWSLETTER_SECRET_PREVIOUS": "old"})
    assert settings.secrets == ("new", "old")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace('from_email = "newsletter@citiesofmigration.ca"\n', ""),
     "sender.from_email: required"),
    (lambda s: s + "\n[colours]\nx = 1\n", "colours: unknown section"),
    (lambda s: s.replace('brand = "#1d5b79"', 'brnd = "#1d5b79"'), "theme.brnd: unknown key"),
    (lambda s: s.replace("batch_size = 1000", "batch_size = 5000"),
     "sending.batch_size: must be between 1 and 1000"),
    (lambda s: s.replace('alt = "Cities of Migration", ', ""), "theme.logo: needs src and alt"),
    (lambda s: s.replace("[newsletter]", "[newsletter"), "not valid TOML"),
])
def test_bad_settings_are_named(project: Path, edit, message: str) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(edit(toml.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(toml, environ={})
    assert str(info.value).startswith(f"{toml}: ")
    assert message in str(info.value)
