"""The shared terminal progress bar (newsletter/cli/progress.py) and the commands that use it:
a bar on a terminal, and not one extra byte when stderr is not a terminal."""

from __future__ import annotations

import io
import sys

from click.testing import CliRunner
from rich.console import Console

from newsletter.cli import main
from newsletter.cli import progress as progress_mod
from tests.support.check_server import link_server  # noqa: F401  (fixture)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def forced_bar(buffer: io.StringIO, label: str, **options) -> progress_mod.Bar:
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    return progress_mod.Bar(label, console=console, **options)


def test_bar_draws_label_counts_and_rate():
    out = io.StringIO()
    bar = forced_bar(out, "importing", unit="rows")
    bar.update(40, 100, rate=1234.0)
    bar.close()
    bar.close()  # twice is harmless
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "importing" in last and "40/100" in last and "1,234 rows/s" in last


def test_bar_without_total_is_indeterminate_and_never_started_draws_nothing():
    out = io.StringIO()
    bar = forced_bar(out, "checking", unit="URLs", eta=False)
    bar.update(3, None)
    bar.close()
    assert "3/?" in out.getvalue()
    quiet = io.StringIO()
    forced_bar(quiet, "idle").close()
    assert quiet.getvalue() == ""


def test_terminal_bar_only_when_stderr_is_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_mod.terminal_bar("x") is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert isinstance(progress_mod.terminal_bar("x"), progress_mod.Bar)


MEMBERS = "email,name\nann@example.org,Ann\nbad-address,Bob\nchen@example.org,Chen\n"


def test_import_output_when_not_a_terminal_is_exactly_the_summary(project):
    (project / "members.csv").write_text(MEMBERS, encoding="utf-8")
    result = CliRunner().invoke(main, ["subscribers", "import", "members.csv"])
    assert result.exit_code == 0
    assert result.stdout == "members.csv (CSV): 3 rows: 2 added active; 1 skipped\n"
    assert result.stderr == ("members.csv:3: email: skipped: 'bad-address': An email address"
                             " must have an @-sign.\n")


def test_import_on_a_terminal_shows_the_bar(project, monkeypatch):

    (project / "members.csv").write_text(MEMBERS, encoding="utf-8")
    drawn = io.StringIO()
    monkeypatch.setattr(progress_mod, "terminal_bar",
                        lambda label, **options: forced_bar(drawn, label, **options))
    result = CliRunner().invoke(main, ["subscribers", "import", "members.csv"])
    assert result.exit_code == 0 and "2 added" in result.stdout
    last = drawn.getvalue().rsplit("\r", 1)[-1]
    assert "importing" in last and "3/3" in last and "rows/s" in last


def test_check_shows_url_progress_on_a_terminal_only(project, link_server, monkeypatch):  # noqa: F811
    import json
    import re

    from tests.test_check_cli import local_links, write_issue

    local_links(project, link_server)
    issue = str(write_issue(project, "2011-06", link_server.url("/ok")))
    plain = CliRunner().invoke(main, ["check", issue, "--json"])
    assert plain.stderr == ""  # not a terminal: nothing on stderr
    drawn = io.StringIO()
    monkeypatch.setattr(progress_mod, "terminal_bar",
                        lambda label, **options: forced_bar(drawn, label, **options))
    shown = CliRunner().invoke(main, ["check", issue, "--json"])
    assert shown.exit_code == plain.exit_code
    assert json.loads(shown.stdout) == json.loads(plain.stdout)  # stdout untouched by the bar
    assert "checking links and images" in drawn.getvalue()
    done = re.findall(r"(\d+)/(\d+) ", drawn.getvalue())
    assert done and done[-1][0] == done[-1][1] and int(done[-1][1]) >= 1


def test_archive_shows_issue_progress_on_a_terminal(project, seed_issue, monkeypatch):

    drawn = io.StringIO()
    monkeypatch.setattr(progress_mod, "terminal_bar",
                        lambda label, **options: forced_bar(drawn, label, **options))
    result = CliRunner().invoke(main, ["archive"])
    assert result.exit_code == 0
    assert result.stdout == "wrote site/: index.html, feed.xml and 1 issue page\n"
    assert "rendering issues" in drawn.getvalue() and "1/1" in drawn.getvalue()
