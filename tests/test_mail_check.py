"""The check's matching and the end-of-run decision, on parsed listings (no server)."""

from __future__ import annotations

from purelyops.imapsync_output import ImapsyncOutput, Summary
from purelyops.mail_check import CheckResult, Listed, digest, listed, match, parse_header
from purelyops.migrations import JobState
from purelyops.run_outcome import decide
from tests.conftest import ROOT


def msg(uid: int, ident: str) -> Listed:
    return Listed(uid, digest([f"MESSAGE-ID: <{ident.upper()}>"]), f"<{ident}>", "Mon, 1 Jan 2024", 100)


def test_identity_is_imapsyncs_normalised_message_id_and_received() -> None:
    a = b"Message-Id: <a@x>\r\nReceived: from x\r\n\tby y;  Mon, 1 Jan 2024\r\nDate: Mon, 1 Jan 2024\r\n\r\n"
    b = b"received: from x by y; Mon, 1 Jan 2024 \r\nMESSAGE-ID:   <A@X>\r\n\r\n"
    assert parse_header(a)[0] == parse_header(b)[0] == ["MESSAGE-ID: <A@X>", "RECEIVED: FROM X BY Y; MON, 1 JAN 2024"]
    assert listed(1, a, 10, source=True).identity == listed(2, b, 10, source=False).identity


def test_a_source_message_without_headers_is_looked_for_by_the_header_addheader_gives_its_copy() -> None:
    source = listed(12, b"Subject: draft\r\n\r\n", 50, source=True)
    copy = listed(3, b"Message-Id: <12@imapsync>\r\nSubject: draft\r\n\r\n", 78, source=False)
    assert source.identity == copy.identity
    assert listed(13, b"Subject: draft\r\n\r\n", 50, source=True).identity != copy.identity


def test_mail_already_at_the_destination_never_stands_in_for_a_missing_one() -> None:
    source = {"INBOX": [msg(n, f"m{n}") for n in range(7)]}
    dest = {"INBOX": [msg(n, f"m{n}") for n in range(2, 7)] + [msg(100 + n, f"new{n}") for n in range(3)]}
    [inbox] = match(source, dest, {"INBOX": "INBOX"})
    assert (inbox.source_msgs, inbox.arrived, [m.uid for m in inbox.missing]) == (7, 5, [0, 1])


def test_duplicates_count_each() -> None:
    source = {"INBOX": [msg(1, "a"), msg(2, "a")]}
    [inbox] = match(source, {"INBOX": [msg(1, "a")]}, {"INBOX": "INBOX"})
    assert [m.uid for m in inbox.missing] == [2]


def test_two_source_folders_into_one_need_a_copy_each() -> None:
    source = {"INBOX": [msg(1, "a"), msg(2, "b")], "Old": [msg(1, "c"), msg(2, "a")]}
    dest = {"INBOX": [msg(1, "a"), msg(2, "b"), msg(3, "c")]}
    checks = {c.source: c for c in match(source, dest, {"INBOX": "INBOX", "Old": "INBOX"})}
    assert [m.message_id for m in checks["INBOX"].missing] == [] and checks["INBOX"].arrived == 2
    assert [m.message_id for m in checks["Old"].missing] == ["<a>"]  # one copy of a cannot serve two


def test_a_missing_destination_folder_and_a_folder_gone_from_the_source() -> None:
    checks = match({"Work": [msg(1, "w")], "Gone": None}, {}, {"Work": "Work", "Gone": "Gone"})
    by = {c.source: c for c in checks}
    assert len(by["Work"].missing) == 1 and by["Gone"].gone and by["Gone"].ok


GMAIL_MAPPING = {"INBOX": "INBOX", "Work": "Work", "[Gmail]/All Mail": "All Mail", "[Gmail]/Trash": "Trash"}


def test_gmail_a_message_with_several_labels_needs_one_of_its_labels_folders() -> None:
    # w1 carries INBOX and Work; --gmail1 copied it once, into INBOX. Every one is in All Mail.
    source = {"INBOX": [msg(1, "w1"), msg(2, "i1")], "Work": [msg(1, "w1"), msg(2, "w2")],
              "[Gmail]/All Mail": [msg(1, "w1"), msg(2, "i1"), msg(3, "w2"), msg(4, "plain")], "[Gmail]/Trash": []}
    dest = {"INBOX": [msg(1, "w1"), msg(2, "i1")], "Work": [msg(1, "w2")], "All Mail": [msg(1, "plain")],
            "Trash": []}
    checks = {c.source: c for c in match(source, dest, GMAIL_MAPPING, gmail=True)}
    assert all(c.ok for c in checks.values())
    assert checks["Work"].excused == 1 and checks["[Gmail]/All Mail"].excused == 3


def test_gmail_a_short_label_folder_is_reported() -> None:
    # w2 carries only the label Work (and All Mail): found in neither destination folder
    source = {"INBOX": [msg(1, "i1")], "Work": [msg(1, "w2")], "[Gmail]/All Mail": [msg(1, "i1"), msg(2, "w2")],
              "[Gmail]/Trash": []}
    dest = {"INBOX": [msg(1, "i1")], "Work": [], "All Mail": [], "Trash": []}
    checks = {c.source: c for c in match(source, dest, GMAIL_MAPPING, gmail=True)}
    assert [m.message_id for m in checks["Work"].missing] == ["<w2>"]
    assert [m.message_id for m in checks["[Gmail]/All Mail"].missing] == ["<w2>"]
    assert checks["INBOX"].ok


def test_gmail_a_message_only_in_trash_is_never_excused() -> None:
    source = {"INBOX": [msg(1, "t1")], "Work": [], "[Gmail]/All Mail": [], "[Gmail]/Trash": [msg(1, "t1")]}
    dest = {"INBOX": [msg(1, "t1")], "Work": [], "All Mail": [], "Trash": []}
    checks = {c.source: c for c in match(source, dest, GMAIL_MAPPING, gmail=True)}
    assert [m.message_id for m in checks["[Gmail]/Trash"].missing] == ["<t1>"]  # INBOX's copy does not excuse it
    # and a copy that only went to Trash excuses no label
    source = {"INBOX": [msg(1, "x")], "Work": [], "[Gmail]/All Mail": [], "[Gmail]/Trash": [msg(1, "x")]}
    dest = {"INBOX": [], "Work": [], "All Mail": [], "Trash": [msg(1, "x")]}
    checks = {c.source: c for c in match(source, dest, GMAIL_MAPPING, gmail=True)}
    assert [m.message_id for m in checks["INBOX"].missing] == ["<x>"]


# ---- the closing statistics and the decision ---------------------------------------------------

def parsed(fixture: str) -> Summary:
    output = ImapsyncOutput()
    for line in next((ROOT / "tests" / "fixtures" / "imapsync").glob(f"{fixture}-*.log")).read_text().splitlines():
        output.feed(line)
    return output.summary()


def test_the_closing_statistics_and_the_folder_mapping_are_read() -> None:
    summary = parsed("01")
    assert (summary.void_host1, summary.not_in_host2, summary.not_finished, summary.unsynced) == (0, 0, None, 0)
    assert summary.mapping == {f: f for f in ("Archive/2024", "INBOX", "Projects/Acme", "Sent", "Trash")}
    output = ImapsyncOutput()
    for line in ["Messages void (noheader) on host1       : 2   in order to sync those 2 unidentified messages, "
                 "add option --addheader", "Messages found in host1 not in host2    : 2 messages",
                 "The sync is not finished, there are 2 among 5 identified messages in host1 that are not on host2.",
                 "Folder     1/2 [Old]                      -> [INBOX]                     "]:
        output.feed(line)
    summary = output.summary()
    assert (summary.void_host1, summary.not_in_host2, summary.not_finished) == (2, 2, 2)
    assert summary.mapping == {"Old": "INBOX"}


def decided(code: int, summary: Summary, check: CheckResult | None):
    return decide(dry_run=False, code=code, summary=summary, check=check, problem=None, cancelled_by=None,
                  source="a@old", dest="a@new")


def test_done_only_when_the_check_found_everything_and_imapsync_counted_nothing_left() -> None:
    summary = parsed("01")
    complete = CheckResult(match({"INBOX": [msg(1, "a")]}, {"INBOX": [msg(1, "a")]}, {"INBOX": "INBOX"}))
    short = CheckResult(match({"INBOX": [msg(1, "a"), msg(2, "b")]}, {"INBOX": [msg(1, "a")]}, {"INBOX": "INBOX"}))
    assert decided(0, summary, complete).state == JobState.DONE
    outcome = decided(0, summary, short)
    assert outcome.state == JobState.INCOMPLETE and not outcome.retry
    assert "1 of 2 message(s) are not at the destination" in outcome.words and "INBOX (1 of 2 missing)" in outcome.words
    summary.void_host1 = 2
    assert decided(0, summary, complete).state == JobState.INCOMPLETE  # a non-zero count is never done
    assert decided(0, parsed("01"), CheckResult(error="the destination could not be checked")).state != JobState.DONE


def test_a_server_lost_after_login_is_counted_then_retried() -> None:
    summary = parsed("01")
    short = CheckResult(match({"INBOX": [msg(1, "a"), msg(2, "b")]}, {"INBOX": [msg(1, "a")]}, {"INBOX": "INBOX"}))
    for code in (115, 1):
        outcome = decided(code, summary, short)
        assert outcome.retry and outcome.state == JobState.INCOMPLETE
        assert "dropped the connection" in outcome.words
    assert not decided(161, summary, None).retry
    assert decided(113, parsed("07"), short).state == JobState.INCOMPLETE  # over quota: what is missing is said


def test_app_home_and_jobs_count_incomplete_jobs_apart_from_done(rt) -> None:
    from bot.blocks.home import dashboard_blocks
    from db.models import MigrationJob
    from db.session import session_scope
    from purelyops import migrations
    from purelyops.dashboard import dashboard

    with session_scope(rt.database_url) as session:
        for n, state in enumerate(("done", "incomplete", "incomplete", "running")):
            session.add(MigrationJob(source_host="h", source_port=993, source_security="tls", source_email=f"a{n}@o",
                                     dest_email=f"a{n}@n", status=state, channel_id="C1", created_by="U1",
                                     idempotency_key=f"i{n}"))
    board = dashboard(rt)
    assert (board.migrations_running, board.migrations_incomplete) == (1, 2)
    assert "1 running, 0 queued, 2 incomplete (messages missing)" in str(dashboard_blocks(board))
    assert [j.status for j in migrations.list_jobs(rt, "incomplete")] == ["incomplete", "incomplete"]


def test_the_fast_read_of_header_fields_agrees_with_imapclient_or_leaves_it_to_imapclient() -> None:
    from imapclient.response_parser import parse_fetch_response

    from purelyops.imap_session import _header_fields_fast
    from purelyops.mail_check import FIELDS, SIZE_KEY

    key = b"BODY[HEADER.FIELDS (MESSAGE-ID RECEIVED DATE)]"
    lines = [(b"1 (UID 7 RFC822.SIZE 2773 " + key + b" {21}", b"Message-Id: <a@x>\r\n\r\n"), b")",
             (b"2 (" + key + b" {2}", b"\r\n"), b" UID 9 RFC822.SIZE 12)"]
    fast = _header_fields_fast(lines, [FIELDS, SIZE_KEY])
    slow = {uid: {k: v for k, v in item.items() if k not in (b"SEQ", b"UID")}
            for uid, item in parse_fetch_response(lines, True, True).items()}
    assert fast == slow and set(fast) == {7, 9}
    assert _header_fields_fast(lines + [b"3 (UID 10 FLAGS (\\Seen))"], [FIELDS, SIZE_KEY]) is None  # unsolicited


def test_a_folder_imapsync_shows_in_utf8_too_is_checked_by_its_imap_name() -> None:
    output = ImapsyncOutput()
    for line in ["Folder     1/2 [Entw&APw-rfe] = [Entwürfe]            -> [Entw&APw-rfe] = [Entwürfe]",
                 "Folder     2/2 [[Gmail]/All Mail]                      -> [All Mail]                     "]:
        output.feed(line)
    assert output.summary().mapping == {"Entw&APw-rfe": "Entw&APw-rfe", "[Gmail]/All Mail": "All Mail"}


def test_a_problem_that_may_pass_by_itself_is_retried_and_one_that_will_not_is_not() -> None:
    args = dict(dry_run=False, code=None, summary=parsed("01"), check=None, cancelled_by=None, source="a@old",
                dest="a@new")
    away = decide(problem="the token service answered HTTP 503", problem_passes=True, **args)
    assert away.state == JobState.FAILED and away.retry
    refused = decide(problem="the client secret is wrong", **args)
    assert refused.state == JobState.FAILED and not refused.retry
