"""A real migration: real imapsync (when it is on PATH), between two real Dovecot servers,
through the RQ worker, counting the messages that arrive."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from sqlalchemy import select

from bot.migration_messages import start
from db.models import SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.imapsync_output import ImapsyncOutput
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, ROOT, make_settings, process_env
from tests.imap_servers import Dovecot

IMAPSYNC = shutil.which("imapsync")
pytestmark = pytest.mark.skipif(IMAPSYNC is None, reason="imapsync is not on PATH (see the README to install it)")


def test_a_real_imapsync_moves_every_message(clean_state, database_url, redis_url, slack_fake, purelymail_fake,
                                             dovecot_pair: tuple[Dovecot, Dovecot]) -> None:
    source, dest = dovecot_pair
    source.append("alice@old.example", 250)
    source.append("alice@old.example", 50, folder="Archive")
    settings = make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC,
                             purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port, purelymail_imap_tls=False)
    rt = Runtime(settings)
    with session_scope(rt.database_url) as session:
        session.add(SourceServer(name="old", host="127.0.0.1", port=source.port, security="none", created_by=ADMIN))
    with session_scope(rt.database_url) as session:
        server_id = session.scalars(select(SourceServer.id)).one()
    spec = migrations.JobSpec(server_id, "alice@old.example", "source-pw-1", "alice@new.example", "dest-pw-2")
    job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id="C0OPS0001", idempotency_key="r")
    start(rt, job)
    env = process_env(settings, IMAPSYNC_BIN=IMAPSYNC, PURELYMAIL_IMAP_HOST="127.0.0.1",
                      PURELYMAIL_IMAP_PORT=str(dest.port), PURELYMAIL_IMAP_TLS="false")
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, env=env, timeout=120,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    done = migrations.get_job(rt, job.id)
    assert done.status == "done", (done.verdict, done.summary)
    assert dest.count("alice@new.example") == 300
    assert (done.msgs_done, done.summary["transferred"]) == (300, 300)
    log = next(f for f in slack_fake.uploaded_files if f.completed).content.decode()
    assert "source-pw-1" not in log and "dest-pw-2" not in log
    output = ImapsyncOutput()
    for line in log.splitlines():
        output.feed(line)
    assert output.summary().transferred == 300
