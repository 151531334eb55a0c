"""`send --all --sample N|P%`: a random sample of those who do not have the issue yet; a later
`send --all` sends the rest, and nobody gets two copies."""

from __future__ import annotations

from collections import Counter

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.cli.send import _sample_size
from newsletter.deliver import sender
from tests.support.sending import RecordingProvider, add_subscribers, counts, rendered


def test_sample_then_the_rest_once_each(settings):
    everyone = add_subscribers(settings.db_path, 200)
    provider = RecordingProvider(max_batch=7)
    report = sender.send_all(rendered(), settings, provider, sample=10)
    assert report.sent == 10 and report.to_send == 10
    canary = list(provider.delivered)
    assert len(set(canary)) == 10
    assert canary != everyone[:10]  # random, not the first ten by id
    assert counts(settings.db_path)["sent"] == 10 and counts(settings.db_path)["pending"] == 0

    second = sender.send_all(rendered(), settings, provider, sample=10)  # another canary
    assert second.sent == 10 and not set(provider.delivered[10:]) & set(canary)

    rest = sender.send_all(rendered(), settings, provider)
    assert rest.sent == 180 and rest.already_done == 20
    assert Counter(provider.delivered) == Counter(everyone)  # everyone exactly once


def test_a_sample_larger_than_the_list_sends_to_everyone_once(settings):
    everyone = add_subscribers(settings.db_path, 5)
    provider = RecordingProvider()
    assert sender.send_all(rendered(), settings, provider, sample=50).sent == 5
    assert sender.send_all(rendered(), settings, provider).sent == 0
    assert sorted(provider.delivered) == everyone


def test_two_samples_differ(settings):
    add_subscribers(settings.db_path, 1000)
    a, b = RecordingProvider(), RecordingProvider()
    sender.send_all(rendered("a"), settings, a, sample=20)
    sender.send_all(rendered("b"), settings, b, sample=20)
    assert set(a.delivered) != set(b.delivered)  # 1 in ~10^41 to fail by chance


@pytest.mark.parametrize("spec,count,size", [
    ("5%", 40, 2), ("5%", 10, 1), ("100%", 37, 37), ("2.5%", 1000, 25), ("12", 5, 12),
])
def test_sample_sizes(spec, count, size):
    assert _sample_size(spec, count) == size


@pytest.mark.parametrize("spec", ["0", "-3", "0%", "101%", "five", "5 %x", ""])
def test_bad_sample_sizes(spec):
    with pytest.raises(click.BadParameter):
        _sample_size(spec, 100)


def test_cli_five_percent_first_then_the_rest(project, settings):
    add_subscribers(settings.db_path, 40)
    runner = CliRunner()
    base = ["send", "issues/2011-05.yaml", "--all", "--yes", "--force", "--offline"]
    first = runner.invoke(main, [*base, "--sample", "5%"])
    assert first.exit_code == 0, first.output
    assert "That was a sample" in first.stdout
    assert counts(settings.db_path)["sent"] == 2
    rest = runner.invoke(main, base)
    assert rest.exit_code == 0, rest.output
    assert counts(settings.db_path)["sent"] == 40
    copies = Counter(p.read_bytes().split(b"\nTo: ", 1)[1].split(b"\n", 1)[0]
                     for p in (project / "outbox").rglob("*.eml"))
    assert len(copies) == 40 and set(copies.values()) == {1}


def test_sample_goes_with_all_and_not_with_at(project):
    runner = CliRunner()
    result = runner.invoke(main, ["send", "issues/2011-05.yaml", "--test", "--sample", "5"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["send", "issues/2011-05.yaml", "--all", "--sample", "5",
                                  "--at", "2099-01-01 09:00"])
    assert result.exit_code == 2 and "--sample sends now" in result.output
