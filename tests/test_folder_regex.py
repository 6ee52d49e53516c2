"""The folders-to-exclude regex: patterns that can keep imapsync's Perl matching for ever are
refused with specific words, and every pattern accepted finishes quickly in Perl itself on
folder names made to hurt it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from purelyops import migrations
from purelyops.runtime import Runtime
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import add_server, submit_migration
from tests.slack_requests import SlackDriver

EXPLOIT = r"^(\w|\w\w)*(\1)!$"  # passed the old check; spins for ever on a 50-letter name ending in !

REFUSED = [
    (EXPLOIT, "refers back to a group"),
    (r"(a)\1", "refers back to a group"),
    (r"(a)\9", "refers back to a group"),
    (r"(a)\g1", "refers back to a group"),
    (r"(a)\g{-1}", "refers back to a group"),
    (r"(?<n>a)\k<n>", "refers back to a group|extension"),
    (r"(a)\k{n}", "refers back to a group"),
    (r"(?i)trash", "extension"),
    (r"(?:a|b)", "extension"),
    (r"a(?=b)", "extension"),
    (r"(?{ system('id') })", "extension"),
    (r"(??{ 'a' x 50 })", "extension"),
    (r"(?R)", "extension"),
    (r"(*FAIL)", "extension"),
    (r"(a+)+$", "repeated group with a repeat inside"),
    (r"(x*)*", "repeated group with a repeat inside"),
    (r"(a?){20}a{20}", "repeated group with a repeat inside"),
    (r"(a{1,9})+", "repeated group with a repeat inside"),
    (r"((ab)*c)+", "repeated group with a repeat inside"),
    (r"(a+){2}", "repeated group with a repeat inside"),
    (r"(\w|\w\w)*!", "alternatives can start alike"),
    (r"(a|ab)*", "alternatives can start alike"),
    (r"(a|)*x", "alternatives can start alike"),
    (r"(.|a)+!", "alternatives can start alike"),
    (r"([a-z]|[0-9])+", "alternatives can start alike"),
    (r"((a|a)b)*", "alternatives can start alike"),
    (r"\w*\w*\w*\w*!", "more than 3 repeats"),
    (r"(a|a)(a|a)(a|a)(a|a)!", "more than 3 repeats"),
    (r"(a|b)*", None),  # alternatives that never start alike: fine
]
ACCEPTED = [r"^Trash$|^Junk$", r"^INBOX\.(Trash|Junk|Spam)(\..*)?$", r"^(INBOX/)?(Trash|Trashcan)$",
            r"^Public Folders/.*", r".*Trash.*|.*Junk.*", r"(Sent|Drafts)+", r"\(?Trash\)?", r"[(?]x",
            r"(ab|b)*", r"(\.|-)+", r"(a{2})*", r"(a+)?", r"^\[Gmail\]/(All Mail|Important)$", r"\d+-\d+-\d+",
            r"^Archive/20(0[0-9]|1[0-5])$", r"(a|b)*"]


@pytest.mark.parametrize(("pattern", "words"), [r for r in REFUSED if r[1]])
def test_patterns_that_can_spin_are_refused_in_words(pattern: str, words: str) -> None:
    started = time.monotonic()
    with pytest.raises(migrations.MigrationError, match=words):
        migrations.check_exclude(pattern)
    assert time.monotonic() - started < 0.5  # read, not run


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_ordinary_patterns_pass(pattern: str) -> None:
    assert migrations.check_exclude(pattern) == pattern


HOSTILE_NAMES = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW!", "a" * 60 + "!x", "ab" * 40 + "!",
                 "INBOX." * 40, "a" * 250, "Trash" * 50 + "!", "-" * 200 + "!", "0-" * 100]

PERL = r"""
use strict; use warnings; use JSON::PP; use Time::HiRes qw(time);
my $in = decode_json(do { local $/; <STDIN> });
my $worst = 0;
for my $re (@{$in->{patterns}}) {
  for my $name (@{$in->{names}}) {
    my $t = time;
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 5;
    my $ok = eval { my $m = ($name =~ m{$re}); 1 };
    alarm 0;
    die "spun on /$re/\n" unless $ok;
    my $d = time - $t; $worst = $d if $d > $worst;
  }
}
print "$worst\n";
"""


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
def test_what_is_accepted_finishes_quickly_in_perl() -> None:
    """imapsync's own engine, on every accepted pattern and every hostile name."""
    accepted = ACCEPTED + [p for p, words in REFUSED if words is None]
    run = subprocess.run(["perl", "-e", PERL], input=json.dumps({"patterns": accepted, "names": HOSTILE_NAMES}),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < 1.0


def test_the_modal_refuses_the_pattern_inline_and_creates_nothing(rt: Runtime, settings, slack: SlackDriver,
                                                                   slack_fake: FakeSlack) -> None:
    add_server(slack, slack_fake)
    refused = submit_migration(slack, slack_fake, rt, exclude={"value": EXPLOIT})
    assert refused.json()["errors"]["exclude"].startswith("the folder pattern refers back to a group")
    assert migrations.list_jobs(rt) == []
