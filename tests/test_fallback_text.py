"""A message's `text` (what Slack notifies from) is escaped exactly like its blocks: a
folder named like a Slack mention and a link, copied by the real imapsync between real
Dovecots, reaches the migration's summary as words, never as `<!channel>` or a link."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.blocks import kit
from bot.migration_messages import start
from bot.mrkdwn import escape
from db.models import SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS
from tests.fakes.slack_fake import FakeSlack
from tests.imap_servers import DOVECOT, Dovecot
from tests.test_migration_plans import IMAPSYNC, burst, new_job, settings_for

pytestmark = [pytest.mark.skipif(IMAPSYNC is None, reason="imapsync is not on PATH (see the README to install it)"),
              pytest.mark.skipif(not os.path.exists(DOVECOT), reason="dovecot is not installed")]
# Dovecot's Maildir++ keeps '.' for its hierarchy and refuses '/': the rest of a link is there.
HOSTILE = "<!channel> <mailto:ceo@evil-example|Payroll> <http:evil-example|x>"
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "files.completeUploadExternal")


@pytest.fixture
def servers() -> Iterator[tuple[Dovecot, Dovecot]]:
    """A source whose one full folder has a hostile name, and a destination too small for it."""
    root = Path(tempfile.mkdtemp(prefix="purelyops-fallback-"))
    root.chmod(0o755)
    source = Dovecot(root / "source", {"alice@old.example": "source-pw-1"}).start()
    dest = Dovecot(root / "dest", {"alice@new.example": "dest-pw-2"}, quota_kib=16).start()
    source.append("alice@old.example", 60, folder=f'"{HOSTILE}"')
    assert source.folder_counts("alice@old.example").get(HOSTILE) == 60
    yield source, dest
    source.stop()
    dest.stop()
    shutil.rmtree(root, ignore_errors=True)


def message_texts(slack_fake: FakeSlack) -> list[tuple[str, str]]:
    """(method, text) of every message the bot posted, updated or uploaded with."""
    return [(c.method, str(c.args.get("text") or c.args.get("initial_comment") or ""))
            for c in slack_fake.calls if c.method in MESSAGE_METHODS]


def test_a_hostile_folder_name_is_escaped_in_every_text(clean_state, database_url, redis_url, slack_fake: FakeSlack,
                                                        purelymail_fake, servers) -> None:
    source, dest = servers
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest)
    rt = Runtime(settings)
    plan_id = new_job(rt, source.port, dry_run=True)
    burst(settings)
    assert migrations.get_job(rt, plan_id).status == "done"
    real_id = real_job(rt)  # then for real, into the mailbox that is too small
    burst(settings)
    row = migrations.get_job(rt, real_id)
    assert row.status == "incomplete" and HOSTILE in row.verdict  # the name is in the words the summary says
    texts = message_texts(slack_fake)
    assert any(escape(HOSTILE) in text for _, text in texts), texts  # it reached a text, escaped
    for method, text in texts:
        assert "<!channel>" not in text and "<mailto:" not in text and "<http:" not in text, (method, text)
    # Slack would notify or link from nothing the bot sent: not in a text, not in the blocks.
    assert slack_fake.live_markup == []


def real_job(rt: Runtime) -> int:
    with session_scope(rt.database_url) as session:
        server_id = session.scalars(select(SourceServer.id)).one()
    spec = migrations.JobSpec(server_id, "alice@old.example", "source-pw-1", "alice@new.example", "dest-pw-2",
                              dry_run=False)
    job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id=OPS, idempotency_key="r")
    start(rt, job)
    return job.id


def test_the_text_of_a_message_is_escaped_by_the_same_function_as_its_blocks() -> None:
    text, blocks = kit.said(f"Folder {HOSTILE} is short")
    assert text == blocks[0]["text"]["text"] == escape(f"Folder {HOSTILE} is short")
    text, _ = kit.message(f"Migration #1 failed: {HOSTILE}", [])
    assert text == kit.fallback(f"Migration #1 failed: {HOSTILE}") and "<" not in text
