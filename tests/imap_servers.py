"""Real Dovecot IMAP servers on loopback, for tests: users from a passwd file, maildirs
in a temporary directory, plain-text logins allowed (it is loopback only)."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    def __init__(self, root: Path, users: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.users = dict(users)
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        self.process: subprocess.Popen | None = None

    def start(self) -> Dovecot:
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        (self.root / "mail").mkdir(exist_ok=True)
        os.chown(self.root / "mail", self.uid, self.gid)
        self._write_users()
        config = self.root / "dovecot.conf"
        config.write_text(CONFIG.format(root=self.root, uid=self.uid, gid=self.gid, port=self.port))
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start; see {self.root / 'dovecot.log'}")

    def _write_users(self) -> None:
        (self.root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def login(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, count: int, folder: str = "INBOX") -> None:
        client = self.login(user)
        try:
            if folder != "INBOX":
                client.create(folder)
            for i in range(count):
                message = EmailMessage()
                message["From"], message["To"] = "sender@example.org", user
                message["Subject"] = f"Test message {i}"
                message["Message-ID"] = f"<{folder}-{i}-{time.time_ns()}@test>"
                message.set_content(f"Body {i}\n" * 20)
                client.append(folder, None, None, message.as_bytes())
        finally:
            client.logout()

    def count(self, user: str) -> int:
        client = self.login(user)
        try:
            total = 0
            _, folders = client.list()
            for line in folders or []:
                name = line.decode().rsplit(' "', 1)[-1].rstrip('"') if line else ""
                name = line.decode().split(" ")[-1].strip('"')
                status, data = client.select(f'"{name}"', readonly=True)
                if status == "OK":
                    total += int(data[0])
            return total
        finally:
            client.logout()
