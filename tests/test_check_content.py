"""Offline checks on hand-made emails: size, alt text, contrast, link texts, lang, and the
compliance items (postal address, unsubscribe link, web copy, text twin, subject)."""

from __future__ import annotations

import pytest

from newsletter.checks import Finding, run_checks
from newsletter.checks.colors import contrast, parse_color
from newsletter.checks.size import CLIP_BYTES, WARN_BYTES
from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from tests.support.checks import by, email_html, rendered

STORY = "<h2>Calgary: Talking Mentoring</h2>"


def check(r, settings) -> list[Finding]:
    return run_checks(r, settings, offline=True, spam=False)


def test_a_compliant_email_has_no_errors_or_warnings(settings) -> None:
    link = "https://example.org/calgary?utm_source=newsletter&utm_medium=email"
    r = rendered(f'{STORY}<p>Read <a href="{link}">the Calgary report</a>.</p>',
                 "Read the Calgary report: https://example.org/calgary", settings)
    findings = check(r, settings)
    assert [f for f in findings if f.level != "note"] == []


def test_finding_to_dict_and_levels() -> None:
    f = Finding("error", "links", "broken", "Calgary")
    assert f.to_dict() == {"level": "error", "category": "links", "message": "broken",
                           "where": "Calgary"}
    with pytest.raises(ValueError):
        Finding("fatal", "links", "broken")


# -- size ------------------------------------------------------------------------------------


def _padded(settings, total: int):
    shell = email_html("", settings)
    pad = total - len(shell.encode("utf-8")) - len("<p></p>")
    return rendered(f"<p>{'a' * pad}</p>", "", settings)


@pytest.mark.parametrize(("total", "level"), [
    (40 * 1024, "note"),
    (WARN_BYTES, "warning"),
    (CLIP_BYTES - 1, "warning"),
    (CLIP_BYTES, "error"),
])
def test_size_levels(settings, total: int, level: str) -> None:
    r = _padded(settings, total)
    assert len(r.html.encode("utf-8")) == total
    [f] = by(check(r, settings), "size")
    assert f.level == level, f
    if level == "error":
        assert "102 KB" in f.message


def test_size_counts_utf8_bytes_not_characters(settings) -> None:
    # 35,000 three-byte characters: 105,000 bytes though only 35,000 characters.
    r = rendered(f"<p>{'北' * 35000}</p>", "", settings)
    [f] = by(check(r, settings), "size")
    assert f.level == "error"


# -- images ----------------------------------------------------------------------------------


def test_image_with_alt_and_width_passes(settings) -> None:
    r = rendered(f'{STORY}<img src="https://example.org/a.jpg" alt="Roundtable" width="600">',
                 "", settings)
    assert [f for f in by(check(r, settings), "images") if f.level != "note"] == []


def test_image_without_alt_is_an_error_naming_the_story(settings) -> None:
    r = rendered(f'{STORY}<img src="https://example.org/a.jpg" width="600">', "", settings)
    [f] = by(check(r, settings), "images", "error")
    assert "no alt" in f.message and "https://example.org/a.jpg" in f.message
    assert f.where == "Calgary: Talking Mentoring"


def test_image_without_width_is_a_warning(settings) -> None:
    r = rendered(f'{STORY}<img src="https://example.org/a.jpg" alt="Roundtable">', "", settings)
    [f] = by(check(r, settings), "images", "warning")
    assert "width" in f.message


def test_image_with_a_relative_src_is_an_error(settings) -> None:
    r = rendered('<img src="images/a.jpg" alt="Roundtable" width="600">', "", settings)
    [f] = by(check(r, settings), "images", "error")
    assert "absolute" in f.message


# -- contrast --------------------------------------------------------------------------------


def test_contrast_ratio_matches_wcag_examples() -> None:
    black, white = parse_color("#000")[:3], parse_color("white")[:3]
    assert contrast(black, white) == pytest.approx(21.0)
    assert contrast(parse_color("#777777")[:3], white) == pytest.approx(4.48, abs=0.01)
    assert parse_color("rgba(0, 0, 0, 0.5)") == (0.0, 0.0, 0.0, 0.5)
    assert parse_color("var(--x)") is None


def test_dark_text_on_white_passes(settings) -> None:
    r = rendered('<p style="color:#222222">Readable body text</p>', "", settings)
    assert by(check(r, settings), "accessibility") == []


def test_light_grey_text_on_white_is_an_error_naming_the_text(settings) -> None:
    r = rendered(f'{STORY}<p style="color:#aaaaaa">Faint caption under the photo</p>', "",
                 settings)
    [f] = by(check(r, settings), "accessibility", "error")
    assert '"Faint caption under the photo"' in f.message
    assert "#aaaaaa on #ffffff" in f.message and "4.5:1" in f.message
    assert f.where == "Calgary: Talking Mentoring"


def test_background_is_inherited_from_bgcolor_of_an_ancestor(settings) -> None:
    # White text passes on the dark cell, and fails on the light cell around it.
    good = ('<table><tr><td bgcolor="#1d5b79"><p style="color:#ffffff">On the band</p>'
            "</td></tr></table>")
    bad = ('<table><tr><td bgcolor="#eeeeee"><p style="color:#ffffff">On pale grey</p>'
           "</td></tr></table>")
    assert by(check(rendered(good, "", settings), settings), "accessibility") == []
    [f] = by(check(rendered(bad, "", settings), settings), "accessibility")
    assert '"On pale grey"' in f.message


def test_large_text_needs_only_three_to_one(settings) -> None:
    # #888888 on white is 3.54:1: enough for 24px text, not for 16px text.
    large = '<p style="color:#888888;font-size:24px">Big headline</p>'
    small = '<p style="color:#888888;font-size:16px">Small print</p>'
    bold = '<p style="color:#888888;font-size:19px;font-weight:bold">Bold subhead</p>'
    assert by(check(rendered(large, "", settings), settings), "accessibility") == []
    assert by(check(rendered(bold, "", settings), settings), "accessibility") == []
    [f] = by(check(rendered(small, "", settings), settings), "accessibility")
    assert "3:1" not in f.message and "4.5:1" in f.message


def test_hidden_preheader_is_not_judged(settings) -> None:
    hidden = '<div style="display:none;color:#ffffff">Inbox preview text</div>'
    assert by(check(rendered(hidden, "", settings), settings), "accessibility") == []


def test_missing_lang_is_an_error(settings) -> None:
    r = rendered("<p>Hello</p>", "", settings, lang=None)
    [f] = by(check(r, settings), "accessibility", "error")
    assert "lang" in f.message


# -- link texts ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["click here", "Here", "Read more »", "more",
                                  "https://example.org/calgary"])
def test_vague_link_texts_are_warned(settings, text: str) -> None:
    url = "https://example.org/calgary"
    r = rendered(f'{STORY}<p><a href="{url}" style="color:#1d5b79">{text}</a></p>',
                 f"{url}", settings)
    [f] = by(check(r, settings), "accessibility")
    assert f.level == "warning" and f.where == "Calgary: Talking Mentoring"


def test_descriptive_link_text_passes(settings) -> None:
    url = "https://example.org/calgary"
    r = rendered(f'<p><a href="{url}" style="color:#1d5b79">the Calgary mentoring report</a>'
                 f'<a href="{url}" aria-label="Read more about Calgary">Read more</a></p>',
                 url, settings)
    assert by(check(r, settings), "accessibility") == []


# -- compliance ------------------------------------------------------------------------------


def test_missing_postal_address_is_an_error_in_each_part(settings) -> None:
    r = rendered("<p>Hi</p>", "Hi", settings, address=False)
    errors = by(check(r, settings), "compliance", "error")
    assert {f.where for f in errors} == {"html footer", "text footer"}
    assert all("postal address" in f.message for f in errors)


def test_missing_unsubscribe_link_is_an_error_in_each_part(settings) -> None:
    r = rendered("<p>Hi</p>", "Hi", settings, unsubscribe=False)
    errors = by(check(r, settings), "compliance", "error")
    assert {f.where for f in errors} == {"html footer", "text footer"}
    assert all("unsubscribe" in f.message for f in errors)


def test_unsubscribe_placeholder_as_text_only_is_not_a_link(settings) -> None:
    html = email_html(f"<p>Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}</p>", settings,
                      unsubscribe=False)
    r = rendered("", "", settings, html=html)
    [f] = by(check(r, settings), "compliance", "error")
    assert f.where == "html footer"


def test_url_encoded_unsubscribe_placeholder_is_named(settings) -> None:
    html = email_html('<a href="%7B%7Bunsubscribe_url%7D%7D">Unsubscribe</a>', settings,
                      unsubscribe=False)
    [f] = by(check(rendered("", "", settings, html=html), settings), "compliance", "error")
    assert "URL-encoded" in f.message


def test_address_split_over_lines_still_counts(settings) -> None:
    address = settings.postal_address.replace(", ", "<br>")
    html = email_html(f"<p>{address}</p>", settings, address=False)
    text = "\n".join(settings.postal_address.split(", ")) + f"\n{UNSUBSCRIBE_PLACEHOLDER}\n"
    r = rendered("", "", settings, html=html, text=text)
    assert by(check(r, settings), "compliance", "error") == []


def test_missing_web_copy_link_is_a_warning(settings) -> None:
    r = rendered("<p>Hi</p>", "Hi", settings, web_copy=False)
    [f] = by(check(r, settings), "compliance", "warning")
    assert "view in browser" in f.message


def test_html_link_missing_from_text_part_is_a_warning(settings) -> None:
    r = rendered(f'{STORY}<p><a href="https://example.org/report?utm_source=nl">the report</a> '
                 '<a href="https://example.org/photos">the photos</a></p>',
                 "the report: https://example.org/report", settings)
    [f] = by(check(r, settings), "compliance", "warning")
    assert '"the photos"' in f.message and "https://example.org/photos" in f.message
    assert f.where == "Calgary: Talking Mentoring"


@pytest.mark.parametrize(("subject", "level"), [
    ("", "error"),
    ("May", "warning"),
    ("Cities of Migration – May 2011: Calgary: Talking Mentoring, Christchurch, Essen and more",
     "warning"),
])
def test_subject_length(settings, subject: str, level: str) -> None:
    r = rendered("<p>Hi</p>", "Hi", settings, subject=subject)
    [f] = [f for f in by(check(r, settings), "compliance") if f.where == "subject"]
    assert f.level == level


def test_missing_preheader_is_a_warning(settings) -> None:
    r = rendered("<p>Hi</p>", "Hi", settings, preheader=None)
    [f] = by(check(r, settings), "compliance", "warning")
    assert f.where == "preheader"
