"""One canary run through everything that handles a secret: a mailbox created with a
generated password, a password reset to a typed one, and a migration with typed source and
destination passwords. Then every sink is searched: command lines while imapsync runs, the
bot's and the worker's logs at DEBUG, every Slack call (messages and uploaded files),
every Redis key and value, and a plain-text dump of the database. The only place a
canary may appear is the one ephemeral message that shows the generated password."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from purelyops import domains, migrations
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, ROOT, STANDIN, process_env, wait_until
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import add_server, command_lines_while, job_row, queued, submit_migration
from tests.oauth_steps import identity  # noqa: F401 - a fixture
from tests.slack_requests import SlackDriver

RESET = "canary-reset-Qw7!$(id)"
SOURCE = "canary-source-Lp3`x`"
DEST = "canary-dest-Mn9\"'"


@pytest.fixture
def settings(standin_settings, request: pytest.FixtureRequest):
    if "identity" in request.fixturenames:  # the OAuth canary: the token endpoints are the fakes
        ident = request.getfixturevalue("identity")
        return standin_settings.model_copy(update=ident.settings())
    return standin_settings


def test_no_secret_reaches_any_sink(rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack,
                                    purelymail_fake: FakePurelyMail, caplog: pytest.LogCaptureFixture,
                                    database_url: str, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    purelymail_fake.add_domain_direct("example.com")
    domains.sync_from_purelymail(rt)

    slack.command("mailbox add")
    slack_fake.wait_for("views.open")
    slack.view_submission("user_add", {"domain": {"value": "example.com"}, "local_part": {"value": "carol"}})
    shown = slack_fake.wait_for("chat.postEphemeral", lambda c: "shown only here" in c.args.get("text", ""))
    generated = purelymail_fake.users["carol@example.com"].password

    slack.command("mailbox show carol@example.com")
    slack_fake.wait_for("response_url", lambda c: "Reset password" in str(c.args.get("blocks")))
    slack.block_action("user_reset_password", value="carol@example.com")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "user_reset_password")
    slack.view_submission("user_reset_password", {"password_mode": {"value": "typed"}, "password": {"value": RESET}})
    slack_fake.wait_for("chat.postEphemeral", lambda c: "with the password you typed" in c.args.get("text", ""))
    assert purelymail_fake.users["carol@example.com"].password == RESET

    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt, source_password={"value": SOURCE}, dest_password={"value": DEST})
    wait_until(lambda: queued(rt), 5, "the migration")
    cmdlines, worker_log = run_worker_watching(settings)
    assert job_row(rt).status == "done", worker_log

    found = sinks(rt, database_url, slack_fake, cmdlines, [caplog.text, worker_log], but=shown)
    assert leaks({secret: secret for secret in (generated, RESET, SOURCE, DEST)}, found) == set()
    assert generated in str(shown.args) and shown.args["user"] == ADMIN  # the one place it may be
    assert migrations.get_job(rt, job_row(rt).id).ciphertext is not None  # encrypted, kept for a Sync again


OAUTH_SECRET = "Sx8Q~canary-client-secret-Vb7$(id)"


def test_no_token_or_key_reaches_any_sink(rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack,
                                          caplog: pytest.LogCaptureFixture, database_url: str,
                                          identity) -> None:  # noqa: F811
    """A Microsoft 365 app's client secret, another's certificate and private key, and a Google
    service account's key go in through `server add`; `server test` and a migration get tokens
    for them. None of the secret, the keys or any token issued is in a command line, a log,
    Slack, Redis or the database."""
    import json
    import shutil
    import tempfile

    from tests.oauth_steps import USERS, app_certificate, start_token_source

    caplog.set_level(logging.DEBUG)
    root = Path(tempfile.mkdtemp(prefix="purelyops-canary-oauth-"))
    root.chmod(0o755)
    source = start_token_source(identity, root / "source")
    try:
        source.app.secret = OAUTH_SECRET
        info = identity.fake.add_service_account()
        cert_pem, key_pem, _ = app_certificate()
        certified = identity.fake.add_app(source.tenant, certificate_pem=cert_pem, mailboxes=set(USERS))
        identity.fake.add_workspace_user("alice@old.example")
        for name, fields in (("m365", {"auth": {"value": "microsoft365_app"},
                                       "tenant_id": {"value": source.tenant.tenant_id},
                                       "client_id": {"value": source.app.client_id},
                                       "client_secret": {"value": OAUTH_SECRET}}),
                             ("m365cert", {"auth": {"value": "microsoft365_app"},
                                           "tenant_id": {"value": source.tenant.tenant_id},
                                           "client_id": {"value": certified.client_id},
                                           "certificate": {"value": (cert_pem + key_pem).decode()}}),
                             ("gws", {"auth": {"value": "google_workspace"},
                                      "service_account_key": {"value": json.dumps(info)}})):
            slack.command("server add")
            slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "server_add")
            slack.view_submission("server_add", {"name": {"value": name}, "host": {"value": "127.0.0.1"},
                                                 "port": {"value": str(source.server.port)},
                                                 "security": {"value": "none"}, **fields})
            slack_fake.wait_for("chat.postEphemeral",
                                lambda c, n=name: f"Source server *{n}*" in c.args.get("text", ""))
            slack.command(f"server test {name} alice@old.example")
            slack_fake.wait_for("response_url", lambda c: "logged in" in str(c.args.get("text", "")), timeout=20)
        slack.command("migrate")
        slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate")
        slack.view_submission("migrate", {
            "server": {"value": str(job_server_id(rt, "m365"))}, "source_email": {"value": "alice@old.example"},
            "source_password": {"value": ""}, "dest_email": {"dest_mailbox": "alice@new.example"},
            "dest_mode": {"value": "password"}, "dest_password": {"value": DEST}})
        wait_until(lambda: queued(rt), 5, "the migration")
        cmdlines, worker_log = run_worker_watching(settings, **identity.env())
        assert job_row(rt).status == "done", worker_log
    finally:
        source.server.stop()
        shutil.rmtree(root, ignore_errors=True)
    tokens = list(identity.fake.issued)
    assert len(tokens) >= 4  # three `server test`s and the run
    found = sinks(rt, database_url, slack_fake, cmdlines, [caplog.text, worker_log])
    key_line = info["private_key"].splitlines()[5]  # a line of the PEM's body
    canaries = {"client secret": OAUTH_SECRET, "private key": key_line,
                "certificate's private key": key_pem.decode().splitlines()[5],
                **{f"token {n}": token for n, token in enumerate(tokens)}}
    assert leaks(canaries, found) == set()


def sinks(rt: Runtime, database_url: str, slack_fake: FakeSlack, cmdlines: list[str], logs: list[str],
          but: object = None) -> dict[str, list[str]]:
    """Every place a secret could end up, as texts: command lines and environments, logs, what
    reached Slack (but the one call `but`, where a secret may be), its files, Redis, every row."""
    found: dict[str, list[str]] = {
        "command lines and environments": cmdlines,
        "logs": logs,
        "Slack": [str(c.args) for c in slack_fake.calls if c is not but],
        "uploaded files": [(f.content or b"").decode("utf-8", "replace") for f in slack_fake.uploaded_files],
        "Redis": [f"{k!r} {rt.redis.dump(k)!r}" for k in rt.redis.scan_iter()],
    }
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        found["database"] = [str(row) for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'")
            for row in conn.execute(f'SELECT * FROM "{table}"')]
    return found


def leaks(canaries: dict[str, str], found: dict[str, list[str]]) -> set[tuple[str, str]]:
    """(what, where) for each canary that is in a sink."""
    return {(what, sink) for what, secret in canaries.items() for sink, texts in found.items()
            if any(secret in text for text in texts)}


def run_worker_watching(settings, **env: str) -> tuple[list[str], str]:
    """A worker process runs the queued migration (the stand-in, fixture 01) while every
    process's command line and environment are read, again and again: (those, its log)."""
    worker = subprocess.Popen([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, text=True,
                              env=process_env(settings, IMAPSYNC_BIN=STANDIN, LOG_LEVEL="DEBUG",
                                              IMAPSYNC_STANDIN_FIXTURE="01", IMAPSYNC_STANDIN_PACE="0.002", **env),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cmdlines = command_lines_while(worker, environments=True)
    worker_log = worker.stdout.read()
    assert worker.returncode == 0, worker_log
    return cmdlines, worker_log


def job_server_id(rt: Runtime, name: str) -> int:
    from purelyops import servers

    return servers.get_server(rt, name).id
