"""The imapsync output parser over every real log in the fixtures, with exact counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from purelyops.imapsync_output import ImapsyncOutput, Progress, verdict

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "imapsync"  # real imapsync 2.229 output


def read(name: str) -> tuple[ImapsyncOutput, list[Progress]]:
    output = ImapsyncOutput()
    updates = []
    path = next(FIXTURES.glob(f"{name}-*.log"))
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        update = output.feed(line)
        if update is not None:
            updates.append(replace(update))
    return output, updates


# name, exit code, copied lines, transferred, skipped, errors, bytes transferred, printed exit, verdict words
CASES = [
    ("01", 0, 500, 500, 0, 0, 2893031, 0, "done: every message of alice@old.example is in alice@new.example"),
    ("02", 0, 0, 0, 500, 0, 0, 0, "done: alice@new.example already had everything"),
    ("03", 161, 0, 0, 0, 1, 0, 161, "the source server refused the password for alice@old.example"),
    ("04", 162, 0, 0, 0, 1, 0, 162, "PurelyMail refused the password for alice@new.example"),
    ("05", 101, 0, 0, 0, 1, 0, 101, "could not connect to the source server"),
    ("06", 0, 0, 0, 0, 0, 0, 0, "imapsync exited without copying or checking any folder"),
    ("07", 113, 54, 54, 0, 50, 318063, 113, "the destination mailbox alice@new.example is full"),
    ("08", 0, 0, 0, 0, 0, 0, 0, "dry run finished: 3000 message(s) would be copied; nothing was changed"),
    ("09", 137, 183, 183, 0, 0, 1095107, 6, "stopped before the end"),
    ("10", 0, 2817, 2817, 183, 0, 17437720, 0, "done: every message of alice@old.example is in alice@new.example"),
    ("11", 66, 0, 0, 0, 0, 0, 66, "could not read a password file"),
]


@pytest.mark.parametrize(("name", "code", "copied", "transferred", "skipped", "errors", "nbytes", "printed", "words"),
                         CASES, ids=[c[0] for c in CASES])
def test_every_fixture(name, code, copied, transferred, skipped, errors, nbytes, printed, words) -> None:
    output, _ = read(name)
    s = output.summary()
    assert (s.copied, s.transferred, s.skipped, s.errors, s.bytes_transferred, s.printed_exit) == \
        (copied, transferred, skipped, errors, nbytes, printed)
    assert words in verdict(code, s, source="alice@old.example", dest="alice@new.example")


def test_progress_of_a_first_sync_moves_to_the_end() -> None:
    output, updates = read("01")
    assert updates[0].msgs_total == 0 or updates[0].msgs_done == 0
    done = [u.msgs_done for u in updates]
    assert done == sorted(done) and done[-1] == 500
    last = output.progress
    assert (last.msgs_total, last.msgs_left, last.bytes_done, last.bytes_total) == (500, 0, 2893031, 2893031)
    assert last.fraction == 1.0 and last.rate_msgs_per_s and last.eta_seconds == 0
    s = output.summary()
    assert (s.host1_msgs, s.host2_msgs, s.duration_seconds, s.rate_msgs_per_s) == (500, 500, 1.3, 371.0)


def test_a_resumed_run_counts_only_what_it_copies() -> None:
    output, _ = read("10")
    assert (output.progress.msgs_done, output.progress.msgs_total) == (3000, 3000)
    assert output.summary().skipped == 183


def test_over_quota_keeps_distinct_error_lines_and_imapsyncs_advice() -> None:
    output, _ = read("07")
    s = output.summary()
    assert len(s.error_lines) == 20 and len(set(s.error_lines)) == 20
    assert "OVERQUOTA" in s.error_lines[0]
    assert s.most_frequent_error.startswith("The destination mailbox is 100% full")


def test_auth_failure_error_line() -> None:
    output, _ = read("03")
    assert output.summary().error_lines == [
        "Host1 failure: Error login on [127.0.0.1] with user [alice@old.example] auth [LOGIN]: "
        "2 NO [AUTHENTICATIONFAILED] Authentication failed."]


def test_dry_run_is_recognised() -> None:
    output, updates = read("08")
    assert output.summary().dry_run and output.summary().would_copy == 3000
    assert output.progress.msgs_total == 3000


@pytest.mark.parametrize(("code", "words"), [(-9, "stopped before the end"), (112, "too many errors"),
                                             (12, "TLS handshake failed"), (200, "exit code 200")])
def test_other_exit_codes(code: int, words: str) -> None:
    assert words in verdict(code, ImapsyncOutput().summary(), source="a@x.com", dest="b@y.com")


def test_garbage_lines_are_ignored() -> None:
    output = ImapsyncOutput()
    for line in ["", "\n", "msg", "ETA: nonsense", "Err x", "Host1 Nb messages: many", "\x00\xff", "Folder [",
                 "Messages transferred : lots", "E" * 10_000]:
        assert output.feed(line) is None
    assert output.summary().transferred == 0


def test_a_certificate_that_does_not_verify_is_named_in_the_verdict() -> None:
    """imapsync 2.229's own words when --sslargs1 SSL_verify_mode=1 meets a self-signed certificate."""
    output = ImapsyncOutput()
    for line in [
        "Host1 failure: can not open imap connection on host1 [127.0.0.1] with user [a]: Unable to connect to "
        "127.0.0.1: SSL connect attempt failed error:0A000086:SSL routines::certificate verify failed \n",
        "Err 1/1: Host1 failure: can not open imap connection on host1 [127.0.0.1] with user [a]: Unable to connect "
        "to 127.0.0.1: SSL connect attempt failed error:0A000086:SSL routines::certificate verify failed \n",
        "Exiting with return value 101 (EXIT_CONNECTION_FAILURE_HOST1) 1/50 nb_errors/max_errors PID 24692\n",
    ]:
        output.feed(line)
    words = verdict(101, output.summary(), source="a@old.example", dest="a@new.example")
    assert words.startswith("certificate not trusted: the source server's TLS certificate did not verify")


def test_a_hostile_folder_listing_cannot_make_the_summary_huge() -> None:
    """100,000 folders with 2,000-character names, as a server may claim: the summary keeps a bounded part."""
    from purelyops.imapsync_output import MAX_FOLDER_NAME, MAX_FOLDERS

    output = ImapsyncOutput()
    for i in range(100_000):
        name = f"{i:06d}" + "x" * 2000
        output.feed(f"Host1 folder {i + 1:>5}/100000 [{name}]   Size:   1000 Messages:     1 Biggest:   1000\n")
        output.feed(f"- msg {name}/1 {{1000}} could not append ( Subject:[x] ) to folder {name}: NO [OVERQUOTA] full\n")
    s = output.summary()
    assert len(s.source_before) == MAX_FOLDERS and len(s.folder_problems) == MAX_FOLDERS
    assert max(len(name) for name in s.source_before) == MAX_FOLDER_NAME
