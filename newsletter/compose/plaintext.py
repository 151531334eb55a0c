"""Plain text for the text/plain part: Markdown rendered from its token stream, and wrapping.

Lines are wrapped at WIDTH columns; a URL is never broken, so a line holding one long URL may be
longer (mail clients keep it clickable). Output is text only: no tags, no entities.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Mapping

from newsletter.compose.markdown import tokens

WIDTH = 76


def display_width(text: str) -> int:
    """Columns `text` takes in a monospaced font (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap(text: str, width: int = WIDTH, first: str = "", rest: str | None = None) -> list[str]:
    """Greedy word wrap. `first`/`rest` prefix the first/following lines (bullets, quotes).
    Words longer than the width (URLs) stay whole on a line of their own."""
    rest = first if rest is None else rest
    words = text.split()
    if not words:
        return [first.rstrip()] if first.strip() else []
    lines: list[str] = []
    line, used = first, display_width(first)
    fresh = True
    for word in words:
        w = display_width(word)
        if not fresh and used + 1 + w > width:
            lines.append(line)
            line, used, fresh = rest, display_width(rest), True
        if fresh:
            line, used, fresh = line + word, used + w, False
        else:
            line, used = line + " " + word, used + 1 + w
    lines.append(line)
    return lines


def underline(text: str, char: str = "=") -> str:
    """`text` on its own line(s) followed by a rule of `char` as wide as its widest line."""
    lines = wrap(text)
    return "\n".join([*lines, char * max(display_width(line) for line in lines)])


# -- Markdown -> text ---------------------------------------------------------------------------


class _Frame:
    """A container a block sits in: a list item ("- " then "  ") or a block quote ("> ")."""

    def __init__(self, first: str, rest: str) -> None:
        self.first, self.rest, self.started = first, rest, False


class _TextRenderer:
    def __init__(self, width: int) -> None:
        self.width = width
        self.out: list[str] = []
        self.frames: list[_Frame] = []
        self.lists: list[dict] = []  # {"ordered": bool, "n": int, "tight": bool}
        self.gap = False  # a blank line is owed before the next block
        self.force_gap = False  # ... even inside a tight list (its first item)

    # prefixes -------------------------------------------------------------------------------
    def _prefixes(self) -> tuple[str, str]:
        first = "".join(f.rest if f.started else f.first for f in self.frames)
        rest = "".join(f.rest for f in self.frames)
        return first, rest

    def _mark_started(self) -> None:
        for frame in self.frames:
            frame.started = True

    def _separate(self) -> None:
        """The blank line owed between blocks: none between the items of a tight list (nor
        before a list nested in one), prefixed only by containers that already have content."""
        tight = bool(self.lists) and self.lists[-1]["tight"] and self._in_item()
        if self.gap and self.out and (self.force_gap or not tight):
            self.out.append("".join(f.rest for f in self.frames if f.started).rstrip())
        self.force_gap = False

    def emit(self, lines: list[str]) -> None:
        """Add a block whose lines are already wrapped (prefixes are added here)."""
        if not lines:
            return
        self._separate()
        first, rest = self._prefixes()
        for i, line in enumerate(lines):
            self.out.append(((first if i == 0 else rest) + line).rstrip())
        self._mark_started()
        self.gap = True

    def emit_text(self, text: str) -> None:
        first, rest = self._prefixes()
        lines = wrap(text, self.width, first, rest)
        if not lines:
            return
        self._separate()
        self.out.extend(line.rstrip() for line in lines)
        self._mark_started()
        self.gap = True

    def _in_item(self) -> bool:
        return any(f.first != f.rest for f in self.frames)

    # tokens ---------------------------------------------------------------------------------
    def render(self, stream) -> str:
        heading: str | None = None
        for token in stream:
            kind = token.type
            if kind == "heading_open":
                heading = token.tag
            elif kind == "heading_close":
                heading = None
            elif kind == "inline":
                text = inline_text(token.children or [])
                if heading is not None:
                    self._heading(text, heading)
                else:
                    for part in text.split("\n"):  # hard breaks keep their line
                        self.emit_text(part)
                        self.gap = False
                    self.gap = True
            elif kind in ("bullet_list_open", "ordered_list_open"):
                start = token.attrGet("start")
                nested_in_tight = bool(self.lists) and self.lists[-1]["tight"]
                self.force_gap = not nested_in_tight
                self.lists.append({
                    "ordered": kind == "ordered_list_open",
                    "n": int(start) if start is not None else 1,
                    "tight": _is_tight(stream, token),
                })
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
                self.gap = True
            elif kind == "list_item_open":
                info = self.lists[-1]
                if info["ordered"]:
                    marker = f"{info['n']}. "
                    info["n"] += 1
                else:
                    marker = "- "
                self.frames.append(_Frame(marker, " " * len(marker)))
                # a list item in a tight list does not get a blank line before it
            elif kind == "list_item_close":
                self.frames.pop()
            elif kind == "blockquote_open":
                self.frames.append(_Frame("> ", "> "))
            elif kind == "blockquote_close":
                self.frames.pop()
                self.gap = True
            elif kind in ("code_block", "fence"):
                self.emit(self._code(token.content))
            elif kind == "hr":
                self.emit(["-" * 20])
        return "\n".join(self.out).strip("\n")

    def _code(self, content: str) -> list[str]:
        """Code indented by four spaces; a line too long for the width continues on the next
        one (split at a space where there is one, its own spacing kept)."""
        room = max(20, self.width - display_width(self._prefixes()[1]) - 4)
        lines: list[str] = []
        for line in content.rstrip("\n").split("\n"):
            parts = textwrap.wrap(line, room, replace_whitespace=False, drop_whitespace=False,
                                  break_long_words=False, break_on_hyphens=False) or [""]
            lines += ["    " + part.rstrip() for part in parts]
        return lines

    def _heading(self, text: str, tag: str) -> None:
        first, rest = self._prefixes()
        width = self.width - display_width(rest)
        lines = wrap(text, width)
        # story headings start at h3 (see markdown.tokens): h3 "===", h4 "---", deeper CAPITALS
        if tag in ("h1", "h2", "h3", "h4"):
            rule = ("-" if tag == "h4" else "=") * max(display_width(x) for x in lines)
            self.emit([*lines, rule])
        else:
            self.emit([line.upper() for line in lines])


def _is_tight(stream, list_token) -> bool:
    # markdown-it marks the paragraphs of a tight list hidden
    index = stream.index(list_token)
    for token in stream[index + 1:]:
        if token.type == "paragraph_open" and token.level == list_token.level + 2:
            return token.hidden
        if token.type in ("bullet_list_close", "ordered_list_close") and \
                token.level == list_token.level:
            break
    return True


def inline_text(children) -> str:
    """Text of an inline token: links as `text (URL)`, images as `[alt]`, soft breaks as spaces,
    hard breaks as newlines, emphasis as `*text*`/`**text**`."""
    parts: list[str] = []
    links: list[tuple[str, int, bool]] = []  # (href, where its text starts, is an autolink)
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind in ("em_open", "em_close"):
            parts.append("*" if child.markup == "*" else "_")
        elif kind in ("strong_open", "strong_close"):
            parts.append("**" if child.markup == "**" else "__")
        elif kind == "image":
            alt = child.content or str(child.attrGet("alt") or "")
            parts.append(f"[{alt}]" if alt else "")
        elif kind == "link_open":
            links.append((str(child.attrGet("href") or ""), len(parts),
                          child.markup == "autolink"))
        elif kind == "link_close" and links:
            href, start, auto = links.pop()
            label = "".join(parts[start:]).strip()
            if href.lower().startswith("mailto:"):
                address = href[len("mailto:"):]
                if auto or label in (address, href):
                    parts[start:] = [address]
                else:
                    parts.append(f" ({address})")
            elif auto:
                parts[start:] = [href]  # shown as the (tracked) URL itself
            elif label.rstrip("/") != href.rstrip("/"):
                # autolinks already show their URL; others gain it (with UTM) after the text
                parts.append(f" ({href})")
            else:
                parts[start:] = [href]
    return "".join(parts)


def markdown_text(source: str, utm: Mapping[str, str] | None = None, width: int = WIDTH,
                  indent: str = "") -> str:
    """Markdown -> wrapped plain text (same links, with UTM, as the HTML part)."""
    text = _TextRenderer(width - display_width(indent)).render(tokens(source, utm))
    if indent:
        text = "\n".join((indent + line).rstrip() for line in text.split("\n"))
    return text

