"""Loading and validating issue files: every bad input names file, line and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from newsletter.compose.issue import load_issue
from newsletter.errors import IssueError

GOOD = """\
subject: "Cities of Migration – June 2011"
preheader: "Preview text"
date: 2011-06-15
featured:
  - title: "Q&A: <Newcomers>"
    url: https://example.org/qa
    body: |
      Hello **world**.

      - one
      - [two](https://example.org/two)
more:
  - title: "Zürich, Montréal, 北京, Ελλάδα, العربية"
    url: https://example.org/more?x=1
    summary: "Teaser"
events:
  - title: "Webinar"
    date: 2011-06-20 14:00
    location: Online
"""


def write(tmp_path: Path, text: str | bytes, name: str = "2011-06.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(IssueError) as info:
        load_issue(path)
    return str(info.value).splitlines()


def test_good_issue_loads(tmp_path: Path) -> None:
    issue = load_issue(write(tmp_path, GOOD))
    assert issue.slug == "2011-06"
    assert issue.date == dt.date(2011, 6, 15)
    assert issue.featured[0].title == "Q&A: <Newcomers>"
    assert issue.more[0].title.startswith("Zürich")
    assert issue.events[0].date == dt.datetime(2011, 6, 20, 14, 0)
    assert issue.month_label == "June 2011"


def test_event_with_plain_date_stays_a_date(tmp_path: Path) -> None:
    issue = load_issue(write(tmp_path, GOOD.replace("2011-06-20 14:00", "2011-06-20")))
    assert type(issue.events[0].date) is dt.date


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}: file not found"]


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "  \n")
    assert problems(path) == [f"{path}:1: the file is empty; start from `newsletter new`"]


def test_only_comments_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    [line] = problems(path)
    assert line.startswith(f"{path}:1:") and "no fields" in line


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("Teaser", "Z\x00").encode("utf-8").replace(
        b"Z\x00", "Zürich".encode("latin-1")))
    [line] = problems(path)
    assert line.startswith(f"{path}:15:") and "not UTF-8" in line


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('summary: "Teaser"', 'summary: "Teaser'))
    [line] = problems(path)
    assert line == (f"{path}:15: the quote opened on line 15 is never closed: end the text "
                    "with the same quote mark")


def test_list_at_top_level(tmp_path: Path) -> None:
    path = write(tmp_path, "- subject: x\n")
    [line] = problems(path)
    assert line == (f"{path}:1: the file must be a mapping of fields (subject:, date:, "
                    "featured: ...), not a list")


def test_list_where_a_mapping_belongs(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    location: Online", "    location: Online\n")
                 .replace('  - title: "Webinar"', '  - - "Webinar"').replace(
                     "    date: 2011-06-20 14:00\n    location: Online\n", ""))
    [line] = problems(path)
    assert line == f"{path}:17: events[0]: must be a mapping of fields (key: value), not a list"


def test_unknown_key_suggests_near_miss(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    summary:", "    sumary:"))
    assert problems(path) == [
        f"{path}:15: more[0].sumary: unknown field (did you mean 'summary'?)"]


def test_unknown_key_without_near_miss_lists_fields(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "colour: blue\n")
    [line] = problems(path)
    assert line.startswith(f"{path}:20: colour: unknown field (known fields: subject,")


def test_missing_required_fields_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('subject: "Cities of Migration – June 2011"\n', "")
                 .replace("    url: https://example.org/more?x=1\n", ""))
    assert problems(path) == [
        f"{path}:1: subject: required field is missing",
        f"{path}:12: more[0].url: required field is missing",
    ]


def test_bad_date(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("date: 2011-06-15", "date: 2011-13-45"))
    [line] = problems(path)
    assert line.startswith(f"{path}:3: date: not a date: write YYYY-MM-DD")


def test_bad_event_date(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("2011-06-20 14:00", "next tuesday"))
    [line] = problems(path)
    assert line.startswith(f"{path}:18: events[0].date: not a date")


def test_image_without_alt(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace(
        "    url: https://example.org/qa\n",
        "    url: https://example.org/qa\n    image: {src: https://example.org/a.jpg}\n"))
    assert problems(path) == [f"{path}:7: featured[0].image.alt: required field is missing"]


def test_crlf_in_subject(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace(
        'subject: "Cities of Migration – June 2011"',
        'subject: "Cities of Migration\\r\\nBcc: victim@example.org"'))
    [line] = problems(path)
    assert line == (f"{path}:1: subject: must be one line (it contains a line break: "
                    "CR or LF)")


@pytest.mark.parametrize("separator", ["\\u2028", "\\x85", "\\v", "\\f"])
def test_other_line_separators_in_subject(tmp_path: Path, separator: str) -> None:
    # the email package splits headers at these too: they crashed the send with a traceback
    path = write(tmp_path, GOOD.replace(
        'subject: "Cities of Migration – June 2011"',
        f'subject: "Cities of Migration{separator}Bcc: victim@example.org"'))
    [line] = problems(path)
    assert line == (f"{path}:1: subject: must be one line (it contains a line separator "
                    "character)")


@pytest.mark.parametrize("url", ['https://example.org/a"b', "https://example.org/<x>",
                                 "https://example.org/a\\\\b"])
def test_characters_not_allowed_in_a_url(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, GOOD.replace("https://example.org/more?x=1", url))
    [line] = problems(path)
    assert line.startswith(f"{path}:14: more[0].url: must not contain")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.org/x", "data:text/html,x",
                                 "example.org/no-scheme"])
def test_bad_scheme_in_a_field(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, GOOD.replace("https://example.org/more?x=1", url))
    [line] = problems(path)
    assert line.startswith(f"{path}:14: more[0].url: must be an http:// or https:// address")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", "vbscript:x",
                                 "data:text/html;base64,PHNjcmlwdD4="])
def test_bad_scheme_inside_markdown(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, GOOD.replace("https://example.org/two", url))
    [line] = problems(path)
    assert line.startswith(f"{path}:11: featured[0].body: link {url!r} is not allowed")


def test_bad_image_scheme_inside_markdown(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("      Hello **world**.",
                                        "      Hello ![x](javascript:alert(1)) **world**."))
    [line] = problems(path)
    assert line.startswith(f"{path}:8: featured[0].body: link 'javascript:alert(1)'")


def test_mailto_allowed_in_markdown(tmp_path: Path) -> None:
    issue = load_issue(write(tmp_path, GOOD.replace("https://example.org/two",
                                                    "mailto:editor@example.org")))
    assert "mailto:editor@example.org" in issue.featured[0].body


def test_no_featured_story(tmp_path: Path) -> None:
    text = GOOD.split("featured:")[0] + "featured: []\n"
    path = write(tmp_path, text)
    assert problems(path) == [f"{path}:4: featured: needs at least one entry"]


def test_seed_issue_loads(seed_issue: Path) -> None:
    issue = load_issue(seed_issue)
    assert issue.slug == "2011-05"
    assert issue.featured[0].title == "Calgary: Talking Mentoring"
