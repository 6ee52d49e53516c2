"""`server test` against a real Dovecot on loopback, and against things that are not IMAP."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.imap_servers import Dovecot, Listener
from tests.migration_steps import submit_server, try_login
from tests.slack_requests import SlackDriver


def add(slack: SlackDriver, slack_fake: FakeSlack, port: int) -> None:
    slack.command("server add")
    slack_fake.wait_for("views.open")
    slack.view_submission("server_add", {"name": {"value": "oldhost"}, "host": {"value": "127.0.0.1"},
                                         "port": {"value": str(port)}, "security": {"value": "none"}})
    slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))


def test_server_test_does_a_real_login(slack: SlackDriver, slack_fake: FakeSlack,
                                       dovecot_pair: tuple[Dovecot, Dovecot]) -> None:
    source, _ = dovecot_pair
    source.append("alice@old.example", 3)
    assert source.count("alice@old.example") == 3
    add(slack, slack_fake, source.port)
    attempts = (("source-pw-1", ":white_check_mark: alice@old.example logged in"),
                ("wrong-password", ":x: the server refused the login for alice@old.example"))
    for n, (password, words) in enumerate(attempts):
        slack.command("server test oldhost")
        wait_until(lambda n=n: len([c for c in slack_fake.calls_to("views.open")
                                    if c.args["view"]["callback_id"] == "server_test"]) == n + 1, 5, "the modal")
        slack.view_submission("server_test", {"address": {"value": "alice@old.example"},
                                              "password": {"value": password}})
        reply = slack_fake.wait_for("chat.postEphemeral", lambda c, words=words: words in c.args.get("text", ""),
                                    timeout=10)
        assert password not in str(reply.args)


def test_an_unreachable_server_is_told_in_words(tmp_path: Path, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    from tests.conftest import free_port

    add(slack, slack_fake, free_port())
    slack.command("server test oldhost")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "server_test")
    slack.view_submission("server_test", {"address": {"value": "a@old.example"}, "password": {"value": "x"}})
    slack_fake.wait_for("chat.postEphemeral", lambda c: "could not connect to 127.0.0.1" in c.args.get("text", ""))


def test_what_answers_and_is_not_imap_is_not_echoed(slack: SlackDriver, slack_fake: FakeSlack) -> None:

    ssh = Listener(b"SSH-2.0-OpenSSH_9.6p1 Debian-3+build-7f3a\r\n")
    try:
        submit_server(slack, slack_fake, "127.0.0.1", ssh.port, "none")
        slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))
        words = try_login(slack, slack_fake, "oldhost", ":x:")
        assert words == (f":x: 127.0.0.1:{ssh.port} answered, but it is not an IMAP server; check the host, the port "
                         "and the security setting")
        assert ssh.connections == 1
        assert "SSH" not in slack_fake.all_text() and "build-7f3a" not in slack_fake.all_text()
    finally:
        ssh.close()


def test_starttls_on_a_server_without_it_is_told(slack: SlackDriver, slack_fake: FakeSlack,
                                                 dovecot_pair: tuple[Dovecot, Dovecot]) -> None:

    source, _ = dovecot_pair
    submit_server(slack, slack_fake, "127.0.0.1", source.port, "starttls")
    slack_fake.wait_for("chat.postEphemeral", lambda c: "added" in c.args.get("text", ""))
    words = try_login(slack, slack_fake, "oldhost", ":x:", password="source-pw-1")
    assert words == (f":x: 127.0.0.1:{source.port} does not offer STARTTLS; choose TLS on connect (usually port 993) "
                     "or none")
