"""The MIME message of CONTRACT.md "What a sent message is", built once per campaign."""

from __future__ import annotations

import email
import email.policy
import quopri
import re
from email.header import decode_header, make_header

import pytest

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER, Rendered
from newsletter.deliver.campaign import Campaign, Kind, Recipient, issue_campaign
from newsletter.deliver.message import (
    AddressError,
    MessageFactory,
    build_message,
    format_address,
    message_id_of,
)

LONG_LINE = "<td style=\"padding:0 0 8px 0\">" + "Zürich Montréal 北京 " * 200 + "</td>"
HTML = (
    "<!doctype html><html><body>\n"
    + LONG_LINE
    + "\n<p>.starts with a dot</p>\n.\n"
    + f'<a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a> trailing space \n'
    + f"<p>again: {UNSUBSCRIBE_PLACEHOLDER}</p></body></html>"
)
TEXT = "Hello Ελλάδα\n\nUnsubscribe: " + UNSUBSCRIBE_PLACEHOLDER + "\n"


def campaign(**changes) -> Campaign:
    values = dict(
        slug="2011-05",
        subject="Πόλεις της Μετανάστευσης – مدن الهجرة: May 2011",
        html=HTML,
        text=TEXT,
        from_email="newsletter@citiesofmigration.ca",
        from_name="Cities of Migration",
        reply_to="info@citiesofmigration.ca",
        list_id="cities-of-migration",
    )
    values.update(changes)
    return Campaign(**values)


URL = "https://newsletter.example.org/unsubscribe?t=YW5h.c2ln&x=1"


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def parts(msg) -> tuple[str, str]:
    text, html = [p.get_content().replace("\r\n", "\n") for p in msg.iter_parts()]
    return text, html


def test_headers_and_both_parts_exactly() -> None:
    msg = build_message(campaign(), Recipient("ana@example.org", "Ana Müller", URL))
    assert msg["From"] == "Cities of Migration <newsletter@citiesofmigration.ca>"
    assert msg["Reply-To"] == "info@citiesofmigration.ca"
    assert msg["To"] == "Ana Müller <ana@example.org>"
    assert msg["Subject"] == "Πόλεις της Μετανάστευσης – مدن الهجرة: May 2011"
    assert msg["List-Id"] == "<cities-of-migration.citiesofmigration.ca>"
    assert msg["List-Unsubscribe"] == f"<{URL}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Message-ID"].endswith("@citiesofmigration.ca>")
    assert msg["Date"].datetime is not None
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = list(msg.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    text, body = parts(msg)
    personal_html, personal_text = Rendered("2011-05", "s", None, HTML, TEXT).personalise(URL)
    assert text == personal_text
    assert body == personal_html  # HTML-escaped URL (&amp;), long line and dots intact
    assert "x=1&amp;" not in body and 'href="https://newsletter.example.org/unsubscribe?t=YW5h' \
        ".c2ln&amp;x=1\"" in body


def test_wire_format_is_7bit_crlf_short_lines_and_dot_safe() -> None:
    data = MessageFactory(campaign()).render(Recipient("ana@example.org", "Ζωή", URL))
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76  # QP: URL pieces are soft-wrapped too
    assert not any(line.startswith(b".") for line in lines)  # no SMTP dot-stuffing needed
    assert "北京".encode() not in data
    # Every QP body decodes back (quopri is independent of the email package).
    for chunk in data.split(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")[1:]:
        quopri.decodestring(chunk.split(b"\r\n--=_nl_")[0]).decode("utf-8")


def test_non_ascii_names_are_encoded_and_specials_quoted() -> None:
    arabic = build_message(campaign(), Recipient("a@example.org", "سارة الأحمد", URL))
    assert arabic["To"].addresses[0].display_name == "سارة الأحمد"
    assert arabic["To"].addresses[0].addr_spec == "a@example.org"
    comma = build_message(campaign(), Recipient("b@example.org", "Smith, John", URL))
    assert comma["To"].addresses[0].display_name == "Smith, John"
    assert len(comma["To"].addresses) == 1
    # A name cannot smuggle in a header.
    sneaky = build_message(campaign(), Recipient("c@example.org", "Eve\r\nBcc: x@evil.test", URL))
    assert sneaky["Bcc"] is None
    assert sneaky["To"].addresses[0].addr_spec == "c@example.org"
    # A long name is folded into several encoded words (none over 75 characters). RFC 2047
    # decoding drops the folding between them; CPython's address parser keeps a space there,
    # so decode the raw header with email.header instead.
    long_name = ("Ζωή " * 40).strip()
    data = MessageFactory(campaign()).render(Recipient("d@example.org", long_name, URL))
    head = data.split(b"\r\n\r\n")[0].decode()
    to_lines = head[head.index("\r\nTo: ") + 2:].split("\r\nDate: ")[0].split("\r\n")
    assert len(to_lines) > 1 and max(len(line) for line in to_lines) <= 78
    raw_to = email.message_from_bytes(data)["To"]
    assert str(make_header(decode_header(raw_to))) == f"{long_name} <d@example.org>"


def test_from_name_and_idn_domain() -> None:
    c = campaign(from_name="Cités de la migration", from_email="news@bücher.example")
    msg = build_message(c, Recipient("ana@例え.jp", None, URL))
    assert msg["From"].addresses[0].display_name == "Cités de la migration"
    assert msg["From"].addresses[0].addr_spec == "news@xn--bcher-kva.example"
    assert msg["To"] == "ana@xn--r8jz45g.jp"
    assert msg["List-Id"] == "<cities-of-migration.xn--bcher-kva.example>"


@pytest.mark.parametrize("name", [
    "Cities of Migration – News and Updates for Everyone",  # non-ASCII and long: folded
    "Πόλεις της Μετανάστευσης – مدن الهجرة – 移民城市",
    "Plain ASCII name, long enough to need folding in this header, really",
])
def test_long_from_names_survive(name: str) -> None:
    data = MessageFactory(campaign(from_name=name)).render(Recipient("ann@example.org", None, URL))
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    raw = email.message_from_bytes(data, policy=email.policy.compat32)["From"]
    # decode_header, not the headerregistry parser: the latter inserts a space between two
    # adjacent encoded words, which RFC 2047 says to drop
    decoded = str(make_header(decode_header(re.sub(r"\r?\n(?=[ \t])", "", raw))))
    assert decoded.replace('"', "") == f"{name} <newsletter@citiesofmigration.ca>"


def test_unwritable_addresses_raise_address_error() -> None:
    factory = MessageFactory(campaign())
    for bad in ("ζωή@example.org", "no-at-sign", "a b@example.org", "x@y>z"):
        with pytest.raises(AddressError):
            factory.render(Recipient(bad, None, URL))
    with pytest.raises(AddressError):
        format_address("x", "a@b@")


def test_per_recipient_urls_are_distinct_everywhere() -> None:
    factory = MessageFactory(campaign())
    seen = set()
    for i in range(3):
        url = f"https://newsletter.example.org/unsubscribe?t=tok{i}"
        msg = parse(factory.render(Recipient(f"r{i}@example.org", None, url)))
        text, html = parts(msg)
        assert msg["List-Unsubscribe"] == f"<{url}>"
        assert url in text and f'href="{url}"' in html
        others = [f"tok{j}" for j in range(3) if j != i]
        assert not any(o in text or o in html for o in others)
        seen.add(msg["Message-ID"])
    assert len(seen) == 3


def test_test_sends_carry_no_list_unsubscribe() -> None:
    c = campaign(subject="[TEST] Cities of Migration", kind=Kind.TEST)
    msg = build_message(c, Recipient("editor@example.org", None, URL))
    assert msg["Subject"] == "[TEST] Cities of Migration"
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None
    assert URL in parts(msg)[0]  # the footer link still works for reviewers
    no_url = build_message(c, Recipient("editor@example.org"))
    assert UNSUBSCRIBE_PLACEHOLDER not in str(parts(no_url))


def test_subscriber_send_without_url_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unsubscribe_url"):
        build_message(campaign(), Recipient("ana@example.org"))


def test_message_id_is_read_back_and_can_be_given() -> None:
    factory = MessageFactory(campaign())
    data = factory.render(Recipient("a@example.org", None, URL), message_id="<fixed@x.example>")
    assert message_id_of(data) == "<fixed@x.example>"
    assert parse(data)["Message-ID"] == "<fixed@x.example>"


def test_no_placeholder_and_placeholder_at_edges() -> None:
    c = campaign(html=UNSUBSCRIBE_PLACEHOLDER + "mid" + UNSUBSCRIBE_PLACEHOLDER, text="plain")
    text, html = parts(build_message(c, Recipient("a@example.org", None, URL)))
    assert text == "plain"
    assert html == URL.replace("&", "&amp;") + "mid" + URL.replace("&", "&amp;")


def test_issue_campaign_uses_settings(settings) -> None:
    rendered = Rendered("2011-05", "Cities of Migration – May 2011", None, HTML, TEXT)
    c = issue_campaign(rendered, settings, Kind.TEST)
    assert c.subject == "[TEST] Cities of Migration – May 2011"
    assert c.from_email == settings.from_email and c.reply_to == settings.reply_to
    assert c.list_id == settings.list_id and c.test


def test_seed_issue_message(settings, seed_issue) -> None:
    """The real rendered seed issue survives encoding; the footer link is per recipient."""
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue
    from newsletter.tokens import unsubscribe_url

    rendered = render_issue(load_issue(seed_issue), settings)
    url = unsubscribe_url(settings, "ana@example.org")
    data = MessageFactory(issue_campaign(rendered, settings)).render(
        Recipient("ana@example.org", "Ana", url))
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    text, html = parts(parse(data))
    want_html, want_text = rendered.personalise(url)
    assert html == want_html.replace("\r\n", "\n")
    assert text == want_text.replace("\r\n", "\n")
    assert url in text and url in html
