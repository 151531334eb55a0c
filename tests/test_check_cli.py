"""`newsletter check` from the command line: exit status, grouped report, --json."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main
from tests.support.check_server import link_server  # noqa: F401  (fixture)


def run(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def write_issue(project: Path, name: str, link: str, *, preheader: bool = True) -> Path:
    path = project / "issues" / f"{name}.yaml"
    lines = [
        'subject: "Cities of Migration – June 2011: Talking Mentoring"',
        *(['preheader: "Ideas from the mentoring conference."'] if preheader else []),
        "date: 2011-06-01",
        "featured:",
        '  - title: "Calgary: Talking Mentoring"',
        "    body: |",
        f"      Read the [conference report]({link}) from Calgary.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_seed_issue_offline_has_no_errors(project: Path, seed_issue: Path) -> None:
    result = run(str(seed_issue), "--offline", "--json")
    data = json.loads(result.output)
    errors = [f for f in data["findings"] if f["level"] == "error"]
    assert errors == [], errors
    assert result.exit_code == 0
    assert data["issue"] == "2011-05" and data["errors"] == 0
    assert data["notes"] == sum(f["level"] == "note" for f in data["findings"])
    assert any("not checked" in f["message"] for f in data["findings"])


def test_only_warnings_exit_zero_and_the_report_is_grouped(project: Path) -> None:
    issue = write_issue(project, "2011-06", "https://citiesofmigration.ca/report",
                        preheader=False)
    result = run(str(issue), "--offline")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Warnings (" in out and "no preheader" in out
    assert "Errors" not in out
    assert out.index("Warnings (") < out.index("Notes (")
    last = out.strip().splitlines()[-1]
    assert last.startswith("0 errors, ") and "warning" in last and "note" in last


def local_links(project: Path, server) -> None:
    """Point every web address in the settings (logo, archive, view online...) at the local
    server, so the check requests nothing beyond 127.0.0.1."""
    toml = project / "newsletter.toml"
    text = toml.read_text(encoding="utf-8")
    for site in ("https://newsletter.citiesofmigration.ca", "https://citiesofmigration.ca"):
        text = text.replace(site, server.url("/ok"))
    toml.write_text(text, encoding="utf-8")


def test_a_broken_link_exits_one_and_json_names_it(project: Path, link_server) -> None:  # noqa: F811
    local_links(project, link_server)
    issue = write_issue(project, "2011-06", link_server.url("/missing"))
    result = run(str(issue), "--json", "--timeout", "5")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["errors"] >= 1
    broken = [f for f in data["findings"]
              if f["category"] == "links" and f["level"] == "error"]
    assert len(broken) == 1
    assert '"conference report"' in broken[0]["message"]
    assert broken[0]["where"] == "Calgary: Talking Mentoring"
    assert set(broken[0]) == {"level", "category", "message", "where"}
    assert all(f["level"] != "error" for f in data["findings"] if f is not broken[0]), data


def test_an_invalid_issue_is_one_line_and_exit_one(project: Path) -> None:
    path = project / "issues" / "bad.yaml"
    path.write_text("subject: x\ndate: 2011-06-01\nfeatured: []\nsumary: y\n", encoding="utf-8")
    result = run(str(path), "--offline")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "bad.yaml" in result.output


def test_help_has_an_example() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "newsletter check issues/2011-05.yaml --offline" in result.output
    assert "--json" in result.output
