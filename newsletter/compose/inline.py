"""CSS inlining with premailer, configured to do no harm to MJML output.

premailer's defaults would (measured): strip every `!important` from the phone `@media` rules,
drop MJML's lower-case `<!doctype html>`, rewrite image `width` attributes (Outlook sizes images
by them), fetch `<link>` stylesheets over the network, and let cssutils print a warning for
every `mso-*` property. Even with allow_network=False, cssutils itself fetches `@import url(...)`
while parsing (measured: a test server saw the request), so the parser here gets a fetcher that
returns nothing. Here the `<style>` blocks stay as they are (the `@media` rules for phones and
dark mode live there), rules without a media query are copied onto the elements, and nothing
else changes.
"""

from __future__ import annotations

import logging
import re
import warnings
from functools import cache, lru_cache
from html import escape, unescape
from typing import Any
from urllib.parse import unquote

# Attributes premailer would derive from inlined CSS. MJML already writes the ones email clients
# need; deriving more changes layout (an `align` on a table floats it) and image sizes.
_NO_BASIC_ATTRIBUTES = ["width", "height", "align", "valign", "bgcolor"]

_DOCTYPE = re.compile(r"\A\s*(<!doctype[^>]*>)", re.IGNORECASE)


def _no_fetch(url: str) -> tuple[str, str]:
    """cssutils' fetcher for `@import url(...)`: an empty style sheet, never the network.
    (premailer's allow_network covers only `<link>`; cssutils would fetch imports itself.)"""
    return "utf-8", ""


@lru_cache(maxsize=64)
def _parse_css(css_body: str, validate: bool) -> Any:
    import cssutils  # imported with premailer, see _premailer_class

    return cssutils.CSSParser(fetcher=_no_fetch, validate=validate).parseString(css_body)


@cache
def _premailer_class() -> type:
    # premailer (with cssutils, lxml and requests) costs ~0.2 s to import: paid only by the
    # commands that render, not by every start of the CLI.
    from premailer import Premailer

    class OfflinePremailer(Premailer):
        """Parses style sheets with a cssutils parser that never fetches `@import`s."""

        def _parse_css_string(self, css_body: str, validate: bool = True) -> Any:
            return _parse_css(css_body, validate)

    return OfflinePremailer


_COMMENT_OR_STYLE = re.compile(r"(<!--.*?-->)|<style\b([^>]*)>(.*?)</style>", re.S | re.I)
_MEDIA_BLOCK = re.compile(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _skip_media_only_styles(html: str) -> str:
    """Mark `<style>` blocks that hold nothing but `@media` rules `data-premailer="ignore"`.

    premailer never inlines `@media` rules, and with keep_style_tags it keeps such a block's
    text verbatim either way; the mark only spares it parsing them with cssutils (the slowest
    part of a first inline). premailer removes the mark again.
    """
    def mark(match: re.Match) -> str:
        if match.group(1) or "data-premailer" in match.group(2):
            return match.group(0)
        css = match.group(3)
        rest = _MEDIA_BLOCK.sub("", _CSS_COMMENT.sub("", css))
        if not css.strip() or rest.strip():
            return match.group(0)
        return f'<style{match.group(2)} data-premailer="ignore">{css}</style>'

    return _COMMENT_OR_STYLE.sub(mark, html)


_OPTIONS: dict[str, Any] = dict(
    allow_network=False,
    allow_loading_external_files=False,
    strip_important=False,
    keep_style_tags=True,
    disable_basic_attributes=_NO_BASIC_ATTRIBUTES,
    disable_link_rewrites=True,
    preserve_handlebar_syntax=True,
    cssutils_logging_level=logging.CRITICAL,
    cssutils_logging_handler=logging.NullHandler(),
    align_floating_images=False,
    remove_classes=False,
    # premailer sorts rules by specificity; with validation off, it keeps properties
    # cssutils does not know (mso-*, -webkit-*) instead of logging about them
    disable_validation=True,
)


def inline_css(html: str) -> str:
    """`html` with the rules of its `<style>` blocks copied into `style` attributes.

    The doctype is restored exactly as the input had it; `{{ ... }}` placeholders in attributes
    survive unencoded; no network or file access happens.
    """
    doctype_match = _DOCTYPE.match(html)
    doctype = doctype_match.group(1) if doctype_match else None
    body = html[doctype_match.end():] if doctype_match else html

    body = _skip_media_only_styles(body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _transform(body)
        if out is None:  # a case the own-style merge does not cover: premailer does it all
            out = _premailer_class()(body, **_OPTIONS).transform(pretty_print=False)

    out = _DOCTYPE.sub("", out, count=1).lstrip()
    return f"{doctype}{out}" if doctype else out


def _transform(body: str) -> str | None:
    """premailer's transform, with each element's own `style` set aside while premailer inlines
    the rules, then merged back here the way premailer's merge_styles does (the element's own
    declarations win) but parsed without cssutils validation.

    Why: premailer's `disable_validation` does not reach merge_styles, which parses every
    element's own `style` with validation on (premailer/merge_style.py calls
    `csstext_to_pairs(inline_style)` without the option, in premailer 3.10; the same gap for
    align_floating_images is peterbe/premailer PR #275). Validation changes nothing in the output
    but its first use compiles cssutils' property grammar: 30-60 ms of every `newsletter
    build`. Parsing and serialising follow premailer's own string path (handlebars kept).
    Returns None when an element's inlined rules hold pseudo-classes (not merged here).
    """
    from lxml import etree
    from premailer.merge_style import csstext_to_pairs

    stripped = re.sub(r'="{{(.*?)}}"', lambda m: '="{{' + escape(m.group(1)) + '}}"',
                      body.strip())
    tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
    page = tree.getroot()
    root = tree if stripped.startswith(tree.docinfo.doctype) else page

    own = [(element, element.attrib["style"]) for element in page.iter()
           if isinstance(element.tag, str) and "style" in element.attrib]
    for element, _ in own:
        element.attrib["style"] = ""  # premailer sees no own style: nothing to parse
    _premailer_class()(page, **_OPTIONS).transform()

    for element, style in own:
        rules = element.attrib["style"]
        if not rules:  # no rule matched the element
            element.attrib["style"] = style
            continue
        if "{" in rules:
            return None
        pairs = [pair.split(":", 1) for pair in rules.split("; ")]
        if any(len(pair) != 2 for pair in pairs):
            return None
        merged = dict(pairs)
        merged.update(csstext_to_pairs(style, validate=False))
        final = "; ".join(f"{k}:{v}" for k, v in merged.items() if v.lower() != "unset")
        element.attrib["style"] = final or style

    out = etree.tostring(root, method="html", pretty_print=False, encoding="utf-8").decode()
    return re.sub(r'="%7B%7B(.+?)%7D%7D"',
                  lambda m: '="{{' + unescape(unquote(m.group(1))) + '}}"', out)
