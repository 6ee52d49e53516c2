"""Credential links from the admin's side, in Slack: `gather new` and its link (shown only
to the admin), each accepted submission announced in the link's thread, `gather list` and
`gather show`, Create jobs (mailboxes created, one batch of dry runs, passwords only to the
admin) on a real RQ worker, close, expiry and the purge; and the canary: no password and no
token in any log, channel message, Redis value or database row."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import psycopg
import pytest
from rq import Queue
from sqlalchemy import select, update

from db.models import AuditEntry, GatherLink, GatherSubmission, MigrationJob
from db.session import session_scope
from purelyops import crypto, domains, gather, mailboxes
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS, ROOT, SIGNING_SECRET, STANDIN, free_port, make_settings, process_env, wait_until
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.gather_steps import (
    LINK_URL,
    NEW_PEOPLE,
    PEOPLE,
    WebServer,
    add_old_server,
    answer,
    link_row,
    new_link,
    run_new_server,
    run_old_server,
    server_id,
    submission_rows,
)
from tests.migration_steps import open_modal
from tests.slack_requests import SlackDriver

old_server = pytest.fixture(run_old_server, name="old_server")
new_server = pytest.fixture(run_new_server, name="new_server")
VIEWER = "U0VIEWER1"


@pytest.fixture
def web_port() -> int:
    return free_port()


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, web_port, new_server):
    # PurelyMail's IMAP server is a local Dovecot here: the form proves a new mailbox's password on it.
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, public_url=f"http://127.0.0.1:{web_port}",
                         viewer_user_ids=VIEWER, imapsync_bin=STANDIN, migration_progress_interval=0.3,
                         migration_kill_grace=1.0, purelymail_imap_port=new_server.port, purelymail_imap_tls=False)


@pytest.fixture
def bot(rt: Runtime, web_port: int) -> WebServer:
    server = WebServer(rt, web_port)
    yield server
    server.close()


def said(slack_fake: FakeSlack, words: str, method: str = "response_url", timeout: float = 10):
    return slack_fake.wait_for(method, lambda c: words in str(c.args.get("text", "")) + str(c.args.get("blocks", "")),
                               timeout=timeout)


def channel_calls(slack_fake: FakeSlack) -> list:
    """What a channel can read: posted and updated messages, and uploaded files."""
    return [c for c in slack_fake.calls
            if c.method in ("chat.postMessage", "chat.update", "files.completeUploadExternal")]


def audit_actions(rt: Runtime) -> list[str]:
    with session_scope(rt.database_url) as session:
        return [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def run_worker(settings) -> str:
    """A real RQ worker that works off the queues (Create jobs, then the migrations) and stops."""
    done = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, text=True, timeout=120,
                          env=process_env(settings, IMAPSYNC_BIN=STANDIN, LOG_LEVEL="DEBUG",
                                          PUBLIC_URL=settings.public_url, IMAPSYNC_STANDIN_PACE="0.001"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert done.returncode == 0, done.stdout
    return done.stdout


def test_without_public_url_gather_new_says_what_to_set(database_url, redis_url, slack_fake: FakeSlack,
                                                        purelymail_fake, clean_state) -> None:
    bot = WebServer(Runtime(make_settings(database_url, redis_url, slack_fake, purelymail_fake)), free_port())
    try:
        driver = SlackDriver(bot.url + "/slack/events", SIGNING_SECRET, slack_fake, user_id=ADMIN, channel_id=OPS)
        driver.command("gather new")
        words = said(slack_fake, "PUBLIC_URL").args["text"]
        assert "Credential links need PUBLIC_URL" in words and "restart purelyops" in words
        assert slack_fake.calls_to("views.open") == []
    finally:
        bot.close()


def test_public_url_is_checked_at_start(database_url, redis_url, slack_fake, purelymail_fake) -> None:
    from purelyops.settings import SettingsError

    for bad in ("purelyops.example.com", "https://x.example/?a=1", "ftp://x.example"):
        with pytest.raises(SettingsError, match="PUBLIC_URL"):
            make_settings(database_url, redis_url, slack_fake, purelymail_fake, public_url=bad)


def test_a_link_is_posted_with_the_server_and_expiry_and_each_submission_is_announced(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, old_server) -> None:
    slack.command("gather new")
    said(slack_fake, "Add the old IMAP host first")
    add_old_server(slack, slack_fake, old_server)
    url = new_link(slack, slack_fake, rt, days="14", name="Acme IT")
    token = url.rsplit("/", 1)[1]
    assert url.startswith(rt.settings.public_url + "/gather/") and len(token) >= 43
    link = link_row(rt)
    assert (link.name, link.source_name, link.channel_id) == ("Acme IT", "oldhost", OPS)
    assert timedelta(days=13, hours=23) < link.expires_at - datetime.now(timezone.utc) <= timedelta(days=14)

    posted = said(slack_fake, "Credential link 1", "chat.postMessage")
    assert posted.args["channel"] == OPS and slack_fake.find_message(OPS, link.message_ts).text == posted.args["text"]
    assert "oldhost" in str(posted.args["blocks"]) and url in str(posted.args["blocks"])
    shown = [c for c in slack_fake.calls_to("chat.postEphemeral") if token in str(c.args)]
    assert [c.args["user"] for c in shown] == [ADMIN]
    assert token in str(slack_fake.wait_for("views.update", lambda c: token in str(c.args)).args["view"])

    # A person answers; the thread says who, escaped, never the password.
    assert answer(url, full_name="<!channel> Alice", new_address="alice@new.example").status_code == 200
    announced = said(slack_fake, "gave the login of their old mailbox", "chat.postMessage")
    assert announced.args["thread_ts"] == link.message_ts and announced.args["channel"] == OPS
    assert "&lt;!channel&gt; Alice" in announced.args["text"] and "alice@old.example" in announced.args["text"]
    assert "<!channel>" not in str(announced.args)
    slack_fake.wait_for("chat.update", lambda c: "1 submission(s)" in str(c.args.get("blocks")))

    slack.block_action("gather_show_link", value=str(link.id))
    assert token in str(said(slack_fake, "Only you can see this message").args["blocks"])
    slack.command("gather list")
    listed = str(said(slack_fake, "credential link(s)").args["blocks"])
    assert "Acme IT" in listed and "active" in listed and "1 submission(s), 0 with a migration job" in listed

    # The link is in its own message (posted, then updated with the counts), and nowhere else in the channel.
    assert {c.args.get("ts") for c in channel_calls(slack_fake) if token in str(c.args)} <= {None, link.message_ts}
    assert [c for c in channel_calls(slack_fake) if token in str(c.args) and "thread_ts" in c.args] == []
    assert [c for c in slack_fake.calls if any(p in str(c.args) for p in PEOPLE.values())] == []
    assert audit_actions(rt)[-2:] == ["gather.create", "gather.submit"]


def test_gather_new_needs_the_destination_domains(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                   old_server) -> None:
    add_old_server(slack, slack_fake, old_server)
    for typed, words in ((",", "name the domain(s) the mail goes to"), ("not a domain", "has no dot"),
                         ("https://new.example/", "without http://")):
        open_modal(slack, slack_fake, "gather new", "gather_new")
        response = slack.view_submission("gather_new", {"server": {"value": server_id(rt)}, "expiry": {"value": "7"},
                                                        "domains": {"value": typed}})
        assert words in response.json()["errors"]["domains"], (typed, response.json())
    assert submission_rows(rt) == [] and audit_actions(rt).count("gather.create") == 0
    url = new_link(slack, slack_fake, rt, domains=("New.Example", "second.example", "new.example"))
    assert link_row(rt).dest_domains == "new.example,second.example"
    assert answer(url, email="bob@old.example", new_address="bob@second.example").status_code == 200


def test_viewers_may_list_links_but_not_make_or_open_them(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                           old_server) -> None:
    add_old_server(slack, slack_fake, old_server)
    new_link(slack, slack_fake, rt)
    slack.command("gather list", user_id=VIEWER)
    assert "Acme IT" in str(said(slack_fake, "credential link(s)").args["blocks"])
    for words in ("gather new", "gather show 1", "gather close 1"):
        slack.command(words, user_id=VIEWER)
        subcommand = words.rsplit(' ', 1)[0] if words[-1].isdigit() else words
        said(slack_fake, f"Only purelyops admins can run `/pm {subcommand}`")
    slack.block_action("gather_show_link", value="1", user_id=VIEWER)
    said(slack_fake, "Only purelyops admins can see a credential link")
    assert link_row(rt).closed_at is None


def test_close_expiry_and_the_purge_of_unused_credentials(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                          old_server) -> None:
    add_old_server(slack, slack_fake, old_server)
    url = new_link(slack, slack_fake, rt)
    assert answer(url, email="bob@old.example").status_code == 200
    link = link_row(rt)
    slack.block_action("gather_close", value=str(link.id))
    said(slack_fake, "is closed")
    closed = slack_fake.wait_for("chat.update", lambda c: "closed" in str(c.args.get("text")))
    assert "Close link" not in str(closed.args["blocks"]) and url not in str(closed.args["blocks"])
    assert httpx.get(url).status_code == 410
    slack.command(f"gather close {link.id}")
    said(slack_fake, f"Credential link {link.id} is already closed.")
    assert audit_actions(rt).count("gather.close") == 1

    later = new_link(slack, slack_fake, rt, name="Second wave")
    with session_scope(rt.database_url) as session:
        session.execute(update(GatherLink).where(GatherLink.name == "Second wave")
                        .values(expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    assert httpx.get(later).status_code == 410
    slack.command("gather list")
    listed = str(said(slack_fake, "2 credential link(s)").args["blocks"])
    assert "Credential link 2* Second wave · oldhost · expired" in listed
    assert "Credential link 1* Acme IT · oldhost · closed" in listed

    # The unused credentials of a closed link go CREDENTIAL_RETENTION_DAYS after it closed.
    assert gather.purge_unused_credentials(rt) == 0
    assert submission_rows(rt)[0].ciphertext is not None
    assert gather.purge_unused_credentials(rt, datetime.now(timezone.utc) + timedelta(days=7, minutes=1)) == 1
    (row,) = submission_rows(rt)
    assert row.ciphertext is None and row.key_id is None and row.credentials_purged_at is not None
    assert "gather.purge" in audit_actions(rt)


def test_create_jobs_makes_the_mailboxes_and_one_batch_of_dry_runs_and_no_secret_leaks(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
        old_server, caplog: pytest.LogCaptureFixture, database_url: str) -> None:
    caplog.set_level(logging.DEBUG)
    purelymail_fake.add_domain_direct("new.example")
    domains.sync_from_purelymail(rt)
    purelymail_fake.add_user_direct("bob@new.example", "bob-new-pw-Zz9")
    mailboxes.sync(rt)  # bob is in the mailbox cache
    purelymail_fake.add_user_direct("dave@new.example", "dave-new-pw-Yy8")  # dave is not (yet)
    add_old_server(slack, slack_fake, old_server)
    url = new_link(slack, slack_fake, rt)
    token = url.rsplit("/", 1)[1]

    wrong = "canary-wrong-Qq7$(id)"
    assert answer(url, email="alice@old.example", password=wrong).status_code == 422
    # A password for a new mailbox that does not exist cannot log in there: refused, nothing kept.
    refused = answer(url, full_name="Alice Liddell", email="alice@old.example", new_address="alice@new.example",
                     new_password="alice-typed-Ww1")
    assert refused.status_code == 422 and "could not log in to your new mailbox" in refused.text
    assert answer(url, full_name="Alice Liddell", email="alice@old.example",
                  new_address="alice@new.example").status_code == 200
    assert answer(url, full_name="Bob Builder", email="bob@old.example", new_address="bob@new.example",
                  new_password="bob-new-pw-Zz9").status_code == 200
    assert answer(url, full_name="Carol Ümlaut", email="carol@old.example").status_code == 200
    assert answer(url, full_name="Dave Grohl", email="dave@old.example",
                  new_address="dave@new.example").status_code == 200

    slack.command("gather show 1")
    shown = str(said(slack_fake, "4 submission(s)").args["blocks"])
    assert "`alice@new.example` · will be created" in shown
    assert "`bob@new.example` · exists, its password was proven" in shown
    assert "`dave@new.example` · :warning: exists, its password was not proven" in shown  # dave: asked of PurelyMail
    assert "`carol@new.example` · will be created" in shown  # the same name on the link's domain
    assert "Create jobs" in shown

    slack.block_action("gather_create", value="1")
    opened = slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "gather_create_jobs")
    view = opened.args["view"]
    assert "Destination domain" not in str(view) and "initial_options" in str(view)  # the link named its domain
    assert "Rows 1–4 of 4 waiting" in str(view)
    (approve,) = [b for b in view["blocks"] if b.get("block_id", "").startswith("approve_")]
    assert [o["text"]["text"] for o in approve["element"]["options"]] == ["dave@old.example → dave@new.example"]
    assert "initial_options" not in approve["element"]  # unticked by default
    dave = [r.id for r in submission_rows(rt) if r.email == "dave@old.example"][0]
    response = slack.view_submission("gather_create_jobs", {approve["block_id"]: {"value": [str(dave)]},
                                                            "options": {"value": ["dry"]},
                                                            "exclude": {"value": "^Trash$"},
                                                            "max_age": {"value": "30"}})
    assert response.status_code == 200
    wait_until(lambda: rt.redis.llen("rq:queue:default"), 5, "the Create jobs job")
    worker_log = run_worker(settings)

    created = {a: purelymail_fake.users[a].password for a in ("alice@new.example", "carol@new.example")}
    secret = said(slack_fake, "new mailbox(es). Their passwords are shown only here", "chat.postEphemeral")
    assert secret.args["user"] == ADMIN and all(p in str(secret.args["blocks"]) for p in created.values())
    outcome = said(slack_fake, "4 dry run(s) queued as one batch", "chat.postEphemeral")
    assert "2 destination mailbox(es) existed; 2 created" in str(outcome.args["blocks"])
    assert "shown only to you, once" in str(slack_fake.wait_for("views.update", lambda c: "queued" in str(c.args)).args)

    with session_scope(rt.database_url) as session:
        jobs = {j.source_email: j for j in session.scalars(select(MigrationJob))}
        session.expunge_all()
    assert {j.dest_email for j in jobs.values()} == {"alice@new.example", "bob@new.example", "carol@new.example",
                                                     "dave@new.example"}
    assert len({j.batch_id for j in jobs.values()}) == 1
    assert all(j.dry_run and j.exclude == "^Trash$" and j.max_age_days == 30 for j in jobs.values())
    assert all(j.status == "done" for j in jobs.values()), {j.source_email: j.verdict for j in jobs.values()}
    said(slack_fake, "Batch Acme IT", "chat.postMessage")
    stored = {e: crypto.decrypt(rt.settings.credential_keys, j.key_id, j.ciphertext, f"migration:{j.id}")
              for e, j in jobs.items()}
    assert stored["bob@old.example"] == {"source": PEOPLE["bob@old.example"], "dest": "bob-new-pw-Zz9"}
    assert stored["dave@old.example"]["dest"] == ""  # existed, no password given: a temporary app password
    assert stored["alice@old.example"]["dest"] == ""  # created now: a temporary app password too
    assert all(r.ciphertext is None and r.job_id is not None for r in submission_rows(rt))

    slack.block_action("gather_create", value="1")  # a second Create jobs finds nothing waiting
    said(slack_fake, "has no submission waiting for a job")
    actions = audit_actions(rt)
    assert actions.count("gather.submit") == 4 and actions.count("user.create") == 2
    assert "gather.jobs" in actions and "migration.batch.create" in actions

    # The canary: passwords appear in no log, Slack call, Redis value or row; the token in no log,
    # Redis value or row, and in the channel only in the link's own message.
    passwords = [*PEOPLE.values(), wrong, "alice-typed-Ww1", *NEW_PEOPLE.values()]
    # (The test's own requests to the form, as a browser, are logged by its httpx: not the bot's.)
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    bot_log = "\n".join(formatter.format(r) for r in caplog.records
                         if not (r.name == "httpx" and "/gather/" in r.getMessage()))
    sinks = {"logs": [bot_log, worker_log],
             "Slack": [str(c.args) for c in slack_fake.calls if c is not secret],
             "Redis": [f"{k!r} {rt.redis.dump(k)!r}" for k in rt.redis.scan_iter()]}
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        sinks["database"] = [str(row) for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'")
            for row in conn.execute(f'SELECT * FROM "{table}"')]
    leaks = {(p, sink) for p in [*passwords, *created.values()] for sink, texts in sinks.items()
             if any(p in text for text in texts)}
    assert leaks == set()
    token_sinks = {"logs": sinks["logs"], "Redis": sinks["Redis"], "database": sinks["database"],
                   "other channel messages": [str(c.args) for c in channel_calls(slack_fake)
                                              if not str(c.args.get("text", "")).startswith("Credential link")]}
    assert {sink for sink, texts in token_sinks.items() if any(token in text for text in texts)} == set(), \
        [line for text in sinks["logs"] for line in text.splitlines() if token in line]
    assert not LINK_URL.search(bot_log + worker_log)


def test_a_link_made_before_links_named_domains_asks_for_one_in_create_jobs(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, old_server) -> None:
    add_old_server(slack, slack_fake, old_server)
    url = new_link(slack, slack_fake, rt)
    assert answer(url, email="carol@old.example").status_code == 200
    with session_scope(rt.database_url) as session:  # as revision 0010 leaves an older link
        session.execute(update(GatherLink).values(dest_domains=""))
    slack.command("gather show 1")
    said(slack_fake, "Create jobs")
    slack.block_action("gather_create", value="1")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "gather_create_jobs")
    response = slack.view_submission("gather_create_jobs", {"domain": {"value": "not a domain"},
                                                            "exclude": {"value": "(a+)+\\1"}})
    errors = response.json()["errors"]
    assert set(errors) == {"domain", "exclude"}
    assert rt.redis.llen("rq:queue:default") == 0
    # Its form takes no new address at all (no domain was chosen for it).
    refused = answer(url, email="dave@old.example", new_address="dave@new.example")
    assert refused.status_code == 422 and "This link takes no new address" in refused.text


def open_create_jobs(slack: SlackDriver, slack_fake: FakeSlack, link_id: int) -> dict:
    before = len(slack_fake.calls_to("views.open"))
    slack.block_action("gather_create", value=str(link_id))
    wait_until(lambda: [c for c in slack_fake.calls_to("views.open")[before:]
                        if c.args["view"]["callback_id"] == "gather_create_jobs"], 10, "the Create jobs modal")
    return slack_fake.calls_to("views.open")[-1].args["view"]


def test_the_ceo_case_the_admin_decides_where_mail_goes_and_an_existing_mailbox_needs_its_password_or_approval(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
        old_server) -> None:
    purelymail_fake.add_domain_direct("new.example")
    domains.sync_from_purelymail(rt)
    for address in ("ceo@new.example", "dave@new.example"):
        purelymail_fake.add_user_direct(address, NEW_PEOPLE[address])
    mailboxes.sync(rt)
    add_old_server(slack, slack_fake, old_server)
    url = new_link(slack, slack_fake, rt, domains=("new.example",))
    link = link_row(rt)
    posted = said(slack_fake, "Credential link 1", "chat.postMessage")
    assert "Mail goes to the same name at `new.example`" in str(posted.args["blocks"])

    # Bob has a real login at the source, and names the CEO's mailbox, outside the link's domains: refused.
    outside = answer(url, email="bob@old.example", new_address="ceo@corp.example")
    assert outside.status_code == 422 and "must end in @new.example" in outside.text
    # At the link's domain, with a guessed password for it: that login is tried at PurelyMail, and refused.
    guessed = answer(url, email="bob@old.example", new_address="ceo@new.example", new_password="a-guess-123")
    assert guessed.status_code == 422 and "could not log in to your new mailbox, ceo@new.example" in guessed.text
    assert "a-guess-123" not in guessed.text and submission_rows(rt) == []
    # Without its password the row is kept, but goes nowhere unless the admin approves it.
    assert answer(url, email="bob@old.example", new_address="ceo@new.example").status_code == 200
    # Dave gives no new address (the same name at new.example) and that mailbox's real password: proven.
    assert answer(url, full_name="Dave", email="dave@old.example",
                  new_password=NEW_PEOPLE["dave@new.example"]).status_code == 200
    rows = {r.email: r for r in submission_rows(rt)}
    assert rows["dave@old.example"].dest_proven == "dave@new.example" and rows["bob@old.example"].dest_proven is None

    view = open_create_jobs(slack, slack_fake, link.id)
    listed = str(view["blocks"])
    assert "`ceo@new.example` · :warning: exists, its password was not proven" in listed
    assert "`dave@new.example` · exists, its password was proven" in listed
    (approve,) = [b for b in view["blocks"] if b.get("block_id", "").startswith("approve_")]
    assert [o["value"] for o in approve["element"]["options"]] == [str(rows["bob@old.example"].id)]
    assert "named on the form; it exists, and no password for it was given" in str(approve["element"]["options"])
    assert "initial_options" not in approve["element"]
    # Run without ticking it: Dave's job is made, the CEO's mailbox gets none.
    assert slack.view_submission("gather_create_jobs", {"options": {"value": ["dry"]}}).status_code == 200
    wait_until(lambda: rt.redis.llen("rq:queue:default"), 5, "the Create jobs job")
    run_worker(settings)
    outcome = str(said(slack_fake, "1 dry run(s) queued as one batch", "chat.postEphemeral").args["blocks"])
    assert "bob@old.example → ceo@new.example: that mailbox already exists and its password was not proven" in outcome

    def jobs() -> dict[str, MigrationJob]:
        with session_scope(rt.database_url) as session:
            found = {j.source_email: j for j in session.scalars(select(MigrationJob))}
            session.expunge_all()
            return found

    assert {e: j.dest_email for e, j in jobs().items()} == {"dave@old.example": "dave@new.example"}
    dave_job = jobs()["dave@old.example"]
    assert crypto.decrypt(rt.settings.credential_keys, dave_job.key_id, dave_job.ciphertext,
                          f"migration:{dave_job.id}")["dest"] == NEW_PEOPLE["dave@new.example"]

    # Create jobs again: only Bob's row is left, listed with its approval; ticked, it goes in.
    view = open_create_jobs(slack, slack_fake, link.id)
    assert "Rows 1–1 of 1 waiting" in str(view["blocks"])
    (approve,) = [b for b in view["blocks"] if b.get("block_id", "").startswith("approve_")]
    assert slack.view_submission("gather_create_jobs", {approve["block_id"]: {"value": [
        str(rows["bob@old.example"].id)]}, "options": {"value": ["dry"]}}).status_code == 200
    wait_until(lambda: rt.redis.llen("rq:queue:default"), 5, "the Create jobs job")
    run_worker(settings)
    said(slack_fake, "1 dry run(s) queued as one batch", "chat.postEphemeral")
    ceo_job = jobs()["bob@old.example"]
    assert ceo_job.dest_email == "ceo@new.example"
    assert crypto.decrypt(rt.settings.credential_keys, ceo_job.key_id, ceo_job.ciphertext,
                          f"migration:{ceo_job.id}")["dest"] == ""  # a temporary app password, never a guess
    with session_scope(rt.database_url) as session:
        approvals = [a.params.get("approved") for a in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "gather.jobs").order_by(AuditEntry.id))]
    assert approvals == [[], [rows["bob@old.example"].id]]


def test_create_jobs_lists_every_row_it_runs_a_page_at_a_time(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, old_server) -> None:
    add_old_server(slack, slack_fake, old_server)
    new_link(slack, slack_fake, rt)
    link = link_row(rt)
    with session_scope(rt.database_url) as session:  # 120 waiting submissions, as if 120 people had answered
        for n in range(120):
            row = GatherSubmission(link_id=link.id, full_name=f"Person {n}", email=f"p{n}@old.example")
            session.add(row)
            session.flush()
            row.key_id, row.ciphertext = crypto.encrypt(rt.settings.credential_keys, {"source": "x", "dest": ""},
                                                        f"gather-submission:{row.id}")
    view = open_create_jobs(slack, slack_fake, link.id)
    text = str(view["blocks"])
    assert "Rows 1–50 of 120 waiting" in text and "70 more wait after these" in text
    assert all(f"`p{n}@old.example`" in text for n in range(50)) and "`p50@old.example`" not in text
    assert len(view["blocks"]) <= 100 and all(len(b.get("text", {}).get("text", "")) <= 3000 for b in view["blocks"])
    # What runs is exactly what was listed: the queued Create jobs names those 50 rows and no other.
    assert slack.view_submission("gather_create_jobs", {"options": {"value": ["dry"]}}).status_code == 200
    wait_until(lambda: rt.redis.llen("rq:queue:default"), 5, "the Create jobs job")
    (job,) = Queue("default", connection=rt.redis).jobs
    listed = sorted(r.id for r in submission_rows(rt))[:50]
    assert job.func_name == gather.CREATE_JOB and job.args[11] == listed and job.args[12] == []
