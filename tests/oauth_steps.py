"""What OAuth tests share: the fake identity services over TLS (a private CA made here, trusted
through REQUESTS_CA_BUNDLE as a deployment would trust its own), settings that point at them,
and a Dovecot source that checks every token with the fake's introspection endpoint."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.oauth_fake import App, FakeIdentity, Tenant
from tests.imap_servers import DOVECOT, Dovecot, make_certificates


@dataclass
class Identity:
    fake: FakeIdentity
    ca_file: str

    def settings(self) -> dict[str, str]:
        return {"microsoft_login_url": self.fake.url, "microsoft_graph_url": self.fake.url,
                "google_token_url": f"{self.fake.url}/token", "google_directory_url": self.fake.url}

    def env(self) -> dict[str, str]:
        """For the bot's and workers' processes."""
        return {"REQUESTS_CA_BUNDLE": self.ca_file, "MICROSOFT_LOGIN_URL": self.fake.url,
                "MICROSOFT_GRAPH_URL": self.fake.url, "GOOGLE_TOKEN_URL": f"{self.fake.url}/token",
                "GOOGLE_DIRECTORY_URL": self.fake.url}


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[Identity]:
    root = Path(tempfile.mkdtemp(prefix="purelyops-identity-"))
    certs = make_certificates(root / "certs")
    fake = FakeIdentity(certs.cert_file, certs.key_file).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    yield Identity(fake, str(certs.ca_file))
    fake.stop()
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class TokenSource:
    """A Dovecot that takes tokens: `tenant` and `app` (Microsoft, granted alice and bob) or
    a Google service account; users alice@old.example and bob@old.example."""

    server: Dovecot
    identity: Identity
    tenant: Tenant
    app: App
    granted: Path

    def grant(self, *mailboxes: str) -> None:
        """Exactly these mailboxes are open to the app's service principal (Add-MailboxPermission)."""
        self.app.mailboxes = set(mailboxes)
        before = self.granted.stat().st_mtime
        fresh = self.granted.with_suffix(".new")
        fresh.write_text(self.identity.fake.granted_lines(self.tenant))
        fresh.chmod(0o644)
        # Dovecot re-reads a passwd-file when its mtime (in whole seconds) changes: a new one
        later = max(time.time(), before + 2)
        os.utime(fresh, (later, later))
        fresh.replace(self.granted)
        time.sleep(1.1)


USERS = {"alice@old.example": "source-pw-1", "bob@old.example": "source-pw-3"}


def start_token_source(identity: Identity, root: Path, *, google: bool = False) -> TokenSource:
    if not Path(DOVECOT).exists():
        pytest.skip("dovecot is not installed (the README test command installs dovecot-imapd)")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    tenant = identity.fake.add_tenant("old.example")
    app = identity.fake.add_app(tenant, mailboxes=set(USERS))
    granted = root / "granted"
    granted.write_text(identity.fake.granted_lines(tenant))
    granted.chmod(0o644)
    server = Dovecot(root / "imap", USERS, introspection_url=identity.fake.introspection_url.replace(
        "localhost", "127.0.0.1"), granted_file=None if google else granted).start()
    return TokenSource(server, identity, tenant, app, granted)


def app_certificate(serial: int = 1, key=None):  # noqa: ANN001, ANN201
    """A self-signed certificate for a Microsoft 365 app, as an admin makes one: (certificate
    PEM, private key PEM, the key), the key new unless given (a certificate re-issued for it)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "purelyops")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=9))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, key
