"""`server test` over TLS and STARTTLS against a real Dovecot: the certificate is verified
(the system's CAs plus IMAP_CA_FILE, for the server's host name), and a refusal says why."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from purelyops import servers
from purelyops.runtime import Runtime
from tests.conftest import BotServer, make_settings
from tests.fakes.dns_server import FakeDNS
from tests.fakes.slack_fake import FakeSlack
from tests.imap_servers import DOVECOT, Dovecot, TlsEndpoint, make_certificates
from tests.migration_steps import submit_server, try_login
from tests.slack_requests import SlackDriver


@pytest.fixture
def driver(slack_fake: FakeSlack) -> Iterator:
    """A bot built from the given settings, and a SlackDriver for it."""
    from tests.conftest import ADMIN, OPS, SIGNING_SECRET

    started: list[BotServer] = []

    def make(settings) -> SlackDriver:
        bot = BotServer(Runtime(settings))
        started.append(bot)
        return SlackDriver(bot.url + "/slack/events", SIGNING_SECRET, slack_fake, user_id=ADMIN, channel_id=OPS)

    yield make
    for bot in started:
        bot.close()


def test_an_untrusted_certificate_is_refused_in_words(slack: SlackDriver, slack_fake: FakeSlack,
                                                      imap_tls: TlsEndpoint) -> None:
    submit_server(slack, slack_fake, imap_tls.host, imap_tls.port, imap_tls.security)
    slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))
    words = try_login(slack, slack_fake, "oldhost", ":x:", password=imap_tls.password)
    assert words == (f":x: the certificate of 127.0.0.1:{imap_tls.port} is not trusted: it was issued by a CA that "
                     "is not trusted (a private CA?). If it is your own CA's, put that CA in IMAP_CA_FILE.")
    assert imap_tls.password not in slack_fake.all_text()


def test_a_certificate_trusted_through_imap_ca_file_logs_in(database_url, redis_url, slack_fake: FakeSlack,
                                                            purelymail_fake, clean_state, driver,
                                                            imap_tls: TlsEndpoint) -> None:
    slack = driver(make_settings(database_url, redis_url, slack_fake, purelymail_fake, imap_ca_file=imap_tls.ca_file))
    submit_server(slack, slack_fake, imap_tls.host, imap_tls.port, imap_tls.security)
    slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))
    words = try_login(slack, slack_fake, "oldhost", "logged in", password=imap_tls.password)
    assert words == f":white_check_mark: alice@old.example logged in to 127.0.0.1:{imap_tls.port}"
    assert try_login(slack, slack_fake, "oldhost", "refused the login", password="wrong-password").startswith(":x:")


def test_a_certificate_for_another_name_is_refused(database_url, redis_url, slack_fake: FakeSlack, purelymail_fake,
                                                   clean_state, dovecot_tls: Dovecot) -> None:
    assert dovecot_tls.tls is not None
    with FakeDNS() as dns:
        dns.add_zone("old.example")
        dns.set("imap.old.example", "A", ["127.0.0.1"])
        rt = Runtime(make_settings(database_url, redis_url, slack_fake, purelymail_fake, dns_resolver=dns.spec,
                                   imap_ca_file=str(dovecot_tls.tls.ca_file)))
        for port, security in ((dovecot_tls.tls_port, "tls"), (dovecot_tls.port, "starttls")):
            ok, words = servers.test_login(rt, "imap.old.example", port, security, "alice@old.example", "source-pw-1")
            assert not ok
            assert words == (f"the certificate of imap.old.example:{port} is not trusted: it is for another host "
                             "name, not imap.old.example. If it is your own CA's, put that CA in IMAP_CA_FILE.")


@pytest.mark.parametrize(("kind", "reason"), [("expired", "it has expired"), ("self_signed", "it is self-signed")])
def test_expired_and_self_signed_certificates_are_named(settings, kind: str, reason: str) -> None:
    if not Path(DOVECOT).exists():
        pytest.skip("dovecot is not installed")
    root = Path(tempfile.mkdtemp(prefix="purelyops-dovecot-cert-"))
    root.chmod(0o755)
    certificates = make_certificates(root / "certs", **{kind: True})
    server = Dovecot(root / "imap", {"alice@old.example": "source-pw-1"}, tls=certificates).start()
    # the expired one's CA is trusted, so that the expiry is what fails
    rt = Runtime(settings.model_copy(update={"imap_ca_file": str(certificates.ca_file) if kind == "expired" else ""}))
    try:
        ok, words = servers.test_login(rt, "127.0.0.1", server.tls_port, "tls", "alice@old.example", "source-pw-1")
        assert not ok and words.startswith(f"the certificate of 127.0.0.1:{server.tls_port} is not trusted: {reason}.")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_wrong_security_setting_is_told(rt: Runtime, dovecot_tls: Dovecot) -> None:
    ok, words = servers.test_login(rt, "127.0.0.1", dovecot_tls.tls_port, "starttls", "a@old.example", "x", timeout=3)
    assert not ok and "did not answer within 3 s" in words  # a TLS port waits for a handshake, silent
    ok, words = servers.test_login(rt, "127.0.0.1", dovecot_tls.port, "tls", "a@old.example", "x", timeout=3)
    assert not ok and words.startswith(f"the TLS handshake with 127.0.0.1:{dovecot_tls.port} failed")
