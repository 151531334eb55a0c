"""Link tracking: the `[tracking]` settings as UTM parameters added to every web link of an
issue (the HTML and the plain-text part carry the same links)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Links that must never carry tracking parameters: the per-recipient unsubscribe placeholder
# (premailer and personalise expect it verbatim) and anything that is not a web address.
_TRACKABLE = ("http://", "https://")


def track_url(url: str, params: Mapping[str, str]) -> str:
    """`url` with the UTM `params` added. An existing query string and fragment are kept, and a
    parameter the URL already sets is not overridden (the author chose it on purpose)."""
    if not params or not url.lower().startswith(_TRACKABLE) or "{{" in url:
        return url
    parts = urlsplit(url)
    existing = parse_qsl(parts.query, keep_blank_values=True)
    have = {key for key, _ in existing}
    extra = [(key, value) for key, value in params.items() if key not in have]
    if not extra:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    path = parts.path or "/"  # https://example.org?x=1 -> https://example.org/?x=1
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def utm_params(utm: Mapping[str, str], slug: str) -> dict[str, str]:
    """The `[tracking]` settings with `{slug}` replaced by this issue's slug."""
    return {key: str(value).replace("{slug}", slug) for key, value in utm.items() if value}
