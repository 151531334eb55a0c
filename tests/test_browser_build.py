"""The built seed email in a real browser (headless Debian chromium, driven by Playwright).

Phones: no sideways scrolling at 360 px. Desktop: the text column is at most 600 px wide.
Inlining: the inlined email renders pixel for pixel like the un-inlined one, in light and dark
mode, at both widths. Nothing leaves the machine: every non-local request is aborted (the logo
and the story photo are remote, so their alt text shows, as in a client that blocks images).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--font-render-hinting=none"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium; CI has it)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def built(seed_issue, settings, tmp_path) -> dict[str, Path]:
    """The seed email written to files, inlined (as `newsletter build` writes it) and not."""
    issue = load_issue(seed_issue)
    paths = {}
    for name, inline in (("inlined", True), ("raw", False)):
        path = tmp_path / f"{name}.html"
        path.write_text(render_issue(issue, settings, inline=inline).html, encoding="utf-8")
        paths[name] = path
    return paths


def _open(browser, path: Path, width: int, scheme: str = "light", blocked: list | None = None):
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme,
                            device_scale_factor=1)
    page.set_default_timeout(20_000)

    def local_only(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "http://127.0.0.1", "about:")):
            route.continue_()
        else:
            if blocked is not None:
                blocked.append(url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(path.as_uri(), wait_until="load")
    return page


def test_no_sideways_scrolling_on_a_phone(browser, built):
    blocked: list[str] = []
    page = _open(browser, built["inlined"], 360, blocked=blocked)
    try:
        scroll = page.evaluate("document.documentElement.scrollWidth")
        body = page.evaluate("document.body.scrollWidth")
        inner = page.evaluate("window.innerWidth")
        assert inner == 360
        assert scroll <= inner and body <= inner, (scroll, body, inner)
        # the single column uses the phone's width (not a squeezed desktop layout)
        widths = page.evaluate(
            "[...document.querySelectorAll('.t')].map(e => e.getBoundingClientRect().width)")
        assert widths and min(widths) >= 340, widths
        # the remote logo and photo were requested and refused, nothing else left the page
        assert blocked and all(url.startswith("https://citiesofmigration.ca/") for url in blocked)
    finally:
        page.close()


def test_long_words_links_and_code_do_not_widen_a_phone(browser, settings, tmp_path):
    from tests.support.render import make_issue

    long_url = "https://example.org/" + "a" * 120
    body = (f"A long link {long_url} in text, and <{long_url}b>.\n\n"
            "```\n" + "x = 1 " * 40 + "\n```\n\n"
            "Inline `" + "code" * 30 + "` and ![a wide picture](https://example.org/wide.png)\n\n"
            + "Supercalifragilisticexpialidocious" * 3 + "\n\n> " + "quote" * 40 + "\n")
    issue = make_issue(
        featured=[{"title": "W" * 60, "body": body, "url": "https://example.org/s",
                   "image": {"src": "https://example.org/i.jpg", "alt": "An image",
                             "width": 1200}}],
        more=[{"title": "T" * 80, "url": "https://example.org/m", "summary": "S" * 300}],
        events=[{"title": "E" * 80, "date": "2011-06-14", "location": "L" * 80}],
    )
    path = tmp_path / "nasty.html"
    path.write_text(render_issue(issue, settings).html, encoding="utf-8")
    page = _open(browser, path, 360)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        wide = page.evaluate("""[...document.body.querySelectorAll('*')]
            .filter(e => e.getBoundingClientRect().right > 360.5).map(e => e.tagName)""")
        assert wide == []
    finally:
        page.close()


def test_text_column_at_most_600px_on_desktop(browser, built):
    page = _open(browser, built["inlined"], 1280)
    try:
        boxes = page.evaluate(
            """[...document.querySelectorAll('.card, .t, p, li, h2, h3')]
               .map(e => e.getBoundingClientRect())
               .map(r => ({w: r.width, x: r.left}))""")
        assert len(boxes) > 50
        assert max(b["w"] for b in boxes) <= 600, max(b["w"] for b in boxes)
        # centred: the column starts at (1280 - 600) / 2
        cards = page.evaluate(
            "[...document.querySelectorAll('.card')].map(e => e.getBoundingClientRect().left)")
        assert cards and all(abs(x - 340) <= 1 for x in cards), cards
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    finally:
        page.close()


def test_dark_mode_is_readable(browser, built):
    """With prefers-color-scheme: dark, the cards turn dark and every text on them stays
    readable (WCAG contrast of at least 4.5:1)."""
    page = _open(browser, built["inlined"], 1280, scheme="dark")
    try:
        pairs = page.evaluate(
            """[...document.querySelectorAll('.card')].flatMap(card =>
                 [...card.querySelectorAll('p, li, h2, h3, h4, a, blockquote')].map(e =>
                   [getComputedStyle(e).color, getComputedStyle(card).backgroundColor,
                    e.closest('blockquote') ? getComputedStyle(e.closest('blockquote'))
                      .backgroundColor : null]))""")
        assert len(pairs) > 50
        for colour, card, quote in pairs:
            background = _rgb(quote if quote and "0, 0, 0, 0" not in quote else card)
            assert _luminance(_rgb(card)) < 0.05, card
            assert _contrast(_rgb(colour), background) >= 4.5, (colour, background)
    finally:
        page.close()


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])


def _luminance(rgb) -> float:
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_inlined_renders_exactly_like_the_uninlined(browser, built, width, scheme):
    shots = {}
    for name in ("raw", "inlined"):
        page = _open(browser, built[name], width, scheme=scheme)
        try:
            shots[name] = page.screenshot(full_page=True)
        finally:
            page.close()
    if shots["raw"] == shots["inlined"]:
        return
    different, total = _pixel_difference(browser, shots["raw"], shots["inlined"])
    assert different == 0, f"{different} of {total} pixels differ at {width}px ({scheme})"


def _pixel_difference(browser, a: bytes, b: bytes) -> tuple[int, int]:
    """(pixels that differ, pixels) between two PNGs, compared in a canvas."""
    page = browser.new_page()
    try:
        return tuple(page.evaluate(
            """async ([a, b]) => {
                const load = src => new Promise((ok, fail) => {
                    const img = new Image(); img.onload = () => ok(img); img.onerror = fail;
                    img.src = 'data:image/png;base64,' + src; });
                const [x, y] = [await load(a), await load(b)];
                if (x.width !== y.width || x.height !== y.height)
                    return [Math.max(x.width * x.height, y.width * y.height), -1];
                const pixels = img => { const c = document.createElement('canvas');
                    c.width = img.width; c.height = img.height;
                    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                    return g.getImageData(0, 0, img.width, img.height).data; };
                const [p, q] = [pixels(x), pixels(y)];
                let n = 0;
                for (let i = 0; i < p.length; i += 4)
                    if (p[i] !== q[i] || p[i+1] !== q[i+1] || p[i+2] !== q[i+2]) n++;
                return [n, p.length / 4];
            }""",
            [base64.b64encode(a).decode(), base64.b64encode(b).decode()],
        ))
    finally:
        page.close()
