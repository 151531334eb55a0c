"""Screenshots of the built seed email for the docs, in headless Chromium.

    .venv/bin/python bench/screenshots.py            # writes docs/images/email-{desktop,phone}.png
    .venv/bin/python bench/screenshots.py --dark     # also email-*-dark.png (prefers-color-scheme)

Renders issues/2011-05.yaml in process (the same call `newsletter build` makes) and loads it
from a file: URL. Nothing leaves the machine: every non-local request is aborted, so remote
images (the logo, the story photo) show their alt text, as in a mail client that blocks images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZES = {"desktop": (1280, 900), "phone": (360, 740)}


def local_only(route) -> None:
    url = route.request.url
    if url.startswith(("file:", "data:", "http://127.0.0.1", "about:")):
        route.continue_()
    else:
        route.abort()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issue", default=str(ROOT / "issues" / "2011-05.yaml"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--dark", action="store_true", help="also take dark-mode screenshots")
    opts = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue
    from newsletter.config import load_settings

    rendered = render_issue(load_issue(opts.issue), load_settings(ROOT / "newsletter.toml"))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_file = Path(tmp) / "email.html"
        page_file.write_text(rendered.html, encoding="utf-8")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        schemes = ["light", "dark"] if opts.dark else ["light"]
        for scheme in schemes:
            for name, (width, height) in SIZES.items():
                page = browser.new_page(viewport={"width": width, "height": height},
                                        color_scheme=scheme,
                                        device_scale_factor=1)
                page.route("**/*", local_only)
                page.goto(page_file.as_uri())
                suffix = "" if scheme == "light" else "-dark"
                target = out / f"email-{name}{suffix}.png"
                page.screenshot(path=str(target), full_page=True)
                page.close()
                shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
                print(f"wrote {shown}")
        browser.close()


if __name__ == "__main__":
    main()
