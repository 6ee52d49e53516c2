"""Routing rules: the presets, finding the new rule's id, removal through the queue."""

from __future__ import annotations

import pytest

from purelyops import deletions
from purelyops.runtime import Runtime
from tests.conftest import said
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

DOMAIN = "example.com"

pytestmark = pytest.mark.usefixtures("slack_accepts_everything")


@pytest.mark.parametrize(("preset", "match", "prefix", "match_user", "catchall", "words"), [
    ("exact", "Sales", False, "sales", False, "sales@example.com"),
    ("prefix", "team-", True, "team-", False, "starting with team-"),
    ("any", "ignored", True, "", False, "every address on example.com"),
    ("catchall", "", True, "", True, "any address on example.com that is not a mailbox"),
])
def test_each_preset_sends_the_right_rule_and_finds_its_id(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                           purelymail_fake: FakePurelyMail, preset, match, prefix,
                                                           match_user, catchall, words) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    slack.command("rule add")
    slack_fake.wait_for("views.open")
    slack.view_submission("alias_add", {"domain": {"value": DOMAIN}, "preset": {"value": preset},
                                        "match": {"value": match},
                                        "targets": {"value": "Boss@Example.com,\nother@elsewhere.example"}})
    created = said(slack_fake, "Routing rule #", method="chat.postEphemeral")
    assert words in str(created.args["blocks"])
    assert purelymail_fake.calls_to("createRoutingRule") == [{
        "domainName": DOMAIN, "prefix": prefix, "matchUser": match_user,
        "targetAddresses": ["boss@example.com", "other@elsewhere.example"], "catchall": catchall}]

    slack.command(f"rule list {DOMAIN}")
    said(slack_fake, "1 routing rule(s) on example.com")


@pytest.mark.parametrize(("values", "block", "words"), [
    ({"preset": {"value": "exact"}, "match": {"value": ""}, "targets": {"value": "a@b.com"}}, "match", "give the part"),
    ({"preset": {"value": "prefix"}, "match": {"value": "$(x)"}, "targets": {"value": "a@b.com"}}, "match", "letters"),
    ({"preset": {"value": "exact"}, "match": {"value": "x"}, "targets": {"value": "not-an-address"}},
     "targets", "not an email"),
    ({"preset": {"value": "exact"}, "match": {"value": "x"}, "targets": {"value": "a@-b.com"}}, "targets", "hyphen"),
    ({"preset": {"value": "exact"}, "match": {"value": "x"},
      "targets": {"value": ",".join(f"u{i}@b.com" for i in range(21))}},
     "targets", "at most 20"),
])
def test_bad_rules_are_refused_inline(slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
                                      values, block, words) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    slack.command("rule add")
    slack_fake.wait_for("views.open")
    body = slack.view_submission("alias_add", {"domain": {"value": DOMAIN}, **values}).json()
    assert body["response_action"] == "errors" and words in body["errors"][block], body
    assert purelymail_fake.calls_to("createRoutingRule") == []


def test_remove_goes_through_the_queue(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                       purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    rt.purelymail.create_routing_rule(DOMAIN, prefix=False, match_user="x", target_addresses=["a@b.com"])
    rule_id = rt.purelymail.list_routing_rules()[0].id
    slack.command(f"rule remove {rule_id}")
    said(slack_fake, "Cancel deletion")
    assert [(d.kind, d.target) for d in deletions.pending(rt)] == [("routing_rule", str(rule_id))]
    slack.command("rule remove 999999")
    said(slack_fake, "There is no routing rule 999999")
    slack.command("rule remove -1")
    said(slack_fake, "give the rule's number")
    assert len(deletions.pending(rt)) == 1
