"""Exports of other tools import as they come: recognised by header, consent kept, and no
opted-out row ever active; `subscribers export` imports back unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import StoreError
from newsletter.store import open_store
from newsletter.subscribers import formats
from newsletter.subscribers.importing import export_csv, import_csv

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
MAILCHIMP = "mailchimp_{}_members_export_6f2c1a.csv"


@pytest.fixture
def conn(store):
    """The store: these tests read like the import's own vocabulary."""
    return store


def statuses(conn) -> dict[str, str]:
    return {s.email: s.status for s in conn.subscribers.list()}


def get(conn, email: str):
    return conn.subscribers.get(email)


# -- recognition and mapping (pure) ----------------------------------------------------------


@pytest.mark.parametrize("header, key", [
    ("Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP", "mailchimp"),
    ("email,active_subscription,expiry,plan,email_disabled,created_at", "substack"),
    ("uuid,email,name,attributes,status,created_at,updated_at", "listmonk"),
    ("email,notes,metadata,tags,subscriber_type,creation_date", "buttondown"),
    ("id,email,notes,metadata,tags,type,creation_date,source", "buttondown"),
    (",".join(formats.EXPORT_COLUMNS), "newsletter"),
    ("Email,Name", "csv"),
])
def test_recognised_by_header(header, key):
    assert formats.recognise(header.split(",")).key == key


def test_mailchimp_kinds_and_row_mapping():
    base = ["Email Address", "First Name", "Last Name", "OPTIN_TIME", "OPTIN_IP",
            "CONFIRM_TIME", "CONFIRM_IP"]
    fmt = formats.recognise(base)
    row = fmt.map(["a@example.org", "Ana", "Lima", "2019-03-12 14:22:01", "203.0.113.7",
                   "2019-03-12 14:25:40", "203.0.113.8"])
    assert (row.status, row.name, row.consent_at, row.consent_ip, row.confirmed_at,
            row.confirm_ip) == ("active", "Ana Lima", "2019-03-12T14:22:01Z", "203.0.113.7",
                                "2019-03-12T14:25:40Z", "203.0.113.8")
    unsub = formats.recognise([*base, "UNSUB_TIME", "UNSUB_REASON"])
    row = unsub.map(["b@example.org", "", "", "", "", "", "", "2023-01-05 15:00:00", "Spam"])
    assert row.status == "unsubscribed" and row.unsubscribed_at == "2023-01-05T15:00:00Z"
    assert "Mailchimp" in row.status_reason and "Spam" in row.status_reason
    assert row.name is None
    cleaned = formats.recognise([*base, "CLEAN_TIME"])
    assert cleaned.map(["c@example.org"] + [""] * 7).status == "suppressed"


@pytest.mark.parametrize("header, cells, status", [
    ("email,email_disabled,created_at", "a@x.org,true,", "unsubscribed"),
    ("email,email_disabled,created_at", "a@x.org,false,", "active"),
    ("email,active_subscription,email_disabled", "a@x.org,false,false", "unsubscribed"),
    ("uuid,email,name,attributes,status", "u,a@x.org,A,{},blocklisted", "unsubscribed"),
    ("uuid,email,name,attributes,status", "u,a@x.org,A,{},disabled", "unsubscribed"),
    ("uuid,email,name,attributes,status", "u,a@x.org,A,{},enabled", "active"),
    ("email,subscriber_type", "a@x.org,unsubscribed", "unsubscribed"),
    ("email,subscriber_type", "a@x.org,undeliverable", "suppressed"),
    ("email,subscriber_type", "a@x.org,unactivated", "pending"),
    ("email,subscriber_type", "a@x.org,premium", "active"),
    ("email,type,creation_date", "a@x.org,removed,", "unsubscribed"),
])
def test_opt_out_markers(header, cells, status):
    row = formats.recognise(header.split(",")).map(cells.split(","))
    assert row.status == status and row.skip is None


@pytest.mark.parametrize("header, cells", [
    ("uuid,email,name,attributes,status", "u,a@x.org,A,{},frozen"),
    ("email,subscriber_type", "a@x.org,mystery"),
])
def test_an_unknown_status_is_skipped_never_active(header, cells):
    row = formats.recognise(header.split(",")).map(cells.split(","))
    assert row.skip and row.status != "active"


def test_named_columns_win_and_must_exist():
    fmt = formats.recognise(["E-mail", "Full name", "Joined"], email_column="e-mail",
                            name_column="Full name")
    assert fmt.key == "csv" and fmt.map(["x@example.org", " Hana  Sato ", "2020"]).name == \
        "Hana Sato"
    with pytest.raises(formats.FormatError, match="no 'mail' column for --email-column"):
        formats.recognise(["E-mail"], email_column="mail")


@pytest.mark.parametrize("line, delimiter", [
    ("email,name", ","), ("email;name;city", ";"), ("email\tname", "\t"),
    ('"a;b",c,d', ","), ("email", ","),
])
def test_sniff_delimiter(line, delimiter):
    assert formats.sniff_delimiter(line) == delimiter


def test_parse_time():
    assert formats.parse_time("2020-08-19 09:05:55.345+00") == "2020-08-19T09:05:55Z"
    assert formats.parse_time("2021-03-04T12:34:56.789Z") == "2021-03-04T12:34:56Z"
    assert formats.parse_time("2021-03-04T08:00:00-04:00") == "2021-03-04T12:00:00Z"
    assert formats.parse_time("") is None
    assert formats.parse_time("last spring") == "last spring"  # kept, not lost


# -- the sample exports, through the importer ----------------------------------------------


def test_mailchimp_three_files(conn):
    summary = import_csv(conn, FIXTURES / MAILCHIMP.format("subscribed"))
    assert summary.headline() == "4 rows: 4 added active; 0 skipped"
    ana = get(conn, "ana.lima@example.org")
    assert ana.name == "Ana Lima" and ana.status == "active"
    assert (ana.consent_at, ana.consent_ip, ana.confirmed_at, ana.confirm_ip) == (
        "2019-03-12T14:22:01Z", "203.0.113.7", "2019-03-12T14:25:40Z", "203.0.113.7")
    assert ana.source_file == MAILCHIMP.format("subscribed")
    assert "mailchimp" in ana.consent_source
    assert get(conn, "jean.cote@example.ca").name == "Jean-François Côté"
    assert get(conn, "wei.chen@example.net").name == "伟 陈"
    assert get(conn, "no-name@example.com").name is None

    summary = import_csv(conn, FIXTURES / MAILCHIMP.format("unsubscribed"))
    assert summary.headline() == "2 rows: 0 added active, 2 unsubscribed; 0 skipped"
    omar = get(conn, "omar.haddad@example.org")
    assert omar.status == "unsubscribed" and omar.unsubscribed_at == "2022-02-03T11:12:13Z"
    assert omar.consent_ip == "203.0.113.50"  # the consent record is kept for the record
    assert "I no longer want" in omar.status_reason

    summary = import_csv(conn, FIXTURES / MAILCHIMP.format("cleaned"))
    assert summary.headline() == "1 row: 0 added active, 1 suppressed (cleaned); 0 skipped"
    assert get(conn, "bounced.mailbox@example.com").status == "suppressed"


def test_substack_listmonk_buttondown(conn):
    import_csv(conn, FIXTURES / "substack_email_list_export.csv")
    import_csv(conn, FIXTURES / "listmonk_subscribers.csv")
    summary = import_csv(conn, FIXTURES / "buttondown_subscribers.csv")
    assert summary.headline() == ("5 rows: 2 added active, 1 added pending, 1 unsubscribed, "
                                  "1 suppressed (undeliverable); 0 skipped")
    assert statuses(conn) == {
        "reader.one@example.org": "active",
        "paid.reader@example.org": "active",
        "disabled.reader@example.org": "unsubscribed",
        "lapsed.reader@example.org": "unsubscribed",
        "lena.schmidt@example.de": "active",
        "spam.complaint@example.com": "unsubscribed",
        "kofi.mensah@example.gh": "active",
        "off.switch@example.org": "unsubscribed",
        "priya.patel@example.in": "active",
        "supporter@example.org": "active",
        "gone.away@example.org": "unsubscribed",
        "never.confirmed@example.org": "pending",
        "bad.mailbox@example.org": "suppressed",
    }
    reader = get(conn, "reader.one@example.org")
    assert reader.consent_at == "2021-03-04T12:34:56Z" and reader.created_at == reader.consent_at
    assert get(conn, "kofi.mensah@example.gh").consent_ip == "203.0.113.9"
    assert get(conn, "lena.schmidt@example.de").consent_at == \
        "2021-02-20T16:20:03Z"


def test_semicolon_and_tab_with_bom(conn):
    summary = import_csv(conn, FIXTURES / "members_semicolon.csv")
    assert summary.added == 2
    assert get(conn, "marie.dupont@example.fr").name == "Marie Dupont"
    with pytest.raises(StoreError, match="no 'email' column") as err:
        import_csv(conn, FIXTURES / "crm_tab_bom.tsv")
    assert "'e-mail', 'full name', 'joined'" in str(err.value)
    summary = import_csv(conn, FIXTURES / "crm_tab_bom.tsv", email_column="E-mail",
                         name_column="Full name")
    assert summary.added == 2
    assert get(conn, "hana.sato@example.jp").name == "佐藤 花"


def test_an_opt_out_in_the_file_wins_and_nobody_is_reactivated(conn, tmp_path):
    # Active here, unsubscribed in the export: unsubscribed now.
    (tmp_path / "here.csv").write_text("email\nomar.haddad@example.org\ngone.away@example.org\n"
                                       "priya.patel@example.in\n", encoding="utf-8")
    import_csv(conn, tmp_path / "here.csv")
    conn.subscribers.unsubscribe("priya.patel@example.in", "test")
    import_csv(conn, FIXTURES / MAILCHIMP.format("unsubscribed"))
    summary = import_csv(conn, FIXTURES / "buttondown_subscribers.csv")
    assert get(conn, "omar.haddad@example.org").status == "unsubscribed"
    assert get(conn, "gone.away@example.org").status == "unsubscribed"
    # Unsubscribed here, regular in the export: stays unsubscribed.
    assert get(conn, "priya.patel@example.in").status == "unsubscribed"
    assert summary.kept_unsubscribed == ["priya.patel@example.in"]
    # Even --resubscribe never turns an opted-out row active.
    import_csv(conn, FIXTURES / MAILCHIMP.format("cleaned"), resubscribe=True)
    assert get(conn, "bounced.mailbox@example.com").status == "suppressed"


def test_every_sample_file_has_no_opted_out_row_active(conn):
    for path in sorted(FIXTURES.glob("*.csv")):
        import_csv(conn, path)
    active = {s.email for s in conn.subscribers.list("active")}
    opted_out = {"omar.haddad@example.org", "sofia.rossi@example.it",
                 "bounced.mailbox@example.com", "disabled.reader@example.org",
                 "lapsed.reader@example.org", "spam.complaint@example.com",
                 "off.switch@example.org", "gone.away@example.org", "bad.mailbox@example.org",
                 "never.confirmed@example.org"}
    assert active and not active & opted_out


def test_a_bad_byte_imports_nothing(conn, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"email;name\na@example.org;A\nb@example.org;Zo\xeb\n")
    with pytest.raises(StoreError, match="not UTF-8") as err:
        import_csv(conn, path)
    assert ":3: " in str(err.value)
    assert statuses(conn) == {}


# -- export and the round trip -------------------------------------------------------------


def test_export_round_trip(conn, tmp_path):
    for path in sorted(FIXTURES.glob("*.csv")):
        import_csv(conn, path)
    conn.subscribers.add("form@example.org", "Form Person", status="pending",
                         consent_source="form", consent_ip="127.0.0.1", consent_form="home")
    out = io.StringIO()
    assert export_csv(conn, out) == len(statuses(conn))
    first = out.getvalue()
    assert first.splitlines()[0] == ",".join(formats.EXPORT_COLUMNS)
    (tmp_path / "export.csv").write_text(first, encoding="utf-8")

    fresh = open_store(tmp_path / "fresh.db")
    try:
        summary = import_csv(fresh, tmp_path / "export.csv")
        assert summary.format == "newsletter export" and summary.skipped == []
        assert statuses(fresh) == statuses(conn)
        again = io.StringIO()
        export_csv(fresh, again)
    finally:
        fresh.close()

    def record(text: str) -> list[list[str]]:  # everything but updated_at (the import time)
        skip = formats.EXPORT_COLUMNS.index("updated_at")
        return [[c for i, c in enumerate(line.split(",")) if i != skip]
                for line in text.splitlines()]

    assert record(again.getvalue()) == record(first)


def test_cli_import_export(project):
    runner = CliRunner()
    result = runner.invoke(main, ["subscribers", "import",
                                  str(FIXTURES / MAILCHIMP.format("cleaned"))])
    assert result.exit_code == 0, result.output
    assert "(Mailchimp cleaned export): 1 row: 0 added active, 1 suppressed (cleaned); " \
           "0 skipped" in result.stdout
    result = runner.invoke(main, ["subscribers", "export", "--status", "suppressed"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("email,name,status,") and len(lines) == 2
    assert lines[1].startswith("bounced.mailbox@example.com,Old Mailbox,suppressed,")
    result = runner.invoke(main, ["subscribers", "export", "all.csv"])
    assert result.exit_code == 0 and "1 subscriber(s) to all.csv" in result.stderr
    assert (project / "all.csv").stat().st_mode & 0o077 == 0
    assert (project / "all.csv").read_text(encoding="utf-8").count("\n") == 2
