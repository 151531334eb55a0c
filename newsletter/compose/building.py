"""`newsletter build` and `newsletter new` as library calls: gather and render everything first,
write files only once all of it succeeded, each file written whole (temp file + rename)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.images import copy_assets
from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue
from newsletter.config import Settings
from newsletter.errors import IssueError, NewsletterError

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail hides the rest behind "[Message clipped]"
WARN_BYTES = 90 * 1024  # leave room for what providers add (tracking links)
ASSETS_FOLDER = "images"  # local pictures, in `build --out` and in the archive alike


@dataclass(frozen=True)
class Built:
    slug: str
    html_path: Path
    text_path: Path
    html_bytes: int
    text_bytes: int

    @property
    def warning(self) -> str | None:
        if self.html_bytes >= GMAIL_CLIP_BYTES:
            return (f"HTML is {self.html_bytes / 1024:.0f} KB: Gmail clips messages over "
                    "~102 KB (and hides the unsubscribe link)")
        if self.html_bytes >= WARN_BYTES:
            return (f"HTML is {self.html_bytes / 1024:.0f} KB, near Gmail's ~102 KB "
                    "clipping limit")
        return None


def write_atomic(path: Path, data: str) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_issues(paths: Iterable[Path], settings: Settings, out: Path) -> list[Built]:
    rendered = []
    problems: list[NewsletterError] = []
    for path in paths:
        try:
            rendered.append(render_issue(load_issue(path), settings))
        except IssueError as exc:
            problems.extend(exc.problems)
        except NewsletterError as exc:
            if exc.file is None:
                exc.file = str(path)
            problems.append(exc)
    if problems:
        raise IssueError(problems)
    built = []
    files: list[tuple[Path, str]] = []
    for r in rendered:
        html_path, text_path = out / f"{r.slug}.html", out / f"{r.slug}.txt"
        files += [(html_path, r.html), (text_path, r.text)]
        built.append(Built(r.slug, html_path, text_path, len(r.html.encode()),
                           len(r.text.encode())))
    write_all(files)
    try:  # local pictures beside the HTML, as the archive publishes them
        copy_assets([a for r in rendered for a in r.assets], out / ASSETS_FOLDER)
    except OSError as exc:
        raise NewsletterError(f"cannot write: {exc.strerror or exc}",
                              file=exc.filename or out / ASSETS_FOLDER) from None
    return built


def write_all(files: list[tuple[Path, str]]) -> None:
    """Write every file or none: all are staged as temp files first, then renamed into place.
    A folder that cannot be made or written is one NewsletterError naming it."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            if path.is_dir():  # os.replace would fail after the others were in place
                raise NewsletterError("is a folder; cannot write the file there", file=path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(data)
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as exc:
        raise NewsletterError(f"cannot write: {exc.strerror or exc}",
                              file=exc.filename or files[0][0].parent) from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def next_month(today: dt.date) -> dt.date:
    return dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)


def new_issue(settings: Settings, date: dt.date, folder: Path | None = None) -> Path:
    """Write issues/YYYY-MM.yaml from the skeleton; never overwrite an existing issue."""
    folder = folder or settings.issues_dir
    path = folder / f"{date:%Y-%m}.yaml"
    if path.exists():
        raise NewsletterError("already exists; edit it or remove it first", file=path)
    skeleton = (Path(__file__).parent / "skeleton.yaml").read_text(encoding="utf-8")
    # The subject is a double-quoted YAML string: a name with " or \ must not break it.
    quoted = settings.name.replace("\\", "\\\\").replace('"', '\\"')
    text = (skeleton.replace('subject: "{name}', f'subject: "{quoted}')
            .replace("{name}", settings.name)
            .replace("{month}", date.strftime("%B %Y"))
            .replace("{date}", date.isoformat()))
    write_all([(path, text)])
    return path
