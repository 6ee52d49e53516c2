"""Source hosts: loopback, link-local and cloud metadata addresses are refused before any
connection, by address and after DNS (a real DNS server on loopback), at `server add` and
again at `server test`; `server add` is saved before its modal closes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from db.models import SourceServer
from db.session import session_scope
from purelyops import servers
from purelyops.runtime import Runtime
from tests.conftest import OPS, make_settings
from tests.fakes.dns_server import FakeDNS
from tests.fakes.slack_fake import FakeSlack
from tests.imap_servers import Listener
from tests.migration_steps import submit_server, try_login
from tests.slack_requests import SlackDriver

ZONE = "old.example"


@pytest.fixture
def dns() -> Iterator[FakeDNS]:
    server = FakeDNS().start()
    server.add_zone(ZONE)
    yield server
    server.stop()
    assert server.errors == []


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, dns: FakeDNS):
    """No loopback allowance here: these tests are about the refusals."""
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, dns_resolver=dns.spec,
                         source_hosts_allow=[])


@pytest.fixture(autouse=True)
def slack_accepts_everything(slack_fake: FakeSlack) -> Iterator[None]:
    yield
    assert [(c.method, c.error, c.errors) for c in slack_fake.rejected] == []


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def rt_with(settings, **changes) -> Runtime:
    return Runtime(settings.model_copy(update=changes))


# ---- the gate, without Slack --------------------------------------------------------------

@pytest.mark.parametrize(("host", "words"), [
    ("127.0.0.1", "127.0.0.1 is a loopback address (this machine): allowed only if SOURCE_HOSTS_ALLOW lists it"),
    ("127.5.6.7", "loopback"),
    ("::1", "::1 is a loopback address"),
    ("::ffff:127.0.0.1", "loopback"),
    ("127.1", "loopback"),  # what inet_aton, and so imapsync, make of it
    ("169.254.169.254", "169.254.169.254 is a cloud metadata address: never allowed, even in SOURCE_HOSTS_ALLOW"),
    ("169.254.10.1", "a link-local address: never allowed"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%lo", "a link-local address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 of 169.254.169.254
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("metadata.google.internal", "metadata.google.internal is a cloud metadata service: never allowed"),
    ("Metadata.Google.Internal.", "cloud metadata service"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("0.1.2.3", "an unspecified address"),
    ("255.255.255.255", "the broadcast address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("loop.old.example", "loop.old.example resolves to 127.0.0.1, a loopback address"),
    ("meta.old.example", "meta.old.example resolves to 169.254.169.254, a cloud metadata address"),
    ("mixed.old.example", "mixed.old.example resolves to ::1, a loopback address"),  # every address counts
])
def test_internal_addresses_are_refused(rt: Runtime, dns: FakeDNS, host: str, words: str) -> None:
    dns.set("loop.old.example", "A", ["127.0.0.1"])
    dns.set("meta.old.example", "A", ["169.254.169.254"])
    dns.set("mixed.old.example", "A", ["10.0.0.5"])
    dns.set("mixed.old.example", "AAAA", ["::1"])
    with pytest.raises(servers.SourceRefused) as refused:
        servers.resolve_source(rt, host, 993)
    assert words in str(refused.value)


def test_private_and_public_addresses_are_allowed(rt: Runtime, dns: FakeDNS) -> None:
    dns.set("mail.old.example", "A", ["192.168.10.5", "10.0.0.7"])
    dns.set("mail.old.example", "AAAA", ["2001:db8::25"])
    assert sorted(servers.resolve_source(rt, "mail.old.example", 993)) == ["10.0.0.7", "192.168.10.5", "2001:db8::25"]
    assert servers.resolve_source(rt, "172.16.0.9", 993) == ["172.16.0.9"]
    assert servers.resolve_source(rt, "fd12:3456::1", 143) == ["fd12:3456::1"]
    with pytest.raises(servers.SourceUnresolved, match="nothere.old.example does not exist in DNS"):
        servers.resolve_source(rt, "nothere.old.example", 993)


def test_without_dns_resolver_the_systems_resolver_is_asked(settings) -> None:
    """getaddrinfo, as imapsync resolves: /etc/hosts names localhost."""
    system = rt_with(settings, dns_resolver="")
    with pytest.raises(servers.SourceRefused, match="localhost resolves to .*, a loopback address"):
        servers.resolve_source(system, "localhost", 143)
    allowed = rt_with(settings, dns_resolver="", source_hosts_allow=["localhost"])
    assert "127.0.0.1" in servers.resolve_source(allowed, "localhost", 143)


def test_the_allow_list_opens_loopback_only(settings, dns: FakeDNS) -> None:
    dns.set("loop.old.example", "A", ["127.0.0.1"])
    dns.set("meta.old.example", "A", ["169.254.169.254"])
    by_cidr = rt_with(settings, source_hosts_allow=["127.0.0.0/8"])
    assert servers.resolve_source(by_cidr, "127.0.0.1", 143) == ["127.0.0.1"]
    assert servers.resolve_source(by_cidr, "loop.old.example", 143) == ["127.0.0.1"]
    with pytest.raises(servers.SourceRefused, match="::1 is a loopback"):
        servers.resolve_source(by_cidr, "::1", 143)
    by_name = rt_with(settings, source_hosts_allow=["loop.old.example"])
    assert servers.resolve_source(by_name, "loop.old.example", 143) == ["127.0.0.1"]
    with pytest.raises(servers.SourceRefused):
        servers.resolve_source(by_name, "127.0.0.1", 143)
    everything = rt_with(settings, source_hosts_allow=["0.0.0.0/0", "::/0", "169.254.0.0/16", "169.254.169.254",
                                                       "metadata.google.internal", "meta.old.example"])
    for host in ("169.254.169.254", "meta.old.example", "metadata.google.internal", "fe80::1", "0.0.0.0"):
        with pytest.raises(servers.SourceRefused, match="never allowed|cloud metadata service"):
            servers.resolve_source(everything, host, 143)


# ---- through Slack ----------------------------------------------------------------------

def server_count(rt: Runtime) -> int:
    with session_scope(rt.database_url) as session:
        return session.scalar(select(func.count()).select_from(SourceServer))


@pytest.mark.parametrize(("host", "words"), [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("::1", "::1 is a loopback address"),
    ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ("metadata.google.internal", "metadata.google.internal is a cloud metadata service"),
    ("loop.old.example", "loop.old.example resolves to 127.0.0.1"),
])
def test_server_add_refuses_internal_hosts_on_the_field(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                        dns: FakeDNS, host: str, words: str) -> None:
    dns.set("loop.old.example", "A", ["127.0.0.1"])
    response = submit_server(slack, slack_fake, host)
    assert response.status_code == 200
    assert response.json()["response_action"] == "errors"
    assert words in response.json()["errors"]["host"]
    assert server_count(rt) == 0
    assert slack_fake.calls_to("chat.postEphemeral") == []


def test_a_name_not_yet_in_dns_is_saved_with_a_warning_and_checked_again_at_server_test(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, dns: FakeDNS, listener: Listener) -> None:
    response = submit_server(slack, slack_fake, "imap.old.example", listener.port, "none")
    assert response.status_code == 200 and not response.content  # closed: saved
    answer = slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))
    assert "imap.old.example does not exist in DNS (NXDOMAIN). It is checked again at every connection." \
        in answer.args["text"]
    assert server_count(rt) == 1

    dns.set("imap.old.example", "A", ["127.0.0.1"])  # it appears, pointing at this machine
    words = try_login(slack, slack_fake, "oldhost", ":x:")
    assert words == ":x: imap.old.example resolves to 127.0.0.1, a loopback address (this machine): allowed only " \
                    "if SOURCE_HOSTS_ALLOW lists it."
    assert listener.connections == 0


def test_a_name_that_moves_to_an_internal_address_is_caught_at_server_test(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, dns: FakeDNS, listener: Listener) -> None:
    dns.set("imap.old.example", "A", ["192.0.2.25"])
    submit_server(slack, slack_fake, "imap.old.example", listener.port, "none")
    answer = slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))
    assert "does not" not in answer.args["text"]
    dns.set("imap.old.example", "A", ["169.254.169.254"])
    words = try_login(slack, slack_fake, "oldhost", ":x:")
    assert "imap.old.example resolves to 169.254.169.254, a cloud metadata address: never allowed" in words
    assert listener.connections == 0


def test_a_migrate_right_after_server_add_sees_the_server(rt: Runtime, slack: SlackDriver,
                                                           slack_fake: FakeSlack) -> None:
    response = submit_server(slack, slack_fake, "10.20.30.40")
    assert response.status_code == 200 and not response.content
    slack.command("migrate")  # no waiting for the answer: the modal has closed, the server is there
    opened = slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate")
    assert "oldhost (10.20.30.40)" in str(opened.args["view"])
    assert not [c for c in slack_fake.calls if "Add the old IMAP host first" in str(c.args)]


def test_a_repeated_name_is_refused_on_the_field(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    submit_server(slack, slack_fake, "10.20.30.40")
    again = submit_server(slack, slack_fake, "10.20.30.41")
    assert again.json()["errors"] == {"name": "there is already a server called oldhost"}
    assert server_count(rt) == 1


def test_a_non_admin_adds_nothing(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    response = slack.view_submission("server_add", {"name": {"value": "sneaky"}, "host": {"value": "10.0.0.1"},
                                                    "port": {"value": "993"}, "security": {"value": "tls"}},
                                     private_metadata=OPS, user_id="U0NOBODY1")  # a modal they could not open
    assert response.status_code == 200
    slack_fake.wait_for("chat.postEphemeral", lambda c: "Only purelyops admins can add a source server"
                        in c.args.get("text", ""))
    assert server_count(rt) == 0
