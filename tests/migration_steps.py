"""The steps migration tests take as a person would in Slack: add a source server, submit
the migrate modal, then read the job back. Shared by the migration and secrets tests."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from sqlalchemy import select

from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests.conftest import wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

SOURCE_PORT = 10143  # the stand-in's source server (conftest.standin_imap sets it)
CANARY_SOURCE = "canary-src-Zq8$(whoami)`id`\"'"
CANARY_DEST = "canary-dst-Xk3 🔑"


def add_server(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("server add")
    slack_fake.wait_for("views.open")
    slack.view_submission("server_add", {"name": {"value": "oldhost"}, "host": {"value": "127.0.0.1"},
                                         "port": {"value": str(SOURCE_PORT)}, "security": {"value": "none"}})
    slack_fake.wait_for("chat.postEphemeral", lambda c: "Source server *oldhost*" in c.args.get("text", ""))


def submit_migration(slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime, **values):
    slack.command("migrate")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    fields = {"server": {"value": server_id}, "source_email": {"value": "alice@old.example"},
              "source_password": {"value": CANARY_SOURCE}, "dest_email": {"dest_mailbox": "alice@new.example"},
              "dest_mode": {"value": "password"}, "dest_password": {"value": CANARY_DEST}}
    fields.update(values)
    response = slack.view_submission("migrate", fields)
    assert response.status_code == 200
    return response


def job_row(rt: Runtime) -> MigrationJob:
    with session_scope(rt.database_url) as session:
        job = session.scalars(select(MigrationJob)).one()
        session.expunge(job)
        return job


def queued(rt: Runtime) -> bool:
    """The job exists and its thread is posted (the submission is worked on after the ack)."""
    return bool(migrations.list_jobs(rt)) and bool(job_row(rt).thread_ts)


def open_modal(slack: SlackDriver, slack_fake: FakeSlack, command: str, callback: str) -> None:
    def opened() -> int:
        return len([c for c in slack_fake.calls_to("views.open") if c.args["view"]["callback_id"] == callback])

    before = opened()
    slack.command(command)
    wait_until(lambda: opened() > before and [v for v in slack_fake.open_views()
                                              if v.view.get("callback_id") == callback],
               5, f"the {callback} modal")


def submit_server(slack: SlackDriver, slack_fake: FakeSlack, host: str, port: int = 993, security: str = "tls",
                  name: str = "oldhost"):
    open_modal(slack, slack_fake, "server add", "server_add")
    return slack.view_submission("server_add", {"name": {"value": name}, "host": {"value": host},
                                                "port": {"value": str(port)}, "security": {"value": security}})


def try_login(slack: SlackDriver, slack_fake: FakeSlack, name: str, words: str, password: str = "pw-123456") -> str:
    """`server test <name>`, a login typed into its modal: the answer that contains `words`."""
    open_modal(slack, slack_fake, f"server test {name}", "server_test")
    slack.view_submission("server_test", {"address": {"value": "alice@old.example"}, "password": {"value": password}})
    return slack_fake.wait_for("chat.postEphemeral", lambda c: words in c.args.get("text", ""), timeout=15).args["text"]


def command_lines_while(process: subprocess.Popen, *, environments: bool = False,
                        every: float = 0.02) -> list[str]:
    """Every process's command line on this machine (and environment, if asked), read again
    and again while `process` runs."""
    seen: list[bytes] = []
    while process.poll() is None:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                for part in ("cmdline", "environ") if environments else ("cmdline",):
                    try:
                        seen.append(Path(f"/proc/{pid}/{part}").read_bytes())
                    except OSError:
                        pass
        time.sleep(every)
    return [text.decode("utf-8", "replace") for text in seen]
