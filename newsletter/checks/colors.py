"""CSS colour parsing and the WCAG 2 contrast ratio."""

from __future__ import annotations

import re

RGB = tuple[float, float, float]
RGBA = tuple[float, float, float, float]

# The named colours that turn up in email templates; anything else is treated as unknown.
NAMED: dict[str, str] = {
    "black": "#000000", "white": "#ffffff", "red": "#ff0000", "green": "#008000",
    "blue": "#0000ff", "yellow": "#ffff00", "orange": "#ffa500", "purple": "#800080",
    "gray": "#808080", "grey": "#808080", "silver": "#c0c0c0", "maroon": "#800000",
    "navy": "#000080", "teal": "#008080", "olive": "#808000", "lime": "#00ff00",
    "aqua": "#00ffff", "cyan": "#00ffff", "fuchsia": "#ff00ff", "magenta": "#ff00ff",
    "darkgray": "#a9a9a9", "darkgrey": "#a9a9a9", "lightgray": "#d3d3d3",
    "lightgrey": "#d3d3d3", "dimgray": "#696969", "dimgrey": "#696969",
    "gainsboro": "#dcdcdc", "whitesmoke": "#f5f5f5", "darkblue": "#00008b",
    "darkred": "#8b0000", "darkgreen": "#006400", "pink": "#ffc0cb", "gold": "#ffd700",
    "beige": "#f5f5dc", "ivory": "#fffff0", "snow": "#fffafa", "linen": "#faf0e6",
    "lightblue": "#add8e6", "lightyellow": "#ffffe0", "brown": "#a52a2a",
}

_HEX = re.compile(r"#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})\b", re.I)
_FUNC = re.compile(r"rgba?\(\s*([^)]*)\)", re.I)


def parse_color(value: str | None) -> RGBA | None:
    """'#1d5b79', '#fff', 'rgb(0,0,0)', 'rgba(0,0,0,.5)', 'white' -> (r, g, b, alpha) in 0..255
    and 0..1; 'transparent' -> alpha 0; None when it cannot be read (gradients, var(), ...)."""
    if not value:
        return None
    value = value.strip().lower().removesuffix("!important").strip()
    if value == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    if value in NAMED:
        value = NAMED[value]
    match = _HEX.fullmatch(value)
    if match:
        digits = match.group(1)
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        r, g, b = (int(digits[i:i + 2], 16) for i in (0, 2, 4))
        alpha = int(digits[6:8], 16) / 255 if len(digits) == 8 else 1.0
        return (float(r), float(g), float(b), alpha)
    match = _FUNC.fullmatch(value)
    if match:
        parts = [p for p in re.split(r"[\s,/]+", match.group(1).strip()) if p]
        if len(parts) not in (3, 4):
            return None
        try:
            channels = [
                float(p[:-1]) * 2.55 if p.endswith("%") else float(p) for p in parts[:3]
            ]
            alpha = 1.0
            if len(parts) == 4:
                a = parts[3]
                alpha = float(a[:-1]) / 100 if a.endswith("%") else float(a)
        except ValueError:
            return None
        r, g, b = (min(255.0, max(0.0, c)) for c in channels)
        return (r, g, b, min(1.0, max(0.0, alpha)))
    return None


def color_in(value: str | None) -> RGBA | None:
    """The colour inside a `background` shorthand ('#fff url(x.png) no-repeat' -> #fff)."""
    if not value:
        return None
    whole = parse_color(value)
    if whole is not None:
        return whole
    cleaned = re.sub(r"url\([^)]*\)", " ", value, flags=re.I)
    for token in re.findall(r"rgba?\([^)]*\)|#[0-9a-f]{3,8}\b|[a-z]+", cleaned, flags=re.I):
        found = parse_color(token)
        if found is not None:
            return found
    return None


def blend(top: RGBA, under: RGB) -> RGB:
    """A translucent colour painted over an opaque one."""
    a = top[3]
    return tuple(top[i] * a + under[i] * (1 - a) for i in range(3))  # type: ignore[return-value]


def luminance(rgb: RGB) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio, 1.0 .. 21.0."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def hex_of(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)
