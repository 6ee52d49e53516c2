"""Real Dovecot IMAP servers on loopback, for tests: users from a passwd file, maildirs
in a temporary directory, plain-text logins allowed (it is loopback only). With
certificates, a Dovecot also serves implicit TLS on `tls_port` and STARTTLS on `port`.

Fixtures: `dovecot_pair` (source and destination, no TLS), `dovecot_tls` (one server with
TLS, its certificate from a private CA made in the test), and `imap_tls` (that server as
a TlsEndpoint(host, port, security, ca_file, …), once with "tls" and once with "starttls").
`Listener` is a TCP server that is not IMAP at all (an SSH banner, or silence)."""

from __future__ import annotations

import datetime
import imaplib
import ipaddress
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
{oauth_passdb}passdb {{
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
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
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


CA_NAME = "purelyops test CA"


@dataclass(frozen=True)
class Certificates:
    """PEM files for a test IMAP server: `ca_file` is what a client must trust (IMAP_CA_FILE,
    imapsync's SSL_ca_file); `cert_file` and `key_file` are the server's."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_certificates(directory: Path, names: Sequence[str] = ("localhost", "127.0.0.1"), *,
                      expired: bool = False, self_signed: bool = False) -> Certificates:
    """A server certificate for `names` (DNS names and IP addresses in its SAN), issued by a
    private CA made here (or, `self_signed`, by itself); `expired` makes one that ended
    yesterday."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    begins, ends = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired else \
        (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    if self_signed:
        ca_key, issuer = key, subject
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        ca = (x509.CertificateBuilder().subject_name(issuer).issuer_name(issuer).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=60)).not_valid_after(now + datetime.timedelta(days=60))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(begins).not_valid_after(ends)
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.BasicConstraints(ca=self_signed, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file = _pem(directory / "server.pem", cert_pem)
    ca_file = cert_file if self_signed else _pem(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    key_file = _pem(directory / "server.key", key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    key_file.chmod(0o600)
    return Certificates(ca_file, cert_file, key_file)


OAUTH_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext{chain}
}}
"""
# Microsoft's app-only tokens name no user: the token is checked first, then the mailbox must
# be one the app's service principal was given (a file the fake writes), as in Exchange Online.
GRANTED_PASSDB = """
  result_success = continue-ok
}}
passdb {{
  driver = passwd-file
  mechanisms = xoauth2 oauthbearer
  args = username_format=%u {granted}
  result_failure = return-fail
  result_internalfail = return-fail"""
# An app-only token names no user: the fake names an account of its tenant's mail domain, and
# Dovecot compares domains (username_format = %d); the user is then checked against `granted_file`.
APP_AUDIENCE = "username_attribute = username\nusername_format = %d\n"
OAUTH_CONF = """\
introspection_mode = post
introspection_url = {url}
{username}active_attribute = active
active_value = true
force_introspection = yes
"""


class Dovecot:
    def __init__(self, root: Path, users: dict[str, str], tls: Certificates | None = None,
                 quota_kib: int | None = None, any_login: bool = False, *, auth_failure_delay: float | None = None,
                 auth_penalty: bool = True, introspection_url: str | None = None,
                 granted_file: Path | None = None) -> None:
        """`any_login`: every user and password logs in, and all share one mailbox (`mail_dir`),
        for the imapsync stand-in's tests, whose jobs use many addresses and canary passwords.
        `introspection_url`: logins with XOAUTH2 (and OAUTHBEARER) too, each token checked
        there (Dovecot's oauth2 passdb, POST token=…), which must name the login's user;
        passwords still work for PLAIN and LOGIN. With `granted_file` (a passwd-file of users
        with nopassword=y), the token need not name a user, but the user must be in that file."""
        self.root = root
        self.any_login = any_login
        self.introspection_url = introspection_url
        self.granted_file = granted_file
        self.quota_kib = quota_kib  # a storage quota per user, announced over IMAP (QUOTA)
        # Dovecot answers a wrong password after auth_failure_delay (its default: 2 s), and
        # with the auth penalty on (its default) waits longer for each failure from one IP,
        # doubling up to 15 s. `auth_penalty=False` makes its anvil socket unusable: Dovecot
        # then skips the penalty.
        self.auth_failure_delay = auth_failure_delay
        self.auth_penalty = auth_penalty
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0  # implicit TLS; STARTTLS is on `port`
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
        ssl = "ssl = no" if self.tls is None else \
            f"ssl = yes\nssl_cert = <{self.tls.cert_file}\nssl_key = <{self.tls.key_file}\nssl_min_protocol = TLSv1.2"
        quota = "" if self.quota_kib is None else (
            "mail_plugins = $mail_plugins quota\nprotocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n"
            f"plugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage={self.quota_kib}K\n}}\n")
        auth = "" if self.auth_failure_delay is None else f"auth_failure_delay = {self.auth_failure_delay:g}s\n"
        if not self.auth_penalty:
            auth += "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
        oauth = ""
        if self.introspection_url:
            (self.root / "oauth2.conf.ext").write_text(OAUTH_CONF.format(
                url=self.introspection_url,
                username=APP_AUDIENCE if self.granted_file else "username_attribute = username\n"))
            chain = GRANTED_PASSDB.format(granted=self.granted_file) if self.granted_file else ""
            # no auth penalty for loopback: tests log in with refused tokens on purpose
            oauth = "login_trusted_networks = 127.0.0.0/8\nauth_failure_delay = 0\n" + \
                OAUTH_PASSDB.format(root=self.root, chain=chain)
        text = CONFIG.format(root=self.root, uid=self.uid, gid=self.gid, port=self.port, ssl=ssl,
                             tls_port=self.tls_port, oauth_passdb=oauth,
                             mechanisms=" xoauth2 oauthbearer" if oauth else "") + quota + auth
        if self.any_login:
            text = text.replace(f"maildir:{self.root}/mail/%u", f"maildir:{self.mail_dir}")
            text = re.sub(r"passdb \{.*?\n\}", "passdb {\n  driver = static\n  args = nopassword=y\n}", text,
                          flags=re.S)
            text += "namespace inbox {\n  inbox = yes\n  separator = /\n}\n"
        config.write_text(text)
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        waiting = [p for p in (self.port, self.tls_port) if p]
        while time.monotonic() < deadline:
            try:
                for port in list(waiting):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    waiting.remove(port)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start; see {self.root / 'dovecot.log'}")

    @property
    def mail_dir(self) -> Path:
        """The shared maildir of an any_login server."""
        return self.root / "mail" / "shared"

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

    def folder_counts(self, user: str) -> dict[str, int]:
        """{folder: messages}, counted over IMAP on its own (STATUS), not by imapsync."""
        client = self.login(user)
        try:
            counts = {}
            _, folders = client.list()
            for line in folders or []:
                name = re.match(r'\(.*?\) (?:"[^"]*"|NIL) (.*)', line.decode()).group(1).strip('"')
                _, data = client.status(f'"{name}"', "(MESSAGES)")
                counts[name] = int(data[0].decode().rsplit("MESSAGES", 1)[1].strip(" )"))
            return counts
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


def seed_maildir(mail_dir: Path, folders: dict[str, int], uid: int, gid: int, *, tag: str = "seed") -> None:
    """Messages written straight into a Dovecot maildir (Maildir++: "Archive/2024" is the
    directory .Archive.2024), far faster than APPENDing them: `folders` {name: count}. The
    same `tag` gives the same Message-Ids, so two servers seeded alike hold the same mail."""
    body = "".join(f"Line {n} of a message body that is long enough to look like mail.\r\n" for n in range(40))
    for folder, count in folders.items():
        base = mail_dir if folder == "INBOX" else mail_dir / ("." + folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            raw = (f"From: sender@example.org\r\nTo: someone@example.org\r\nSubject: {folder} {n}\r\n"
                   f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-Id: <{tag}-{folder}-{n}@test>\r\n\r\n"
                   + body).encode()
            name = f"{1700000000 + n}.M{n}P1.{tag}.{folder.replace('/', '_')},S={len(raw)}:2,S"
            (base / "cur" / name).write_bytes(raw)
    for path in [mail_dir, *mail_dir.rglob("*")]:
        os.chown(path, uid, gid)


def run_dovecot_tls() -> Iterator[Dovecot]:
    """A Dovecot with implicit TLS on `.tls_port` and STARTTLS on `.port`; its certificate
    (SAN localhost and 127.0.0.1) is issued by a private CA whose PEM is `.tls.ca_file`.
    User alice@old.example, password source-pw-1."""
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot is not installed (the README test command installs dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="purelyops-dovecot-tls-"))
    root.chmod(0o755)
    server = Dovecot(root / "imap", {"alice@old.example": "source-pw-1"},
                     tls=make_certificates(root / "certs")).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class TlsEndpoint:
    """Where and how to reach a TLS test server, and what to trust for it."""

    host: str  # "127.0.0.1" (the certificate also names localhost)
    port: int
    security: str  # "tls" (implicit) or "starttls"
    ca_file: str  # PEM of the CA that issued the server's certificate
    server: Dovecot
    user: str = "alice@old.example"
    password: str = "source-pw-1"


def tls_endpoint(security: str, dovecot_tls: Dovecot) -> TlsEndpoint:
    """The TLS Dovecot over implicit TLS ("tls") or STARTTLS ("starttls")."""
    port = dovecot_tls.tls_port if security == "tls" else dovecot_tls.port
    assert dovecot_tls.tls is not None
    return TlsEndpoint("127.0.0.1", port, security, str(dovecot_tls.tls.ca_file), dovecot_tls)


class Listener:
    """A TCP server on loopback that is not IMAP: it counts connections, greets with
    `banner` (an SSH server's, say) or says nothing, reads what the client sends, and hangs up."""

    def __init__(self, banner: bytes = b"") -> None:
        self.banner = banner
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True, name="listener")
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    if self.banner:
                        conn.sendall(self.banner)
                    conn.recv(1024)
                except OSError:
                    pass

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        self.sock.close()
