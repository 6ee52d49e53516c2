"""The independent check after a real run: is every source message at the destination?

purelyops asks both servers itself, with the run's own credentials, the same checked
address and TLS verification (purelyops.imap_session); it does not take imapsync's word.

- Which folders: every source folder imapsync selected, and the folder it went to, as
  imapsync's own output says (`Folder 1/5 [a] -> [b]` and its numbered folder sizes:
  Summary.mapping), so --automap, --gmail1, presets and the folder exclusion are followed
  as imapsync applied them. With a maximum age, the source is searched as imapsync searches
  it (SENTSINCE), and the messages without a usable Date (left out by that search) are counted.
- How: SEARCH, then FETCH in UID ranges of BATCH messages, `BODY.PEEK[HEADER.FIELDS
  (MESSAGE-ID RECEIVED DATE)]` and RFC822.SIZE, both sides at once.
- Identity: what imapsync identifies a message by (its header_construct): the Message-Id
  and Received lines, each normalised (8-bit bytes to X, blanks squeezed, upper case),
  sorted and joined. A source message with neither gets "Message-Id: <UID@imapsync>" on
  its copy from --addheader (imapsync's add_header, UID the source's), and that is
  what is looked for.
- Matching (`match`, pure): per destination folder, a multiset. Each source message takes
  one destination message of the same identity, once; mail that was already there (new
  mail on cut-over day) never stands in for a missing one, and two copies need two.
  From Gmail (a message under several labels is copied once), a message not in its own
  label's destination counts as there when it is in the destination of another label
  it carries; Trash and Spam are never excused, nor excuse others.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from purelyops.imap_session import ImapAuth, ImapSessionError, connect, drop, fetch_range, logout, where
from purelyops.imapsync import Endpoint
from purelyops.runtime import Runtime

BATCH = 5000  # messages per FETCH
FIELDS = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID RECEIVED DATE)]"
FIELDS_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID RECEIVED DATE)]"
SIZE_KEY = b"RFC822.SIZE"
MAX_MISSING_STORED = 200  # kept with the job; the file in the thread lists every one
_BLANKS = re.compile(r"[ \t\n\r\f\v]+")
_EIGHT_BIT = re.compile(r"[\x80-\xff]")
NEVER_EXCUSED_FLAGS = {b"\\Trash", b"\\Junk"}
NEVER_EXCUSED_NAMES = {"trash", "spam", "bin", "junk", "deleted messages", "deleted items"}


@dataclass(frozen=True, slots=True)
class Listed:
    """One message as the check saw it."""

    uid: int
    identity: bytes  # a digest of the identity (see the module's docstring)
    message_id: str = ""
    date: str = ""
    size: int = 0


@dataclass(frozen=True)
class Missing:
    folder: str  # the source folder
    dest: str  # where it should be
    uid: int
    date: str
    size: int
    message_id: str


@dataclass
class FolderCheck:
    source: str
    dest: str
    source_msgs: int
    arrived: int  # source messages found in `dest`
    missing: list[Missing] = field(default_factory=list)
    excused: int = 0  # Gmail: found under another label's folder instead
    gone: bool = False  # the source folder no longer exists

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass
class CheckResult:
    folders: list[FolderCheck] = field(default_factory=list)
    error: str | None = None  # why it could not check (then nothing is proven)
    undated: int = 0  # with a maximum age: source messages without a usable Date, left out
    seconds: float = 0.0
    read: tuple[int, int] = (0, 0)  # messages listed on the source, at the destination

    @property
    def missing(self) -> list[Missing]:
        return [m for f in self.folders for m in f.missing]

    @property
    def complete(self) -> bool:
        return self.error is None and not any(f.missing for f in self.folders)

    @property
    def source_total(self) -> int:
        return sum(f.source_msgs for f in self.folders)

    @property
    def arrived_total(self) -> int:
        return sum(f.source_msgs - len(f.missing) for f in self.folders)

    def stored(self) -> dict:
        """What is kept with the job (JSON): every folder's counts, the first missing messages."""
        return {"error": self.error, "undated": self.undated, "seconds": round(self.seconds, 3),
                "read": list(self.read), "complete": self.complete,
                "folders": [{"source": f.source, "dest": f.dest, "source_msgs": f.source_msgs,
                             "arrived": f.source_msgs - len(f.missing), "missing": len(f.missing),
                             "excused": f.excused, "gone": f.gone} for f in self.folders],
                "missing": [asdict(m) for m in self.missing[:MAX_MISSING_STORED]]}


# ---- identity -----------------------------------------------------------------------------------


def _normalise(name: str, value: str) -> str:
    value = _BLANKS.sub(" ", _EIGHT_BIT.sub("X", value)).strip()
    return f"{name}: {value}".upper()


def parse_header(raw: bytes) -> tuple[list[str], str, str]:
    """The identifying lines (normalised, sorted), the Message-Id and the Date of fetched header fields."""
    fields: list[list[str]] = []
    for line in raw.decode("latin-1").split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t":
            if fields:
                fields[-1][1] += " " + line
            continue
        name, colon, value = line.partition(":")
        if colon:
            fields.append([name.strip(), value])
    lines, message_id, sent = [], "", ""
    for name, value in fields:
        upper = name.upper()
        if upper in ("MESSAGE-ID", "RECEIVED"):
            lines.append(_normalise(upper, value))
            if upper == "MESSAGE-ID" and not message_id:
                message_id = value.strip()
        elif upper == "DATE" and not sent:
            sent = value.strip()
    return sorted(lines), message_id, sent


def digest(lines: list[str]) -> bytes:
    return hashlib.md5("".join(lines).encode("latin-1", "replace")).digest()  # noqa: S324 - an identity, not security


def added_header(uid: int) -> list[str]:
    """What --addheader gives the copy of source message `uid` that has no identifying header."""
    return [_normalise("MESSAGE-ID", f"<{uid}@imapsync>")]


def listed(uid: int, raw: bytes, size: int, *, source: bool) -> Listed:
    lines, message_id, sent = parse_header(raw)
    if not lines and source:
        lines = added_header(uid)
    return Listed(uid, digest(lines), message_id, sent, size)


# ---- matching (pure) ----------------------------------------------------------------------------


def never_excused(folder: str, flags: tuple[bytes, ...] = ()) -> bool:
    """Trash and Spam: a message there must be in that folder's destination."""
    if NEVER_EXCUSED_FLAGS.intersection(flags):
        return True
    return folder.rsplit("/", 1)[-1].strip().lower() in NEVER_EXCUSED_NAMES


def match(source: dict[str, list[Listed] | None], dest: dict[str, list[Listed] | None], mapping: dict[str, str],
          *, gmail: bool = False, strict: set[str] | None = None) -> list[FolderCheck]:
    """Every source folder of `mapping` against its destination folder (see the module's
    docstring). `source[f]` None: the folder is gone from the source; `dest[d]` None: it
    does not exist at the destination. `strict`: source folders never excused (Trash,
    Spam), by default those named so."""
    strict = strict if strict is not None else {f for f in mapping if never_excused(f)}
    pools: dict[str, Counter] = {d: Counter(m.identity for m in (dest.get(d) or [])) for d in set(mapping.values())}
    present = {d: set(pool) for d, pool in pools.items()}  # before any is taken
    unmatched: dict[str, list[Listed]] = {}
    checks: dict[str, FolderCheck] = {}
    for folder in sorted(mapping):
        target = mapping[folder]
        messages = source.get(folder)
        pool = pools[target]
        left = []
        for m in messages or []:
            if pool[m.identity] > 0:
                pool[m.identity] -= 1
            else:
                left.append(m)
        unmatched[folder] = left
        checks[folder] = FolderCheck(folder, target, len(messages or []), len(messages or []) - len(left),
                                     gone=messages is None)
    labels: dict[bytes, set[str]] = {}
    if gmail:
        for folder in mapping:
            if folder not in strict:
                for m in source.get(folder) or []:
                    labels.setdefault(m.identity, set()).add(folder)
    for folder in sorted(mapping):
        check = checks[folder]
        for m in unmatched[folder]:
            if gmail and folder not in strict and any(
                    m.identity in present[mapping[other]] for other in labels.get(m.identity, ()) if other != folder):
                check.excused += 1
            else:
                check.missing.append(Missing(folder, check.dest, m.uid, m.date, m.size, m.message_id))
    return [checks[f] for f in sorted(mapping)]


# ---- listing over IMAP --------------------------------------------------------------------------


def list_folder(client: IMAPClient, folder: str, *, source: bool,
                since: date | None = None) -> tuple[list[Listed] | None, int]:
    """Every message of `folder`, and how many were left out for want of a usable Date.
    With `since`, only those a SENTSINCE search finds (as imapsync searches); of the
    others, those whose Date cannot be read are counted (a server files them as older).
    None when the folder does not exist or cannot be opened."""
    try:
        client.select_folder(folder, readonly=True)
    except IMAPClientError:
        return None, 0
    uids = sorted(client.search(["ALL"]))
    wanted = set(client.search(["SENTSINCE", since])) if since else None
    found: list[Listed] = []
    undated = 0
    for at in range(0, len(uids), BATCH):
        chunk = uids[at:at + BATCH]
        data = fetch_range(client, chunk[0], chunk[-1], [FIELDS, SIZE_KEY])
        for uid in sorted(data):
            item = data[uid]
            message = listed(uid, item.get(FIELDS_KEY) or b"", int(item.get(SIZE_KEY) or 0), source=source)
            if wanted is None or uid in wanted:
                found.append(message)
            elif not usable_date(message.date):
                undated += 1
    return found, undated


def usable_date(value: str) -> bool:
    if not value:
        return False
    try:
        return parsedate_to_datetime(value) is not None
    except (TypeError, ValueError, IndexError):
        return False


class _Side(threading.Thread):
    """One server's listings, on a thread of its own (both sides are read at once)."""

    def __init__(self, rt: Runtime, end: Endpoint, auth: ImapAuth, folders: list[str], *, source: bool,
                 since: date | None, timeout: float) -> None:
        super().__init__(daemon=True, name=f"check-{'source' if source else 'dest'}")
        self.rt, self.end, self.auth, self.folders, self.source = rt, end, auth, folders, source
        self.since, self.timeout = since, timeout
        self.listings: dict[str, list[Listed] | None] = {}
        self.strict: set[str] = set()
        self.undated = 0
        self.error: str | None = None
        self.whose = "the source server" if source else "the destination"
        self._client: IMAPClient | None = None
        self._abandoned = False

    def abandon(self) -> None:
        """Stop listing (the check gave up on it): the connection is dropped, so a read that
        waits on the server ends."""
        self._abandoned = True
        if self._client is not None:
            drop(self._client)

    def run(self) -> None:
        try:
            client = connect(self.rt, self.end, self.auth, self.timeout)
        except ImapSessionError as error:
            self.error = str(error)
            return
        self._client = client
        if self._abandoned:  # given up on while it logged in
            drop(client)
            return
        client.folder_encode = False  # imapsync's names are IMAP's own (modified UTF-7): sent as they are
        try:
            if self.source:
                for flags, _, name in client.list_folders():
                    name = name.decode("ascii", "replace") if isinstance(name, bytes) else name
                    if name in self.folders and never_excused(name, tuple(flags)):
                        self.strict.add(name)
            for folder in self.folders:
                self.listings[folder], undated = list_folder(client, folder, source=self.source,
                                                             since=self.since if self.source else None)
                self.undated += undated
        except (OSError, IMAPClientError) as error:
            self.error = f"the session with {where(self.end)} broke while listing: {str(error)[:200] or 'no answer'}"
        except Exception as error:  # noqa: BLE001 - a listing cut short must never read as mail missing
            self.error = f"listing {where(self.end)} failed: {type(error).__name__}"
        finally:
            logout(client)


Stopped = Callable[[], bool]  # asked while the check waits: True gives it up (a Cancel, a lost lease)


def _list(sides: list[_Side], limit: float, stopped: Stopped | None) -> str | None:
    """Every side listed at once, within `limit` seconds in all (each read also has its own
    timeout, but a server that trickles its answers would pass those for ever) and until
    `stopped` says so. The words of what kept them from finishing, else None."""
    deadline = time.monotonic() + limit
    for side in sides:
        side.start()
    while True:
        waiting = [side for side in sides if side.is_alive()]
        if not waiting:
            return None
        if stopped is not None and stopped():
            why = "the check was stopped before it finished"
        elif time.monotonic() >= deadline:
            why = (f"{' and '.join(side.whose for side in waiting)} answered too slowly: the listing did not "
                   f"finish within {limit:.0f} s (MIGRATION_CHECK_TIMEOUT)")
        else:
            waiting[0].join(min(0.25, max(0.0, deadline - time.monotonic())))
            continue
        for side in waiting:
            side.abandon()
        return why


def undated(rt: Runtime, source: tuple[Endpoint, ImapAuth], folders: list[str], since: date,
            timeout: float = 30.0, *, limit: float = 3600.0, stopped: Stopped | None = None) -> CheckResult:
    """For a dry run with a maximum age: only the source's messages without a usable Date
    (which imapsync's SENTSINCE search leaves out), in `undated`."""
    side = _Side(rt, *source, sorted(folders), source=True, since=since, timeout=timeout)
    error = _list([side], limit, stopped) or side.error
    return CheckResult(error=f"the source server could not be checked: {error}" if error else None,
                       undated=side.undated)


def check(rt: Runtime, source: tuple[Endpoint, ImapAuth], dest: tuple[Endpoint, ImapAuth], mapping: dict[str, str],
          *, since: date | None = None, gmail: bool = False, timeout: float = 30.0, limit: float = 3600.0,
          stopped: Stopped | None = None) -> CheckResult:
    """List both sides (at once, within `limit` seconds in all, until `stopped`) and match
    them; a server that cannot be reached, logged into or listed in time gives a result
    with `error` (nothing proven)."""
    started = time.monotonic()
    if not mapping:
        return CheckResult(error="imapsync did not say which folders it copied, so nothing could be checked")
    sides = [_Side(rt, *source, sorted(mapping), source=True, since=since, timeout=timeout),
             _Side(rt, *dest, sorted(set(mapping.values())), source=False, since=None, timeout=timeout)]
    unfinished = _list(sides, limit, stopped)
    src, dst = sides
    read = (sum(len(v or []) for v in src.listings.values()), sum(len(v or []) for v in dst.listings.values()))
    if unfinished:
        return CheckResult(error=unfinished, read=read, seconds=time.monotonic() - started)
    for side in sides:
        if side.error:
            return CheckResult(error=f"{side.whose} could not be checked: {side.error}", read=read,
                               seconds=time.monotonic() - started)
    strict = {f for f in mapping if never_excused(f)} | src.strict
    folders = match(src.listings, dst.listings, mapping, gmail=gmail, strict=strict)
    return CheckResult(folders, undated=src.undated, seconds=time.monotonic() - started, read=read)
