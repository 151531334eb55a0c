"""`check` catches what reviewers miss: placeholders, example links, http://, shortened
summaries, oversized pictures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from newsletter.checks import run_checks
from newsletter.cli import main
from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue
from tests.support.check_server import link_server  # noqa: F401  (fixture)
from tests.support.checks import by
from tests.support.render import make_issue

REAL = "https://citiesofmigration.ca/ezine_stories/calgary-talking-mentoring/"


def findings(issue, settings):
    return run_checks(render_issue(issue, settings), settings, offline=True, spam=False)


def messages(found, category=None, level=None) -> list[str]:
    return [f.message for f in by(found, category, level)]


def story(**fields):
    return {"title": "Calgary: Talking Mentoring", "url": REAL, "body": "Real text.", **fields}


def test_the_unedited_skeleton_fails_check_offline(project: Path) -> None:
    assert CliRunner().invoke(main, ["new", "--date", "2011-06-01"]).exit_code == 0
    result = CliRunner().invoke(main, ["check", "issues/2011-06.yaml", "--offline", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    errors = [f["message"] for f in data["findings"] if f["level"] == "error"]
    for expected in ('featured[0].title: "Headline of the featured story" is text from the '
                     "skeleton",
                     'featured[0].author: "Author name" is text from the skeleton',
                     "featured[0].url: https://example.org/featured-story is an example "
                     "address (example.org)",
                     "more[0].url: https://example.org/another-story is an example address"):
        assert any(e.startswith(expected) for e in errors), (expected, errors)


def test_the_seed_issue_has_no_placeholder(project: Path, seed_issue: Path, settings) -> None:
    found = findings(load_issue(seed_issue), settings)
    assert by(found, level="error") == []
    assert not [m for m in messages(found, "content") if "skeleton" in m or "example" in m]


@pytest.mark.parametrize("fields, expected", [
    ({"body": "Lorem ipsum dolor sit amet."}, 'featured[0].body: "Lorem ipsum" is filler'),
    ({"body": "The panel was TK."}, "featured[0].body: TK marks something still to write"),
    ({"title": "TODO find a headline"}, "featured[0].title: TODO marks something"),
    ({"author": "Author name"}, 'featured[0].author: "Author name" is text from the skeleton'),
    ({"body": "- A bullet\n- Real point"}, "featured[0].body:"),
    ({"url": "https://www.example.com/story"}, "featured[0].url: https://www.example.com/story "
                                               "is an example address (example.com)"),
    ({"body": "See [the report](http://example.net/r)."}, "featured[0].body: "
                                                          "http://example.net/r is an example"),
    ({"image": {"src": "https://example.org/a.jpg", "alt": "Roundtable"}},
     "featured[0].image.src: https://example.org/a.jpg is an example address"),
])
def test_placeholders_are_errors(settings, fields, expected) -> None:
    found = findings(make_issue(subject="Cities of Migration – June 2011",
                                featured=[story(**fields)]), settings)
    errors = messages(found, level="error")
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize("fields", [
    {"body": "The TKO of 2011 and the tk-stack; see https://citiesofmigration.ca/TK/"},
    {"body": "A bulletin board and another story of hope."},
    {"author": "Author Namesake"},
    {"body": "Read the full story on our site."},
])
def test_real_text_that_looks_alike_is_not_flagged(settings, fields) -> None:
    found = findings(make_issue(subject="Cities of Migration – June 2011",
                                featured=[story(**fields)]), settings)
    assert messages(found, level="error") == []


def test_http_links_and_images_are_warnings(settings) -> None:
    issue = make_issue(subject="Cities of Migration – June 2011", featured=[story(
        url="http://citiesofmigration.ca/calgary",
        image={"src": "http://citiesofmigration.ca/a.jpg", "alt": "Roundtable in Calgary"})])
    found = findings(issue, settings)
    warned = messages(found, level="warning")
    assert any("is an http:// link (not encrypted)" in m
               and "http://citiesofmigration.ca/calgary" in m for m in warned), warned
    assert any(m.startswith('image "Roundtable in Calgary" is loaded over http://')
               for m in warned), warned
    assert not by(found, level="error")


def test_a_shortened_summary_is_a_note_naming_the_story(settings) -> None:
    summary = ("The events of February 22, 2011 had a profound effect on immigrants within "
               "the city of Christchurch, reports Justin Treagus, Executive Director of the "
               "Canterbury Refugee Resettlement and Resource Centre, who describes how "
               "communities came together.")
    issue = make_issue(subject="Cities of Migration – June 2011", featured=[story()],
                       more=[{"title": "Christchurch: Post-Earthquake Report",
                              "url": "https://citiesofmigration.ca/christchurch",
                              "summary": summary},
                             {"title": "Short", "url": "https://citiesofmigration.ca/s",
                              "summary": "Fits."}])
    [found] = [f for f in findings(issue, settings) if "shortened" in f.message]
    assert found.level == "note" and found.where == "Christchurch: Post-Earthquake Report"
    assert found.message.startswith('more[0] "Christchurch: Post-Earthquake Report": the '
                                    "summary is shortened to ")
    shown = int(found.message.split("shortened to ")[1].split(" ")[0])
    assert f"of {len(summary)} characters; {len(summary) - shown} are cut" in found.message
    assert 'cut: "Canterbury Refugee Resettlement' in found.message


@pytest.mark.parametrize("subject, level", [("June", "warning"), ("x" * 79, "warning"),
                                            ("Cities of Migration – June 2011", None)])
def test_subject_length(settings, subject, level) -> None:
    found = [f for f in findings(make_issue(subject=subject, featured=[story()]), settings)
             if f.where == "subject"]
    assert [f.level for f in found] == ([level] if level else [])


def test_a_much_larger_picture_is_a_note(project: Path, settings) -> None:
    Image.new("RGB", (4000, 3000), (20, 60, 90)).save(project / "issues" / "huge.jpg")
    Image.new("RGB", (1000, 700), (20, 60, 90)).save(project / "issues" / "fine.jpg")
    for name, noted in (("huge.jpg", True), ("fine.jpg", False)):
        path = project / "issues" / "2011-06.yaml"
        path.write_text(
            'subject: "Cities of Migration – June 2011"\ndate: 2011-06-01\nfeatured:\n'
            f'  - title: "Calgary"\n    url: {REAL}\n    body: "Text."\n'
            f'    image: {{src: {name}, alt: "Roundtable in Calgary"}}\n', encoding="utf-8")
        notes = [m for m in messages(findings(load_issue(path), settings), "images", "note")
                 if name in m]
        assert bool(notes) == noted, notes
        if noted:
            assert notes[0].startswith("huge.jpg is 4000×3000 px") and "1072 px" in notes[0]


def test_online_check_requests_the_published_picture(project: Path, settings,
                                                     link_server) -> None:  # noqa: F811
    import dataclasses

    from tests.support.checks import assert_only_local, local_settings

    Image.new("RGB", (1200, 800), (20, 60, 90)).save(project / "issues" / "photo.jpg")
    path = project / "issues" / "2011-06.yaml"
    path.write_text(
        'subject: "Cities of Migration – June 2011"\npreheader: "News."\ndate: 2011-06-01\n'
        f'featured:\n  - title: "Calgary"\n    url: {link_server.url("/ok/calgary")}\n'
        '    body: "Text."\n    image: {src: photo.jpg, alt: "Roundtable in Calgary"}\n',
        encoding="utf-8")
    local = dataclasses.replace(local_settings(settings, link_server), theme=dataclasses.replace(
        settings.theme, logo=None))
    for base, published in ((link_server.url("/ok/images/"), True),
                            (link_server.url("/unpublished/"), False)):
        here = dataclasses.replace(local, assets_url=base)
        rendered = render_issue(load_issue(path), here)
        assert_only_local(rendered, link_server)
        [asset] = rendered.assets
        found = run_checks(rendered, here, timeout=3, spam=False)
        broken = [f for f in by(found, "images", "error") if asset.name in f.message]
        assert bool(broken) != published, found
        if broken:
            assert '"Roundtable in Calgary"' in broken[0].message and "404" in broken[0].message
        assert ("HEAD", base.removeprefix(link_server.base) + asset.name) in \
            link_server.requests


def test_a_heavy_web_picture_is_a_note() -> None:
    from newsletter.checks.authoring import check_image_sizes
    from newsletter.checks.document import parse
    from newsletter.checks.http import Probe

    src = "https://citiesofmigration.ca/uploads/roundtable.jpg"
    doc = parse(f'<html><body><h2>Calgary</h2><img src="{src}" alt="Roundtable" '
                'width="536"></body></html>', "")
    heavy = check_image_sizes((), doc, {src: Probe(src, 200, "OK", size=600 * 1024)})
    assert [f.level for f in heavy] == ["note"]
    assert heavy[0].message.startswith('image "Roundtable" is 600 KB') and "536" in \
        heavy[0].message and heavy[0].where == "Calgary"
    light = check_image_sizes((), doc, {src: Probe(src, 200, "OK", size=120 * 1024)})
    assert light == []
    offline = check_image_sizes((), doc, None)
    assert offline == []
