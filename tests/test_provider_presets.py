"""Provider presets: `server add` with a provider stores its IMAP host, 993 and TLS; `server
list` shows them; a migration from it gives imapsync the provider's options before ours,
and keeps them when the server is removed. The provider's host goes through the same
DNS and address checks as any other (a real DNS server on loopback answers for it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import AuditEntry, SourceServer
from db.session import session_scope
from purelyops import imapsync, servers
from purelyops.fields import FieldProblems
from purelyops.providers import PROVIDERS
from purelyops.runtime import Runtime
from tests.conftest import ROOT, STANDIN, make_settings, process_env, wait_until
from tests.fakes.dns_server import FakeDNS
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import job_row, open_modal, queued, submit_migration
from tests.slack_requests import SlackDriver

HOSTS = {"gmail": "imap.gmail.com", "microsoft365": "outlook.office365.com", "yahoo": "imap.mail.yahoo.com",
         "icloud": "imap.mail.me.com", "fastmail": "imap.fastmail.com", "zoho": "imap.zoho.com"}
OPTIONS = {"gmail": ["--gmail1"], "microsoft365": ["--office1"], "yahoo": ["--automap"], "icloud": ["--automap"],
           "fastmail": ["--automap"], "zoho": ["--automap"], "other": []}


@pytest.fixture
def dns() -> Iterator[FakeDNS]:
    """The providers' IMAP hosts, pointing at this machine (allowed by the tests' SOURCE_HOSTS_ALLOW)."""
    server = FakeDNS().start()
    for host in HOSTS.values():
        zone = host.split(".", 1)[1]
        server.add_zone(zone)
        server.set(host, "A", ["127.0.0.1"])
    yield server
    server.stop()
    assert server.errors == []


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, dns: FakeDNS):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, dns_resolver=dns.spec,
                         imapsync_bin=STANDIN, migration_progress_interval=0.3)


@pytest.fixture(autouse=True)
def slack_accepts_everything(slack_fake: FakeSlack) -> Iterator[None]:
    yield
    assert [(c.method, c.error, c.errors) for c in slack_fake.rejected] == []


def add_provider_server(slack: SlackDriver, slack_fake: FakeSlack, provider: str, name: str, **fields):
    open_modal(slack, slack_fake, "server add", "server_add")
    return slack.view_submission("server_add", {"name": {"value": name}, "provider": {"value": provider}, **fields})


def stored(rt: Runtime) -> list[SourceServer]:
    with session_scope(rt.database_url) as session:
        rows = list(session.scalars(select(SourceServer).order_by(SourceServer.id)))
        session.expunge_all()
        return rows


# ---- the command line, without Slack ------------------------------------------------------


@pytest.mark.parametrize("provider", list(OPTIONS))
def test_provider_options_come_first_and_ours_after(settings, tmp_path: Path, provider: str) -> None:
    host = HOSTS.get(provider, "mail.old.example")
    source = imapsync.Endpoint("192.0.2.10", 993, "alice@old.example", "tls", name=host,
                               provider="" if provider == "other" else provider)
    args = imapsync.argv(settings, source, imapsync.destination(settings, "alice@new.example"),
                         ("/dev/fd/5", "/dev/fd/6"), str(tmp_path), imapsync.Options(), None)
    assert args[1:1 + len(OPTIONS[provider])] == OPTIONS[provider]
    assert args[1 + len(OPTIONS[provider])] == "--host1=192.0.2.10"  # the checked address, not the name
    assert f"--sslargs1=SSL_verifycn_name={host}" in args and "--ssl1" in args
    assert sum(a in ("--gmail1", "--office1", "--automap") for a in args) == len(OPTIONS[provider])


def test_a_provider_fills_host_port_and_tls_and_refuses_anything_else() -> None:
    assert servers.check_spec("g", "", "", "tls", "gmail") == servers.ServerSpec("g", "imap.gmail.com", 993, "tls",
                                                                                 "gmail")
    # the modal's untouched port (993) and the provider's own host are what it would be anyway
    assert servers.check_spec("m", "Outlook.Office365.com.", "993", "tls", "microsoft365").host == \
        "outlook.office365.com"
    with pytest.raises(FieldProblems) as refused:
        servers.check_spec("g", "imap.old.example", "143", "none", "gmail")
    assert refused.value.problems == {
        "host": "leave the host empty: Gmail is imap.gmail.com. To reach another host, choose the provider Other",
        "port": "Gmail is reached on port 993: leave 993 or nothing here",
        "security": "Gmail is reached with TLS on connect: keep it, or choose the provider Other"}
    with pytest.raises(FieldProblems) as other:
        servers.check_spec("o", "", "993", "tls", "other")
    assert other.value.problems == {"host": "give the IMAP host, like imap.oldhost.example (or choose a provider)"}
    with pytest.raises(FieldProblems) as unknown:
        servers.check_spec("o", "imap.old.example", "993", "tls", "hotmail")
    assert unknown.value.problems == {"provider": "choose a provider, or Other"}


# ---- through Slack --------------------------------------------------------------------------


def test_the_modal_stores_each_provider_with_its_host_and_server_list_shows_them(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    for provider in HOSTS:
        response = add_provider_server(slack, slack_fake, provider, provider, port={"value": ""})
        assert response.status_code == 200 and not response.content  # closed: saved
    modal = slack_fake.calls_to("views.open")[0].args["view"]
    shown = json.dumps(modal, ensure_ascii=False)
    assert "myaccount.google.com/apppasswords" in shown and "basic authentication for IMAP" in shown
    assert [o["value"] for o in next(b for b in modal["blocks"] if b.get("block_id") == "provider")
            ["element"]["options"]] == list(PROVIDERS)
    answer = slack_fake.wait_for("chat.postEphemeral", lambda c: "Source server *gmail*" in c.args.get("text", ""))
    assert "(imap.gmail.com:993, TLS on connect, Gmail) added" in answer.args["text"]
    assert "an app password, which needs 2-Step Verification" in answer.args["text"]

    assert [(s.name, s.host, s.port, s.security, s.provider) for s in stored(rt)] == \
        [(p, host, 993, "tls", p) for p, host in HOSTS.items()]
    with session_scope(rt.database_url) as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.target == "zoho")).one()
        assert audited.params == {"host": "imap.zoho.com", "port": 993, "security": "tls", "provider": "zoho"}

    slack.command("server list")
    listed = slack_fake.wait_for("response_url", lambda c: "source server(s)" in c.args.get("text", ""))
    text = json.dumps(listed.args["blocks"], ensure_ascii=False)
    assert "*gmail* `imap.gmail.com:993` · TLS on connect · Gmail" in text
    assert "*microsoft365* `outlook.office365.com:993` · TLS on connect · Microsoft 365" in text


def test_a_host_typed_with_a_provider_is_refused_on_its_field(rt: Runtime, slack: SlackDriver,
                                                              slack_fake: FakeSlack) -> None:
    response = add_provider_server(slack, slack_fake, "icloud", "apple", host={"value": "mail.old.example"})
    assert response.json()["response_action"] == "errors"
    assert response.json()["errors"] == {
        "host": "leave the host empty: iCloud is imap.mail.me.com. To reach another host, choose the provider Other"}
    other = add_provider_server(slack, slack_fake, "other", "plain", port={"value": "993"})
    assert other.json()["errors"]["host"].startswith("give the IMAP host")
    assert stored(rt) == []


def test_a_provider_host_is_checked_like_any_other(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                   dns: FakeDNS) -> None:
    dns.set("imap.gmail.com", "A", ["169.254.169.254"])
    response = add_provider_server(slack, slack_fake, "gmail", "gmail")
    assert "imap.gmail.com resolves to 169.254.169.254, a cloud metadata address" in response.json()["errors"]["host"]
    assert stored(rt) == []


@pytest.mark.parametrize("provider", ["gmail", "microsoft365"])
def test_a_migration_from_a_provider_passes_its_options_even_after_the_server_is_removed(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, tmp_path: Path, provider: str) -> None:
    add_provider_server(slack, slack_fake, provider, "old")
    slack_fake.wait_for("chat.postEphemeral", lambda c: "Source server *old*" in c.args.get("text", ""))
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the queued message")
    assert (job_row(rt).source_host, job_row(rt).source_provider) == (HOSTS[provider], provider)
    slack.command("server remove old")
    slack_fake.wait_for("response_url", lambda c: "removed" in c.args.get("text", ""))

    record = tmp_path / "runs"
    record.mkdir()
    worker = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=60,
                            env=process_env(settings, IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_RECORD=str(record),
                                            IMAPSYNC_STANDIN_FIXTURE="01"), capture_output=True, text=True)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    # The replayed log says it copied; nobody answers IMAP at the provider's address here, so
    # purelyops' own check proves nothing and the run is not done: it is tried again later.
    assert job_row(rt).status == "queued" and "nothing could be checked" in job_row(rt).verdict
    argv = json.loads(next(record.glob("run-*.json")).read_text())["argv"]
    option = OPTIONS[provider][0]
    assert argv[1] == option and argv.count(option) == 1
    assert argv.index(option) < argv.index("--host1=127.0.0.1")  # before ours, which override it
    assert f"--sslargs1=SSL_verifycn_name={HOSTS[provider]}" in argv and "--port1=993" in argv
