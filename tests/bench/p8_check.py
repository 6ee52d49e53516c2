"""P8: the independent check after a run (purelyops.mail_check) of a 20,000- and a
100,000-message mailbox in 5 folders, both sides local Dovecot. Prints the check's
share of the migration's own wall time (the real imapsync copying the same mailbox;
target at most 10 %) and messages read per second a side (target at least 5,000).

The source is written straight into Dovecot's maildir (tests.imap_servers.seed_maildir).
Without imapsync on PATH, or above P8_COPY_UP_TO messages (default 20,000: imapsync copies
about 80 messages/s here, so 100,000 would take over 20 minutes), the destination is seeded
the same way; the share is then against imapsync's pace at the largest size it copied
(printed as an estimate).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from purelyops import imapsync, mail_check
from purelyops.imap_session import ImapAuth
from purelyops.runtime import Runtime
from tests.imap_servers import Dovecot, seed_maildir

SIZES = (20_000, 100_000)
FOLDERS = ("INBOX", "Archive", "Sent", "Projects/Acme", "Trash")
ROUNDS = 3
COPY_UP_TO = int(os.environ.get("P8_COPY_UP_TO", "20000"))


def _copy(source: Dovecot, dest: Dovecot, workdir: Path) -> float:
    started = time.monotonic()
    subprocess.run(["imapsync", "--host1=127.0.0.1", f"--port1={source.port}", "--nossl1", "--notls1",
                    "--user1=alice@old.example", "--password1=x", "--host2=127.0.0.1", f"--port2={dest.port}",
                    "--nossl2", "--notls2", "--user2=alice@new.example", "--password2=x", "--addheader", "--nolog",
                    "--noreleasecheck", f"--tmpdir={workdir}", "--nofoldersizes", "--nofoldersizesatend"],
                   cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                   check=False)
    return time.monotonic() - started


def run_one(settings, total: int, pace: list[float]) -> None:
    """`pace`: seconds per message imapsync took at the largest size it copied (appended to)."""
    root = Path(tempfile.mkdtemp(prefix="purelyops-p8-"))
    root.chmod(0o755)
    servers = []
    try:
        have_imapsync = shutil.which("imapsync") is not None and total <= COPY_UP_TO
        for side in ("source", "dest"):
            server = Dovecot(root / side, {}, any_login=True)
            (root / side / "mail").mkdir(parents=True)
            shutil.chown(root / side / "mail", server.uid, server.gid)
            if side == "source" or not have_imapsync:
                seed_maildir(server.mail_dir, {f: total // len(FOLDERS) for f in FOLDERS}, server.uid, server.gid)
            servers.append(server.start())
        source, dest = servers
        workdir = root / "work"
        workdir.mkdir()
        copy_s = _copy(source, dest, workdir) if have_imapsync else None
        rt = Runtime(settings)
        ends = [(imapsync.Endpoint("127.0.0.1", s.port, user, "none"), ImapAuth(user, "x"))
                for s, user in ((source, "alice@old.example"), (dest, "alice@new.example"))]
        mapping = {f: f for f in FOLDERS}
        seconds, results = [], []
        for _ in range(ROUNDS):
            result = mail_check.check(rt, ends[0], ends[1], mapping, since=None)
            seconds.append(result.seconds)
            results.append(result)
        last = results[-1]
        median = statistics.median(seconds)
        print(f"P8 check of {total:,} messages in {len(FOLDERS)} folders: median {median:.2f} s over {ROUNDS} rounds "
              f"(min {min(seconds):.2f}, max {max(seconds):.2f}); read {last.read[0]:,} source and {last.read[1]:,} "
              f"destination messages: {last.read[0] / median:,.0f} and {last.read[1] / median:,.0f} messages/s a side "
              f"(target >= 5,000); complete={last.complete}, missing={len(last.missing)}")
        if copy_s is not None:
            pace.append(copy_s / total)
            print(f"P8 imapsync copied them in {copy_s:.1f} s; the check adds {median / copy_s * 100:.1f} % "
                  "(target <= 10 %)")
        elif pace:
            estimate = pace[-1] * total
            print(f"P8 imapsync would copy them in about {estimate:.0f} s (its pace at the size it copied); the "
                  f"check would add about {median / estimate * 100:.1f} % (target <= 10 %)")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(settings, slack, purelymail, sizes: tuple[int, ...] = SIZES) -> None:
    del slack, purelymail
    pace: list[float] = []
    for total in sizes:
        run_one(settings, total, pace)
