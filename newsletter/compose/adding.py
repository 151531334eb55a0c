"""`newsletter add`: a story from a web page's own metadata, added to an issue file in place.

The file is edited with ruamel.yaml's round trip, so its comments, quoting, order and
indentation stay as the officer wrote them; only the new entry is added (at the end of `more`,
or of `featured`). The new file replaces the old one in one rename, and only once the page
was read and the story is valid: a failure leaves the file byte for byte as it was.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from newsletter.compose.fetch import CONNECT_TIMEOUT, TOTAL_TIMEOUT, PageInfo, fetch_page
from newsletter.compose.issue import Featured, MoreStory, explain_yaml_error
from newsletter.errors import IssueError, NewsletterError

# What a featured story says when the page has no description: `check` flags it (TK is the
# newsroom's mark for "to come"), so it cannot go out unnoticed.
MISSING_BODY = "TK: write the story (the page has no description to start from)."


@dataclass(frozen=True)
class Added:
    section: str  # "more" or "featured"
    index: int
    story: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def field(self) -> str:
        return f"{self.section}[{self.index}]"


def add_story(issue_path: Path, url: str, *, featured: bool = False,
              page: PageInfo | None = None, timeout: float = TOTAL_TIMEOUT) -> Added:
    """Fetch `url` (unless `page` is given; `timeout`: seconds for the whole request) and
    add it to the issue file as a story."""
    issue_path = Path(issue_path)
    text = _read(issue_path)
    yaml, data = _load(text, issue_path)
    page = page or fetch_page(url, total_timeout=timeout,
                              connect_timeout=min(timeout, CONNECT_TIMEOUT))
    story, notes = story_from_page(page, featured=featured)
    section = "featured" if featured else "more"
    model = Featured if featured else MoreStory
    try:
        model.model_validate(story)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise NewsletterError(f"the page gives an unusable {where}: "
                              f"{err.get('ctx', {}).get('error', err['msg'])}: {page.url}") \
            from None
    entries = _section(data, section)
    new = _as_yaml(story)
    comment = _take_trailing_comment(entries)
    entries.append(new)
    if comment is not None:
        new.ca.items[list(new.keys())[-1]] = comment
    out = io.StringIO()
    yaml.dump(data, out)
    _write_keeping_mode(issue_path, out.getvalue())
    return Added(section, len(entries) - 1, story, notes)


def story_from_page(page: PageInfo, *, featured: bool) -> tuple[dict[str, Any], list[str]]:
    """The story's fields (plain values) and what the officer should look at."""
    notes: list[str] = []
    title = _one_line(page.title) if page.title else None
    if not title:
        raise NewsletterError(f"the page has no title (no og:title, twitter:title or "
                              f"<title>): {page.url}")
    description = _one_line(page.description) if page.description else None
    story: dict[str, Any] = {"title": title, "url": page.url}
    if not featured:
        if description:
            story["summary"] = description
        else:
            notes.append("the page has no description: write a summary, or leave it out")
        return story, notes
    if page.image:
        alt = _one_line(page.image_alt) if page.image_alt else title
        story["image"] = {"src": page.image, "alt": alt}
        if page.image_alt:
            notes.append("check the picture and its alt text: does the alt say what the "
                         "picture shows?")
        else:
            notes.append("the page gives no alt text for its picture, so the alt is the "
                         "title: check the picture and describe it in image.alt")
    story["body"] = description or MISSING_BODY
    if not description:
        notes.append("the page has no description: write the body (it says TK until then)")
    else:
        notes.append("the body is the page's short description: write the story")
    return story, notes


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise NewsletterError("file not found", file=path) from None
    except IsADirectoryError:
        raise NewsletterError("is a folder, not an issue file", file=path) from None
    except UnicodeDecodeError:
        raise NewsletterError("not UTF-8 text; save the file as UTF-8", file=path) from None
    except OSError as exc:
        raise NewsletterError(f"cannot read: {exc.strerror or exc}", file=path) from None


def _load(text: str, path: Path) -> tuple[YAML, Any]:
    try:
        data, sequence_indent, offset = load_yaml_guess_indent(text)
    except MarkedYAMLError as exc:
        line, message = explain_yaml_error(exc, text)
        raise IssueError([NewsletterError(message, file=path, line=line)]) from None
    except (YAMLError, ValueError) as exc:
        raise IssueError([NewsletterError(f"malformed YAML: {exc}", file=path)]) from None
    if not isinstance(data, CommentedMap):
        raise NewsletterError("the file must be a mapping of fields (subject:, date:, "
                              "featured: ...)", file=path, line=1)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the officer's long lines
    # ruamel guesses the indent of list items and the dash's offset in it ("  - title:" is
    # 4 and 2); the fields of a mapping are indented by the difference (or 2).
    sequence = sequence_indent or 4
    offset = offset if offset is not None else 2
    yaml.indent(mapping=max(sequence - offset, 2), sequence=sequence, offset=offset)
    data = yaml.load(text)  # loaded again by the configured instance, for a faithful dump
    return yaml, data


def _section(data: CommentedMap, name: str) -> CommentedSeq:
    entries = data.get(name)
    if entries is None:
        entries = CommentedSeq()
        keys = list(data.keys())
        # `more` goes after `featured` (before `events`); `featured` after the intro fields.
        after = "featured" if name == "more" else next(
            (k for k in ("intro", "date", "preheader", "subject") if k in keys), None)
        position = keys.index(after) + 1 if after in keys else len(keys)
        data.insert(position, name, entries)
    if not isinstance(entries, list):
        raise NewsletterError(f"`{name}` is not a list; cannot add a story to it")
    if isinstance(entries, CommentedSeq) and entries.fa.flow_style():
        entries.fa.set_block_style()  # `more: []` becomes a block list
    return entries


def _take_trailing_comment(entries: CommentedSeq) -> Any:
    """The comment after the list's last entry (often about the next section), taken off it
    so it can follow the entry added after it: ruamel keeps it on the last scalar value."""
    node: Any = entries[-1] if entries else None
    while isinstance(node, CommentedMap) and node:
        key = list(node.keys())[-1]
        value = node[key]
        if isinstance(value, (CommentedMap, CommentedSeq)):
            node = value
            continue
        comment = node.ca.items.get(key)
        if comment and len(comment) > 2 and comment[2] is not None:
            return node.ca.items.pop(key)
        return None
    return None


def _as_yaml(story: dict[str, Any]) -> CommentedMap:
    out = CommentedMap()
    for key, value in story.items():
        if key == "url":
            out[key] = value
        elif key == "body":
            out[key] = LiteralScalarString(value.rstrip("\n") + "\n")
        elif key == "image":
            image = CommentedMap()
            image["src"] = value["src"]
            image["alt"] = DoubleQuotedScalarString(value["alt"])
            out[key] = image
        else:
            out[key] = DoubleQuotedScalarString(value)
    return out


def _write_keeping_mode(path: Path, text: str) -> None:
    """Replace `path` whole (temp file + rename), keeping its permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NewsletterError(f"cannot write: {exc.strerror or exc}", file=path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

