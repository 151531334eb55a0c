"""Local pictures: a photo on the officer's disk, made fit for an email.

    asset = prepare_image(Path("issues/calgary.jpg"), display_width=536, cache=cache_dir)

The picture is turned upright (EXIF orientation), resized with a high-quality filter to at most
twice its display width (sharp on high-density screens) and at most MAX_WIDTH, stripped of its
metadata (EXIF with its GPS position, comments, text chunks; only the colour profile is kept)
and saved as a progressive JPEG or an optimised PNG. Its name is a hash of the source bytes and
of the processing parameters, so it changes whenever the picture (or the way it is processed)
changes and mail clients and caches never show an old one.

Results are cached in a folder: a rebuild of an unchanged picture only compares the file's size
and modification time with what the cache recorded (a stat and a small JSON read); a changed
stamp re-hashes the file and reuses the processed file when the content is in fact the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from newsletter.errors import NewsletterError

MAX_WIDTH = 1200  # px: no email needs more, whatever the display width
JPEG_QUALITY = 82
# Bump when the processing changes: every name changes with it, so no stale picture survives.
PROCESSING_VERSION = 2
# Orientations (EXIF 0x0112) that turn the picture a quarter: width and height swap.
_QUARTER_TURNS = {5, 6, 7, 8}
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Asset:
    """One processed picture: `name` is its file name in the published images folder."""

    name: str
    path: Path  # the processed file (in the cache)
    source: Path
    width: int
    height: int
    source_width: int
    source_height: int
    source_bytes: int
    display_width: int

    @property
    def needed_width(self) -> int:
        return min(2 * self.display_width, MAX_WIDTH)


def is_local(src: str) -> bool:
    """A picture given as a file path rather than a web address."""
    return "://" not in src and not src.lower().startswith(("data:", "mailto:", "cid:"))


def check_image_file(path: Path) -> str | None:
    """Why `path` cannot be used as a picture, or None. Reads only the file's header."""
    if not path.exists():
        return f"file not found: {path}"
    if path.is_dir():
        return f"is a folder, not a picture: {path}"
    try:
        with Image.open(path) as img:
            kind = img.format
    except UnidentifiedImageError:
        return f"not a picture Pillow can read (JPEG, PNG, GIF, WebP): {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if kind not in ("JPEG", "PNG", "GIF", "WEBP", "MPO", "BMP", "TIFF"):
        return f"a {kind} file; use a JPEG or PNG picture: {path}"
    return None


def default_cache(root: Path) -> Path:
    return root / ".cache" / "images"


def prepare_image(source: Path, display_width: int, cache: Path) -> Asset:
    """The processed picture for `source` shown `display_width` px wide (cached)."""
    source = Path(source).resolve()
    display_width = max(1, min(int(display_width), MAX_WIDTH))
    try:
        stat = source.stat()
    except OSError as exc:
        raise NewsletterError(f"cannot read the picture: {exc.strerror or exc}",
                              file=source) from None
    params = f"v{PROCESSING_VERSION}:w{min(2 * display_width, MAX_WIDTH)}:q{JPEG_QUALITY}"
    index = cache / "index" / (hashlib.sha256(f"{source}\0{params}".encode()).hexdigest()[:32]
                               + ".json")
    known = _read_index(index)
    if known and known.get("size") == stat.st_size and known.get("mtime") == stat.st_mtime_ns:
        asset = _asset_from(known, cache, source)
        if asset is not None and asset.path.is_file():
            return asset  # the common case: nothing changed since the last build
    data = source.read_bytes()
    digest = hashlib.sha256(data + b"\0" + params.encode()).hexdigest()[:16]
    # The same bytes processed the same way before (a touched file, a copy under another
    # name): reuse the processed file.
    record = _read_index(cache / "index" / f"{digest}.json")
    asset = _asset_from(record, cache, source) if record else None
    if asset is None or not asset.path.is_file():
        asset = _process(source, data, digest, display_width, cache)
        _write_index(cache / "index" / f"{digest}.json", asset, stat)
    asset = dataclasses.replace(asset, display_width=display_width)
    _write_index(index, asset, stat)
    return asset


def _process(source: Path, data: bytes, digest: str, display_width: int, cache: Path) -> Asset:
    try:
        img = Image.open(io.BytesIO(data))
        kind = img.format
        orientation = img.getexif().get(_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise NewsletterError(f"not a picture Pillow can read ({exc})", file=source) from None
    source_width, source_height = _upright(img.size, orientation)
    target = min(2 * display_width, MAX_WIDTH, source_width)
    scale = target / source_width
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    try:
        if kind == "JPEG" and scale < 1:
            # The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding (never below the
            # requested size): a 4000 px photo decodes in a fraction of the time.
            img.draft("RGB", size)
        img.load()
        # Resized first, turned upright after: turning the small picture is cheaper.
        if img.size != size:
            if img.mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA" if _has_alpha(img) else "RGB")
            img = img.resize(size, Image.Resampling.LANCZOS)
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError) as exc:  # a truncated or broken file
        raise NewsletterError(f"cannot decode the picture ({exc})", file=source) from None
    cache.mkdir(parents=True, exist_ok=True)
    options: dict = {}
    if kind in ("PNG", "GIF") or _has_alpha(img):
        # Logos, diagrams and pictures with transparency stay PNG (JPEG would blur them).
        if img.mode not in ("RGBA", "RGB", "P", "L", "LA"):
            img = img.convert("RGBA")
        if img.mode == "P" and "transparency" in img.info:
            options["transparency"] = img.info["transparency"]
        out, fmt = cache / f"{digest}.png", "PNG"
        options["optimize"] = True
    else:
        if img.mode != "RGB":
            img = img.convert("RGB")
        out, fmt = cache / f"{digest}.jpg", "JPEG"
        options.update(quality=JPEG_QUALITY, optimize=True, progressive=True)
    # Nothing of the source's metadata is written: EXIF (camera, GPS position), comments and
    # text chunks all live in `info`, which Pillow would otherwise carry over. The colour
    # profile stays: it says nothing about anyone, and without it a wide-gamut photo (Display
    # P3 from a phone) shows dull colours.
    profile = img.info.get("icc_profile")
    img.info = {}
    if profile:
        options["icc_profile"] = profile
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=cache)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, fmt, **options)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Asset(name=f"{_stem(source)}-{digest}{out.suffix}", path=out, source=source,
                 width=img.width, height=img.height, source_width=source_width,
                 source_height=source_height, source_bytes=len(data),
                 display_width=display_width)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def _stem(source: Path) -> str:
    """A readable, URL-safe start of the published name: `Calgary Roundtable.JPG` ->
    `calgary-roundtable`."""
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-"
                   for c in source.stem.lower())
    return "-".join(part for part in stem.split("-") if part)[:40] or "image"


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in _QUARTER_TURNS else size


def _read_index(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_index(path: Path, asset: Asset, stat: os.stat_result) -> None:
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(asset).items()}
    record.update(path=asset.path.name, size=stat.st_size, mtime=stat.st_mtime_ns)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError:  # a cache that cannot be written only costs time on the next build
        Path(tmp).unlink(missing_ok=True)


def _asset_from(record: dict, cache: Path, source: Path) -> Asset | None:
    try:
        name = record["name"]
        stem_digest = record["path"]
        return Asset(name=_renamed(name, source), path=cache / stem_digest, source=source,
                     width=int(record["width"]), height=int(record["height"]),
                     source_width=int(record["source_width"]),
                     source_height=int(record["source_height"]),
                     source_bytes=int(record["source_bytes"]),
                     display_width=int(record["display_width"]))
    except (KeyError, TypeError, ValueError):
        return None


def _renamed(name: str, source: Path) -> str:
    """The same processed file under this source's own file name (two copies of one photo
    under different names share the processed file)."""
    return f"{_stem(source)}-{name.rsplit('-', 1)[-1]}"


def copy_assets(assets: Iterable[Asset], folder: Path) -> list[Path]:
    """Put each processed picture in `folder` under its published name (a picture already
    there is left alone: the same name is the same content). Returns the paths written."""
    written = []
    for asset in assets:
        target = folder / asset.name
        if target.is_file() and target.stat().st_size == asset.path.stat().st_size:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{asset.name}.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(asset.path.read_bytes())
            os.chmod(tmp, 0o644)  # a web server must read it
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
