"""The May 2011 issue (issues/2011-05.yaml) is a faithful transcription of the seed page.

Tests marked by their use of `shared_path` compare against ../shared/seed and skip cleanly
when a clone has no ../shared; the rest check the issue file alone.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from newsletter.compose.issue import Issue, load_issue
from tests.conftest import SEED_ISSUE, shared_path

SECTION_HEADINGS = [
    "Intercultural Communication",
    "Job Readiness for Mentees",
    "Building Partnerships",
    "Mentoring for Regulated Professions",
    "Marketing",  # unnamed on the seed page; its bullets are all about marketing
]


@pytest.fixture(scope="module")
def issue() -> Issue:
    return load_issue(SEED_ISSUE)


def _seed_text() -> str:
    folder = shared_path("seed")
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        pytest.skip(f"no seed text in {folder}")
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def _seed_bullets(seed: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*•\s+(.+)$", seed, re.M)
            if m.group(1).strip() != "No events."]


def _seed_more_titles(seed: str) -> list[str]:
    """Titles of "More Stories": the non-blank lines before each teaser (teasers end in ...)."""
    section = seed.split("More Stories - From May 2011", 1)[1]
    section = section.split("Looking for Past Issues?", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip()]
    return [line for line in lines if not line.endswith("...")]


def _seed_more_teasers(seed: str) -> list[str]:
    section = seed.split("More Stories - From May 2011", 1)[1]
    section = section.split("Looking for Past Issues?", 1)[0]
    return [line.strip()[:-3] for line in section.splitlines() if line.strip().endswith("...")]


# -- against the seed page -------------------------------------------------------------------


def test_every_more_story_title_of_the_seed_in_order(issue: Issue) -> None:
    titles = _seed_more_titles(_seed_text())
    assert len(titles) == 9, titles  # the parser of the seed itself is right
    assert [story.title for story in issue.more] == titles


def test_every_more_story_teaser_is_the_seed_text_with_an_ellipsis(issue: Issue) -> None:
    # The seed's teasers are cut mid-sentence; they keep their ellipsis (as one "…" character)
    # so a reader sees the teaser continues on the web.
    teasers = _seed_more_teasers(_seed_text())
    assert [story.summary for story in issue.more] == [t + "…" for t in teasers]


def test_every_bullet_of_the_seed_is_in_the_featured_body(issue: Issue) -> None:
    bullets = _seed_bullets(_seed_text())
    assert len(bullets) == 15, bullets
    body = issue.featured[0].body
    missing = [b for b in bullets if f"- {b}\n" not in body]
    assert not missing, missing


def test_every_seed_paragraph_is_in_the_featured_body(issue: Issue) -> None:
    """Prose paragraphs survive word for word once Markdown link syntax is taken out."""
    seed = _seed_text().split("More Stories - From May 2011", 1)[0]
    body = issue.featured[0].body
    plain = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", body)  # [text](url) -> text
    plain = re.sub(r"^> ?", "", plain, flags=re.M)  # block quote markers
    paragraphs = [p.strip() for p in seed.split("\n\n")[2:]]  # after title and date
    paragraphs = [p for p in paragraphs if p and "•" not in p and p not in SECTION_HEADINGS]
    assert len(paragraphs) == 7, paragraphs
    missing = [p for p in paragraphs if p not in plain]
    assert not missing, missing


def test_seed_headings_and_title_match(issue: Issue) -> None:
    seed = _seed_text()
    assert seed.splitlines()[0].strip() == issue.featured[0].title
    for heading in SECTION_HEADINGS[:4]:
        assert f"\n{heading}\n" in seed


# -- the issue file alone ---------------------------------------------------------------------


def test_five_section_headings_in_order(issue: Issue) -> None:
    body = issue.featured[0].body
    found = re.findall(r"^### (.+)$", body, re.M)
    assert found == SECTION_HEADINGS


def test_subject_date_and_featured(issue: Issue) -> None:
    assert issue.subject == "Cities of Migration – May 2011: Calgary: Talking Mentoring"
    assert issue.date == dt.date(2011, 5, 18)
    assert issue.slug == "2011-05"
    assert issue.preheader
    assert len(issue.featured) == 1
    story = issue.featured[0]
    assert story.title == "Calgary: Talking Mentoring"
    assert story.date == dt.date(2011, 5, 18)
    assert story.url and story.url.startswith("https://citiesofmigration.ca/")
    assert story.image is not None and story.image.alt.strip()


def test_nine_more_stories_with_citiesofmigration_urls(issue: Issue) -> None:
    assert len(issue.more) == 9
    assert all(s.url.startswith("https://citiesofmigration.ca/") for s in issue.more)
    assert len({s.url for s in issue.more}) == 9  # the two Copenhagen entries differ
    assert all(s.summary for s in issue.more)


def test_no_events(issue: Issue) -> None:
    assert issue.events == []


def test_closing_links_and_typography(issue: Issue) -> None:
    body = issue.featured[0].body
    for label in ("Maytree’s blog", "Maytree blog", "Day One", "Day Two", "ALLIES website"):
        assert re.search(rf"\[{re.escape(label)}\]\(https://[^)\s]+\)", body), label
    # The seed's typographic quotes and apostrophes are kept, not flattened to ASCII.
    for text in ("employers’ expectations", "stakeholder’s", "“Speak to the choir first.”"):
        assert text in body
    assert "'" not in body and '"' not in body
