"""What the migration forms must not hand out: the bot token to a file URL that is not
Slack's, mailbox suggestions to someone who is not an admin, passwords from a bad CSV."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from bot.migrations import is_slack_file_url
from db.models import Mailbox, SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests.conftest import BOT_TOKEN, STANDIN, make_settings, wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import add_server, job_row, open_modal, queued, submit_migration
from tests.slack_requests import SlackDriver

VIEWER = "U0VIEWER1"
CSV = b"source_email,source_password,dest_email,dest_password\r\nann@old.example,pw-ann-1,ann@new.example,\r\n"


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=STANDIN,
                         viewer_user_ids=VIEWER)


@pytest.fixture(autouse=True)
def slack_accepts_everything(slack_fake: FakeSlack) -> Iterator[None]:
    yield
    assert [(c.method, c.error, c.errors) for c in slack_fake.rejected] == []


class Recorder(ThreadingHTTPServer):
    """Another web server on loopback: it serves a CSV to anyone and records the
    Authorization header of every request."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                recorder.seen.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(CSV)))
                self.end_headers()
                self.wfile.write(CSV)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True, name="recorder").start()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


def server_id(rt: Runtime) -> str:
    with session_scope(rt.database_url) as session:
        return str(session.scalars(select(SourceServer.id)).one())


def test_the_bot_token_goes_to_no_file_host_but_slacks(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                      recorder: Recorder) -> None:
    add_server(slack, slack_fake)
    upload = slack_fake.add_user_file("wave1.csv", CSV)
    for n, url in enumerate([f"{recorder.url}/files-pri/T1-F1/wave1.csv",
                             f"https://files.slack.com@127.0.0.1:{recorder.url.rsplit(':', 1)[1]}/wave1.csv"]):
        open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
        slack.view_submission("migrate_bulk", {"name": {"value": f"wave {n}"}, "server": {"value": server_id(rt)},
                                               "file": {"value": [dict(upload, url_private=url)]}})
        wait_until(lambda n=n: len([c for c in slack_fake.calls_to("chat.postEphemeral")
                                    if "not on Slack's file servers" in str(c.args.get("blocks"))]) == n + 1,
                   5, "the refusal")
    assert recorder.seen == []  # nothing fetched there, so no token either
    assert migrations.list_jobs(rt) == []
    import httpx

    assert httpx.get(recorder.url + "/x.csv").content == CSV  # it would have answered


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://files.slack.com/files-pri/T1-F1/a.csv", True),
    ("https://files.slack.com:443/files-pri/T1-F1/a.csv", True),
    ("http://files.slack.com/files-pri/T1-F1/a.csv", False),
    ("https://files.slack.com.evil.example/a.csv", False),
    ("https://evil.example/files.slack.com/a.csv", False),
    ("https://files.slack.com@evil.example/a.csv", False),
    ("https://x:y@files.slack.com/a.csv", False),
    ("https://files.slack.com:8443/a.csv", False),
    ("file:///etc/passwd", False),
    ("", False),
    ("https://[::1/a", False),
])
def test_slack_file_urls(rt: Runtime, url: str, allowed: bool) -> None:
    assert is_slack_file_url(rt, url) is allowed
    api = rt.settings.slack_api_url.rstrip("/").removesuffix("/api")
    assert is_slack_file_url(rt, api + "/files-pri/T1-F1/a.csv")  # the fake serves its files itself


def test_only_admins_get_mailbox_suggestions(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    with session_scope(rt.database_url) as session:
        session.add(Mailbox(address="alice@new.example", local_part="alice", domain="new.example"))
    add_server(slack, slack_fake)
    slack.command("migrate")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate")
    assert [o["value"] for o in slack.block_suggestion("dest_mailbox", "ali").json()["options"]] == \
        ["alice@new.example"]
    for user in (VIEWER, "U0STRANGER"):
        response = slack.block_suggestion("dest_mailbox", "ali", user_id=user)
        assert response.status_code == 200 and response.json()["options"] == []
        typed = slack.block_suggestion("dest_mailbox", "alice@new.example", user_id=user)
        assert typed.json()["options"] == []
    assert BOT_TOKEN not in slack_fake.all_text()


def test_new_credentials_are_stored_before_the_modal_closes(rt: Runtime, slack: SlackDriver,
                                                            slack_fake: FakeSlack) -> None:
    from sqlalchemy import update

    from db.models import MigrationJob

    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the queued message")
    job = job_row(rt)
    slack.command(f"job {job.id}")
    slack_fake.wait_for("response_url", lambda c: "Edit credentials" in str(c.args.get("blocks")))
    slack.block_action("migration_edit_credentials", value=str(job.id), message_ts=None)
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migration_credentials")
    response = slack.view_submission("migration_credentials", {"source_password": {"value": "new-source-pw"}})
    assert response.status_code == 200 and not response.content
    assert migrations.credentials(rt, job_row(rt))["source"] == "new-source-pw"  # already, as the modal closes

    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).values(status="running"))
    slack.block_action("migration_edit_credentials", value=str(job.id), message_ts=None)
    wait_until(lambda: [v for v in slack_fake.open_views() if v.view.get("callback_id") == "migration_credentials"],
               5, "the modal again")
    refused = slack.view_submission("migration_credentials", {"source_password": {"value": "other-pw"}})
    assert refused.json()["errors"] == {"source_password": f"Migration #{job.id} is running; cancel it first."}
    assert migrations.credentials(rt, job_row(rt))["source"] == "new-source-pw"
