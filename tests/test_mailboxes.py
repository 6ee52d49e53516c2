"""Mailboxes end to end: signed Slack requests in; Slack calls, PurelyMail's state and the
mailbox cache out."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from db.models import AuditEntry, Mailbox, PendingDeletion
from db.session import session_scope
from purelyops import deletions, mailboxes
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS, said
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

DOMAIN = "example.com"


pytestmark = pytest.mark.usefixtures("slack_accepts_everything")


def cache(rt: Runtime) -> list[str]:
    with session_scope(rt.database_url) as session:
        return list(session.scalars(select(Mailbox.address).order_by(Mailbox.address)))


def seed(rt: Runtime, purelymail_fake: FakePurelyMail, count: int, domain: str = DOMAIN) -> None:
    purelymail_fake.add_domain_direct(domain)
    for i in range(count):
        purelymail_fake.add_user_direct(f"user{i:03d}@{domain}")
    mailboxes.sync(rt)


# ---- list ---------------------------------------------------------------------------------


def test_list_searches_the_cache_and_pages_with_buttons(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                        purelymail_fake: FakePurelyMail) -> None:
    seed(rt, purelymail_fake, 30)
    seed(rt, purelymail_fake, 3, "other.example")
    purelymail_fake.calls.clear()
    slack.command("mailbox list user0 domain:example.com")
    first = said(slack_fake, "Mailboxes 1–20 of 30")
    assert "*30 of 33*" in str(first.args["blocks"])
    assert purelymail_fake.calls == []  # served from the cache
    slack.block_action("user_list_next")
    second = slack_fake.wait_for("response_url", lambda c: "Mailboxes 21–30 of 30" in c.args.get("text", ""))
    assert "user029@example.com" in str(second.args["blocks"]) and "other.example" not in str(second.args["blocks"])
    slack.block_action("user_list_previous")
    slack_fake.wait_for("response_url", lambda c: c.at > second.at and "Mailboxes 1–20 of 30" in c.args.get("text", ""))


def test_list_with_a_bad_domain_filter_says_so(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("mailbox list domain:http://x")
    said(slack_fake, "the domain filter is wrong")


def test_the_older_command_words_still_work(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    """`user …` and `alias …` were the commands before mailbox and routing rule had one name each."""
    slack.command("user list domain:http://x")
    said(slack_fake, "the domain filter is wrong")
    slack.command("alias remove x")
    said(slack_fake, "like `/pm rule remove 42`")


def test_list_search_treats_wildcards_literally(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                purelymail_fake: FakePurelyMail) -> None:
    seed(rt, purelymail_fake, 3)
    slack.command("mailbox list %")
    said(slack_fake, "No mailboxes matching")


def test_list_search_ignores_case_and_counts_each_page(rt: Runtime, purelymail_fake: FakePurelyMail) -> None:
    seed(rt, purelymail_fake, 45)
    first = mailboxes.list_page(rt, "USER0", page_size=20)
    assert (first.matched, first.total, first.start, first.addresses[0]) == (45, 45, 1, "user000@example.com")
    second = mailboxes.list_page(rt, "User0", after=first.next_cursor, page_size=20)
    assert (second.start, second.addresses[0], second.prev_cursor) == (21, "user020@example.com", "user020@example.com")
    back = mailboxes.list_page(rt, "user0", before=second.prev_cursor, page_size=20)
    assert back.addresses == first.addresses and back.start == 1
    last = mailboxes.list_page(rt, "user04", page_size=20)
    assert (last.matched, last.total, last.next_cursor) == (5, 45, None)


# ---- add ----------------------------------------------------------------------------------


def test_add_generates_a_password_shown_once_to_the_admin_only(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                               purelymail_fake: FakePurelyMail,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    purelymail_fake.add_domain_direct(DOMAIN)
    mailboxes.sync(rt)
    from purelyops import domains

    domains.sync_from_purelymail(rt)
    slack.command("mailbox add")
    opened = slack_fake.wait_for("views.open")
    assert opened.args["view"]["blocks"][0]["element"]["options"][0]["value"] == DOMAIN
    slack.view_submission("user_add", {"domain": {"value": DOMAIN}, "local_part": {"value": "Alice"}})
    shown = said(slack_fake, "shown only here, once", method="chat.postEphemeral")
    assert shown.args["user"] == ADMIN and shown.args["channel"] == OPS

    created = purelymail_fake.calls_to("createUser")
    assert len(created) == 1 and created[0]["userName"] == "alice" and created[0]["domainName"] == DOMAIN
    assert created[0]["sendWelcomeEmail"] is False and created[0]["enableSearchIndexing"] is True
    password = purelymail_fake.users[f"alice@{DOMAIN}"].password
    assert len(password) == 20 and password.isalnum()
    assert "alice@example.com" in cache(rt)

    carrying = [c for c in slack_fake.calls if password in str(c.args)]
    assert carrying == [shown]  # exactly one message, ephemeral, to the admin
    assert password not in caplog.text
    with session_scope(rt.database_url) as session:
        entries = list(session.scalars(select(AuditEntry)))
    assert [e.action for e in entries] == ["user.create"] and password not in str(entries[0].params)


@pytest.mark.parametrize(("values", "block", "words"), [
    ({"local_part": {"value": "   "}}, "local_part", "give the part before the @"),
    ({"local_part": {"value": "a@b"}}, "local_part", "only the part before the @"),
    ({"local_part": {"value": "-alice"}}, "local_part", "letters, digits"),
    ({"local_part": {"value": "al..ice"}}, "local_part", "two dots"),
    ({"local_part": {"value": "x" * 65}}, "local_part", "at most 64"),
    ({"local_part": {"value": "ålice"}}, "local_part", "letters, digits"),
    ({"local_part": {"value": "bob\x00"}}, "local_part", "letters, digits"),
    ({"local_part": {"value": "bob"}, "password_mode": {"value": "typed"}, "password": {"value": "short"}},
     "password", "at least 8"),
    ({"local_part": {"value": "bob"}, "password_mode": {"value": "typed"}, "password": {"value": "x" * 10_000}},
     "password", "at most 256"),
    ({"local_part": {"value": "bob"}, "password_mode": {"value": "typed"}, "password": {"value": "line\nbreak!"}},
     "password", "line breaks"),
    ({"local_part": {"value": "bob"}, "password_mode": {"value": "typed"}, "password": {"value": ""}},
     "password", "at least 8"),
])
def test_bad_fields_are_refused_inline_and_nothing_is_created(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                              purelymail_fake: FakePurelyMail, values, block,
                                                              words) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    slack.command("mailbox add")
    slack_fake.wait_for("views.open")
    response = slack.view_submission("user_add", {"domain": {"value": DOMAIN}, **values})
    body = response.json()
    assert body["response_action"] == "errors" and words in body["errors"][block], body
    assert purelymail_fake.calls_to("createUser") == [] and cache(rt) == []


@pytest.mark.parametrize("password", ['quote"d \'pass', "$(rm -rf /)x", "`whoami`xx", "emoji 🔑🔑 pass"])
def test_typed_passwords_with_shell_characters_go_through_untouched(rt: Runtime, slack: SlackDriver,
                                                                    slack_fake: FakeSlack,
                                                                    purelymail_fake: FakePurelyMail, password) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    slack.command("mailbox add")
    slack_fake.wait_for("views.open")
    slack.view_submission("user_add", {"domain": {"value": DOMAIN}, "local_part": {"value": "bob"},
                                       "password_mode": {"value": "typed"}, "password": {"value": password}})
    said(slack_fake, "with the password you typed", method="chat.postEphemeral")
    assert purelymail_fake.users[f"bob@{DOMAIN}"].password == password
    assert [c for c in slack_fake.calls if password in str(c.args)] == []  # a typed password is never echoed


def test_purelymail_refusal_is_told_and_no_cache_row_appears(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                             purelymail_fake: FakePurelyMail) -> None:
    slack.command("mailbox add")
    slack_fake.wait_for("views.open")
    slack.view_submission("user_add", {"domain": {"value": "nodomain.example"}, "local_part": {"value": "bob"}})
    said(slack_fake, "PurelyMail did not create bob@nodomain.example", method="chat.postEphemeral")
    assert cache(rt) == []


# ---- show, reset, flags, recovery -----------------------------------------------------------


def test_show_reset_password_uses_new_password_and_shows_it_once(rt: Runtime, slack: SlackDriver,
                                                                 slack_fake: FakeSlack,
                                                                 purelymail_fake: FakePurelyMail) -> None:
    seed(rt, purelymail_fake, 1)
    address = f"user000@{DOMAIN}"
    slack.command(f"mailbox show {address}")
    said(slack_fake, "Two-factor authentication required")
    slack.block_action("user_reset_password", value=address)
    slack_fake.wait_for("views.open")
    slack.view_submission("user_reset_password", {})
    shown = said(slack_fake, "New password set for", method="chat.postEphemeral")
    body = purelymail_fake.calls_to("modifyUser")[0]
    assert set(body) == {"userName", "newPassword"}
    assert [c for c in slack_fake.calls if body["newPassword"] in str(c.args)] == [shown]


def test_two_factor_refusal_says_why_then_works_with_a_recovery_method(rt: Runtime, slack: SlackDriver,
                                                                       slack_fake: FakeSlack,
                                                                       purelymail_fake: FakePurelyMail) -> None:
    seed(rt, purelymail_fake, 1)
    purelymail_fake.require_reset_method_for_2fa = True
    address = f"user000@{DOMAIN}"
    slack.command(f"mailbox show {address}")
    said(slack_fake, "Turn 2FA on")
    slack.block_action("user_two_factor", value=f"on:{address}")
    said(slack_fake, "A password reset method is required")
    assert purelymail_fake.users[address].require_two_factor_authentication is False

    slack.block_action("user_recovery", value=address)
    said(slack_fake, "Recovery methods of")
    slack.block_action("user_recovery_add", value=address)
    slack_fake.wait_for("views.open")
    bad = slack.view_submission("user_recovery_add",
                                {"type": {"value": "email"}, "target": {"value": "not an address"}})
    assert "not an email address" in bad.json()["errors"]["target"]
    slack.view_submission("user_recovery_add",
                          {"type": {"value": "email"}, "target": {"value": "backup@elsewhere.example"}})
    said(slack_fake, "backup@elsewhere.example", method="chat.postEphemeral")
    assert purelymail_fake.users[address].reset_methods[0]["target"] == "backup@elsewhere.example"

    slack.block_action("user_two_factor", value=f"on:{address}", message_ts=None)
    slack_fake.wait_for("response_url", lambda c: "Turn 2FA off" in str(c.args.get("blocks")))
    assert purelymail_fake.users[address].require_two_factor_authentication is True


def test_delete_goes_through_the_queue_and_then_removes_the_cache_row(rt: Runtime, slack: SlackDriver,
                                                                      slack_fake: FakeSlack,
                                                                      purelymail_fake: FakePurelyMail) -> None:
    from datetime import datetime, timedelta, timezone

    seed(rt, purelymail_fake, 2)
    address = f"user000@{DOMAIN}"
    slack.command(f"mailbox show {address}")
    said(slack_fake, "Delete")
    slack.block_action("user_delete", value=address)
    said(slack_fake, "Cancel deletion")
    assert address in purelymail_fake.users
    done = deletions.run_due(rt, now=datetime.now(timezone.utc) + timedelta(hours=25))
    assert [(d.status, d.error) for d in done] == [("done", None)]
    assert address not in purelymail_fake.users and address not in cache(rt)
    with session_scope(rt.database_url) as session:
        assert [d.status for d in session.scalars(select(PendingDeletion))] == ["done"]


def test_show_of_an_unknown_or_bad_address(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("mailbox show nobody@example.com")
    said(slack_fake, "There is no mailbox nobody@example.com")
    slack.command("mailbox show <!channel>@x.com")
    reply = said(slack_fake, "letters, digits")
    assert "<!channel>" not in str(reply.args)


def test_viewers_cannot_create(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                               purelymail_fake: FakePurelyMail) -> None:
    from bot.blocks.mailboxes import add_modal

    purelymail_fake.add_domain_direct(DOMAIN)
    # The form was opened while U0NOBODY was an admin; by the time it is submitted, they are not.
    rt.slack.views_open(trigger_id=slack_fake.new_trigger_id("U0NOBODY"), view=add_modal([DOMAIN], OPS))
    slack.view_submission("user_add", {"domain": {"value": DOMAIN}, "local_part": {"value": "eve"}}, user_id="U0NOBODY")
    said(slack_fake, "Only purelyops admins", method="chat.postEphemeral")
    slack_fake.wait_for("views.update", lambda c: "Only purelyops admins" in str(c.args["view"]))  # the form too
    assert purelymail_fake.calls_to("createUser") == []


def test_app_home_is_a_dashboard_for_admins(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                            purelymail_fake: FakePurelyMail) -> None:
    from purelyops import domains
    from workers.credit import check_credit

    seed(rt, purelymail_fake, 3)
    seed(rt, purelymail_fake, 1, "other.example")
    domains.sync_from_purelymail(rt)
    purelymail_fake.credit = "1.25"
    check_credit(rt)
    deletions.schedule(rt, kind="user", target=f"user000@{DOMAIN}", actor_id=ADMIN)
    purelymail_fake.calls.clear()
    slack.event({"type": "app_home_opened", "user": ADMIN, "channel": "D0HOME", "tab": "home"})
    view = str(slack_fake.wait_for("views.publish").args["view"])
    for words in ("*Mailboxes*\\n4", "*Domains healthy*\\n2 of 2", "$1.25 :warning: low", "0 running, 0 queued",
                  "*Pending deletions*\\n1", "`example.com`: 3", "`other.example`: 1"):
        assert words in view, words
    assert purelymail_fake.calls == []  # Home never waits on PurelyMail
