"""Read what a web page says about itself: Open Graph, Twitter card, meta description, <title>.

    page = fetch_page("https://citiesofmigration.ca/ezine_stories/maximum-cities/")
    page.title, page.description, page.image, page.image_alt, page.url

The request is bounded in every way a pasted link can hurt: http and https only, a connect
timeout and a total deadline, at most MAX_BYTES read, at most MAX_REDIRECTS redirects, and only
an HTML answer is read. Every failure is one FetchError with a short reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
from lxml import html as lxml_html

from newsletter.errors import NewsletterError

USER_AGENT = "Mozilla/5.0 (compatible; newsletter-add/0.1; reads the page's title and summary)"
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class FetchError(NewsletterError):
    """The page could not be fetched or is not an HTML page."""


@dataclass(frozen=True)
class PageInfo:
    url: str  # where the page was found (after redirects)
    title: str | None
    description: str | None
    image: str | None  # absolute URL
    image_alt: str | None


def _check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FetchError(f"only http:// and https:// pages can be added, not {url!r}")


def fetch_page(url: str, *, connect_timeout: float = CONNECT_TIMEOUT,
               total_timeout: float = TOTAL_TIMEOUT, max_bytes: int = MAX_BYTES) -> PageInfo:
    """Fetch `url` and read its metadata. Raises FetchError."""
    url = url.strip()
    _check_scheme(url)
    deadline = time.monotonic() + total_timeout
    timeout = httpx.Timeout(total_timeout, connect=connect_timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml;q=0.9"}
    try:
        with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        target = urljoin(current, response.headers.get("Location", ""))
                        _check_scheme(target)
                        current = target
                        continue
                    return _read(response, current, deadline, max_bytes)
            raise FetchError(f"more than {MAX_REDIRECTS} redirects, last to {current}")
    except httpx.TimeoutException:
        raise FetchError(f"no answer within the time limit: {url}") from None
    except httpx.ConnectError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else (
            f"cannot connect ({exc})" if str(exc) else "cannot connect")
        raise FetchError(f"{reason}: {url}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"the request failed ({type(exc).__name__}: {exc}): {url}") from None


def _read(response: httpx.Response, url: str, deadline: float, max_bytes: int) -> PageInfo:
    if response.status_code >= 400:
        raise FetchError(f"the page answered {response.status_code} "
                         f"{response.reason_phrase}: {url}")
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind and kind not in _HTML_TYPES:
        raise FetchError(f"not a web page but {kind}: {url}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"the page is larger than {max_bytes // (1024 * 1024)} MB: {url}")
        if time.monotonic() > deadline:
            raise FetchError(f"no answer within the time limit: {url}")
    charset = response.charset_encoding
    return parse_page(bytes(body), url, charset)


def parse_page(body: bytes, url: str, charset: str | None = None) -> PageInfo:
    """The metadata of an HTML document: Open Graph first, then the Twitter card, then the
    plain meta description and <title>."""
    if not body.strip():
        raise FetchError(f"the page is empty: {url}")
    try:
        if charset:
            doc = lxml_html.document_fromstring(body.decode(charset, "replace"))
        else:  # lxml reads <meta charset> itself
            doc = lxml_html.document_fromstring(body)
    except (ValueError, LookupError) as exc:
        raise FetchError(f"cannot read the page as HTML ({exc}): {url}") from None
    meta: dict[str, str] = {}
    for node in doc.iter("meta"):
        key = (node.get("property") or node.get("name") or "").strip().lower()
        value = " ".join((node.get("content") or "").split())
        if key and value and key not in meta:
            meta[key] = value
    titles = doc.xpath("//title/text()")
    title = " ".join(" ".join(titles).split()) if titles else None

    def first(*keys: str) -> str | None:
        return next((meta[k] for k in keys if meta.get(k)), None)

    image = first("og:image:secure_url", "og:image", "og:image:url", "twitter:image",
                  "twitter:image:src")
    if image:
        image = urljoin(url, image)
        if urlsplit(image).scheme not in ("http", "https"):
            image = None
    return PageInfo(
        url=url,
        title=first("og:title", "twitter:title") or title or None,
        description=first("og:description", "twitter:description", "description"),
        image=image,
        image_alt=first("og:image:alt", "twitter:image:alt"),
    )
