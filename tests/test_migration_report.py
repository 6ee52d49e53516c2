"""The folder-by-folder check, where Gmail's labels make folders hold fewer messages with
nothing lost (imapsync's --gmail1 copies a message with several labels once)."""

from __future__ import annotations

from purelyops.migration_report import CROSS_DUPLICATE, check

# Five messages in Gmail: all in "[Gmail]/All Mail", three also labelled INBOX, two of those
# also "Work". With --skipcrossduplicates each is copied once, into the first folder synced.
GMAIL = {"source_after": {"INBOX": [3, 3000], "Work": [2, 2000], "[Gmail]/All Mail": [5, 5000]},
         "dest_after": {"INBOX": [3, 3000], "Work": [0, 0], "[Gmail]/All Mail": [2, 2000]}}


def test_a_gmail_run_whose_every_message_arrived_is_complete() -> None:
    result = check(GMAIL, "gmail")
    assert result.complete and not result.short
    work = next(r for r in result.rows if r.name == "Work")
    assert (work.state, work.dest_msgs, work.why) == ("ok", 0, CROSS_DUPLICATE)


def test_a_gmail_run_that_lost_messages_is_short() -> None:
    lost = {**GMAIL, "dest_after": {"INBOX": [3, 3000], "Work": [0, 0], "[Gmail]/All Mail": [1, 1000]}}
    result = check(lost, "gmail")
    assert not result.complete and {r.name for r in result.short} == {"Work", "[Gmail]/All Mail"}


def test_the_same_counts_from_another_provider_are_short() -> None:
    result = check(GMAIL, "other")
    assert not result.complete and {r.name for r in result.short} == {"Work", "[Gmail]/All Mail"}


def test_a_folder_imapsync_named_a_problem_for_is_never_excused() -> None:
    with_problem = {**GMAIL, "folder_problems": {"Work": ["over quota"]}}
    result = check(with_problem, "gmail")
    assert [r.name for r in result.short] == ["Work"] and result.short[0].why == "over quota"
