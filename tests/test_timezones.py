"""Event times in their zone: newsletter.timezone, an event's own zone, or a written offset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.compose.render import render_issue
from newsletter.config import load_settings
from newsletter.errors import ConfigError, IssueError
from tests.support.render import make_issue


def settings_with(project: Path, zone: str | None):
    toml = project / "newsletter.toml"
    text = re.sub(r'(?m)^timezone = ".*"\n', "", toml.read_text(encoding="utf-8"))
    if zone is not None:
        text = text.replace('language = "en"\n', f'language = "en"\ntimezone = "{zone}"\n')
    toml.write_text(text, encoding="utf-8")
    return load_settings(toml)


def both_parts(rendered) -> str:
    html_text = re.sub(r"<[^>]+>", " ", rendered.html)
    return " ".join(html_text.split()) + "\n" + rendered.text


def test_times_show_the_newsletters_zone_in_both_parts(project: Path) -> None:
    settings = settings_with(project, "America/Toronto")
    issue = make_issue(events=[{"title": "Community Policing webinar",
                                "date": "2011-06-22 14:00"},
                               {"title": "Winter webinar", "date": "2011-12-07 11:30"}])
    rendered = render_issue(issue, settings)
    html, text = both_parts(rendered).split("\n", 1)
    for part in (html, text):
        assert "June 22, 2011, 2:00 PM EDT" in part
        assert "December 7, 2011, 11:30 AM EST" in part  # daylight saving is the zone's


def test_default_zone_is_utc(project: Path) -> None:
    settings = settings_with(project, None)
    assert settings.timezone == "UTC"
    issue = make_issue(events=[{"title": "Webinar", "date": "2011-06-22 14:00"}])
    assert "June 22, 2011, 2:00 PM UTC" in render_issue(issue, settings).text


def test_an_event_may_name_its_own_zone_or_offset(project: Path) -> None:
    settings = settings_with(project, "America/Toronto")
    issue = make_issue(events=[
        {"title": "Paris", "date": "2011-06-22 14:00", "timezone": "Europe/Paris"},
        {"title": "Offset", "date": "2011-06-22T14:00:00-07:00"},
        {"title": "Offset shown in Paris", "date": "2011-06-22T14:00:00+00:00",
         "timezone": "Europe/Paris"},
    ])
    text = render_issue(issue, settings).text
    assert "June 22, 2011, 2:00 PM CEST" in text
    assert "June 22, 2011, 2:00 PM UTC-07:00" in text
    assert "June 22, 2011, 4:00 PM CEST" in text


def test_dates_without_a_time_show_no_zone(project: Path) -> None:
    settings = settings_with(project, "America/Toronto")
    issue = make_issue(events=[{"title": "All day", "date": "2011-06-22"}])
    text = render_issue(issue, settings).text
    assert "June 22, 2011" in text and "EDT" not in text and "2011," not in text


def test_unknown_zone_in_settings_names_the_line(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(project, "America/Toront")
    toml = project / "newsletter.toml"
    line = toml.read_text(encoding="utf-8").splitlines().index(
        'timezone = "America/Toront"') + 1
    assert str(info.value) == (f"{toml}:{line}: newsletter.timezone: unknown time zone "
                               "'America/Toront' (did you mean 'America/Toronto'?)")


def test_unknown_zone_on_an_event_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "2011-06.yaml"
    path.write_text("subject: Webinars in June\ndate: 2011-06-01\nfeatured:\n"
                    "  - title: a\n    body: b\nevents:\n  - title: Paris\n"
                    "    date: 2011-06-22 14:00\n    timezone: Paris\n", encoding="utf-8")
    from newsletter.compose.issue import load_issue

    with pytest.raises(IssueError) as info:
        load_issue(path)
    assert str(info.value).startswith(f"{path}:9: events[0].timezone: unknown time zone "
                                      "'Paris'")
