"""The HTML report in headless Debian chromium: it loads with every network request refused
(self-contained), and its charts are images with text alternatives in the accessibility tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.report import compute
from newsletter.report.page import render_html
from tests.test_report import TORONTO, sample_input

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium; CI has it)"),
]


def open_report(path: Path):
    """(page, requests refused, close) for the report at `path`, with the network cut off."""
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    p = manager.start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.set_default_timeout(20_000)
    refused: list[str] = []

    def local_only(route):
        if route.request.url.startswith(("file:", "data:", "about:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(path.as_uri(), wait_until="load")

    def close() -> None:
        browser.close()
        manager.__exit__(None, None, None)

    return page, refused, close


def check_report_page(path: Path, expected_charts: int = 4) -> None:
    """What every HTML report must pass in chromium (also used by the end-to-end test)."""
    page, refused, close = open_report(path)
    try:
        assert refused == []  # works offline: nothing to fetch
        charts = page.get_by_role("img")
        assert charts.count() == expected_charts
        for i in range(expected_charts):
            chart = charts.nth(i)
            # the accessible name (from <title>) and description (from <desc>) as chromium
            # computes them for assistive technology
            name = chart.evaluate("e => e.querySelector('title').textContent")
            assert name.strip()
            assert page.get_by_role("img", name=name, exact=True).count() == 1
            assert chart.get_attribute("aria-describedby")
            described = chart.evaluate(
                "e => document.getElementById(e.getAttribute('aria-describedby')).textContent")
            assert len(described) > 20
            box = chart.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 50  # drawn, not collapsed
        snapshot = page.locator("main").aria_snapshot()
        assert 'img "Share of messages: delivered, bounced' in snapshot
        assert "- table" in snapshot and "Apple Mail Privacy Protection" in snapshot
        # no sideways scrolling on a phone either
        page.set_viewport_size({"width": 360, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        close()


def test_html_report_in_chromium(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(compute(sample_input(), TORONTO)), encoding="utf-8")
    check_report_page(path)
