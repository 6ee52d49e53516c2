"""The report of a real run shows purelyops' own check (summary["check"], from
purelyops.mail_check), folder by folder; never imapsync's counts."""

from __future__ import annotations

from purelyops.mail_check import CheckResult, Listed, digest, match
from purelyops.migration_report import check, missing_table


def msg(uid: int, ident: str) -> Listed:
    return Listed(uid, digest([f"MESSAGE-ID: <{ident}>"]), f"<{ident}>", "Mon, 1 Jan 2024", 100)


def test_the_folder_table_comes_from_the_check_not_from_imapsyncs_counts() -> None:
    result = CheckResult(match({"INBOX": [msg(n, f"m{n}") for n in range(7)], "Old": [msg(1, "o")]},
                               {"INBOX": [msg(n, f"m{n}") for n in range(2, 7)] + [msg(9, "new")]},
                               {"INBOX": "INBOX", "Old": "INBOX"}))
    # imapsync's own sizes say all is well (8 at the destination >= 7): the report does not listen
    summary = {"source_after": {"INBOX": [7, 700]}, "dest_after": {"INBOX": [8, 800]}, "check": result.stored(),
               "excluded": ["Junk"]}
    report = check(summary)
    rows = {r.name: r for r in report.rows}
    assert (rows["INBOX"].state, rows["INBOX"].dest_msgs, rows["INBOX"].source_msgs) == ("short", 5, 7)
    assert (rows["Old"].state, rows["Old"].why) == ("short", "into INBOX")
    assert rows["Junk"].state == "skipped" and not report.complete and report.missing == 3
    assert "INBOX (5 of 7)" in report.short_words
    table = missing_table(result.missing)
    assert len(table.splitlines()) == 2 + 3 and "<m0>" in table and "<o>" in table


def test_without_a_check_nothing_is_shown_as_arrived() -> None:
    assert not check({"source_after": {"INBOX": [7, 700]}, "dest_after": {"INBOX": [7, 700]}}).counted
    failed = check({"check": CheckResult(error="the destination could not be checked: no answer").stored()})
    assert failed.error and not failed.complete and not failed.rows
