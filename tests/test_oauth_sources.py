"""Source servers that sign in with a Microsoft 365 app or a Google Workspace service account,
driven as an admin would in Slack: `server add` with the app's secret, `server test <name>
<mailbox>`, migrations without anyone's password (real imapsync with --oauthaccesstoken1
against a Dovecot that checks every token with the fake identity platform), runs longer than
a token lives, and `migrate bulk` of every mailbox of a domain of the tenant."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests.conftest import ROOT, make_settings, process_env, wait_until
from tests.fakes.oauth_fake import GMAIL
from tests.fakes.slack_fake import FakeSlack
from tests.imap_servers import Dovecot
from tests.migration_steps import open_modal
from tests.oauth_steps import Identity, TokenSource, identity, start_token_source  # noqa: F401 - a fixture
from tests.slack_requests import SlackDriver

IMAPSYNC = shutil.which("imapsync")
needs_imapsync = pytest.mark.skipif(IMAPSYNC is None, reason="imapsync is not on PATH (see the README to install it)")


@pytest.fixture
def source(identity: Identity) -> Iterator[TokenSource]:  # noqa: F811
    root = Path(tempfile.mkdtemp(prefix="purelyops-token-source-"))
    root.chmod(0o755)  # Dovecot's own users read its files
    token_source = start_token_source(identity, root / "source")
    yield token_source
    token_source.server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dest() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="purelyops-token-dest-"))
    root.chmod(0o755)
    server = Dovecot(root / "dest", {f"{u}@new.example": "dest-pw-2" for u in ("alice", "bob")}).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, identity: Identity,  # noqa: F811
             dest: Dovecot):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC or "imapsync",
                         purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port, purelymail_imap_tls=False,
                         migration_progress_interval=0.5, migration_retry_delays="", **identity.settings())


def add_app_server(slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, secret: str | None = None,
                   name: str = "m365") -> str:
    open_modal(slack, slack_fake, "server add", "server_add")
    slack.view_submission("server_add", {
        "name": {"value": name}, "host": {"value": "127.0.0.1"}, "port": {"value": str(source.server.port)},
        "security": {"value": "none"}, "auth": {"value": "microsoft365_app"},
        "tenant_id": {"value": source.tenant.tenant_id}, "client_id": {"value": source.app.client_id},
        "client_secret": {"value": secret or source.app.secret}})
    return slack_fake.wait_for("chat.postEphemeral", lambda c: f"Source server *{name}*" in c.args.get("text", "")
                               ).args["text"]


def answer(slack: SlackDriver, slack_fake: FakeSlack, command: str, *words: str) -> str:
    before = len(slack_fake.calls)
    slack.command(command)
    try:
        return wait_until(lambda: next((str(c.args.get("text")) for c in slack_fake.calls[before:]
                                        if any(w in str(c.args.get("text", "")) for w in words)), None), 20, command)
    except AssertionError:
        raise AssertionError(f"{command}: {[c.args.get('text') for c in slack_fake.calls[before:]]}") from None


def test_server_add_keeps_the_app_encrypted_and_server_test_signs_in(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, database_url: str) -> None:
    said = add_app_server(slack, slack_fake, source)
    assert "signs in with a Microsoft 365 app" in said and "server test m365 <mailbox>" in said
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        dump = str(list(conn.execute("SELECT * FROM source_servers"))) + str(list(conn.execute("SELECT * FROM "
                                                                                                "audit_log")))
    assert source.app.secret not in dump and "microsoft365_app" in dump

    ok = answer(slack, slack_fake, "server test m365 alice@old.example", ":white_check_mark:", ":x:")
    assert ok.startswith(":white_check_mark:") and "alice@old.example logged in" in ok

    source.grant("bob@old.example")  # alice's FullAccess was taken away
    refused = answer(slack, slack_fake, "server test m365 alice@old.example", ":x:")
    assert "AUTHENTICATE failed" in refused and "Add-MailboxPermission" in refused

    add_app_server(slack, slack_fake, source, secret="not-the-secret", name="wrong")
    wrong = answer(slack, slack_fake, "server test wrong alice@old.example", ":x:")
    assert "client secret is wrong (AADSTS7000215)" in wrong

    source.app.consented = False
    revoked = answer(slack, slack_fake, "server test m365 bob@old.example", ":x:")
    assert "never consented there (AADSTS700016)" in revoked

    answer(slack, slack_fake, "server remove m365", "removed")
    with session_scope(rt.database_url) as session:
        assert [s.name for s in session.scalars(select(SourceServer))] == ["wrong"]


def test_a_google_workspace_signs_in_for_each_mailbox(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                             identity: Identity) -> None:  # noqa: F811
    root = Path(tempfile.mkdtemp(prefix="purelyops-google-source-"))
    root.chmod(0o755)
    google = start_token_source(identity, root / "google", google=True)
    try:
        info = identity.fake.add_service_account(delegated=())
        identity.fake.add_workspace_user("alice@old.example")
        open_modal(slack, slack_fake, "server add", "server_add")
        slack.view_submission("server_add", {
            "name": {"value": "gws"}, "host": {"value": "127.0.0.1"}, "port": {"value": str(google.server.port)},
            "security": {"value": "none"}, "auth": {"value": "google_workspace"},
            "service_account_key": {"value": json.dumps(info)}})
        slack_fake.wait_for("chat.postEphemeral", lambda c: "Source server *gws*" in c.args.get("text", ""))
        refused = answer(slack, slack_fake, "server test gws alice@old.example", ":x:")
        assert "domain-wide delegation is not granted" in refused and "unauthorized_client" in refused
        identity.fake.service_accounts[info["client_email"]].delegated = {GMAIL}
        unknown = answer(slack, slack_fake, "server test gws nobody@old.example", ":x:")
        assert "there is no user nobody@old.example" in unknown
        ok = answer(slack, slack_fake, "server test gws alice@old.example", ":white_check_mark:")
        assert "alice@old.example logged in" in ok
    finally:
        google.server.stop()
        shutil.rmtree(root, ignore_errors=True)


def submit_migration(slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime, source_email: str = "alice@old.example",
                     dest_email: str = "alice@new.example", *, dry_run: bool = False) -> MigrationJob:
    open_modal(slack, slack_fake, "migrate", "migrate")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id).where(SourceServer.name == "m365")).one())
    response = slack.view_submission("migrate", {
        "server": {"value": server_id}, "source_email": {"value": source_email}, "source_password": {"value": ""},
        "dest_email": {"dest_mailbox": dest_email}, "dest_mode": {"value": "password"},
        "dest_password": {"value": "dest-pw-2"}, **({"options": {"value": ["dry"]}} if dry_run else {})})
    assert response.status_code == 200 and not response.content, response.content  # no inline error
    job = wait_until(lambda: next(iter(migrations.list_jobs(rt)), None), 10, "the job")
    assert job.source_auth == "microsoft365_app"
    return job


def run_worker(settings, identity: Identity, timeout: float = 120, **env: str) -> str:  # noqa: F811
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=timeout,
                            env=process_env(settings, **{"IMAPSYNC_BIN": IMAPSYNC or "imapsync", **identity.env(),
                                                         **env}),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@needs_imapsync
def test_a_migration_from_an_app_server_asks_no_password_and_copies_everything(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
        identity: Identity) -> None:  # noqa: F811
    source.server.append("alice@old.example", 120)
    source.server.append("alice@old.example", 30, folder="Archive")
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt)
    run_worker(settings, identity)
    done = migrations.get_job(rt, job.id)
    assert done.status == "done", (done.verdict, (done.summary or {}).get("error_lines"))
    assert dest.count("alice@new.example") == 150 and done.attempts == 1
    log = next(f for f in slack_fake.uploaded_files if f.completed).content.decode()
    assert "XOAUTH2" in log
    assert not [t for t in identity.fake.issued if t in log] and source.app.secret not in log


def fill_maildir(server: Dovecot, user: str, count: int) -> None:
    """`count` messages written straight into the user's maildir (Dovecot finds them on its
    next look): far quicker than APPENDing thousands."""
    new = server.root / "mail" / user / "new"
    for sub in ("new", "cur", "tmp"):
        (new.parent / sub).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        body = (f"From: sender@example.org\r\nTo: {user}\r\nSubject: Message {n}\r\n"
                f"Message-ID: <bulk-{n}@test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
                + f"Line {n}\r\n" * 40)
        (new / f"{1700000000 + n}.M{n}P1.test").write_text(body)
    for path in [new.parent.parent, new.parent, *(new.parent / s for s in ("new", "cur", "tmp")), *new.iterdir()]:
        os.chown(path, server.uid, server.gid)


TOTAL = 6000


def cut_sessions_when(server: Dovecot, ready, within: float, cuts: list[float]) -> threading.Thread:  # noqa: ANN001
    """Once `ready()` holds (asked each half second, for at most `within` seconds), kill the
    IMAP session processes of `server` (children of the Dovecot this test started): the
    connection is cut as a network would cut it. `cuts` gets the time.time() of each kill;
    it stays empty if `ready()` never held."""
    def run() -> None:
        deadline = time.monotonic() + within
        while not ready():
            if time.monotonic() > deadline:
                return
            time.sleep(0.5)
        assert server.process is not None
        for pid in sessions(server.process.pid):
            os.kill(pid, signal.SIGKILL)
            cuts.append(time.time())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def arrived(dest: Dovecot, user: str) -> int:
    try:
        return dest.count(user)
    except Exception:  # noqa: BLE001 - the mailbox may not exist yet
        return 0


def sessions(master: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            name = cmdline.split(b"\x00")[0]
            if int(stat.rsplit(")", 1)[1].split()[1]) == master and name.startswith(b"dovecot/imap") \
                    and not name.startswith(b"dovecot/imap-login"):
                found.append(int(entry))
    return found


@needs_imapsync
@pytest.mark.timeout(600)
def test_a_run_outlives_its_tokens_and_a_cut_connection(rt: Runtime, settings, slack: SlackDriver,
                                                         slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
                                                         identity: Identity) -> None:  # noqa: F811
    identity.fake.token_lifetime = 30
    fill_maildir(source.server, "alice@old.example", TOTAL)
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt)
    cuts: list[float] = []
    started = time.time()
    cutter = cut_sessions_when(source.server, lambda: arrived(dest, "alice@new.example") >= TOTAL // 2, 400, cuts)
    log = run_worker(settings, identity, timeout=540)
    cutter.join(1)
    done = migrations.get_job(rt, job.id)
    took = time.time() - started
    assert done.status == "done", (done.verdict, (done.summary or {}).get("error_lines"), log[-3000:])
    assert dest.count("alice@new.example") == TOTAL  # every message, once
    assert done.attempts == 1 and done.retries == 0  # one run to the admin
    assert took > identity.fake.token_lifetime, took  # no one token lived as long as the run
    assert "goes on with a fresh token (before the token expired)" in log
    assert cuts and cuts[0] - started < took  # the cut came while it ran
    assert done.msgs_done == TOTAL == done.msgs_total  # one progress bar, to its end
    tokens = [t for t, i in identity.fake.issued.items() if i.scope.startswith("https://outlook")]
    assert len(tokens) >= 3


@needs_imapsync
@pytest.mark.parametrize("case", ["revoked app", "no mailbox permission"])
def test_a_refused_app_ends_in_words_and_is_not_retried(rt: Runtime, settings, slack: SlackDriver,
                                                        slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
                                                        identity: Identity, case: str) -> None:  # noqa: F811
    source.server.append("alice@old.example", 5)
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt)
    if case == "revoked app":
        source.app.consented = False
    else:
        source.grant("bob@old.example")
    run_worker(settings, identity)
    ended = migrations.get_job(rt, job.id)
    assert ended.status == "failed" and ended.retries == 0 and ended.retry_at is None
    words = "never consented there (AADSTS700016)" if case == "revoked app" else "AUTHENTICATE failed"
    assert words in ended.verdict
    assert dest.count("alice@new.example") == 0


def test_every_mailbox_of_a_domain_of_the_tenant_after_the_plan_is_confirmed(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, identity: Identity) -> None:  # noqa: F811
    tenant = identity.fake.add_tenant("new.example")
    app = identity.fake.add_app(tenant)
    for n in range(250):
        tenant.users.append({"id": f"id-{n}", "displayName": f"User {n}", "mail": f"user{n:03}@new.example",
                             "userPrincipalName": f"user{n:03}@new.example", "accountEnabled": True})
    tenant.users += [{"id": "s1", "displayName": "Sales", "mail": "sales@new.example",
                      "userPrincipalName": "sales@new.example", "accountEnabled": False},
                     {"id": "r1", "displayName": "Robot", "mail": None, "userPrincipalName": "robot@new.example",
                      "accountEnabled": True}]
    source.tenant, source.app = tenant, app
    add_app_server(slack, slack_fake, source)
    open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    slack.view_submission("migrate_bulk", {"name": {"value": "new wave"}, "server": {"value": server_id},
                                           "tenant_domain": {"value": "new.example"},
                                           "dest_domain": {"value": "example.com"}})
    plan = slack_fake.wait_for("chat.postEphemeral", lambda c: "Plan: 250 mailbox(es)" in c.args.get("text", ""),
                               timeout=20)
    shown = str(plan.args["blocks"])
    assert "user000@new.example → user000@example.com" in shown and "sales@new.example" in shown
    assert "1 disabled account(s) or shared mailbox(es)" in shown and "robot@new.example" in shown
    pages = [p for m, p in identity.fake.requests if p.startswith("/v1.0/users")]
    assert len(pages) == 3
    assert migrations.list_jobs(rt) == []  # nothing before the admin confirms
    button = next(e for b in plan.args["blocks"] if b["type"] == "actions" for e in b["elements"])
    slack.block_action("migrate_tenant_confirm", value=button["value"])
    wait_until(lambda: len(migrations.list_jobs(rt, limit=None)) == 250, 20, "250 jobs")
    jobs = migrations.list_jobs(rt, limit=None)
    assert {j.dest_email for j in jobs} == {f"user{n:03}@example.com" for n in range(250)}
    assert all(j.dry_run and j.source_auth == "microsoft365_app" and j.batch_id == jobs[0].batch_id for j in jobs)
    slack.block_action("migrate_tenant_confirm", value=button["value"])  # a second click makes no second batch
    slack_fake.wait_for("response_url", lambda c: "already created" in str(c.args.get("text")))
    assert len(migrations.list_jobs(rt, limit=None)) == 250


def test_the_tenant_is_listed_after_the_ack(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                            source: TokenSource, identity: Identity) -> None:  # noqa: F811
    """Every answer of the identity platform and Graph takes 2 s: the form is answered (and
    closed) at once, and the plan comes when the listing is done."""
    source.tenant.users.append({"id": "a", "displayName": "Alice", "mail": "alice@old.example",
                                "userPrincipalName": "alice@old.example", "accountEnabled": True})
    add_app_server(slack, slack_fake, source)
    open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    identity.fake.hang = 2
    started = time.monotonic()
    response = slack.view_submission("migrate_bulk", {"name": {"value": "wave"}, "server": {"value": server_id},
                                                      "tenant_domain": {"value": "old.example"},
                                                      "dest_domain": {"value": "example.com"}})
    assert response.status_code == 200 and not response.content
    assert time.monotonic() - started < 1.5
    slack_fake.wait_for("chat.postEphemeral", lambda c: "Plan: 1 mailbox(es)" in c.args.get("text", ""), timeout=30)
    assert time.monotonic() - started > 4  # the listing (token, then Graph) took its time after the ack


def test_a_tenant_listing_for_a_server_removed_meanwhile_is_refused_on_its_field(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, identity: Identity) -> None:  # noqa: F811
    add_app_server(slack, slack_fake, source)
    open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    answer(slack, slack_fake, "server remove m365", "removed")
    response = slack.view_submission("migrate_bulk", {"name": {"value": "wave"}, "server": {"value": server_id},
                                                      "tenant_domain": {"value": "old.example"}})
    assert "was removed" in response.json()["errors"]["server"]
    assert not [r for r in identity.fake.requests if r[1].startswith("/v1.0/users")]


def test_a_csv_and_a_credential_link_need_no_source_password(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                              source: TokenSource) -> None:
    add_app_server(slack, slack_fake, source)
    open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    csv = "source_email,source_password,dest_email,dest_password\nalice@old.example,,alice@new.example,\n" \
          "bob@old.example,,bob@new.example,\n"
    slack.view_submission("migrate_bulk", {"name": {"value": "csv wave"}, "server": {"value": server_id},
                                           "pasted": {"value": csv}})
    wait_until(lambda: len(migrations.list_jobs(rt)) == 2, 10, "two jobs")
    from purelyops import gather

    with pytest.raises(gather.GatherError, match="nothing to gather"):
        gather.create_link(rt.__class__(rt.settings.model_copy(update={"public_url": "https://ops.example"})),
                           int(server_id), 7, "m365 people", actor_id="U0ADMIN01", actor_name="",
                           channel_id="C0OPS0001", idempotency_key="g1", dest_domains=["new.example"])


def test_the_forms_say_what_a_token_server_needs(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                 source: TokenSource) -> None:
    add_app_server(slack, slack_fake, source)
    usage = answer(slack, slack_fake, "server test m365", "name the mailbox")
    assert "server test m365 alice@old.example" in usage
    open_modal(slack, slack_fake, "migrate", "migrate")
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    response = slack.view_submission("migrate", {
        "server": {"value": server_id}, "source_email": {"value": "alice@old.example"},
        "source_password": {"value": "someones-password"}, "dest_email": {"dest_mailbox": "alice@new.example"},
        "dest_mode": {"value": "app"}})
    errors = response.json()["errors"]
    assert "no mailbox's password is needed" in errors["source_password"]
    assert migrations.list_jobs(rt) == []


@needs_imapsync
def test_a_migration_with_a_google_service_account_copies_everything(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, identity: Identity,  # noqa: F811
        dest: Dovecot) -> None:
    root = Path(tempfile.mkdtemp(prefix="purelyops-google-source-"))
    root.chmod(0o755)
    google = start_token_source(identity, root / "google", google=True)
    try:
        google.server.append("alice@old.example", 40)
        info = identity.fake.add_service_account()
        identity.fake.add_workspace_user("alice@old.example")
        open_modal(slack, slack_fake, "server add", "server_add")
        slack.view_submission("server_add", {
            "name": {"value": "m365"}, "host": {"value": "127.0.0.1"}, "port": {"value": str(google.server.port)},
            "security": {"value": "none"}, "auth": {"value": "google_workspace"},
            "service_account_key": {"value": json.dumps(info)}})
        slack_fake.wait_for("chat.postEphemeral", lambda c: "Source server *m365*" in c.args.get("text", ""))
        open_modal(slack, slack_fake, "migrate", "migrate")
        with session_scope(rt.database_url) as session:
            server_id = str(session.scalars(select(SourceServer.id)).one())
        slack.view_submission("migrate", {
            "server": {"value": server_id}, "source_email": {"value": "alice@old.example"},
            "source_password": {"value": ""}, "dest_email": {"dest_mailbox": "alice@new.example"},
            "dest_mode": {"value": "password"}, "dest_password": {"value": "dest-pw-2"}})
        job = wait_until(lambda: next(iter(migrations.list_jobs(rt)), None), 10, "the job")
        run_worker(settings, identity)
        done = migrations.get_job(rt, job.id)
        assert done.status == "done", (done.verdict, (done.summary or {}).get("error_lines"))
        assert dest.count("alice@new.example") == 40
        subjects = {i.subject for i in identity.fake.issued.values()}
        assert subjects == {"alice@old.example"}  # every token was for the mailbox itself (sub)
    finally:
        google.server.stop()
        shutil.rmtree(root, ignore_errors=True)


@needs_imapsync
@pytest.mark.timeout(240)
def test_a_reconnect_refused_for_a_dead_token_goes_on_with_a_fresh_one(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
        identity: Identity) -> None:  # noqa: F811
    """A token that stops working long before its stated expiry (so no renewal is due yet):
    the connection is cut, imapsync's reconnect with that token is refused and imapsync ends
    non-zero; the run goes on with a fresh token and a fresh imapsync, as one run."""
    total = 1500
    identity.fake.token_lifetime, identity.fake.stated_lifetime = 8, 3599
    fill_maildir(source.server, "alice@old.example", total)
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt)
    cuts: list[float] = []

    def first_token_dead_while_copying() -> bool:
        """The first IMAP token no longer works at the introspection endpoint (its stated
        expiry still far), and messages are still arriving: imapsync's reconnect will send it."""
        tokens = [i for i in list(identity.fake.issued.values()) if i.scope.startswith("https://outlook")]
        return bool(tokens) and time.time() > tokens[0].expires_at + 1 and \
            0 < arrived(dest, "alice@new.example") < total

    cutter = cut_sessions_when(source.server, first_token_dead_while_copying, 120, cuts)
    started = time.time()
    try:
        log = run_worker(settings, identity, timeout=100)
    except subprocess.TimeoutExpired as error:
        out = "".join(o.decode(errors="replace") if isinstance(o, bytes) else o for o in (error.stdout, error.stderr)
                      if o)
        raise AssertionError(f"cuts {[c - started for c in cuts]} arrived {dest.count('alice@new.example')} "
                             f"{out[-4000:]}") from None
    cutter.join(1)
    done = migrations.get_job(rt, job.id)
    assert cuts, "the copy ended before the first token stopped working: give it more messages"
    assert done.status == "done", (done.verdict, (done.summary or {}).get("error_lines"), log[-3000:])
    assert dest.count("alice@new.example") == total  # every message, once
    assert done.attempts == 1 and done.retries == 0 and done.retry_at is None  # one run, no retry
    assert done.msgs_done == total == done.msgs_total
    assert "after a reconnect was refused" in log
    imap = sorted((i for i in identity.fake.issued.values() if i.scope.startswith("https://outlook")),
                  key=lambda i: i.expires_at)
    assert len(imap) >= 2 and any(i.expires_at - identity.fake.token_lifetime > cuts[0] for i in imap)


@needs_imapsync
@pytest.mark.parametrize("away", [503, "connection refused"])
def test_a_token_service_that_is_away_is_retried_later(rt: Runtime, settings, slack: SlackDriver,
                                                       slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
                                                       identity: Identity, away) -> None:  # noqa: F811
    """The identity platform answers 503, or nothing listens at it, when the run starts: the
    job is not failed for good but retried after MIGRATION_RETRY_DELAYS, and once the service
    is back the next run copies everything."""
    source.server.append("alice@old.example", 7)
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt)
    retrying = settings.model_copy(update={"migration_retry_delays": "1,1,1"})
    env = {"MIGRATION_RETRY_DELAYS": "1,1,1"}
    if away == 503:
        identity.fake.down = 503
    else:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # a port of our own that nothing listens at
        port = closed.getsockname()[1]
        env.update(MICROSOFT_LOGIN_URL=f"https://localhost:{port}")
    run_worker(retrying, identity, **env)
    if away != 503:
        closed.close()
    waiting = migrations.get_job(rt, job.id)
    assert waiting.status == "queued" and waiting.retry_at is not None and waiting.retries == 1, waiting.verdict
    reason = "answered HTTP 503" if away == 503 else "could not be reached (connection refused)"
    assert reason in waiting.verdict and "Retrying by itself" in waiting.verdict, waiting.verdict
    assert dest.count("alice@new.example") == 0
    identity.fake.down = 0
    wait_until(lambda: migrations.get_job(rt, job.id).retry_at <= datetime.now(timezone.utc), 10, "the retry time")
    migrations.enqueue_waiting(rt)
    run_worker(retrying, identity, MIGRATION_RETRY_DELAYS="1,1,1")
    done = migrations.get_job(rt, job.id)
    assert done.status == "done", (done.verdict, (done.summary or {}).get("error_lines"))
    assert dest.count("alice@new.example") == 7 and done.attempts == 2


@needs_imapsync
@pytest.mark.timeout(200)
def test_a_dry_run_longer_than_a_token_lives_is_not_started_over_and_over(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
        identity: Identity) -> None:  # noqa: F811
    """A dry run copies nothing, so a fresh imapsync (with a fresh token) would only start it
    over from its beginning: it keeps the token it logged in with to its end."""
    identity.fake.token_lifetime = 8
    fill_maildir(source.server, "alice@old.example", TOTAL)
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt, dry_run=True)
    started = time.monotonic()
    log = run_worker(settings, identity, timeout=60)
    done = migrations.get_job(rt, job.id)
    assert done.status == "done" and done.dry_run, (done.verdict, log[-3000:])
    # past the moment a copy would have gone on with a fresh token (its life less 3 s)
    assert time.monotonic() - started > identity.fake.token_lifetime - 3, "the dry run ended before its renewal"
    assert "goes on with a fresh token" not in log
    assert dest.count("alice@new.example") == 0


@needs_imapsync
def test_fresh_tokens_that_each_copy_nothing_end_the_run_in_words_not_for_ever(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, source: TokenSource, dest: Dovecot,
        identity: Identity) -> None:  # noqa: F811
    """A source so slow (here: tokens so short) that every fresh imapsync is stopped for the
    next token before it copied a message: the run ends, saying so, rather than renewing for ever."""
    identity.fake.token_lifetime = 1
    source.server.append("alice@old.example", 20)
    add_app_server(slack, slack_fake, source)
    job = submit_migration(slack, slack_fake, rt)
    log = run_worker(settings, identity, timeout=90)
    ended = migrations.get_job(rt, job.id)
    assert ended.status == "failed", (ended.status, ended.verdict, log[-3000:])
    assert "copied nothing in 3 tokens' lives in a row" in ended.verdict
    assert log.count("goes on with a fresh token") == 2
