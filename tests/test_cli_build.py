"""`newsletter build` and `newsletter new` through the CLI, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_build_writes_html_and_text(seed_issue: Path, project: Path) -> None:
    code, out, err = run("build", str(seed_issue), "--out", "out")
    assert code == 0, err
    html, text = project / "out" / "2011-05.html", project / "out" / "2011-05.txt"
    assert html.read_text(encoding="utf-8").lower().startswith("<!doctype html>")
    assert "Calgary: Talking Mentoring" in text.read_text(encoding="utf-8")
    assert out.startswith("2011-05: out/2011-05.html (")
    assert " KB), out/2011-05.txt (" in out
    assert err == ""


def test_build_defaults_to_build_folder(seed_issue: Path, project: Path) -> None:
    code, out, err = run("build", "issues/2011-05.yaml")
    assert code == 0, err
    assert (project / "build" / "2011-05.html").is_file()


def test_bad_issue_one_message_no_traceback_nothing_written(project: Path) -> None:
    bad = project / "issues" / "2011-06.yaml"
    good = project / "issues" / "2011-05.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("  - title:", "  - titel:", 1),
                   encoding="utf-8")
    code, out, err = run("build", str(good), str(bad), "--out", "out")
    assert code == 1
    assert err.startswith(f"{bad}:") and "titel: unknown field (did you mean 'title'?)" in err
    assert "Traceback" not in err and out == ""
    # a failed build writes nothing, not even the good issue
    assert not (project / "out").exists()


def test_missing_file(project: Path) -> None:
    code, out, err = run("build", "issues/nope.yaml")
    assert (code, out, err) == (1, "", "issues/nope.yaml: file not found\n")


def test_failed_rebuild_keeps_previous_output(seed_issue: Path, project: Path) -> None:
    assert run("build", str(seed_issue), "--out", "out")[0] == 0
    before = (project / "out" / "2011-05.html").read_bytes()
    seed_issue.write_text("subject: [", encoding="utf-8")
    code, _, err = run("build", str(seed_issue), "--out", "out")
    assert code == 1 and "malformed YAML" in err
    assert (project / "out" / "2011-05.html").read_bytes() == before
    assert sorted(p.name for p in (project / "out").iterdir()) == ["2011-05.html", "2011-05.txt"]


def test_unwritable_output_is_one_line_and_nothing_half_written(seed_issue: Path,
                                                                project: Path) -> None:
    (project / "blocker").write_text("a file where a folder is needed", encoding="utf-8")
    code, out, err = run("build", str(seed_issue), "--out", "blocker/out")
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("blocker/out: cannot write: "), err
    # one of the two outputs cannot be written: the other is not written either
    (project / "out" / "2011-05.txt").mkdir(parents=True)
    code, out, err = run("build", str(seed_issue), "--out", "out")
    assert code == 1
    assert err.strip() == "out/2011-05.txt: is a folder; cannot write the file there", err
    assert sorted(p.name for p in (project / "out").iterdir()) == ["2011-05.txt"]


def test_missing_settings_file(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(project / "missing.toml"))
    code, _, err = run("build", "issues/2011-05.yaml")
    missing = project / "missing.toml"
    assert code == 1 and err == f"{missing}: file not found (set by NEWSLETTER_CONFIG)\n"


def test_new_writes_a_skeleton_that_builds(project: Path) -> None:
    code, out, err = run("new", "--date", "2011-06-15")
    assert code == 0, err
    path = project / "issues" / "2011-06.yaml"
    assert out == f"wrote {path}\n"
    text = path.read_text(encoding="utf-8")
    assert "date: 2011-06-15" in text and "Cities of Migration – June 2011" in text
    code, _, err = run("build", str(path), "--out", "out")
    assert code == 0, err


def test_new_skeleton_survives_quotes_in_the_name(project: Path) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'name = "Cities of Migration"', 'name = "The \\"Migration\\" Letter \\\\ Maytree"', 1),
        encoding="utf-8")
    code, out, err = run("new", "--date", "2011-06-15")
    assert code == 0, err
    from newsletter.compose.issue import load_issue  # the skeleton used to be broken YAML

    issue = load_issue(project / "issues" / "2011-06.yaml")
    assert issue.subject.startswith('The "Migration" Letter \\ Maytree – June 2011: ')


def test_new_refuses_to_overwrite(project: Path) -> None:
    code, _, err = run("new", "--date", "2011-05-01")
    assert code == 1
    path = project / "issues" / "2011-05.yaml"
    assert err == f"{path}: already exists; edit it or remove it first\n"


def test_new_defaults_to_next_month(project: Path) -> None:
    import datetime as dt

    from newsletter.compose.building import next_month

    assert next_month(dt.date(2011, 12, 31)) == dt.date(2012, 1, 1)
    assert next_month(dt.date(2011, 5, 18)) == dt.date(2011, 6, 1)
    code, out, _ = run("new")
    assert code == 0
    assert out.strip().endswith(f"{next_month(dt.date.today()):%Y-%m}.yaml")


def test_bad_date_option_is_usage_error(project: Path) -> None:
    code, _, err = run("new", "--date", "May 2011")
    assert code == 2 and "--date" in err


def test_every_command_has_help_with_an_example() -> None:
    import click

    def walk(group: click.Group, prefix: str):
        for name, cmd in group.commands.items():
            yield f"{prefix}{name}", cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, f"{prefix}{name} ")

    names = []
    for name, _cmd in walk(main, ""):
        names.append(name)
        result = CliRunner().invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"`newsletter {name} --help` has no example"
    assert {"build", "new"} <= set(names)


@pytest.mark.slow
def test_build_imports_nothing_it_does_not_need(seed_issue: Path, project: Path) -> None:
    """The build command stays fast: no provider, HTTP client or database on its path.
    (premailer itself imports requests at import time; that one is unavoidable.)"""
    code = (
        "import sys\n"
        "from newsletter.cli import main\n"
        "try:\n"
        f"    main(['build', {str(seed_issue)!r}, '--out', 'out'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "bad = [m for m in ('sendgrid', 'python_http_client', 'sqlite3', "
        "'httpx', 'aiosmtpd', 'smtplib', 'watchfiles', 'waitress', 'rich') if m in sys.modules]\n"
        "print('IMPORTED:' + ','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=project, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "IMPORTED:"
