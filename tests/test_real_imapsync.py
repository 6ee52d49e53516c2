"""A real migration: real imapsync (when it is on PATH), between two real Dovecot servers,
through the RQ worker, counting the messages that arrive."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.migration_messages import start
from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import imapsync, migrations
from purelyops.imapsync_output import ImapsyncOutput
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, ROOT, make_settings, process_env
from tests.imap_servers import Dovecot, TlsEndpoint

IMAPSYNC = shutil.which("imapsync")
pytestmark = pytest.mark.skipif(IMAPSYNC is None, reason="imapsync is not on PATH (see the README to install it)")


def migrate(settings, source_host: str, source_port: int, security: str) -> MigrationJob:
    """One job through a real RQ worker process and the real imapsync; the job as it ended."""
    rt = Runtime(settings)
    with session_scope(rt.database_url) as session:
        session.add(SourceServer(name="old", host=source_host, port=source_port, security=security, created_by=ADMIN))
    with session_scope(rt.database_url) as session:
        server_id = session.scalars(select(SourceServer.id)).one()
    spec = migrations.JobSpec(server_id, "alice@old.example", "source-pw-1", "alice@new.example", "dest-pw-2")
    job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id="C0OPS0001", idempotency_key="r")
    start(rt, job)
    env = process_env(settings, IMAPSYNC_BIN=IMAPSYNC)
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, env=env, timeout=120,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return migrations.get_job(rt, job.id)


def test_a_real_imapsync_moves_every_message(clean_state, database_url, redis_url, slack_fake, purelymail_fake,
                                             dovecot_pair: tuple[Dovecot, Dovecot]) -> None:
    source, dest = dovecot_pair
    source.append("alice@old.example", 250)
    source.append("alice@old.example", 50, folder="Archive")
    settings = make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC,
                             purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port,
                             purelymail_imap_tls=False)
    done = migrate(settings, "127.0.0.1", source.port, "none")
    assert done.status == "done", (done.verdict, done.summary)
    assert dest.count("alice@new.example") == 300
    assert (done.msgs_done, done.summary["transferred"]) == (300, 300)
    log = next(f for f in slack_fake.uploaded_files if f.completed).content.decode()
    assert "source-pw-1" not in log and "dest-pw-2" not in log
    output = ImapsyncOutput()
    for line in log.splitlines():
        output.feed(line)
    assert output.summary().transferred == 300


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted through IMAP_CA_FILE"])
def test_the_source_certificate_is_verified(clean_state, database_url, redis_url, slack_fake, purelymail_fake,
                                            dovecot_pair: tuple[Dovecot, Dovecot], imap_tls: TlsEndpoint,
                                            trusted: bool) -> None:
    """A source with a certificate from a private CA, over TLS and over STARTTLS: refused
    before anything is copied, unless IMAP_CA_FILE names that CA; then copied."""
    _, dest = dovecot_pair
    imap_tls.server.append("alice@old.example", 20)
    settings = make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC,
                             purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port,
                             purelymail_imap_tls=False, imap_ca_file=imap_tls.ca_file if trusted else "")
    done = migrate(settings, "localhost", imap_tls.port, imap_tls.security)
    if trusted:
        assert done.status == "done", (done.verdict, done.summary)
        assert dest.count("alice@new.example") == 20
    else:
        assert done.status == "failed"
        assert done.verdict.startswith("certificate not trusted: the certificate of the source server localhost: "
                                       "it was issued by a CA that is not trusted"), done.verdict
        assert dest.count("alice@new.example") == 0


@pytest.mark.parametrize(("ca", "name", "trusted"), [(False, "localhost", False), (True, "wrong.example", False),
                                                     (True, "localhost", True)],
                         ids=["no CA", "another host name", "trusted"])
def test_imapsync_itself_verifies_what_it_connects_to(dovecot_tls: Dovecot, tmp_path: Path, database_url, redis_url,
                                                      slack_fake, purelymail_fake, ca: bool, name: str,
                                                      trusted: bool) -> None:
    """The second line: imapsync's own arguments verify the certificate and the host name
    (imapsync 2.229 checks nothing by default), whatever the check before it said."""
    assert dovecot_tls.tls is not None
    settings = make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC,
                             imap_ca_file=str(dovecot_tls.tls.ca_file) if ca else "")
    source = imapsync.Endpoint("127.0.0.1", dovecot_tls.tls_port, "alice@old.example", "tls", name=name)
    dest = imapsync.Endpoint("127.0.0.1", dovecot_tls.port, "alice@old.example", "starttls", name="localhost")
    bundle = imapsync.ca_bundle(settings, str(tmp_path))
    process = imapsync.ImapsyncProcess(
        lambda p1, p2: imapsync.argv(settings, source, dest, (p1, p2), str(tmp_path), imapsync.Options(), bundle)
        + ["--justlogin"], ("source-pw-1", "source-pw-1"), str(tmp_path))
    output = ImapsyncOutput()
    while not process.ended:
        output.feed(process.next_line(0.2))
    summary = output.summary()
    if trusted:
        assert (process.returncode, summary.untrusted) == (0, None), summary.error_lines
    else:
        assert process.returncode == 101 and summary.untrusted == "1", summary.error_lines
