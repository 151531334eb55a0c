"""Settings: newsletter.toml plus environment, each bad value named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.errors import ConfigError


def test_project_settings_load(settings) -> None:
    assert settings.name == "Cities of Migration"
    assert settings.reviewers
    assert settings.view_online_for("2011-05").endswith("/2011-05.html")
    assert settings.theme.logo is not None and settings.theme.logo.alt


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
    # each of these used to load and then crash a build or send with a traceback
    (lambda s: s.replace("width = 220", 'width = "wide"'),
     "theme.logo.width: must be a whole number"),
    (lambda s: s.replace('reply_to = "info@citiesofmigration.ca"',
                         'reply_to = "Info <info@citiesofmigration.ca>"'),
     "sender.reply_to: 'Info <info@citiesofmigration.ca>' is not a plain email address"),
    (lambda s: s.replace('from_email = "newsletter@citiesofmigration.ca"',
                         'from_email = "newsletter"'),
     "sender.from_email: 'newsletter' is not a plain email address"),
    (lambda s: s.replace('from_name = "Cities of Migration"',
                         'from_name = "Cities of\\u2028Migration"'),
     "sender.from_name: must be one line"),
    (lambda s: s.replace('list_id = "cities-of-migration"', 'list_id = "cities of migration"'),
     "newsletter.list_id: must look like"),  # went into List-Id: <...> as it was
    (lambda s: s.replace('language = "en"', 'language = "en\\"><b>"'),
     "newsletter.language: must look like a language tag"),
    (lambda s: s.replace('from_email = "newsletter@citiesofmigration.ca"',
                         'from_email = "zoë@citiesofmigration.ca"'),
     "sender.from_email: 'zoë@citiesofmigration.ca': the part before the @ must be ASCII"),
    (lambda s: s.replace("rate_limit = 0", "rate_limit = nan"), "sending.rate_limit: must be"),
    (lambda s: s.replace("rate_limit = 0", "rate_limit = inf"), "sending.rate_limit: must be"),
    # silently accepted before: a colour that is no colour, a link that is no web address
    (lambda s: s.replace('brand = "#1d5b79"', "brand = 5"), "theme.brand: must be a colour"),
    (lambda s: s.replace('text = "#222222"', 'text = "#22"'), "theme.text: must be a colour"),
    (lambda s: s.replace('archive = "https://citiesofmigration.ca/newsletter/archive/"',
                         'archive = "javascript:alert(1)"'),
     "links.archive: must be an http:// or https:// address"),
    (lambda s: s.replace('logo = { src = "https://', 'logo = { src = "file:///'),
     "theme.logo.src: must be an http:// or https:// address"),
])
def test_bad_settings_are_named(project: Path, edit, message: str) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(edit(toml.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(toml, environ={})
    assert re.match(rf"{re.escape(str(toml))}(:\d+)?: ", str(info.value))
    assert message in str(info.value)


def test_toml_syntax_error_names_the_line(project: Path) -> None:
    toml = project / "newsletter.toml"
    lines = toml.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("brand ="))
    lines[at] = "brand = #1d5b79"  # unquoted
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(toml, environ={})
    assert str(info.value).startswith(f"{toml}:{at + 1}: not valid TOML: ")


def test_dotenv_that_is_not_utf8_is_named(project: Path) -> None:
    (project / ".env").write_bytes(b"NEWSLETTER_SECRET=caf\xe9\n")  # Latin-1
    with pytest.raises(ConfigError) as info:
        load_settings(project / "newsletter.toml", environ={})
    assert str(info.value) == f"{project / '.env'}: not UTF-8 text"


def test_internationalised_public_host_is_written_as_idna(project: Path) -> None:
    # it goes into List-Unsubscribe; a non-ASCII URL made every send fail with a traceback
    toml = project / "newsletter.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace('public = "https://newsletter.citiesofmigration.ca"',
                        'public = "https://nachrichten.bücher.example:8443/"')
    toml.write_text(text, encoding="utf-8")
    settings = load_settings(toml, environ={})
    assert settings.public_url == "https://nachrichten.xn--bcher-kva.example:8443"
    toml.write_text(text.replace(":8443/", "/abmeldung-ö"), encoding="utf-8")
    with pytest.raises(ConfigError, match="links.public: must be ASCII after the host"):
        load_settings(toml, environ={})


@pytest.mark.parametrize(("edit", "where"), [
    (lambda s: s.replace("batch_size = 1000", "batch_size = 0"), "batch_size = 0"),
    (lambda s: s.replace('brand = "#1d5b79"', 'brand = "blue"'), 'brand = "blue"'),
    (lambda s: s.replace("width = 220", "width = 0"), "logo = {"),
    (lambda s: s + "\n[colours]\nx = 1\n", "[colours]"),
    (lambda s: s.replace('from_email = "newsletter@citiesofmigration.ca"\n', ""), "[sender]"),
])
def test_bad_settings_name_their_line(project: Path, edit, where: str) -> None:
    toml = project / "newsletter.toml"
    text = edit(toml.read_text(encoding="utf-8"))
    toml.write_text(text, encoding="utf-8")
    line = next(n for n, x in enumerate(text.splitlines(), 1) if x.startswith(where))
    with pytest.raises(ConfigError) as info:
        load_settings(toml, environ={})
    assert str(info.value).startswith(f"{toml}:{line}: ")


def test_unknown_key_suggests_the_known_one(project: Path) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("reply_to =", "replyto ="),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(toml, environ={})
    assert "sender.replyto: unknown key (expected one of: " in str(info.value)
    assert str(info.value).endswith("did you mean 'reply_to'?")


def test_empty_from_name_means_the_newsletter_name(project: Path) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'from_name = "Cities of Migration"', 'from_name = ""'), encoding="utf-8")
    assert load_settings(toml, environ={}).from_name == "Cities of Migration"


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    toml = tmp_path / "newsletter.toml"
    toml.write_text('[newsletter]\nname = "N"\npostal_address = "1 Main St"\nwhy = "You asked."\n'
                    '[sender]\nfrom_email = "n@example.org"\n'
                    '[links]\npublic = "https://example.org/news/"\n', encoding="utf-8")
    settings = load_settings(toml, environ={})
    assert (settings.language, settings.list_id, settings.from_name) == ("en", "newsletter", "N")
    assert settings.public_url == "https://example.org/news"
    assert settings.subscribe_url == "https://example.org/news/subscribe"
    assert (settings.batch_size, settings.rate_limit, settings.theme.logo) == (1000, 0.0, None)
    assert settings.theme.brand == "#0b5394"
