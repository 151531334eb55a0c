"""Request many URLs at once with the standard library: a bounded pool, short timeouts.

HEAD first (cheap); GET when the server refuses HEAD. Redirects are followed by hand so the
chain can be reported; nothing is downloaded beyond what an image size check needs.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from http.client import HTTPException
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

USER_AGENT = "Mozilla/5.0 (compatible; newsletter-check/0.1; link checker)"
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 5.0
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class Probe:
    url: str
    status: int | None = None  # final HTTP status, None when no answer came
    reason: str = ""  # HTTP reason phrase, or what went wrong without an answer
    final_url: str | None = None  # where redirects ended, when there were any
    redirects: tuple[tuple[int, str], ...] = ()  # (status, location) per hop
    size: int | None = None  # bytes: Content-Length, or counted up to size_limit + 1
    content_type: str | None = None
    # Why this failure may be the checker's problem rather than the link's (a bot wall, a
    # certificate chain a browser would complete): reported as a warning, not an error.
    doubt: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400

    @property
    def failed(self) -> bool:
        return not self.ok


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None  # surface each 3xx as an answer of its own


_OPENER = urllib.request.build_opener(_NoRedirect)


def _why(exc: BaseException) -> str:
    """A short, human reason for a request that got no HTTP answer."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (TimeoutError, socket.timeout)) or isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return "DNS lookup failed (no such host)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return "TLS error"
    if isinstance(reason, HTTPException):
        return f"bad HTTP answer ({type(reason).__name__})"
    text = str(reason).strip() or type(reason).__name__
    return text[:120]


def _doubt_answer(status: int, headers) -> str | None:
    """Answers that block automated checkers while the page works in a browser."""
    if status == 999:  # LinkedIn and others answer robots with this
        return "the site refuses automated checks"
    if headers is None:
        return None
    challenged = bool(headers.get("cf-mitigated"))  # Cloudflare's "prove you are human"
    cloudflare = "cloudflare" in (headers.get("Server") or "").lower()
    if (status in (403, 503) and challenged) or (status == 403 and cloudflare):
        return "the site's bot protection answered, not the page"
    return None


def _doubt_error(exc: BaseException) -> str | None:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError) and \
            "local issuer" in (reason.verify_message or ""):
        # An incomplete chain: browsers fetch the missing intermediate, Python does not.
        return "browsers may complete the certificate chain that Python cannot"
    return None


def as_uri(url: str) -> str:
    """An IRI as a browser would send it: non-ASCII host in IDNA, non-ASCII path and query
    percent-encoded (what is already encoded stays as it is)."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass  # left as is: the request then fails with a clear reason
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    safe = "/%:@!$&'()*+,;=?~-._"
    return urlunsplit((parts.scheme, netloc, quote(parts.path, safe=safe),
                       quote(parts.query, safe=safe), quote(parts.fragment, safe=safe)))


def _once(url: str, method: str, timeout: float, size_limit: int | None):
    """One request without following redirects -> (status, reason, headers, size)."""
    request = urllib.request.Request(
        as_uri(url), method=method, headers={"User-Agent": USER_AGENT, "Accept": "*/*"}
    )
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx
        with exc:
            return exc.code, exc.reason or "", exc.headers, None
    with response:
        headers = response.headers
        size = _length(headers)
        if method == "GET" and size is None and size_limit is not None:
            size = 0  # count what arrives, bounded
            while size <= size_limit:
                chunk = response.read(min(65536, size_limit + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
        return response.status, response.reason or "", headers, size


def _length(headers) -> int | None:
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def probe(url: str, *, timeout: float = DEFAULT_TIMEOUT, size_limit: int | None = None) -> Probe:
    """Request one URL: HEAD, falling back to GET when HEAD is refused or errs; redirects
    followed up to MAX_REDIRECTS. With size_limit, the body of a GET is counted up to that
    many bytes (+1) when the server sends no Content-Length."""
    hops: list[tuple[int, str]] = []
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, reason, headers, size = _once(current, "HEAD", timeout, size_limit)
            # Many servers refuse HEAD (405, 501) or mishandle it: ask again with GET.
            if status >= 400 or (size is None and size_limit is not None and status < 300):
                status, reason, headers, size = _once(current, "GET", timeout, size_limit)
            location = headers.get("Location") if headers is not None else None
            if 300 <= status < 400 and location:
                target = urljoin(current, location)
                hops.append((status, target))
                if not target.lower().startswith(("http://", "https://")):
                    return Probe(url, status, reason, target, tuple(hops))
                current = target
                continue
            return Probe(
                url, status, reason, current if hops else None, tuple(hops), size,
                headers.get("Content-Type") if headers is not None else None,
                _doubt_answer(status, headers),
            )
        return Probe(url, None, f"more than {MAX_REDIRECTS} redirects", current, tuple(hops))
    except (urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
        return Probe(url, None, _why(exc), current if hops else None, tuple(hops),
                     doubt=_doubt_error(exc))


def probe_all(
    urls: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY, size_limits: dict[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Probe]:
    """Probe each distinct URL once, at most `concurrency` at a time.

    progress(done, total): called with (0, total) before the first request and again as each
    distinct URL is answered, in the calling thread; not at all when there is nothing to do.
    """
    unique = list(dict.fromkeys(urls))
    if not unique:
        return {}
    limits = size_limits or {}
    results: dict[str, Probe] = {}
    if progress is not None:
        progress(0, len(unique))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(unique)))) as pool:
        pending = {pool.submit(probe, u, timeout=timeout, size_limit=limits.get(u)): u
                   for u in unique}
        for future in as_completed(pending):
            results[pending[future]] = future.result()
            if progress is not None:
                progress(len(results), len(unique))
    return {u: results[u] for u in unique}  # in the order given
