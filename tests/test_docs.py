"""The README stays true: every command, setting and variable the code knows is documented."""

from __future__ import annotations

import re
import tomllib

import click

from newsletter.cli import main
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")


def command_paths(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from command_paths(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def test_every_command_is_in_the_readme() -> None:
    missing = [p for p in command_paths(main)
               if f"newsletter {p}" not in README and f"/ `{p.split()[-1]}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_every_contract_command_exists() -> None:
    paths = set(command_paths(main))
    for name in ("new", "build"):
        assert name in paths


def test_every_setting_is_in_the_readme() -> None:
    data = tomllib.loads((ROOT / "newsletter.toml").read_text(encoding="utf-8"))
    for section, values in data.items():
        for key in values:
            assert f"{section}.{key}" in README or f"`{section}.*`" in README, \
                f"newsletter.toml key {section}.{key} is not documented in README.md"


def test_every_environment_variable_is_documented() -> None:
    used = set()
    for path in (ROOT / "newsletter").rglob("*.py"):
        used |= set(re.findall(r"[\"']((?:NEWSLETTER|SENDGRID|SMTP)_[A-Z_]+)[\"']",
                               path.read_text(encoding="utf-8")))
    undocumented = sorted(v for v in used if v not in ENV_EXAMPLE and v not in README
                          and v != "NEWSLETTER_CONFIG")
    assert not undocumented, f"variables used by the code but not documented: {undocumented}"
    assert "NEWSLETTER_CONFIG" in README


def test_readme_names_the_two_setup_commands() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
