"""Local pictures: a photo beside the issue file, made fit for email, published by name."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from newsletter.cli import main
from newsletter.compose.images import MAX_WIDTH, prepare_image
from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue
from newsletter.config import load_settings

ASSETS = "https://citiesofmigration.ca/newsletter/archive/images/"


def photo(path: Path, size=(4000, 3000), *, orientation: int | None = None,
          colour=(30, 90, 160), **save) -> Path:
    img = Image.new("RGB", size, colour)
    img.paste((240, 200, 20), (0, 0, size[0] // 4, size[1] // 4))  # a marked corner
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # camera maker
    exif[0x8825] = {1: "N", 2: (43.0, 39.0, 0.0)}  # GPS position
    if orientation:
        exif[0x0112] = orientation
    img.save(path, "JPEG", quality=90, exif=exif, comment=b"holiday", **save)
    return path


def use_local_image(issue: Path, src: str) -> None:
    text = issue.read_text(encoding="utf-8")
    start = text.index("      src: https://citiesofmigration.ca/wp-content/uploads")
    end = text.index("\n", start)
    issue.write_text(text[:start] + f"      src: {src}" + text[end:], encoding="utf-8")


def test_processing_upright_resized_and_stripped(tmp_path: Path) -> None:
    source = photo(tmp_path / "Calgary Roundtable.JPG", orientation=6)  # turned a quarter
    asset = prepare_image(source, 536, tmp_path / "cache")
    assert re.fullmatch(r"calgary-roundtable-[0-9a-f]{16}\.jpg", asset.name)
    with Image.open(asset.path) as out:
        # upright (3000 wide once turned), then twice its 536 px display width
        assert out.size == (1072, 1429)
        assert (asset.source_width, asset.source_height) == (3000, 4000)
        assert out.info.get("progressive") == 1
        assert not out.getexif() and "comment" not in out.info and "exif" not in out.info
        # the marked corner (top left before turning) is now top right
        assert out.getpixel((1060, 10))[0] > 200 and out.getpixel((10, 10))[2] > 120


def test_the_colour_profile_is_kept(tmp_path: Path) -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = photo(tmp_path / "p3.jpg", (1600, 1200), icc_profile=profile)
    with Image.open(prepare_image(source, 536, tmp_path / "c").path) as out:
        assert out.info.get("icc_profile") == profile
        assert not out.getexif()


def test_never_wider_than_1200_nor_enlarged(tmp_path: Path) -> None:
    wide = prepare_image(photo(tmp_path / "wide.jpg"), 1000, tmp_path / "c")
    assert wide.width == MAX_WIDTH
    small = prepare_image(photo(tmp_path / "small.jpg", (300, 200)), 536, tmp_path / "c")
    assert (small.width, small.height) == (300, 200)


def test_png_with_transparency_stays_png(tmp_path: Path) -> None:
    logo = Image.new("RGBA", (1000, 200), (0, 0, 0, 0))
    logo.paste((255, 255, 255, 255), (100, 50, 900, 150))
    logo.save(tmp_path / "logo.png", pnginfo=None)
    asset = prepare_image(tmp_path / "logo.png", 220, tmp_path / "c")
    assert asset.name.endswith(".png")
    with Image.open(asset.path) as out:
        assert out.size == (440, 88) and out.mode == "RGBA"


def test_name_changes_with_the_picture_and_the_width(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.jpg", (800, 600))
    first = prepare_image(source, 300, tmp_path / "c").name
    assert prepare_image(source, 300, tmp_path / "c").name == first
    assert prepare_image(source, 200, tmp_path / "c").name != first
    photo(source, (800, 600), colour=(10, 10, 10))
    assert prepare_image(source, 300, tmp_path / "c").name != first


def test_unchanged_picture_costs_almost_nothing(tmp_path: Path) -> None:
    source = photo(tmp_path / "big.jpg")
    cache = tmp_path / "c"
    started = time.perf_counter()
    first = prepare_image(source, 536, cache)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = prepare_image(source, 536, cache)
    warm = time.perf_counter() - started
    assert again == first
    assert warm < 0.02 and warm < cold / 10, (cold, warm)
    # touched but the same bytes: re-hashed, not re-processed
    source.touch()
    assert prepare_image(source, 536, cache).path.stat().st_mtime_ns == \
        first.path.stat().st_mtime_ns


def test_build_writes_pictures_beside_the_html(project: Path, seed_issue: Path) -> None:
    photo(project / "issues" / "roundtable.jpg")
    use_local_image(seed_issue, "roundtable.jpg")
    result = CliRunner().invoke(main, ["build", str(seed_issue), "--out", "out"])
    assert result.exit_code == 0, result.output
    html = (project / "out" / "2011-05.html").read_text(encoding="utf-8")
    [name] = re.findall(rf'src="{re.escape(ASSETS)}(roundtable-[0-9a-f]{{16}}\.jpg)"', html)
    written = project / "out" / "images" / name
    with Image.open(written) as out:
        assert out.width == 1072  # the story picture is shown 536 px wide
    assert "roundtable.jpg" not in (project / "out" / "2011-05.txt").read_text(encoding="utf-8")


def test_links_assets_setting_and_logo_beside_the_settings(project: Path,
                                                           seed_issue: Path) -> None:
    logo = Image.new("RGBA", (1200, 240), (255, 255, 255, 255))
    logo.save(project / "logo.png")
    toml = project / "newsletter.toml"
    text = toml.read_text(encoding="utf-8")
    text = re.sub(r'logo = \{ src = "[^"]+"', 'logo = { src = "logo.png"', text)
    text = text.replace("[links]\n", '[links]\nassets = "https://cdn.citiesofmigration.ca/n"\n')
    toml.write_text(text, encoding="utf-8")
    settings = load_settings(toml)
    rendered = render_issue(load_issue(seed_issue), settings)
    [asset] = rendered.assets
    assert asset.width == 440  # twice the logo's 220 px
    assert f'src="https://cdn.citiesofmigration.ca/n/{asset.name}"' in rendered.html


@pytest.mark.parametrize("content, why", [
    (None, "file not found"),
    (b"this is not a picture", "not a picture"),
])
def test_missing_or_not_a_picture_is_one_located_line(project: Path, seed_issue: Path,
                                                      content: bytes | None, why: str) -> None:
    if content is not None:
        (project / "issues" / "photo.jpg").write_bytes(content)
    use_local_image(seed_issue, "photo.jpg")
    line = seed_issue.read_text(encoding="utf-8").splitlines().index("      src: photo.jpg") + 1
    result = CliRunner().invoke(main, ["build", str(seed_issue), "--out", "out"])
    assert result.exit_code == 1
    [message] = result.output.strip().splitlines()
    assert message.startswith(f"{seed_issue}:{line}: featured[0].image.src: {why}")
    assert not (project / "out").exists()


def test_archive_publishes_the_pictures(project: Path, seed_issue: Path) -> None:
    photo(project / "issues" / "roundtable.jpg", (900, 600))
    use_local_image(seed_issue, "roundtable.jpg")
    result = CliRunner().invoke(main, ["archive", "--out", "site"])
    assert result.exit_code == 0, result.output
    page = (project / "site" / "2011-05.html").read_text(encoding="utf-8")
    [name] = re.findall(rf'{re.escape(ASSETS)}(roundtable-[0-9a-f]{{16}}\.jpg)', page)
    assert (project / "site" / "images" / name).is_file()


def test_missing_logo_names_the_settings_line(project: Path) -> None:
    toml = project / "newsletter.toml"
    text = re.sub(r'logo = \{ src = "[^"]+"', 'logo = { src = "logo.png"',
                  toml.read_text(encoding="utf-8"))
    toml.write_text(text, encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("logo = "))
    result = CliRunner().invoke(main, ["build", "issues/2011-05.yaml"])
    assert result.exit_code == 1
    assert result.output.startswith(f"{toml}:{line}: theme.logo.src: file not found: ")
