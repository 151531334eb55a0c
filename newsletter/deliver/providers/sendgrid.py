"""The `sendgrid` provider: v3 `POST /mail/send` through the `sendgrid` package.

Settings: `SENDGRID_API_KEY` (required), `SENDGRID_API_HOST` (default https://api.sendgrid.com,
no `/v3`; tests point it at a local endpoint) and `SENDGRID_TIMEOUT` (seconds, default 30: the
client has none of its own).

One request per batch of at most 1,000 recipients, one personalization per recipient (nobody
sees another address). The issue is sent once as content; each personalization carries only its
unsubscribe URL as `substitutions` (the text part gets the URL, the HTML part the HTML-escaped
URL, under two keys) and, for subscriber sends, its own `List-Unsubscribe` and
`List-Unsubscribe-Post` headers. `categories: [slug]` and `custom_args: {"issue": slug}` let
Event Webhook posts be matched back to the issue (test sends add `"test": "1"`; transactional
mail carries `{"transactional": name}` instead, so its events belong to no issue; see
sendgrid_webhook.py). The body is written here as JSON text (one fragment per
personalization) and posted as bytes with urllib, `Content-Type: application/json`;
`build_body` gives it back as a dict.

Outcomes: 2xx -> every recipient SENT with the request's X-Message-Id; 429, 408 and 5xx ->
RetryableError (retry_after from Retry-After or X-RateLimit-Reset); 401/403 ->
ProviderAuthError; any other 4xx -> every recipient FAILED with SendGrid's error text; a refused
or failed connection before the request was sent -> RetryableError; no answer after the request
was sent (timeout, connection dropped) -> every recipient UNKNOWN (SendGrid has no idempotency
key: it may have accepted them). The API key never appears in an error or a log line.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
import urllib.request
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from html import escape
from json.encoder import encode_basestring_ascii as _encode_basestring_ascii
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from newsletter.config import env_seconds
from newsletter.deliver.campaign import Campaign, Kind, Recipient, Result, Status
from newsletter.deliver.message import (
    MAX_LINE,
    ONE_CLICK,
    AddressError,
    ascii_address,
    check_batch,
    check_url,
    list_id,
    one_line,
)
from newsletter.deliver.providers.base import RetryableError, register
from newsletter.deliver.providers.sendgrid_webhook import SendGridWebhook
from newsletter.errors import ConfigError, ProviderAuthError, ProviderError

NAME = "sendgrid"
DEFAULT_HOST = "https://api.sendgrid.com"
TEXT_KEY = UNSUBSCRIBE_PLACEHOLDER  # "{{unsubscribe_url}}" in the text part
HTML_KEY = "{{unsubscribe_url_html}}"  # the same URL, HTML-escaped, in the HTML part
MAX_RECIPIENTS = 1000  # per request (personalizations and to+cc+bcc in total)
USER_AGENT = "newsletter (sendgrid v3 mail/send)"


@register
class SendGridProvider:
    name = NAME
    max_batch = MAX_RECIPIENTS
    # 1,000 recipients per request and a rate limit per account: one connection is enough.
    default_connections = 1
    selected_by = "SENDGRID_API_KEY"  # chosen without NEWSLETTER_PROVIDER when this is set

    def __init__(self, api_key: str, *, host: str = DEFAULT_HOST, timeout: float = 30.0) -> None:
        if not api_key:
            raise ConfigError("not set: put your SendGrid API key in SENDGRID_API_KEY",
                              field="SENDGRID_API_KEY")
        self._key = api_key
        self.host = host.rstrip("/")
        self.timeout = timeout
        self._url = self.host + "/v3/mail/send"
        self._headers = {"Authorization": f"Bearer {api_key}",
                         "Content-Type": "application/json", "User-Agent": USER_AGENT}
        # One opener per provider, this provider's own: a local endpoint (tests) never goes
        # through an http(s)_proxy of the environment; anything else honours it as usual.
        loopback = (urlsplit(self.host).hostname or "") in ("127.0.0.1", "localhost", "::1")
        self._opener = urllib.request.build_opener(
            *([urllib.request.ProxyHandler({})] if loopback else []))
        self._content: tuple[Campaign, dict] | None = None
        self._head_json: tuple[Campaign, str] | None = None
        self._ready: tuple | None = None  # (campaign, recipients, body) from prepare()
        self.requests_made = 0

    def __repr__(self) -> str:  # never the key
        return f"SendGridProvider(host={self.host!r})"

    @classmethod
    def from_settings(cls, settings) -> SendGridProvider:
        getenv = settings.getenv
        host = getenv("SENDGRID_API_HOST") or DEFAULT_HOST
        if urlsplit(host).scheme not in ("http", "https") or not urlsplit(host).hostname:
            raise ConfigError("must be an http(s) URL such as https://api.sendgrid.com",
                              field="SENDGRID_API_HOST")
        timeout = env_seconds(getenv, "SENDGRID_TIMEOUT", 30)
        return cls(getenv("SENDGRID_API_KEY") or "", host=host, timeout=timeout)

    @classmethod
    def usable(cls, settings) -> str | None:
        try:
            cls.from_settings(settings)  # nothing connects
        except ConfigError as exc:
            return str(exc)
        return None

    @classmethod
    def describe(cls, settings) -> str:
        host = (settings.getenv("SENDGRID_API_HOST") or DEFAULT_HOST).rstrip("/")
        return "through SendGrid" + ("" if host == DEFAULT_HOST else f" at {host}")

    @classmethod
    def webhook(cls, settings) -> SendGridWebhook:
        return SendGridWebhook.from_settings(settings)

    # -- the request body ------------------------------------------------------------------
    def _message(self, campaign: Campaign) -> dict:
        """Everything but the personalizations, built once per campaign."""
        if self._content is not None and self._content[0] == campaign:
            return self._content[1]
        message: dict = {
            "from": {"email": ascii_address(campaign.from_email)},
            "subject": one_line(campaign.subject),
            "content": [
                {"type": "text/plain", "value": campaign.text},
                {"type": "text/html",
                 "value": campaign.html.replace(UNSUBSCRIBE_PLACEHOLDER, HTML_KEY)},
            ],
            "categories": [campaign.slug[:255]],
            "custom_args": _custom_args(campaign),
            "headers": {"List-Id": list_id(campaign)},
        }
        if campaign.from_name:
            message["from"]["name"] = one_line(campaign.from_name)
        if campaign.reply_to:
            message["reply_to"] = {"email": ascii_address(campaign.reply_to)}
        self._content = (campaign, message)
        return message

    def build_body(self, campaign: Campaign, recipients: Sequence[Recipient]) -> tuple[dict, list]:
        """(request body as a dict, per-recipient Result or None for those in the request):
        exactly what send_batch posts (build_json), parsed back."""
        data, early = self.build_json(campaign, recipients)
        return json.loads(data), early

    def build_json(self, campaign: Campaign, recipients: Sequence[Recipient]
                   ) -> tuple[bytes, list[Result | None]]:
        """(request body as JSON bytes, per-recipient Result or None for those in the request)."""
        text, early = self._build(campaign, recipients)
        return text.encode("ascii"), early

    def _build(self, campaign: Campaign, recipients: Sequence[Recipient]
               ) -> tuple[str, list[Result | None]]:
        """build_json with the body as (ASCII-only) text.

        This runs once per recipient of a full send, so each personalization is written as a
        JSON fragment straight from strings (json's own C string escaper for every value:
        the same text json.dumps writes) instead of dicts that json.dumps walks again, and the
        checks take a fast path for the usual plain address and URL. Anything unusual goes
        through the exact checks of newsletter.deliver.message (ascii_address, check_url, one_line).
        """
        if len(recipients) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients per SendGrid request")
        test = not campaign.to_subscribers  # no unsubscribe URL needed, no List-Unsubscribe
        parts: list[str] = []
        early: list[Result | None] = []
        seen: set[str] = set()
        # check_url for the whole batch in one pass over all its URLs (a caller bug: raised
        # before anything of the batch is sent); empty and overlong ones are checked below.
        joined = "".join([r.unsubscribe_url or "" for r in recipients])
        if not joined.isascii() or any(c in joined for c in "\r\n <>"):
            check_batch(campaign, recipients)
        plain_address, q = _PLAIN_ADDRESS.fullmatch, _json_string
        for r in recipients:
            url = r.unsubscribe_url or ""
            if (not url and not test) or len(url) > MAX_URL:
                check_url(campaign, r)
            address = r.email
            if plain_address(address) is not None:
                address_q = f'"{address}"'  # nothing in it to escape
            else:
                try:
                    address = ascii_address(address)
                except AddressError as exc:
                    early.append(Result(r.email, Status.REJECTED, error=str(exc)))
                    continue
                address_q = q(address)
            lower = address.lower()
            if lower in seen:  # SendGrid refuses the whole request for a repeat
                early.append(Result(r.email, Status.REJECTED,
                                    error="the same address twice in one batch"))
                continue
            seen.add(lower)
            early.append(None)
            name = r.name
            if name:
                if name.isprintable() and "," not in name and ";" not in name:
                    name = name.strip()  # what the line below gives for such a name
                else:
                    name = one_line(name).replace(";", " ").replace(",", " ").strip()
            to = f'{{"email":{address_q},"name":{q(name)}}}' if name else \
                f'{{"email":{address_q}}}'
            url_q = q(url)
            html_q = q(escape(url)) if ("&" in url or '"' in url or "'" in url) else url_q
            if test:
                parts.append(f'{{"to":[{to}],"substitutions":{{{_TEXT_Q}:{url_q},'
                             f'{_HTML_Q}:{html_q}}}}}')
            else:
                # '"<' + url + '>"': "<" and ">" need no escaping in JSON
                parts.append(f'{{"to":[{to}],"substitutions":{{{_TEXT_Q}:{url_q},'
                             f'{_HTML_Q}:{html_q}}},"headers":{{"List-Unsubscribe":'
                             f'"<{url_q[1:-1]}>",{_ONE_CLICK_Q}}}}}')
        head = self._head(campaign)
        body = f'{head},"personalizations":[{",".join(parts)}]}}' if parts else \
            f'{head},"personalizations":[]}}'
        return body, early

    def _head(self, campaign: Campaign) -> str:
        """The body's JSON without its closing brace: everything but the personalizations."""
        if self._head_json is None or self._head_json[0] != campaign:
            self._head_json = (campaign, json.dumps(self._message(campaign))[:-1])
        return self._head_json[1]

    # -- sending -------------------------------------------------------------------------
    def prepare(self, campaign: Campaign, recipients: Sequence[Recipient]) -> None:
        """Build the body of the coming send_batch(campaign, recipients) now (the sender
        does this while its ledger commits). Only a call with these very objects, unchanged,
        uses it; an error here is left for send_batch to raise in its own time."""
        try:
            built = self._build(campaign, recipients)
        except Exception:  # noqa: BLE001 -- send_batch builds again and raises it
            self._ready = None
            return
        self._ready = (campaign, recipients, built)

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] is campaign and ready[1] is recipients:
            body, early = ready[2]
        else:
            body, early = self._build(campaign, recipients)
        if None not in early:  # nobody left to send to
            return [r for r in early if r is not None]
        status, message_id, error = self._post(body)
        fields = {"status": status, "message_id": message_id, "error": error}
        return [result or _result(recipient.email, fields)
                for recipient, result in zip(recipients, early, strict=True)]

    def _post(self, body: str) -> tuple[Status, str | None, str | None]:
        """Post one request (the JSON body, ASCII text); (status for every recipient in it,
        X-Message-Id, error)."""
        self.requests_made += 1
        request = urllib.request.Request(self._url, data=body.encode("ascii"),
                                         headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                code, message_id = response.status, response.headers.get("X-Message-Id")
        except HTTPError as exc:  # before URLError: it is one
            with exc:
                return self._http_error(exc.code, exc.reason, exc.headers, _read(exc))
        except URLError as exc:
            # urllib raises URLError only while connecting or sending the request: SendGrid
            # cannot have accepted an incomplete request.
            reason = exc.reason
            if isinstance(reason, (ConnectionError, TimeoutError, OSError)) and not isinstance(
                reason, (ssl.SSLError, ssl.CertificateError)
            ):
                raise RetryableError(f"cannot reach {self.host}: {self._scrub(reason)}",
                                     provider=NAME) from None
            raise ProviderError(f"cannot reach {self.host}: {self._scrub(reason)}",
                                provider=NAME) from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            # The request went out; its answer did not come back.
            return (Status.UNKNOWN, None,
                    f"no answer from {self.host} after the request was sent "
                    f"({type(exc).__name__}: {self._scrub(exc) or 'timed out'}); "
                    "SendGrid may have accepted it")
        if 200 <= code < 300:
            return Status.SENT, message_id, None
        return Status.FAILED, None, f"unexpected answer {code}"

    def _http_error(self, code: int, reason, headers, body: bytes
                    ) -> tuple[Status, str | None, str | None]:
        text = self._scrub(_error_text(body) or reason or "")
        if code in (401, 403):
            raise ProviderAuthError(
                f"SendGrid refused the API key ({code} {text}); check SENDGRID_API_KEY "
                "and that the key has the Mail Send permission", provider=NAME, status=code,
            ) from None
        if code in (408, 429) or code >= 500:
            raise RetryableError(f"{code} {text}", provider=NAME, status=code,
                                 retry_after=_retry_after(headers)) from None
        return Status.FAILED, None, f"{code} {text}"

    def _scrub(self, value) -> str:
        return str(value).replace(self._key, "[SENDGRID_API_KEY]")

    def close(self) -> None:
        self._content = None
        self._head_json = None
        self._ready = None


def _custom_args(campaign: Campaign) -> dict[str, str]:
    """What each Event Webhook event of this campaign carries back (sendgrid_webhook.py)."""
    if campaign.kind is Kind.TRANSACTIONAL:
        return {"transactional": campaign.slug}
    if campaign.kind is Kind.TEST:  # reviewers' copies are not the issue's audience
        return {"issue": campaign.slug, "test": "1"}
    return {"issue": campaign.slug}


def _read(exc: HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""


def _result_fast(email: str, fields: dict) -> Result:
    """Result(email, **fields) in half the time of the frozen dataclass's __init__ (which
    sets each field through object.__setattr__): one per recipient of every request.
    Right only while Result is a plain frozen dataclass (no __post_init__, no slots), so it
    is checked at import, and Result's own constructor is used if it ever stops being."""
    result = _new(Result)
    attributes = result.__dict__
    attributes["email"] = email
    attributes.update(fields)
    return result


def _result_plain(email: str, fields: dict) -> Result:
    return Result(email, **fields)


def _pick_result_maker():
    probe = {"status": Status.SENT, "message_id": "m", "error": None}
    try:
        fast = _result_fast("a@example.org", probe)
        same = fast == Result("a@example.org", **probe) and repr(fast) == repr(
            Result("a@example.org", **probe))
    except Exception:  # noqa: BLE001 -- any surprise: the plain constructor
        same = False
    return _result_fast if same else _result_plain


_new = object.__new__
_result = _pick_result_maker()


def _json_string(value: str) -> str:
    """A JSON string literal, exactly as json.dumps (ensure_ascii) writes it."""
    return _encode_basestring_ascii(value)


_TEXT_Q = _json_string(TEXT_KEY)
_HTML_Q = _json_string(HTML_KEY)
_ONE_CLICK_Q = f'"List-Unsubscribe-Post":{_json_string(ONE_CLICK)}'
# An address ascii_address() returns unchanged and that needs no JSON escaping: ASCII
# atext and dots, one "@", a domain of letters, digits, dots and hyphens.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
MAX_URL = MAX_LINE - 20


def _error_text(body) -> str:
    """SendGrid's `{"errors": [{"message", "field"}]}` as one line, at most 500 characters."""
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        parts = [
            f"{e.get('message', '')}" + (f" (field {e['field']})" if e.get("field") else "")
            for e in data.get("errors", [])
        ]
        text = "; ".join(p for p in parts if p)
    except (ValueError, AttributeError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return " ".join(text.split())[:500]


def _retry_after(headers) -> float | None:
    """Seconds to wait: Retry-After (seconds or an HTTP date), else X-RateLimit-Reset (epoch)."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return None
