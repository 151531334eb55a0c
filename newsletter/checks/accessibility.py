"""Accessibility: the document language, text/background contrast from the inline styles at
WCAG 2 AA, and link texts that mean nothing out of context ("click here", a bare URL)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from newsletter.checks.colors import RGB, blend, color_in, contrast, hex_of, parse_color
from newsletter.checks.document import HEADINGS, STORY_LEVELS, Document, squash
from newsletter.checks.findings import Finding, error, warning

AA_BODY = 4.5
AA_LARGE = 3.0
LARGE_PX = 24.0  # 18pt
LARGE_BOLD_PX = 18.66  # 14pt bold
BASE_PX = 16.0
WHITE: RGB = (255.0, 255.0, 255.0)
BLACK: RGB = (0.0, 0.0, 0.0)
LINK_BLUE: RGB = (0.0, 0.0, 238.0)  # what clients paint an <a> with no colour of its own

VAGUE = {
    "click here", "here", "read more", "more", "click", "link", "this link", "learn more",
    "continue reading", "more info", "click this link",
}

_HEADING_EM = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67}
_BOLD_TAGS = {*HEADINGS, "b", "strong", "th"}
_SKIP_TAGS = {"head", "style", "script", "title", "meta", "link", "img", "br", "hr"}


def check_lang(doc: Document) -> list[Finding]:
    if doc.root is None:
        return [error("accessibility", "the HTML part could not be parsed", "html")]
    if not doc.lang:
        return [error("accessibility", "no lang attribute on <html>: screen readers may read "
                      "the email in the wrong language", "html")]
    return []


# -- contrast ---------------------------------------------------------------------------------


def declarations(style: str | None) -> dict[str, str]:
    """Inline `style` -> {property: value}; an !important declaration beats a later plain one."""
    result: dict[str, str] = {}
    important: set[str] = set()
    for item in (style or "").split(";"):
        name, sep, value = item.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        is_important = value.lower().endswith("!important")
        value = re.sub(r"\s*!important$", "", value, flags=re.I)
        if name in important and not is_important:
            continue
        result[name] = value
        if is_important:
            important.add(name)
    return result


def _px(value: str | None, parent_px: float) -> float | None:
    if not value:
        return None
    value = value.strip().lower()
    keywords = {"xx-small": 9, "x-small": 10, "small": 13, "medium": 16, "large": 18,
                "x-large": 24, "xx-large": 32}
    if value in keywords:
        return float(keywords[value])
    match = re.fullmatch(r"(-?\d*\.?\d+)\s*(px|pt|em|rem|%)?", value)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or "px"
    return {
        "px": number, "pt": number * 4 / 3, "em": number * parent_px,
        "rem": number * BASE_PX, "%": number * parent_px / 100,
    }[unit]


@dataclass(frozen=True)
class _Ctx:
    fg: tuple[float, float, float, float]
    bg: RGB | None  # None: painted by an image or something unreadable, so not judged
    px: float
    bold: bool
    story: str | None


@dataclass
class _Failure:
    snippet: str
    fg: str
    bg: str
    ratio: float
    needed: float
    story: str | None
    count: int = 1


def _hidden(decl: dict[str, str]) -> bool:
    if decl.get("display", "").lower() == "none":
        return True
    if decl.get("visibility", "").lower() == "hidden" or decl.get("mso-hide", "") == "all":
        return True
    if decl.get("opacity", "").strip() in ("0", "0.0"):
        return True
    zero = re.compile(r"0(px|em|%)?")
    if zero.fullmatch(decl.get("max-height", "").strip()) and \
            decl.get("overflow", "").lower() == "hidden":
        return True
    return False


def _own_text(el) -> str:
    parts = [el.text or ""]
    parts.extend(child.tail or "" for child in el)
    return squash(" ".join(parts))


def check_contrast(doc: Document) -> list[Finding]:
    if doc.root is None:
        return []
    body = doc.root.find("body")
    start = body if body is not None else doc.root
    failures: dict[tuple[str, str, float], _Failure] = {}
    root_ctx = _Ctx(fg=(*BLACK, 1.0), bg=WHITE, px=BASE_PX, bold=False, story=None)
    # The <body>'s own colours may sit on <html>.
    html_decl = declarations(doc.root.get("style"))
    root_ctx = _apply(doc.root, html_decl, root_ctx)

    def walk(el, ctx: _Ctx) -> _Ctx:
        """Returns the context as it stands after this element (a heading moves the story)."""
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag or tag in _SKIP_TAGS:
            return ctx
        decl = declarations(el.get("style"))
        if _hidden(decl):
            return ctx
        here = _apply(el, decl, ctx)
        text = _own_text(el)
        if tag in STORY_LEVELS and text:
            here = replace(here, story=text)
        if text and here.bg is not None and here.px > 2:
            fg = blend(here.fg, here.bg)
            ratio = contrast(fg, here.bg)
            large = here.px >= LARGE_PX or (here.bold and here.px >= LARGE_BOLD_PX)
            needed = AA_LARGE if large else AA_BODY
            if ratio + 1e-9 < needed:
                key = (hex_of(fg), hex_of(here.bg), needed)
                if key in failures:
                    failures[key].count += 1
                else:
                    failures[key] = _Failure(text, key[0], key[1], ratio, needed, here.story)
        story = here.story
        for child in el:
            after = walk(child, replace(here, story=story))
            story = after.story
        return replace(ctx, story=story)

    walk(start, root_ctx)
    findings = []
    for f in failures.values():
        snippet = f.snippet if len(f.snippet) <= 60 else f.snippet[:59].rstrip() + "…"
        others = f" (and {f.count - 1} more with these colours)" if f.count > 1 else ""
        findings.append(error(
            "accessibility",
            f'"{snippet}": {f.fg} on {f.bg} has contrast {f.ratio:.2f}:1, WCAG AA needs '
            f"{f.needed:g}:1{others}",
            f.story,
        ))
    return findings


def _apply(el, decl: dict[str, str], ctx: _Ctx) -> _Ctx:
    tag = el.tag if isinstance(el.tag, str) else ""
    bg = ctx.bg
    # CSS beats the bgcolor attribute; background-color beats the shorthand.
    painted = decl.get("background-color") or decl.get("background") or el.get("bgcolor")
    if painted is None and "url(" in decl.get("background-image", ""):
        bg = None  # text over an image with no fallback colour: cannot judge
    elif painted is not None:
        found = None if "gradient(" in painted.lower() else color_in(painted)
        if found is None:
            if "url(" in painted.lower() or "gradient(" in painted.lower():
                bg = None
        elif found[3] > 0:
            bg = blend(found, bg) if bg is not None else (found[:3] if found[3] >= 1 else None)
    fg = ctx.fg
    own = decl.get("color") or (el.get("color") if tag == "font" else None)
    parsed = parse_color(own) if own else None
    if parsed is not None:
        fg = parsed
    elif tag == "a" and el.get("href") is not None:
        fg = (*LINK_BLUE, 1.0)
    px = ctx.px
    if tag in _HEADING_EM:
        px = _HEADING_EM[tag] * ctx.px
    elif tag == "small":
        px = 0.83 * ctx.px
    size = _px(decl.get("font-size"), ctx.px)
    if size is not None:
        px = size
    bold = ctx.bold or tag in _BOLD_TAGS
    weight = decl.get("font-weight", "").strip().lower()
    if weight in ("bold", "bolder"):
        bold = True
    elif weight in ("normal", "lighter"):
        bold = False
    elif weight.isdigit():
        bold = int(weight) >= 700
    return _Ctx(fg=fg, bg=bg, px=px, bold=bold, story=ctx.story)


# -- link texts -------------------------------------------------------------------------------

_BARE = re.compile(r"(https?://|www\.)\S+", re.I)


def check_link_texts(doc: Document) -> list[Finding]:
    findings: list[Finding] = []
    for a in doc.anchors:
        text = a.text.strip()
        words = squash(re.sub(r"[^\w\s]+", " ", text.casefold()))
        label = (a.label or "").strip()
        if label and squash(re.sub(r"[^\w\s]+", " ", label.casefold())) not in VAGUE:
            continue  # a screen reader announces the label instead
        story = f' in "{a.story}"' if a.story else ""
        if not text:
            findings.append(warning("accessibility", f"a link without text{story} "
                                    f"(give it words or an image alt): {a.href}", a.story))
        elif words in VAGUE:
            findings.append(warning("accessibility", f'link text "{text}"{story} says '
                                    "nothing out of context: name where it goes", a.story))
        elif _BARE.fullmatch(text):
            findings.append(warning("accessibility", f"a bare URL as link text{story}: "
                                    f"{text} (screen readers spell it out)", a.story))
    return findings
