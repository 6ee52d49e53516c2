"""Reading imapsync's output as it runs: progress while it copies, statistics at the end,
and what its exit code means in words.

The shapes parsed here are those of real imapsync 2.229 runs (tests/…/fixtures): folder
sizes ("Host1 Nb messages: 500 messages"), copied-message lines carrying the rate and the
ETA ("… 499/500 msgs left"), error lines ("Err 17/50: …"), and the "++++ Statistics"
block. Lines are checked by their first characters before any regular expression runs,
so a long log is read at hundreds of thousands of lines a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_ERROR_LINES = 20
MAX_FOLDERS = 5000  # folders kept per listing: a hostile server cannot make the stored summary huge
MAX_FOLDER_NAME = 500

_NB_MESSAGES = re.compile(r"^Host([12]) Nb messages:\s+(\d+)")
_TOTAL_SIZE = re.compile(r"^Host([12]) Total size:\s+(\d+)")
_LEFT = re.compile(r"(\d+(?:\.\d+)?) s\s+(\d+)/(\d+) msgs left\s*$")
_DRY = re.compile(r"^msg (.+?) copying to (.+?)\s+\(not really since --dry mode\)")
_FOLDER = re.compile(r"^Folder\s+\d+/\d+ \[(.*)\]\s+-> \[(.*)\]\s*$")
_ERR = re.compile(r"^Err (\d+)/\d+: (.*)")
_STAT = re.compile(r"^(Messages transferred|Messages skipped|Total bytes transferred|Transfer time|Message rate)"
                   r"\s*:\s*([\d.]+)")
_COULD_BE = re.compile(r"could be (\d+) without dry mode")
_DETECTED = re.compile(r"^Detected (\d+) errors")
_EXITING = re.compile(r"^Exiting with return value (\d+)")
_FREQUENT = re.compile(r"^The most frequent error is \w+\. (.*)")
_FOLDER_SIZE = re.compile(r"^Host([12]) folder\s+(\d+)/\d+ \[(.*)\]\s+"
                          r"(?:Size:\s+(\d+) Messages:\s+(\d+)|does not exist)")
_QUOTA = re.compile(r"^Host2: Quota current storage is (\d+) bytes\. Limit is (\d+) bytes")
_VOID = re.compile(r"^Messages void \(noheader\) on host1\s*:\s*(\d+)")
_NOT_IN_HOST2 = re.compile(r"^Messages found in host1 not in host2\s*:\s*(\d+)")
_NOT_FINISHED = re.compile(r"^The sync is not finished, there are (\d+) among (\d+) identified messages")
_APPEND_FAILED = re.compile(r"^- msg .*? could not append .*? to folder (.*?): (.*)")


@dataclass(slots=True)
class Progress:
    """Where a run stands. `feed` updates one Progress in place and returns it: copy it
    (dataclasses.replace) to keep a snapshot."""

    msgs_done: int = 0
    msgs_total: int = 0
    msgs_left: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    rate_msgs_per_s: float | None = None
    eta_seconds: float | None = None
    folder: str | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.msgs_done / self.msgs_total) if self.msgs_total else 0.0


@dataclass
class Summary:
    transferred: int = 0
    skipped: int = 0
    errors: int = 0
    bytes_transferred: int = 0
    duration_seconds: float | None = None
    rate_msgs_per_s: float | None = None
    host1_msgs: int | None = None
    host2_msgs: int | None = None
    host1_bytes: int | None = None
    host2_bytes: int | None = None
    error_lines: list[str] = field(default_factory=list)  # distinct, in order of first appearance
    most_frequent_error: str = ""  # imapsync's own advice, e.g. "The destination mailbox is 100% full, …"
    dry_run: bool = False
    copied: int = 0  # "copied to" lines seen
    would_copy: int = 0  # "(not really since --dry mode)" lines seen
    printed_exit: int | None = None  # the code imapsync said it exits with
    statistics: bool = False  # the "++++ Statistics" block was printed
    looped: bool = False  # "++++ End looping on each folder": the transfer phase ran to its end
    untrusted: str | None = None  # "1" or "2": that host's TLS certificate did not verify
    # Folder sizes, {folder: [messages, bytes]}: before the copy (what a plan needs) and after
    # it (what a verification needs). A folder missing on host2 is not listed there.
    source_before: dict[str, list[int]] = field(default_factory=dict)
    dest_before: dict[str, list[int]] = field(default_factory=dict)
    source_after: dict[str, list[int]] = field(default_factory=dict)
    dest_after: dict[str, list[int]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)  # folders --exclude left out
    quota: list[int] | None = None  # [current, limit] bytes of the destination, when it says
    folder_problems: dict[str, list[str]] = field(default_factory=dict)  # {folder: distinct reasons}
    # Where each source folder went: {source folder: destination folder}, from imapsync's own
    # "Folder 1/5 [a] -> [b]" lines and its numbered folder sizes (so --automap, --gmail1 and
    # presets are followed as imapsync applied them).
    mapping: dict[str, str] = field(default_factory=dict)
    # Its closing statistics: messages it ignored for want of Message-Id and Received
    # ("Messages void (noheader) on host1"), and those it counted as not on host2.
    void_host1: int | None = None
    not_in_host2: int | None = None
    not_finished: int | None = None  # "The sync is not finished, there are N among M …"
    check: dict | None = None  # filled by the runner: purelyops.mail_check's result (CheckResult.stored())
    reconnecting: int = 0  # "Info: reconnecting to hostN" lines
    reconnected: int = 0  # "Info: reconnected to …" lines

    @property
    def reconnect_failed(self) -> bool:
        return self.reconnecting > self.reconnected

    @property
    def unsynced(self) -> int:
        """The largest count imapsync itself gave of messages left behind (0: none said)."""
        return max(self.void_host1 or 0, self.not_in_host2 or 0, self.not_finished or 0)


def imap_name(shown: str) -> str:
    """The IMAP name of a folder as imapsync shows it: "[X] = [Y]" (X its modified UTF-7
    name, Y that in UTF-8, when they differ) is read between the outer brackets as
    "X] = [Y"; X is what an IMAP client must ask for."""
    at = shown.find("] = [")
    return shown if at < 0 else shown[:at]


class ImapsyncOutput:
    """Feed it imapsync's lines in order; `feed` returns a new Progress when a line moved it."""

    def __init__(self) -> None:
        self._progress = Progress()
        self._summary = Summary()
        self._seen_errors: set[str] = set()
        self._sized = {"1": False, "2": False}
        self._sizes_after = False  # past "Folders sizes after the synchronization."
        self._paired: dict[str, str] = {}  # folder number → host1's name, in the current listing
        self._excluding = False  # reading the folder names after "Excluding folders matching pattern"

    @property
    def progress(self) -> Progress:
        return self._progress

    @property
    def copied(self) -> tuple[int, int]:
        """Messages and bytes copied so far, by the "copied to" lines (none in a dry run)."""
        return self._summary.copied, self._progress.bytes_done

    def summary(self) -> Summary:
        """What was done. Without a statistics block (a run that stopped early), the
        copied-message lines seen so far stand in for imapsync's own totals."""
        if not self._summary.statistics:
            self._summary.transferred = self._summary.copied
            self._summary.bytes_transferred = self._progress.bytes_done
        return self._summary

    def feed(self, line: str) -> Progress | None:
        line = line.rstrip("\r\n")
        if not line:
            self._excluding = False
            return None
        first = line[0]
        if self._excluding:
            if first == "[" and line.endswith("]"):
                self._summary.excluded.append(imap_name(line[1:-1]))
                return None
            self._excluding = False
        if first == "-":
            if line.startswith("- msg "):
                self._append_failed(line)
            return None
        if first == "m":
            return self._message(line)
        if first == "E":
            if line.startswith("ETA:"):
                return self._left(line)
            if line.startswith("Err "):
                self._error(line)
            elif line.startswith("Exiting with return value"):
                self._summary.printed_exit = int(_EXITING.match(line).group(1))  # type: ignore[union-attr]
            elif line.startswith("Excluding folders matching pattern"):
                self._excluding = True
            return None
        if first == "H":
            return self._host(line)
        if first == "F":
            if line.startswith("Folders sizes after"):
                self._sizes_after = True
                return None
            match = _FOLDER.match(line)
            if match:
                self._progress.folder = match.group(1)
                self._map(match.group(1), match.group(2))
                return self._progress
            return None
        if first == "I" and line.startswith("Info: reconnect"):
            if line.startswith("Info: reconnecting"):
                self._summary.reconnecting += 1
            elif line.startswith("Info: reconnected to host"):  # not "…to both imap servers": said after each
                self._summary.reconnected += 1
            return None
        if first in "MTD+":
            self._statistics(line)
        return None

    def _message(self, line: str) -> Progress | None:
        copied = line.find(" copied to ") if line.startswith("msg ") else -1
        if copied > 0:
            return self._copied(line, copied)
        if _DRY.match(line):
            self._summary.dry_run = True
            self._summary.would_copy += 1
            return self._left(line)
        return None

    def _copied(self, line: str, at: int) -> Progress | None:
        """ "msg F/1 {10862}   copied to F   49.24 msgs/s … 10 s  499/500 msgs left", with
        string operations rather than a regular expression: most of a log is these lines."""
        head = line[:at].rstrip()
        tail = line[at + 11:]
        rate_at = tail.find(" msgs/s")
        if not head.endswith("}") or rate_at < 0:
            return None
        try:
            size = int(head[head.rfind("{") + 1:-1])
            folder, rate = tail[:rate_at].rsplit(None, 1)
            rate_value = float(rate)
        except ValueError:
            return None
        self._summary.copied += 1
        p = self._progress
        p.bytes_done += size
        p.rate_msgs_per_s = rate_value
        p.folder = folder.strip()
        if line.endswith("msgs left"):
            parts = line.rsplit(None, 5)
            counts = parts[3].split("/")
            if len(parts) == 6 and parts[2] == "s" and len(counts) == 2 and counts[0].isdigit() and counts[1].isdigit():
                try:
                    self._set_left(float(parts[1]), int(counts[0]), int(counts[1]))
                except ValueError:
                    pass
        return p

    def _left(self, line: str) -> Progress | None:
        left = _LEFT.search(line)
        if left is None:
            return None
        self._set_left(float(left.group(1)), int(left.group(2)), int(left.group(3)))
        return self._progress

    def _set_left(self, eta: float, remaining: int, total: int) -> None:
        p = self._progress
        p.msgs_total, p.msgs_left, p.msgs_done, p.eta_seconds = total, remaining, max(0, total - remaining), eta

    def _host(self, line: str) -> Progress | None:
        if line.startswith(("Host1 folder", "Host2 folder")):
            self._folder_size(line)
            return None
        if line.startswith("Host2: Quota current storage"):
            quota = _QUOTA.match(line)
            if quota:
                self._summary.quota = [int(quota.group(1)), int(quota.group(2))]
            return None
        match = _NB_MESSAGES.match(line)
        if match:
            host, count = match.group(1), int(match.group(2))
            if host == "1":
                self._summary.host1_msgs = count
            else:
                self._summary.host2_msgs = count
            return None
        match = _TOTAL_SIZE.match(line)
        if match:
            host, size = match.group(1), int(match.group(2))
            if host == "1":
                self._summary.host1_bytes = size
                if not self._sized["1"]:  # the first sizing is what this run has to move
                    self._sized["1"] = True
                    self._progress.bytes_total = size
                    return self._progress
            else:
                self._summary.host2_bytes = size
        return None

    def _folder_size(self, line: str) -> None:
        match = _FOLDER_SIZE.match(line)
        if not match:
            return
        host, index, folder, size, count = match.groups()
        folder = imap_name(folder)[:MAX_FOLDER_NAME]
        if host == "1":
            self._paired[index] = folder
        else:  # host2's name for the folder may differ (mapped); the pair shares its number
            source = self._paired.get(index)
            if source is not None and source not in self._summary.mapping:
                self._map(source, folder)
            folder = source or folder
        s = self._summary
        sizes = (s.source_after if host == "1" else s.dest_after) if self._sizes_after else \
            (s.source_before if host == "1" else s.dest_before)
        if size is not None and (folder in sizes or len(sizes) < MAX_FOLDERS):
            sizes[folder] = [int(count), int(size)]

    def _map(self, source: str, dest: str) -> None:
        source, dest = imap_name(source), imap_name(dest)
        mapping = self._summary.mapping
        if source in mapping or len(mapping) < MAX_FOLDERS:
            mapping[source[:MAX_FOLDER_NAME]] = dest[:MAX_FOLDER_NAME]

    def _append_failed(self, line: str) -> None:
        match = _APPEND_FAILED.match(line)
        if not match:
            return
        folder, error = match.groups()
        folder = folder[:MAX_FOLDER_NAME]
        problems = self._summary.folder_problems
        if folder not in problems and len(problems) >= MAX_FOLDERS:
            return
        upper = error.upper()
        if "QUOTA" in upper:
            reason = "over quota"
        elif "TOOBIG" in upper or "TOO BIG" in upper or "TOO LARGE" in upper:
            reason = "message too big"
        else:
            reason = "refused by the server"
        reasons = problems.setdefault(folder, [])
        if reason not in reasons:
            reasons.append(reason)

    def _error(self, line: str) -> None:
        match = _ERR.match(line)
        if not match:
            return
        self._summary.errors = max(self._summary.errors, int(match.group(1)))
        text = match.group(2).strip()
        if self._summary.untrusted is None and ("certificate verify failed" in text
                                                or "hostname verification failed" in text):
            self._summary.untrusted = "2" if text.startswith("Host2") else "1"
        if text not in self._seen_errors and len(self._summary.error_lines) < MAX_ERROR_LINES:
            self._seen_errors.add(text)
            self._summary.error_lines.append(text)

    def _statistics(self, line: str) -> None:
        s = self._summary
        if line.startswith("++++ "):
            if line.startswith("++++ Statistics"):
                s.statistics = True
            elif line.startswith("++++ End looping on each folder"):
                s.looped = True
            return
        match = _STAT.match(line)
        if match:
            name, value = match.group(1), match.group(2)
            if name == "Messages transferred":
                s.transferred = int(value)
                dry = _COULD_BE.search(line)
                if dry:
                    s.would_copy = int(dry.group(1))
            elif name == "Messages skipped":
                s.skipped = int(value)
            elif name == "Total bytes transferred":
                s.bytes_transferred = int(value)
            elif name == "Transfer time":
                s.duration_seconds = float(value)
            else:
                s.rate_msgs_per_s = float(value)
            return
        match = _DETECTED.match(line)
        if match:
            s.errors = max(s.errors, int(match.group(1)))
            return
        if line.startswith("Messages "):
            match = _VOID.match(line)
            if match:
                s.void_host1 = int(match.group(1))
                return
            match = _NOT_IN_HOST2.match(line)
            if match:
                s.not_in_host2 = int(match.group(1))
            return
        if line.startswith("The sync is not finished"):
            match = _NOT_FINISHED.match(line)
            if match:
                s.not_finished = int(match.group(1))
            return
        match = _FREQUENT.match(line)
        if match:
            s.most_frequent_error = match.group(1).strip()


# ---- what an exit code means ------------------------------------------------------------------

_VERDICTS = {
    10: "could not connect to one of the IMAP servers",
    101: "could not connect to the source server: check its host, port and security settings",
    102: "could not connect to PurelyMail's IMAP server",
    12: "the TLS handshake failed: check the source server's security setting (TLS, STARTTLS or none)",
    16: "an IMAP server refused the login",
    161: "the source server refused the password for {source}",
    162: "PurelyMail refused the password for {dest}",
    64: "imapsync was called wrongly (a bug in purelyops: the log has the details)",
    66: "imapsync could not read a password file (a bug in purelyops: the log has the details)",
    111: "it finished, but some messages could not be copied",
    112: "it stopped after too many errors",
    113: "the destination mailbox {dest} is full: raise its quota or free space, then re-run",
    114: "some messages could not be stored in {dest}",
    115: "some messages could not be read from the source",
    116: "some folders could not be created in {dest}",
    117: "some source folders could not be opened",
    118: "the transfer limit was reached",
    119: "some messages were refused as viruses",
    120: "some message flags could not be set",
}


def verdict(exit_code: int, summary: Summary, *, source: str, dest: str) -> str:
    """What happened, in words for an admin, from the exit status and what was read."""
    if exit_code == 0:
        if not summary.looped:
            return ("imapsync exited without copying or checking any folder: nothing was done "
                    "(the log says what it did instead)")
        if summary.dry_run:
            return f"dry run finished: {summary.would_copy} message(s) would be copied; nothing was changed"
        if summary.transferred:
            return f"done: every message of {source} is in {dest}"
        return f"done: {dest} already had everything"
    if summary.untrusted:
        side = "the source server's" if summary.untrusted == "1" else "PurelyMail's IMAP server's"
        return (f"certificate not trusted: {side} TLS certificate did not verify (self-signed, expired, issued "
                "by an unknown CA, or for another host name); nothing was copied. For a private CA, set "
                "IMAP_CA_FILE; `server test` names the exact reason")
    if exit_code in (6, 143, -15, 137, -9):
        return "stopped before the end (cancelled or interrupted); a re-run picks up where it stopped"
    words = _VERDICTS.get(exit_code)
    if words:
        return words.format(source=source, dest=dest)
    return f"imapsync stopped with an error (exit code {exit_code}); the log has the details"


# ---- what may pass by itself -------------------------------------------------------------------

TRANSIENT = {10, 12, 101, 102}  # a server could not be reached, or the TLS handshake broke off
LOST_AFTER_LOGIN = {1, 115}  # a server went away mid-run: 115 after fetches failed, 1 after "End looping"


def lost_server(exit_code: int, summary: Summary) -> bool:
    """A server dropped the session after the login (exit 115 or 1, or a reconnect that
    did not succeed): what arrived is counted, and the run is tried again."""
    return exit_code in LOST_AFTER_LOGIN or (exit_code != 0 and summary.reconnect_failed)


def transient(exit_code: int, summary: Summary) -> bool:
    """A failure worth retrying by itself: a server could not be reached (connection refused,
    a timeout, a TLS handshake cut off) or went away mid-run. Never a login failure
    (retrying would lock the account), a full mailbox, or a certificate that is not trusted."""
    return (exit_code in TRANSIENT or lost_server(exit_code, summary)) and not summary.untrusted
