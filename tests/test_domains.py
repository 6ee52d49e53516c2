"""Domains end to end: signed Slack requests in; Slack calls, PurelyMail's state and the
domains cache out. DNS is real: a server on loopback whose zones change during a test."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import AuditEntry, Domain, PendingDeletion
from db.session import session_scope
from purelyops import deletions, mailboxes
from purelyops.runtime import Runtime
from tests.conftest import ADMIN
from tests.fakes.dns_server import FakeDNS
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

DOMAIN = "example.com"


pytestmark = pytest.mark.usefixtures("slack_accepts_everything")


@pytest.fixture
def settings(dns_settings):
    return dns_settings


def answer(slack_fake: FakeSlack, words: str, method: str = "response_url"):
    return slack_fake.wait_for(method, lambda c: words in str(c.args.get("text", "")) + str(c.args.get("blocks", "")))


def cached(rt: Runtime, name: str) -> Domain | None:
    with session_scope(rt.database_url) as session:
        row = session.get(Domain, name)
        if row is not None:
            session.expunge(row)
        return row


# ---- add ----------------------------------------------------------------------------------


def test_add_waits_for_the_ownership_txt_then_adds(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                   purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    dns.add_zone(DOMAIN)
    slack.command(f"domain add {DOMAIN}")
    first = answer(slack_fake, "is not added yet")
    code = purelymail_fake.ownership_code
    assert f'{DOMAIN}. TXT "{code}"' in str(first.args["blocks"])
    assert purelymail_fake.calls_to("addDomain") == []  # not called before the TXT is visible
    assert DOMAIN not in purelymail_fake.domains

    dns.publish_purelymail(DOMAIN, code, skip=("dkim2",))
    slack.block_action("domain_add_retry", value=DOMAIN)
    added = slack_fake.wait_for("response_url", lambda c: "was added" in c.args.get("text", ""))
    assert added.args["replace_original"] is True
    shown = str(added.args["blocks"])
    assert "Ownership TXT" not in shown  # the other six records
    assert "purelymail2._domainkey.example.com does not exist" in shown
    assert "purelymail2._domainkey.example.com. CNAME key2.dkimroot.purelymail.com." in shown
    assert DOMAIN in purelymail_fake.domains
    row = cached(rt, DOMAIN)
    assert row is not None and row.healthy is False and row.last_checked_at is not None
    with session_scope(rt.database_url) as session:
        assert [a.action for a in session.scalars(select(AuditEntry))] == ["domain.add"]


def test_add_shows_both_forms_of_an_idn(slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
                                        dns: FakeDNS) -> None:
    dns.publish_purelymail("xn--bcher-kva.example", purelymail_fake.ownership_code)
    slack.command("domain add Bücher.Example.")
    added = answer(slack_fake, "was added")
    assert "xn--bcher-kva.example" in str(added.args["blocks"]) and "bücher.example" in str(added.args["blocks"])
    assert "xn--bcher-kva.example" in purelymail_fake.domains


def test_add_of_a_domain_that_exists_says_so(slack: SlackDriver, slack_fake: FakeSlack,
                                             purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    purelymail_fake.add_domain_direct(DOMAIN)
    slack.command(f"domain add {DOMAIN}")
    reply = answer(slack_fake, "already on a PurelyMail account")
    assert reply.args["response_type"] == "ephemeral"


def test_add_when_purelymail_cannot_see_the_txt_yet(slack: SlackDriver, slack_fake: FakeSlack,
                                                    purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    purelymail_fake.ownership_verifier = lambda domain, code: False  # its resolvers still cache the old answer
    slack.command(f"domain add {DOMAIN}")
    answer(slack_fake, "PurelyMail could not see the ownership TXT record")
    assert DOMAIN not in purelymail_fake.domains


def test_add_without_a_name_opens_a_modal_with_inline_errors(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                             purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    slack.command("domain add")
    slack_fake.wait_for("views.open")
    bad = slack.view_submission("domain_add", {"name": {"value": "http://example.com/"}})
    assert bad.json()["response_action"] == "errors"
    assert "without http://" in bad.json()["errors"]["name"]

    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    slack.view_submission("domain_add", {"name": {"value": DOMAIN}})
    posted = answer(slack_fake, "was added", method="chat.postEphemeral")
    assert posted.args["user"] == ADMIN
    assert DOMAIN in purelymail_fake.domains


# ---- check --------------------------------------------------------------------------------


def test_check_shows_expected_found_and_fix_as_records_change(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                              purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    code = purelymail_fake.ownership_code
    purelymail_fake.add_domain_direct(DOMAIN)
    dns.publish_purelymail(DOMAIN, code, skip=("spf",))
    dns.set(DOMAIN, "TXT", [code, "v=spf1 include:_spf.google.com ~all"])
    slack.command(f"domain check {DOMAIN}")
    reply = answer(slack_fake, "records need fixing")
    shown = str(reply.args["blocks"])
    assert "does not include _spf.purelymail.com" in shown
    assert "v=spf1 include:_spf.google.com include:_spf.purelymail.com ~all" in shown  # the merged fix

    dns.set(DOMAIN, "TXT", [code, "v=spf1 include:_spf.google.com include:_spf.purelymail.com ~all"])
    slack.block_action("domain_check_again", value=DOMAIN)
    fixed = slack_fake.wait_for("response_url", lambda c: "all records are in place" in c.args.get("text", ""))
    assert fixed.args["replace_original"] is True


def test_check_says_when_the_domain_does_not_exist(slack: SlackDriver, slack_fake: FakeSlack, dns: FakeDNS) -> None:
    dns.add_zone("other.example")
    slack.command("domain check missing.other.example")
    reply = answer(slack_fake, "NXDOMAIN")
    assert "does not exist in DNS" in str(reply.args["blocks"])


# ---- recheck, list ------------------------------------------------------------------------


def test_recheck_sends_exactly_recheck_dns_and_refreshes_the_badges(rt: Runtime, slack: SlackDriver,
                                                                    slack_fake: FakeSlack,
                                                                    purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct(DOMAIN, dns_ok=False)
    purelymail_fake.dns_rechecker = lambda name: None
    purelymail_fake.set_dns_summary(DOMAIN, mx=True, spf=True, dkim=False, dmarc=True)
    slack.command(f"domain recheck {DOMAIN}")
    reply = answer(slack_fake, "PurelyMail re-checked")
    assert "DKIM failing" in reply.args["text"] and "MX ok" in reply.args["text"]
    assert [c for c in purelymail_fake.calls_to("updateDomainSettings")] == [{"name": DOMAIN, "recheckDns": True}]
    row = cached(rt, DOMAIN)
    assert row is not None and row.passes_mx and not row.passes_dkim


def test_list_puts_failing_domains_first_and_pages_with_buttons(rt: Runtime, slack: SlackDriver,
                                                               slack_fake: FakeSlack,
                                                               purelymail_fake: FakePurelyMail) -> None:
    for i in range(45):
        purelymail_fake.add_domain_direct(f"d{i:02d}.example", dns_ok=i not in (30, 40))
    slack.command("domain list")
    first = answer(slack_fake, "Domains 1–20 of 45")
    shown = str(first.args["blocks"])
    assert (shown.index("d30.example") < shown.index("d00.example")
            and shown.index("d40.example") < shown.index("d00.example"))
    assert "2 failing" in first.args["text"]

    slack.block_action("domain_list_next")
    second = slack_fake.wait_for("response_url", lambda c: "21–40 of 45" in c.args.get("text", ""))
    slack.block_action("domain_list_next")
    third = slack_fake.wait_for("response_url", lambda c: "41–45 of 45" in c.args.get("text", ""))
    assert [e["text"]["text"] for e in third.args["blocks"][-1]["elements"]] == ["Previous"]
    slack.block_action("domain_list_previous")
    back = slack_fake.wait_for("response_url", lambda c: c is not second and "21–40 of 45" in c.args.get("text", ""))
    assert back.args["blocks"][1:-2] == second.args["blocks"][1:-2]


def test_domains_added_or_removed_outside_the_bot_are_picked_up(rt: Runtime, purelymail_fake: FakePurelyMail) -> None:
    from purelyops import domains

    purelymail_fake.add_domain_direct("a.example")
    purelymail_fake.add_domain_direct("b.example")
    assert domains.sync_from_purelymail(rt) == (["a.example", "b.example"], [])
    del purelymail_fake.domains["a.example"]
    purelymail_fake.add_domain_direct("c.example")
    assert domains.sync_from_purelymail(rt) == (["c.example"], ["a.example"])


# ---- remove -------------------------------------------------------------------------------


def test_remove_schedules_24h_ahead_with_the_mailbox_count_and_cancel_works(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    for i in range(3):
        purelymail_fake.add_user_direct(f"u{i}@{DOMAIN}")
    mailboxes.sync(rt)
    slack.command(f"domain remove {DOMAIN}")
    notice = answer(slack_fake, "will be deleted in")
    assert "3 mailbox(es) on it go with it (as of the last mailbox sync" in str(notice.args["blocks"])
    assert "23 h" in notice.args["text"]
    assert DOMAIN in purelymail_fake.domains  # nothing deleted yet
    assert purelymail_fake.calls_to("deleteDomain") == []

    slack.command(f"domain remove {DOMAIN}")  # again: the same deletion
    answer(slack_fake, "already scheduled")
    with session_scope(rt.database_url) as session:
        pending = list(session.scalars(select(PendingDeletion)))
    assert len(pending) == 1 and pending[0].kind == "domain"

    slack.block_action("deletion_cancel", value=str(pending[0].id))
    slack_fake.wait_for("response_url", lambda c: "cancelled" in c.args.get("text", ""))
    assert deletions.pending(rt) == []


def test_remove_says_the_count_is_incomplete_when_purelymail_cut_the_list_short(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    for i in range(1200):  # listUser answers with the first 1,000 only
        purelymail_fake.add_user_direct(f"u{i:04d}@{DOMAIN}")
    assert mailboxes.sync(rt).capped
    slack.command(f"domain remove {DOMAIN}")
    notice = answer(slack_fake, "will be deleted in")
    words = str(notice.args["blocks"])
    assert "At least 1000 mailbox(es) on it go with it, maybe more" in words
    assert "the mailbox cache may be incomplete since" in words and "1,000" in words
    with session_scope(rt.database_url) as session:
        assert session.scalars(select(PendingDeletion.detail)).one().startswith("At least 1000 mailbox(es)")


def test_remove_never_says_no_mailboxes_when_the_cache_was_never_filled(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_user_direct(f"ann@{DOMAIN}")
    slack.command(f"domain remove {DOMAIN}")
    words = str(answer(slack_fake, "will be deleted in").args["blocks"])
    assert "is not known" in words and "never been filled" in words and "No mailboxes" not in words


def test_remove_of_an_unknown_domain_schedules_nothing(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("domain remove nowhere.example")
    answer(slack_fake, "is not on the PurelyMail account")
    assert deletions.pending(rt) == []


def test_the_remove_button_asks_for_confirmation() -> None:
    from bot.blocks.domains import domain_buttons

    remove = next(b for b in domain_buttons(DOMAIN) if b["action_id"] == "domain_remove")
    assert remove["confirm"]["confirm"]["text"] == "Schedule removal"


# ---- bad names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "words"), [
    ('""', "give a domain name"),
    (".".join(["a" * 60] * 5) + ".com", "at most 253"),
    ("x" * 64 + ".com", "at most 63"),
    ("http://x.com/", "without http://"),
    ("a@b.com", "that is an email address; the domain is b.com"),
    ("-x.com", "starts or ends with a hyphen"),
    ("x..com", "empty part between dots"),
    ("exa_mple.com", "characters a domain name cannot have"),
    ("localhost", "has no dot"),
])
@pytest.mark.parametrize("sub", ["domain add", "domain check", "domain recheck", "domain remove"])
def test_bad_names_get_a_specific_answer_and_no_side_effect(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                           purelymail_fake: FakePurelyMail, dns: FakeDNS,
                                                           sub: str, typed: str, words: str) -> None:
    slack.command(f"{sub} {typed}")
    reply = answer(slack_fake, "not a domain name")
    assert words in reply.args["text"], reply.args["text"]
    assert reply.args["response_type"] == "ephemeral"
    assert purelymail_fake.calls == []  # not even the ownership code: the name is refused first
    assert dns.queries_for("x.com") == [] and dns.queries_for("b.com") == []
    assert deletions.pending(rt) == []


def test_uppercase_and_a_trailing_dot_name_the_same_domain(slack: SlackDriver, slack_fake: FakeSlack,
                                                           purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    slack.command("domain add EXAMPLE.com.")
    answer(slack_fake, "was added")
    assert list(purelymail_fake.domains) == [DOMAIN]


def test_two_names_get_usage(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("domain check a.com b.com")
    answer(slack_fake, "give one domain name")
