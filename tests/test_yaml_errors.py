"""YAML mistakes in plain language, with the fix, at the right line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.compose.issue import load_issue
from newsletter.errors import IssueError

HEAD = 'subject: "Cities of Migration – June 2011"\ndate: 2011-06-15\nfeatured:\n'

CASES = {
    "tab": (HEAD + "\t- title: Calgary\n", 4,
            "a tab character in line 4: indent with spaces, not tabs"),
    "tab inside an entry": (HEAD + "  - title: Calgary\n  \tbody: Text\n", 5,
                            "a tab character in line 5: indent with spaces, not tabs"),
    "unquoted colon": (HEAD + "  - title: Calgary: Talking Mentoring\n    body: Text\n", 4,
                       'a colon inside the title: put the title in quotes, e.g. '
                       'title: "Calgary: Talking Mentoring"'),
    "misaligned (deeper)": (HEAD + "  - title: Calgary\n      body: Text\n", 5,
                            "line 5 is indented differently from the lines above it: "
                            "fields of one entry start in the same column"),
    "misaligned (shallower)": (HEAD + "  - title: Calgary\n   body: Text\n", 5,
                               "line 5 is indented differently from the lines above it: "
                               "fields of one entry start in the same column"),
    "unclosed quote": ('subject: "Cities of Migration\ndate: 2011-06-15\n', 1,
                       "the quote opened on line 1 is never closed: end the text with the "
                       "same quote mark"),
    "unclosed quote swallowing lines": (
        HEAD + '  - title: "Calgary\n    body: Text\nmore:\n  - title: "Essen"\n', 4,
        "the quote opened on line 4 is never closed: end the text with the same quote mark"),
    "duplicate key": (HEAD + "  - title: Calgary\n    body: Text\n    title: Essen\n", 6,
                      "'title' appears twice in the same entry (also on line 4): keep only "
                      "one"),
    "list item where a field is expected": (
        'subject: "June"\n- title: Calgary\n', 2,
        "line 2 starts a list item ('- ') where a field (name: value) belongs: indent "
        "list items under their field (e.g. more:)"),
    "no space after the dash": (HEAD + "  -title: Calgary\n  -title: Essen\n", 5,
                                "'-title': put a space after the dash of a list item "
                                "('- title')"),
    "text after a closing quote": ('subject: "Cities" of Migration\n', 1,
                                   "text continues after the closing quote in line 1: put "
                                   "the whole value inside the quotes (write \\\" for a "
                                   'quote mark inside "...")'),
    "quote closed early, then a colon": (
        'subject: "Cities: "Migration" news: June"\n', 1,
        "text continues after the closing quote in line 1: put the whole value inside the "
        'quotes (write \\" for a quote mark inside "...")'),
    "block text not indented": (HEAD + "  - title: Calgary\n    body: |\n    Text\n", 6,
                                "line 6 is not indented under the text block started on "
                                "line 5 (indent every line of it more than its field name), "
                                "or it lacks a colon after its field name"),
    "missing colon": ('subject "June"\ndate: 2011-06-15\n', 1,
                      "line 1 has no colon: write the field name, a colon, then the value"),
    "value starting with @": ("subject: @citiesofmigration news\n", 1,
                              'a value cannot start with @: put it in quotes '
                              '(e.g. subject: "@...")'),
    "value starting with *": ("subject: *New* this month\n", 1,
                              "a value cannot start with * or ! (YAML reads a reference): "
                              "put it in quotes"),
    "value starting with {": ("subject: {New} this month\n", 1,
                              "a value starting with { or [ is read as a mapping or list: "
                              "close it, or put the value in quotes"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plain_language_with_the_fix(tmp_path: Path, name: str) -> None:
    text, line, message = CASES[name]
    path = tmp_path / "2011-06.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(IssueError) as info:
        load_issue(path)
    assert str(info.value) == f"{path}:{line}: {message}"
    # no parser vocabulary left in what the officer reads
    for word in ("token", "<block", "mapping values", "scanning", "expected"):
        assert word not in message


def test_the_cli_prints_one_line_and_exits_1(project: Path) -> None:
    path = project / "issues" / "2011-06.yaml"
    path.write_text(HEAD + "  - title: Calgary: Talking Mentoring\n    body: Text\n",
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(path)])
    assert result.exit_code == 1
    assert result.output == (f"{path}:4: a colon inside the title: put the title in quotes, "
                             'e.g. title: "Calgary: Talking Mentoring"\n')


def test_a_list_where_a_mapping_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "2011-06.yaml"
    path.write_text(HEAD + "  - title: Calgary\n    body: Text\n    image:\n"
                    "      - src: https://citiesofmigration.ca/a.jpg\n", encoding="utf-8")
    with pytest.raises(IssueError) as info:
        load_issue(path)
    assert str(info.value) == (f"{path}:6: featured[0].image: must be a mapping of fields "
                               "(key: value), not a list")
