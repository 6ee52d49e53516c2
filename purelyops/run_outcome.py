"""How a run ended: done, incomplete, failed (retried or not), cancelled or interrupted.

One pure function, `decide`, from what is known at the end of a run: imapsync's exit code
and parsed output, and the independent check (purelyops.mail_check) when one was made.
"Done" is only ever said when the check found every source message at the destination
and imapsync itself counted nothing left behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from purelyops.imapsync_output import Summary, lost_server, transient, verdict
from purelyops.mail_check import CheckResult
from purelyops.migrations import JobState, cancelled_words

SIGNALLED = (6, 137, 143)  # imapsync's own "ended by a signal" (6), and a shell's 128+signal
# Exit codes after which there is nothing to check: a login was refused (logging in again
# would only be refused again, and may lock the account), or imapsync was called wrongly.
# After a connection failure the check is still made: what arrived by earlier runs is counted.
NO_CHECK = {7, 8, 16, 64, 66, 161, 162}
SHOWN_FOLDERS = 5  # folders named in the verdict; the file in the thread lists every message


@dataclass(frozen=True)
class Outcome:
    state: JobState
    words: str
    retry: bool = False  # a server was lost or could not be reached: try again after MIGRATION_RETRY_DELAYS


def needs_check(*, dry_run: bool, code: int | None, problem: str | None, cancelled_by: str | None) -> bool:
    """After a real run that logged in to both sides and was not stopped: check it."""
    return (not dry_run and not problem and not cancelled_by and code is not None and code >= 0
            and code not in SIGNALLED and code not in NO_CHECK)


def missing_words(check: CheckResult) -> str:
    """ "2 of 7 messages are not at the destination: INBOX (2 of 7)" """
    short = [f for f in check.folders if f.missing]
    named = "; ".join(f"{f.source} ({len(f.missing):,} of {f.source_msgs:,} missing"
                      + (f", expected in {f.dest}" if f.dest != f.source else "") + ")" for f in short[:SHOWN_FOLDERS])
    if len(short) > SHOWN_FOLDERS:
        named += f"; and {len(short) - SHOWN_FOLDERS} more folder(s)"
    total = len(check.missing)
    return (f"{total:,} of {check.source_total:,} message(s) are not at the destination, in {len(short)} folder(s): "
            f"{named}. The file in the thread lists each one; Sync again copies what is missing")


def decide(*, dry_run: bool, code: int | None, summary: Summary, check: CheckResult | None, problem: str | None,
           cancelled_by: str | None, source: str, dest: str, problem_passes: bool = False) -> Outcome:
    """`problem`: why the run could not go on (its words); `problem_passes`: it may be gone
    by itself later (a token service that was away), so the run is tried again."""
    if problem:
        return Outcome(JobState.FAILED, problem, problem_passes)
    if cancelled_by:
        return Outcome(JobState.CANCELLED, cancelled_words(cancelled_by))
    if code is None or code < 0 or code in SIGNALLED:
        return Outcome(JobState.INTERRUPTED, "imapsync was stopped by a signal that purelyops did not send (the "
                                             "system ran out of memory, or an operator stopped it)")
    words = verdict(code, summary, source=source, dest=dest)
    retry = transient(code, summary)
    if dry_run:
        if check is not None and check.undated:
            words += (f". {check.undated:,} message(s) without a usable Date would be left out by the maximum age "
                      "(imapsync cannot tell their age)")
        return Outcome(JobState.DONE if code == 0 and summary.looped else JobState.FAILED, words, retry)
    if lost_server(code, summary):
        words = "a server dropped the connection during the copy and imapsync could not go on"
    if check is None:
        return Outcome(JobState.FAILED, words, retry)
    if check.error:
        if code == 0 and summary.looped:
            words = "imapsync finished its copy, but nothing is proven"
        # Nothing is proven. After a run that went to its end, a server that cannot be reached now is for a retry.
        return Outcome(JobState.FAILED, f"{words}; and nothing could be checked: {check.error}",
                       retry or (code == 0 and summary.looped))
    undated = (f". {check.undated:,} message(s) without a usable Date were left out by the maximum age "
               "(their age cannot be told)") if check.undated else ""
    if check.missing:
        lead = "" if code == 0 and summary.looped else f"{words}. "
        return Outcome(JobState.INCOMPLETE, lead + missing_words(check) + undated, retry)
    if summary.unsynced:
        return Outcome(JobState.INCOMPLETE, f"imapsync counted {summary.unsynced:,} message(s) of {source} it did not "
                                            "copy or could not identify; Sync again tries them again" + undated, retry)
    if code == 0 and summary.looped:
        if not check.source_total:
            return Outcome(JobState.DONE, f"done: {source} has no messages to copy in the folders chosen" + undated)
        return Outcome(JobState.DONE, f"done: all {check.source_total:,} messages of {source} are in {dest}, "
                                      "each one found there by purelyops' own check" + undated)
    return Outcome(JobState.FAILED, f"{words}. The check found every message at the destination" + undated, retry)
