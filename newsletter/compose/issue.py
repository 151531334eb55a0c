"""Load and validate `issues/<slug>.yaml` into an Issue, with every problem located by line.

The file is parsed with ruamel.yaml (which keeps line numbers), validated by pydantic models
that forbid unknown keys, and every Markdown link is checked for an allowed scheme. Problems
come back together as one IssueError, each naming file, line and field.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from newsletter.compose.images import check_image_file, is_local
from newsletter.compose.markdown import permissive_parser
from newsletter.errors import IssueError, NewsletterError

WEB_SCHEMES = ("http://", "https://")
LINK_SCHEMES = (*WEB_SCHEMES, "mailto:")


def _web_url(value: str) -> str:
    value = value.strip()
    if not value.lower().startswith(WEB_SCHEMES) or len(value) <= len("https://"):
        raise ValueError(f"must be an http:// or https:// address, not {value!r}")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces or line breaks")
    if any(c in '"<>\\`' for c in value):
        # not allowed in a URL (RFC 3986); mail clients and link checkers cut the link there
        raise ValueError('must not contain " < > \\ or ` (write them percent-encoded, '
                         'e.g. %22 for ")')
    return value


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line (it contains a line break: CR or LF)")
    # Python's email package breaks header lines at every str.splitlines() boundary too
    # (U+2028, U+0085, VT, FF, ...): such a subject crashed every send.
    if value.splitlines() != [value]:
        raise ValueError("must be one line (it contains a line separator character)")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _image_source(value: str) -> str:
    """A web address, or a file path (relative to the issue file) that the loader resolves."""
    if not is_local(value.strip()):
        return _web_url(value)
    value = _one_line(value.strip())
    if not value:
        raise ValueError("must not be empty")
    return value


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. America/Toronto), or ValueError saying what is wrong."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        near = difflib.get_close_matches(name.strip(), sorted(available_timezones()), n=1,
                                         cutoff=0.7)
        hint = f" (did you mean '{near[0]}'?)" if near else (
            " (an IANA name such as America/Toronto, Europe/Paris or UTC)")
        raise ValueError(f"unknown time zone {name!r}{hint}") from None


def _zone_name(value: str) -> str:
    zone(value)
    return value.strip()


WebURL = Annotated[str, AfterValidator(_web_url)]
ImageSource = Annotated[str, AfterValidator(_image_source)]
ZoneName = Annotated[str, AfterValidator(_zone_name)]
Line = Annotated[str, AfterValidator(_not_blank), AfterValidator(_one_line)]
Text = Annotated[str, AfterValidator(_not_blank)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=True)


class Image(_Strict):
    # A web address, or a picture file: relative to the issue file as written, absolute once
    # loaded (build resizes it and publishes it under links.assets).
    src: ImageSource
    alt: Text
    width: int | None = Field(default=None, gt=0, le=1200)

    @property
    def is_local(self) -> bool:
        return is_local(self.src)


class Featured(_Strict):
    title: Line
    body: Text  # Markdown
    url: WebURL | None = None
    date: dt.date | None = None
    author: Line | None = None
    image: Image | None = None
    cta: Line | None = None


class MoreStory(_Strict):
    title: Line
    url: WebURL
    summary: Text | None = None


class Event(_Strict):
    title: Line
    date: dt.datetime | dt.date
    url: WebURL | None = None
    location: Line | None = None
    # The zone of the time when it is not the newsletter's (newsletter.timezone).
    timezone: ZoneName | None = None

    def localized(self, default: str | dt.tzinfo) -> Event:
        """This event with its time in its zone: its own `timezone`, else an offset written
        in the date (2011-06-22T14:00-04:00), else `default`. A date without a time stays
        a date (no zone is shown for it)."""
        if not isinstance(self.date, dt.datetime):
            return self
        if self.timezone:
            tz = zone(self.timezone)
            when = self.date.astimezone(tz) if self.date.tzinfo else self.date.replace(tzinfo=tz)
        elif self.date.tzinfo is None:
            tz = zone(default) if isinstance(default, str) else default
            when = self.date.replace(tzinfo=tz)
        else:  # a written offset: shown as UTC-07:00 (a reader knows no zone by "-07:00")
            offset = self.date.utcoffset() or dt.timedelta(0)
            sign, rest = ("-", -offset) if offset < dt.timedelta(0) else ("+", offset)
            hours, minutes = divmod(int(rest.total_seconds()) // 60, 60)
            name = f"UTC{sign}{hours:02d}:{minutes:02d}" if offset else "UTC"
            when = self.date.replace(tzinfo=dt.timezone(offset, name))
        return self.model_copy(update={"date": when})

    @field_validator("date", mode="before")
    @classmethod
    def _date_first(cls, value: Any) -> Any:
        # pydantic would read "2011-06-14" as midnight; keep a plain date a date.
        if isinstance(value, str) and len(value.strip()) == 10:
            return dt.date.fromisoformat(value.strip())
        return value


class Issue(_Strict):
    subject: Line
    date: dt.date
    featured: list[Featured] = Field(min_length=1)
    preheader: Line | None = None
    intro: Text | None = None  # Markdown
    more: list[MoreStory] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    # Not in the file: set by the loader from the file name.
    slug: str = Field(default="", exclude=True)

    @property
    def month_label(self) -> str:
        return self.date.strftime("%B %Y")


# -- loading ----------------------------------------------------------------------------------


def load_issue(path: str | Path) -> Issue:
    """Read, parse and validate one issue file. Raises IssueError listing every problem."""
    path = Path(path)
    raw = _read_text(path)
    data = _parse_yaml(raw, path)
    return issue_from_data(data, path)


def issue_from_data(data: Any, path: Path) -> Issue:
    slug = path.name.removesuffix(".yaml").removesuffix(".yml")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise IssueError([NewsletterError(
            f"the file must be a mapping of fields (subject:, date:, featured: ...), not {kind}",
            file=path, line=1,
        )])
    problems: list[NewsletterError] = []
    issue: Issue | None = None
    try:
        issue = Issue.model_validate({**_plain(data), "slug": slug})
    except ValidationError as exc:
        seen: set[tuple] = set()
        for err in exc.errors():
            problem = _explain(err, data, path)
            if (problem.field, problem.line) not in seen:  # one per field (unions report twice)
                seen.add((problem.field, problem.line))
                problems.append(problem)
    if issue is not None:
        problems.extend(_markdown_problems(issue, data, path))
        issue, image_problems = _resolve_images(issue, data, path)
        problems.extend(image_problems)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise IssueError(problems)
    assert issue is not None
    return issue


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IssueError([NewsletterError("file not found", file=path)]) from None
    except IsADirectoryError:
        raise IssueError([NewsletterError("is a folder, not an issue file", file=path)]) from None
    except OSError as exc:
        raise IssueError([NewsletterError(f"cannot read: {exc.strerror}", file=path)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IssueError([NewsletterError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            file=path, line=line,
        )]) from None
    if not text.strip():
        raise IssueError([NewsletterError(
            "the file is empty; start from `newsletter new`", file=path, line=1,
        )])
    return text.removeprefix("\ufeff")


class _TextDates(RoundTripConstructor):
    """Keeps timestamps as text so pydantic judges them: an impossible date such as
    2011-13-45 then gets a located, field-named error instead of a parser crash."""


_TextDates.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda self, node: self.construct_scalar(node))


def _parse_yaml(text: str, path: Path) -> Any:
    yaml = YAML(typ="rt")
    yaml.Constructor = _TextDates
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        line, message = explain_yaml_error(exc, text)
        raise IssueError([NewsletterError(message, file=path, line=line)]) from None
    except (YAMLError, ValueError) as exc:
        # ruamel raises ValueError for timestamps such as 2011-13-45
        raise IssueError([NewsletterError(f"malformed YAML: {exc}", file=path)]) from None
    if data is None:
        raise IssueError([NewsletterError(
            "the file has no fields; start from `newsletter new`", file=path, line=1,
        )])
    return data


_QUOTE_CLOSED_EARLY = ("text continues after the closing quote in line {line}: put the whole "
                       'value inside the quotes (write \\" for a quote mark inside "...")')


def explain_yaml_error(exc: Any, text: str) -> tuple[int | None, str]:
    """(1-based line, advice) for a ruamel parse error: what is wrong in the words of someone
    editing the file, and how to fix it, instead of the parser's vocabulary."""
    problem = str(exc.problem or exc.context or "")
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column if mark else 0
    lines = text.splitlines()
    here = lines[line - 1] if line and line <= len(lines) else ""
    before = [(n, t) for n, t in enumerate(lines[: (line or 1) - 1], 1) if t.strip()
              and not t.lstrip().startswith("#")]

    def indent(t: str) -> int:
        return len(t) - len(t.lstrip(" "))

    def key_column(t: str) -> int:  # "  - title:" and "    body:" both start at 4
        return len(t) - len(t.lstrip(" -"))

    if "\t" in here and ("cannot start any token" in problem or "\\t" in problem):
        return line, f"a tab character in line {line}: indent with spaces, not tabs"
    if problem.startswith("found character") and "cannot start any token" in problem:
        char = problem.split("'")[1] if "'" in problem else "this character"
        key = here.split(":", 1)[0].strip().lstrip("- ").strip() if ":" in here else "title"
        return line, (f"a value cannot start with {char}: put it in quotes "
                      f'(e.g. {key}: "{char}...")')
    if "found undefined alias" in problem or "found undefined tag" in problem:
        return line, ("a value cannot start with * or ! (YAML reads a reference): "
                      "put it in quotes")
    if "duplicate key" in problem:
        key = problem.split('"')[1] if '"' in problem else "a field"
        first = exc.context_mark.line + 1 if exc.context_mark else None
        if key.startswith("-"):
            return line, (f"'{key}': put a space after the dash of a list item "
                          f"('- {key[1:]}')")
        same = [n for n, t in before if key_column(t) == key_column(here)
                and t.strip().lstrip("- ").startswith(f"{key}:") and (first or 0) <= n]
        also = f" (also on line {same[-1]})" if same else ""
        return line, f"'{key}' appears twice in the same entry{also}: keep only one"
    if "while scanning a quoted scalar" in str(exc.context or ""):
        start = exc.context_mark.line + 1 if exc.context_mark else line
        return start, (f"the quote opened on line {start} is never closed: end the text "
                       "with the same quote mark")
    if "mapping values are not allowed here" in problem:
        key, _, value = here.partition(":")
        colon_in_value = column > len(key) and ": " in here[len(key) + 1:] + " "
        if colon_in_value and value.lstrip().startswith(('"', "'")):
            return line, _QUOTE_CLOSED_EARLY.format(line=line)
        if colon_in_value:
            name = key.strip().lstrip("- ").strip() or "value"
            fixed = value.strip().replace('"', '\\"')
            return line, (f"a colon inside the {name}: put the {name} in quotes, "
                          f'e.g. {name}: "{fixed}"')
        if before and ":" not in before[-1][1].split("#")[0]:
            n, _ = before[-1]
            return n, f"line {n} has no colon: write the field name, a colon, then the value"
        if before and indent(here) > indent(before[-1][1]):
            return line, (f"line {line} is indented differently from the lines above it: "
                          "fields of one entry start in the same column")
        return line, f"a colon inside the value of line {line}: put the value in quotes"
    if "expected <block end>, but found '<block mapping start>'" in problem or (
            "expected <block end>, but found '<block sequence start>'" in problem):
        return line, (f"line {line} is indented differently from the lines above it: "
                      "fields of one entry start in the same column")
    if "expected <block end>, but found '-'" in problem:
        return line, (f"line {line} starts a list item ('- ') where a field (name: value) "
                      "belongs: indent list items under their field (e.g. more:)")
    if "expected <block end>, but found '<scalar>'" in problem and \
            here.partition(":")[2].lstrip().startswith(("{", "[")):
        return line, ("a value starting with { or [ is read as a mapping or list: close it, "
                      "or put the value in quotes")
    if "expected <block end>, but found '<scalar>'" in problem:
        # A quote left open earlier swallows the lines up to the next quote mark, so the
        # parser trips over the text after it: name the line that opened it.
        for n, t in reversed(before):
            for quote in ('"', "'"):
                if t.split(": ", 1)[-1].lstrip().startswith(quote) and \
                        t.replace("\\" + quote, "").count(quote) % 2:
                    return n, (f"the quote opened on line {n} is never closed: end the text "
                               "with the same quote mark")
        return line, _QUOTE_CLOSED_EARLY.format(line=line)
    if "could not find expected ':'" in problem:
        line = exc.context_mark.line + 1 if exc.context_mark else line
        before = [(n, t) for n, t in before if n < (line or 0)]
        blocks = [n for n, t in before if re.search(r":\s*[|>][-+]?\s*(#.*)?$", t)]
        if blocks:
            return line, (f"line {line} is not indented under the text block started on line "
                          f"{blocks[-1]} (indent every line of it more than its field name), "
                          "or it lacks a colon after its field name")
        return line, f"line {line} has no colon: write the field name, a colon, then the value"
    if "flow mapping" in str(exc.context or "") or "flow sequence" in str(exc.context or ""):
        line = exc.context_mark.line + 1 if exc.context_mark else line
        return line, ("a value starting with { or [ is read as a mapping or list: close it, "
                      "or put the value in quotes")
    return line, f"malformed YAML: {problem or 'cannot parse'}"


def _plain(value: Any) -> Any:
    """ruamel's CommentedMap/Seq and scalar string types -> plain Python for pydantic."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _field_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_of(data: Any, loc: tuple) -> int | None:
    """1-based line of the value at `loc` in the ruamel tree (of its key when the value is
    missing), or of the nearest parent that has one."""
    node, line = data, None
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                if lc is not None:
                    line = lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                if lc is not None:
                    line = lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, TypeError, AttributeError):
            break
    if line is None:
        lc = getattr(data, "lc", None)
        line = (lc.line + 1) if lc is not None else None
    return line


def _model_at(loc: tuple) -> type[BaseModel]:
    model: Any = Issue
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        annotation = field.annotation
        for candidate in (Featured, MoreStory, Event, Image):
            if candidate.__name__ in repr(annotation):
                model = candidate
                break
    return model


_MESSAGES = {
    "missing": "required field is missing",
    "date_from_datetime_parsing": "not a date: write YYYY-MM-DD, e.g. 2011-05-18",
    "date_parsing": "not a date: write YYYY-MM-DD, e.g. 2011-05-18",
    "date_from_datetime_inexact": "must be a date without a time (YYYY-MM-DD)",
    "date_type": "not a date: write YYYY-MM-DD, e.g. 2011-05-18",
    "datetime_from_date_parsing": "not a date: write YYYY-MM-DD or YYYY-MM-DD HH:MM",
    "datetime_parsing": "not a date: write YYYY-MM-DD or YYYY-MM-DD HH:MM",
    "datetime_type": "not a date: write YYYY-MM-DD or YYYY-MM-DD HH:MM",
    "string_type": "must be text",
    "list_type": "must be a list (items starting with '- ')",
    "model_type": "must be a mapping of fields (key: value), not {kind}",
    "dict_type": "must be a mapping of fields (key: value), not {kind}",
    "too_short": "needs at least one entry",
}


def _explain(err: dict, data: Any, path: Path) -> NewsletterError:
    loc = tuple(err["loc"])
    # A union (date | datetime) adds the member's name after the field: drop it.
    if len(loc) >= 2 and loc[-1] in ("date", "datetime") and loc[-2] == "date":
        loc = loc[:-1]
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        fields = [f for f in _model_at(loc[:-1]).model_fields if f != "slug"]
        near = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        hint = f" (did you mean '{near[0]}'?)" if near else f" (known fields: {', '.join(fields)})"
        message = "unknown field" + hint
    elif kind in ("value_error", "assertion_error"):
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif kind in _MESSAGES:
        value = err.get("input")
        what = "a list" if isinstance(value, list) else type(value).__name__
        message = _MESSAGES[kind].format(kind=what)
    else:
        message = err["msg"][:1].lower() + err["msg"][1:]
    if kind.startswith(("date", "datetime")) and "input" in err:
        message += f" (got {err['input']!r})"
    return NewsletterError(message, file=path, line=line_of(data, loc), field=_field_name(loc))


def _resolve_images(issue: Issue, data: Any, path: Path) -> tuple[Issue, list[NewsletterError]]:
    """Local pictures: resolved against the issue's folder, each checked to be a readable
    picture (a missing file or a text file renamed .jpg is an error at its line)."""
    problems: list[NewsletterError] = []
    featured = []
    for i, story in enumerate(issue.featured):
        if story.image is None or not story.image.is_local:
            featured.append(story)
            continue
        file = (path.parent / Path(story.image.src).expanduser()).resolve()
        why = check_image_file(file)
        if why is not None:
            loc = ("featured", i, "image", "src")
            problems.append(NewsletterError(
                f"{why} (a path is relative to the issue file's folder)", file=path,
                line=line_of(data, loc), field=_field_name(loc)))
        image = story.image.model_copy(update={"src": str(file)})
        featured.append(story.model_copy(update={"image": image}))
    return issue.model_copy(update={"featured": featured}), problems


# -- Markdown links ----------------------------------------------------------------------------


def markdown_links(source: str) -> Iterator[tuple[int, str]]:
    """(0-based line within `source`, url) of every link and image in a Markdown text."""
    for token in permissive_parser().parse(source):
        for child in token.children or ():
            url = child.attrGet("href") if child.type == "link_open" else (
                child.attrGet("src") if child.type == "image" else None)
            if url is not None:
                yield (token.map[0] if token.map else 0), str(url)


def _markdown_problems(issue: Issue, data: Any, path: Path) -> Iterator[NewsletterError]:
    fields: list[tuple[tuple, str]] = []
    if issue.intro:
        fields.append((("intro",), issue.intro))
    fields += [(("featured", i, "body"), f.body) for i, f in enumerate(issue.featured)]
    for loc, source in fields:
        start = line_of(data, loc) or 0
        # A block scalar (`body: |`) starts on the line after its key.
        offset = 1 if source.count("\n") else 0
        for line, url in markdown_links(source):
            if not url.lower().startswith(LINK_SCHEMES):
                yield NewsletterError(
                    f"link {url!r} is not allowed: only http://, https:// and mailto: links",
                    file=path, line=start + offset + line, field=_field_name(loc),
                )
