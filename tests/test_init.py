"""`newsletter init`: a newsletter folder from nothing, never overwriting; and the traps a new
user met (secret message, serve's port, .env.example pinning a provider)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from dotenv import dotenv_values

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.deliver.providers import chosen
from newsletter.project import (
    PLACEHOLDER_ADDRESS,
    PLACEHOLDER_FROM,
    Answers,
    create_project,
    unfinished_settings,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the cwd, with no newsletter variables inherited."""
    for name in list(os.environ):
        if name.startswith(("NEWSLETTER_", "SENDGRID_", "SMTP_")):
            monkeypatch.delenv(name)
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_init_yes_writes_a_working_folder(empty):
    result = run("init", "acme-news", "--yes")
    assert result.exit_code == 0, result.output
    folder = empty / "acme-news"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".env", ".gitignore", "issues", "newsletter.toml"]
    env = folder / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    secret = dotenv_values(env)["NEWSLETTER_SECRET"]
    assert secret and len(secret) >= 40
    ignored = (folder / ".gitignore").read_text().splitlines()
    for name in (".env", "newsletter.db", "build/", "outbox/", "site/"):
        assert name in ignored
    settings = load_settings(folder / "newsletter.toml", environ={})
    assert settings.name == "Acme News" and settings.secret == secret
    assert settings.from_email == PLACEHOLDER_FROM
    assert settings.reviewers == (PLACEHOLDER_FROM,)
    assert chosen(settings) == "file"
    assert [f for f, _ in unfinished_settings(settings)] == [
        "sender.from_email", "newsletter.postal_address", "links.public"]
    # The toml is commented like the project's own.
    assert (folder / "newsletter.toml").read_text().count("\n#") >= 8
    lines = result.stdout.splitlines()
    assert lines[-4:-1] == ["  cd acme-news", "  newsletter new",
                            lines[-2]] and lines[-2].startswith("  newsletter build issues/")
    assert lines[-1].startswith("  newsletter send issues/") and lines[-1].endswith(" --test")
    assert "secret" not in result.output.lower() or secret not in result.output


def test_init_never_overwrites(empty):
    (empty / ".gitignore").write_text("node_modules/\n")
    assert run("init", "--yes", "--name", "First").exit_code == 0
    before = {p.name: p.read_bytes() for p in empty.iterdir() if p.is_file()}
    result = run("init", "--yes", "--name", "Second")
    assert result.exit_code == 0
    assert {p.name: p.read_bytes() for p in empty.iterdir() if p.is_file()} == before
    assert "kept (already there, not changed): newsletter.toml, issues/, .env, .gitignore" \
        in result.stderr
    assert "does not list .env" in result.stderr  # the user's own .gitignore was kept
    assert load_settings(empty / "newsletter.toml", environ={}).name == "First"


def test_init_asks_and_asks_again_for_a_bad_answer(empty):
    answers = "\n".join(["Cités de la migration", "not an address", "news@cites.example",
                         "1 rue de Rivoli, 75001 Paris, France", "ftp://nope",
                         "https://lettre.cites.example"]) + "\n"
    result = run("init", input=answers)
    assert result.exit_code == 0, result.output
    assert result.output.count("From address") == 2
    assert result.output.count("Public URL") == 2
    settings = load_settings(empty / "newsletter.toml", environ={})
    assert (settings.name, settings.from_email, settings.postal_address, settings.public_url) \
        == ("Cités de la migration", "news@cites.example",
            "1 rue de Rivoli, 75001 Paris, France", "https://lettre.cites.example")
    assert settings.list_id == "cit-s-de-la-migration"
    assert unfinished_settings(settings) == []
    assert "placeholders" not in result.output


def test_flags_and_quotes_survive_toml(empty):
    result = run("init", "--yes", "--name", 'The "Quoted" \\ News', "--from", "a@b.example",
                 "--address", "PO Box 1\nSpringfield", "--public-url", "https://n.b.example/")
    assert result.exit_code == 0, result.output
    settings = load_settings(empty / "newsletter.toml", environ={})
    assert settings.name == 'The "Quoted" \\ News'
    assert settings.postal_address == "PO Box 1\nSpringfield"
    assert settings.public_url == "https://n.b.example"


def test_invalid_flag_is_one_clear_error_and_writes_nothing(empty):
    result = run("init", "--yes", "--from", "Acme <news@acme.example>")
    assert result.exit_code == 1
    assert "sender.from_email" in result.stderr and "Traceback" not in result.output
    assert list(empty.iterdir()) == []


def test_templates_are_copied_and_kept(empty):
    (empty / "templates").mkdir()
    (empty / "templates" / "email.txt.j2").write_text("mine\n")
    result = run("init", "--yes", "--templates")
    assert result.exit_code == 0, result.output
    defaults = ROOT / "newsletter" / "templates"
    for source in defaults.rglob("*"):
        if source.is_file() and source.name != "email.txt.j2":
            copy = empty / "templates" / source.relative_to(defaults)
            assert copy.read_bytes() == source.read_bytes()
    assert (empty / "templates" / "email.txt.j2").read_text() == "mine\n"
    assert "templates/ (1 files)" in result.stderr  # the one kept


def test_check_flags_the_placeholders(tmp_path):
    create_project(tmp_path, Answers(name="X"), secret="s" * 43)
    settings = load_settings(tmp_path / "newsletter.toml", environ={})
    from newsletter.checks.content import check_settings

    findings = check_settings(settings)
    assert [f.level for f in findings] == ["error"] * 3
    assert PLACEHOLDER_ADDRESS in findings[1].message


def test_missing_secret_says_how_to_make_one(tmp_path):
    create_project(tmp_path, Answers(name="X"), secret="s" * 43)
    (tmp_path / ".env").unlink()
    settings = load_settings(tmp_path / "newsletter.toml", environ={})
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        _ = settings.secret
    assert "newsletter init" in str(err.value)
    assert "secrets.token_urlsafe(32)" in str(err.value)


def test_env_example_pins_no_provider():
    values = dotenv_values(ROOT / ".env.example")
    assert not values.get("NEWSLETTER_PROVIDER")


def test_serve_port_is_no_mail_catchers():
    from newsletter.cli.serve import serve

    port = next(p.default for p in serve.params if p.name == "port")
    assert port == 8780
    assert port not in {25, 80, 1025, 1080, 2500, 5000, 8025, 8080, 9000, *range(3025, 3996)}
    assert f":{port}" in (ROOT / "docs" / "serving.md").read_text()


def test_env_example_as_env_with_smtp_url_alone_sends_by_smtp(tmp_path):
    create_project(tmp_path, Answers(name="X"), secret="s" * 43)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"))
    settings = load_settings(tmp_path / "newsletter.toml",
                             environ={"SMTP_URL": "smtp://127.0.0.1:2525"})
    assert chosen(settings) == "smtp"
