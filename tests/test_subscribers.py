"""CSV import: validation, normalisation, re-import, and unsubscribed addresses kept."""

from __future__ import annotations

import pytest

from newsletter.errors import StoreError
from newsletter.store import open_store
from newsletter.subscribers import lifecycle
from newsletter.subscribers.importing import import_csv


def write(tmp_path, text: str, name: str = "list.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_import_validates_normalises_and_reports_lines(store, tmp_path):
    path = write(tmp_path, "Email,Name,extra\n"
                           "Ann@Example.ORG,Ann Zürich,x\n"
                           "not-an-address,Bob,\n"
                           ",Nobody,\n"
                           "\n"
                           "ann@example.org,Ann again,\n"
                           "chen@例え.jp,陳,\n")
    summary = import_csv(store, path)
    assert summary.added == 2
    assert [line for line, _ in summary.skipped] == [3, 4, 6]
    assert "not-an-address" in summary.skipped[0][1]
    assert "repeats line 2" in summary.skipped[2][1]
    ann = store.subscribers.get("ann@example.org")
    assert ann.name == "Ann Zürich" and ann.status == "active"
    assert ann.consent_source == "import:list.csv" and ann.consent_at
    assert store.subscribers.get("chen@例え.jp").name == "陳"  # Unicode domain kept


def test_bom_is_accepted(store, tmp_path):
    path = write(tmp_path, "email\nA@example.org\n", encoding="utf-8-sig")
    assert import_csv(store, path).added == 1


def test_reimport_updates_name_never_duplicates(store, tmp_path):
    import_csv(store, write(tmp_path, "email,name\na@example.org,A\nb@example.org,B\n"))
    again = "email,name\nA@example.org,Alice\nb@example.org,B\n"
    summary = import_csv(store, write(tmp_path, again))
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 1)
    assert sum(store.subscribers.counts().values()) == 2
    assert store.subscribers.get("a@example.org").name == "Alice"
    # Without a name column the name is kept.
    import_csv(store, write(tmp_path, "email\na@example.org\n"))
    assert store.subscribers.get("a@example.org").name == "Alice"


def test_unsubscribed_stays_unless_explicitly_resubscribed(store, tmp_path):
    import_csv(store, write(tmp_path, "email\na@example.org\nb@example.org\nc@example.org\n"))
    store.subscribers.unsubscribe("a@example.org", "test")
    store.subscribers.unsubscribe("b@example.org", "test")
    store.subscribers.suppress("c@example.org", "bounce")
    summary = import_csv(store, write(
        tmp_path, "email,resubscribe\na@example.org,\nb@example.org,yes\nc@example.org,no\n",
        name="again.csv"))
    assert summary.kept_unsubscribed == ["a@example.org", "c@example.org"]
    assert summary.resubscribed == 1
    assert store.subscribers.get("a@example.org").status == "unsubscribed"
    assert store.subscribers.get("c@example.org").status == "suppressed"
    b = store.subscribers.get("b@example.org")
    assert b.status == "active" and b.consent_source == "import:again.csv"
    assert b.unsubscribed_at is None
    # The whole-file flag.
    summary = import_csv(store, write(tmp_path, "email\na@example.org\n"), resubscribe=True)
    assert summary.resubscribed == 1
    assert store.subscribers.get("a@example.org").status == "active"


def test_missing_email_column(store, tmp_path):
    with pytest.raises(StoreError, match="no 'email' column") as err:
        import_csv(store, write(tmp_path, "mail,name\na@example.org,A\n"))
    assert str(err.value).startswith(str(tmp_path / "list.csv") + ":1: ")


def test_not_utf8(store, tmp_path):
    with pytest.raises(StoreError, match="not UTF-8") as err:
        import_csv(store, write(tmp_path, "email,name\na@example.org,Zoë\n", encoding="latin-1"))
    assert ":2: " in str(err.value)
    assert sum(store.subscribers.counts().values()) == 0


def test_missing_file(store, tmp_path):
    with pytest.raises(StoreError, match="file not found"):
        import_csv(store, tmp_path / "nope.csv")


def test_large_import_in_chunks(store, tmp_path):
    lines = "".join(f"u{i}@example.org,U{i}\n" for i in range(2500))
    summary = import_csv(store, write(tmp_path, "email,name\n" + lines))
    assert summary.added == 2500
    assert store.subscribers.counts()["active"] == 2500


def test_progress_counts_rows_up_to_the_total(store, tmp_path, monkeypatch):
    from newsletter.subscribers import importing as subscribers
    monkeypatch.setattr(subscribers, "PROGRESS_EVERY", 2)
    # 7 lines after the header: a bad address, a blank line, a repeat all count as done
    path = write(tmp_path, "email\na@example.org\nbad\n\nb@example.org\nc@example.org\n"
                           "a@example.org\nd@example.org\n")
    calls: list[tuple[int, int | None]] = []
    summary = import_csv(store, path, progress=lambda done, total: calls.append((done, total)))
    assert summary.added == 4
    assert calls[-1] == (7, 7)
    assert {total for _, total in calls} == {7}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] == 1 and len(calls) >= 3


def test_progress_total_matches_crlf_lone_cr_and_quoted_line_breaks(store, tmp_path):
    cases = {
        "crlf.csv": "email,name\r\na@example.org,A\r\nb@example.org,B\r\n",
        "cr.csv": "email,name\ra@example.org,A\rb@example.org,B",
        "quoted.csv": 'email,name\na@example.org,"two\nlines"\nb@example.org,B\n',
    }
    for name, text in cases.items():
        calls: list[tuple[int, int | None]] = []
        summary = import_csv(store, write(tmp_path, text, name=name),
                             progress=lambda done, total, calls=calls: calls.append((done, total)))
        assert summary.skipped == [], name
        final = calls[-1]
        assert final[0] == final[1] and final[0] >= 2, (name, calls)
        assert all(done <= total for done, total in calls), (name, calls)


def test_progress_on_an_empty_file(store, tmp_path):
    calls: list[tuple[int, int | None]] = []
    import_csv(store, write(tmp_path, "email\n"), progress=lambda *a: calls.append(a))
    assert calls == [(0, 0)]


def test_names_are_one_line_and_bounded(project, settings):
    from newsletter.subscribers.importing import MAX_NAME, clean_name, import_csv

    assert clean_name("Ann\r\nBcc: x@example.org") == "Ann Bcc: x@example.org"
    assert clean_name("\x1b[31mRed\x1b[0m  Team\t") == "[31mRed [0m Team"
    assert clean_name("   ") is None
    assert clean_name("Zoë 北京") == "Zoë 北京"
    long = "A" * 2000
    csv_path = project / "names.csv"
    csv_path.write_text(f'email,name\nann@example.org,"Ann\nSmith"\nbob@example.org,{long}\n',
                        encoding="utf-8")
    with open_store(settings) as db:
        import_csv(db, csv_path)
        names = {s.email: s.name for s in db.subscribers.list()}
    assert names["ann@example.org"] == "Ann Smith"
    assert names["bob@example.org"] == "A" * MAX_NAME


def test_a_removed_unknown_address_stays_unsubscribed_through_an_import(store, tmp_path):
    # `subscribers remove` and the web link are the one unsubscribe: an address not on the
    # list yet is recorded, so an import that lists it later does not make it active.
    done = lifecycle.unsubscribe(store, "Zoe@Example.org", "removed")
    assert done.outcome == "recorded" and done.email == "zoe@example.org"
    assert lifecycle.unsubscribe(store, "zoe@example.org", "again").outcome == "already"
    summary = import_csv(store, write(tmp_path, "email\nzoe@example.org\nann@example.org\n"))
    assert summary.added == 1 and summary.kept_unsubscribed == ["zoe@example.org"]
    zoe = store.subscribers.get("zoe@example.org")
    assert zoe.status == "unsubscribed" and zoe.status_reason == "removed"
    ledger = store.ledger("2011-05")
    assert ledger.seed() == 1 and ledger.emails("pending") == ["ann@example.org"]


def test_subscribers_remove_of_an_unknown_address_then_an_import_never_mails_it(project, settings):
    from click.testing import CliRunner

    from newsletter.cli import main
    from newsletter.deliver.sender import send_all
    from tests.support.sending import RecordingProvider, rendered

    result = CliRunner().invoke(main, ["subscribers", "remove", "Zoe@Example.org"])
    assert result.exit_code == 0, result.output
    assert "zoe@example.org: not on the list; recorded as unsubscribed" in result.output
    (project / "m.csv").write_text("email\nann@example.org\nzoe@example.org\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["subscribers", "import", "m.csv"])
    assert result.exit_code == 0 and "1 kept unsubscribed" in result.output
    provider = RecordingProvider()
    report = send_all(rendered(), settings, provider)
    assert provider.delivered == ["ann@example.org"] and report.sent == 1
    result = CliRunner().invoke(main, ["subscribers", "remove", "zoe@example.org"])
    assert result.exit_code == 0 and "already unsubscribed" in result.output
