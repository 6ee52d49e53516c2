"""Every Block Kit builder in bot/blocks/, run with realistic inputs (long lists and long
names included) through the Block Kit checker on its own: what the bot builds, Slack accepts.

The fake Slack applies the same checker to every message and view a test makes the bot
send; this file reaches the builders and the inputs that no conversation test happens to
produce (a hundred domains, forty failed migrations, an empty list).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import bot.blocks
from bot.blocks import account, audit, deletions, domains, gather, help, home, kit, mailboxes, migrations, routing_rules
from bot.router import Subcommand
from db.models import (
    AuditEntry,
    Domain,
    GatherLink,
    GatherSubmission,
    MigrationBatch,
    MigrationJob,
    PendingDeletion,
    SourceServer,
)
from purelyops.access import Role
from purelyops.audit_query import AuditQuery
from purelyops.dashboard import Dashboard
from purelyops.dnscheck import DomainCheck, RecordResult
from purelyops.domain_names import normalize_domain
from purelyops.domains import AddOutcome, DomainPage
from purelyops.gather import Existence, JobsOutcome, LinkState, LinkSummary, Planned
from purelyops.imapsync_output import Progress, Summary
from purelyops.mailboxes import MailboxPage, SyncReport
from purelyops.migration_csv import template
from purelyops.oauth_tokens import TenantPlan
from purelyops.providers import PROVIDERS
from purelyops.purelymail import ResetMethod, RoutingRule, UserDetails
from tests.fakes.slack_fake.block_kit import BlockKitChecker, check_message_blocks, check_view

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
CHANNEL = "C0OPS0001"
LONG_LOCAL = "firstname.middlename.lastname-with-a-long-department-suffix"  # 60 characters
IDN = normalize_domain("bücher-und-zeitschriften-für-alle.example")
MESSAGE_TEXT_LIMIT = 40_000  # chat.update refuses longer fallback texts


# ---- sample inputs --------------------------------------------------------------------------


def addresses(n: int, domain: str = "example.com") -> list[str]:
    return [f"{LONG_LOCAL}{i}@{domain}" for i in range(n)]


def domain_names(n: int) -> list[str]:
    return [f"client-{i:03d}-with-a-rather-long-company-name.example" for i in range(n)]


def record(kind: str, status: str, *, found: int = 2) -> RecordResult:
    spf = "v=spf1 include:_spf.google.com include:mailgun.org include:sendgrid.net ip4:192.0.2.0/24 ~all"
    values = {"ownership": "purelymail_ownership_proof=3f9a1c0e7b2d4a68", "mx": "50 mailserver.purelymail.com",
              "spf": "v=spf1 include:_spf.purelymail.com ~all", "dmarc": "dmarcroot.purelymail.com"}
    expected = values.get(kind, f"key{kind[-1]}.dkimroot.purelymail.com")
    return RecordResult(kind, status, expected, [f"{spf} {'x' * 250} #{i}" for i in range(found)],  # type: ignore[arg-type]
                        "the record points somewhere else; publish the line below " * 4,
                        f"{IDN.ascii}. 3600 IN TXT \"{spf}\"", f"_dmarc.{IDN.ascii}")


KINDS = ("ownership", "mx", "spf", "dkim1", "dkim2", "dkim3", "dmarc")


def domain_check(status: str = "fail") -> DomainCheck:
    return DomainCheck(IDN.ascii, IDN.unicode, [record(k, status, found=8) for k in KINDS], 4.21,
                       [f"ns{i}.a-dns-host-with-a-long-name.example (192.0.2.{i})" for i in range(12)], "authoritative")


def domain_row(name: str, i: int = 0, *, checked: bool = True) -> Domain:
    stored = {"records": [{"kind": k, "status": ("pass", "warn", "fail")[(i + n) % 3]} for n, k in enumerate(KINDS)]}
    return Domain(name=name, unicode_name=IDN.unicode if i % 4 == 0 else name, passes_mx=i % 2 == 0,
                  passes_spf=True, passes_dkim=i % 3 == 0, passes_dmarc=False, check=stored if checked else None,
                  last_checked_at=NOW - timedelta(hours=i) if checked else None)


def sample_rules(n: int) -> list[RoutingRule]:
    return [RoutingRule(i, f"client-{i % 7}.example", i % 2 == 0, f"{LONG_LOCAL}-{i}",
                        tuple(addresses(15, "elsewhere.example")), i % 5 == 0) for i in range(1, n + 1)]


def audit_entries(n: int) -> list[AuditEntry]:
    return [AuditEntry(id=10_000 - i, at=NOW - timedelta(minutes=i), actor_id="U0ADMIN01" if i % 3 else "scheduler",
                       actor_name="alice", action="user.add", target=addresses(1)[0],
                       params={"domain": "example.com", "search_indexing": True, "note": "<b>&" * 60},
                       result=("ok", "refused", "failed")[i % 3], detail="PurelyMail said: " + "no " * 400)
            for i in range(n)]


def deletion(i: int = 1, kind: str = "user", status: str = "pending") -> PendingDeletion:
    return PendingDeletion(id=i, kind=kind, target=addresses(1)[0] if kind == "user" else f"client-{i}.example",
                           requested_by="U0ADMIN01", due_at=NOW + timedelta(hours=23, minutes=59 - i % 60),
                           status=status, error="PurelyMail answered 503: " + "unavailable " * 100)


def server(i: int = 1) -> SourceServer:
    return SourceServer(id=i, name=f"oldhost-{i}", host=f"imap.{i}.an-old-mail-host-with-a-long-name.example",
                        port=993, security=("tls", "starttls", "none")[i % 3],
                        provider=list(PROVIDERS)[i % len(PROVIDERS)],
                        created_by="U0ADMIN01")


def job(i: int = 42, status: str = "running", *, dry_run: bool = False) -> MigrationJob:
    return MigrationJob(id=i, source_host="imap.old.example", source_port=993, source_security="tls",
                        source_email=addresses(1, "old-host.example")[0], dest_email=addresses(1)[0],
                        dry_run=dry_run, status=status, msgs_done=12_345 * (i % 3), msgs_total=98_765,
                        bytes_done=3 * 1024**3, bytes_total=17 * 1024**3,
                        verdict="the destination mailbox is full: " + "over quota " * 50 if status != "done" else "ok",
                        channel_id=CHANNEL, created_by="U0ADMIN01")


def folders_summary(n: int) -> dict:
    """A summary with `n` folders of long names on both sides, some short, some excluded, a quota."""
    names = [f"Archive/{2000 + i}/" + "Very Long Folder Name " * 5 for i in range(n)]
    return {"source_before": {name: [1000 + i, 5_000_000 + i] for i, name in enumerate(names)},
            "source_after": {name: [1000 + i, 5_000_000 + i] for i, name in enumerate(names)},
            "dest_after": {name: [1000 + i - (i % 3), 1] for i, name in enumerate(names)},
            "excluded": ["Trash", "Junk " * 20], "quota": [10, 2**30],
            "folder_problems": {name: ["over quota", "message too big"] for name in names[::3]}}


def jobs_in_every_state(n: int) -> list[MigrationJob]:
    states = ("queued", "running", "done", "failed", "cancelled", "interrupted")
    return [job(i, states[i % len(states)], dry_run=i % 2 == 0) for i in range(1, n + 1)]


def link_summary(state: LinkState = LinkState.ACTIVE, submissions: int = 0,
                 domains: str = "new.example,second.example") -> LinkSummary:
    link = GatherLink(id=123_456, name="Wave 1: " + "the accounting <!channel> team " * 2, source_server_id=3,
                      source_name="oldhost-with-a-long-name", source_host=f"imap.{IDN.ascii}", source_port=993,
                      source_security="tls", dest_domains=domains, channel_id=CHANNEL,
                      message_ts="1710408600.000100", created_by="U0ADMIN01",
                      expires_at=NOW + timedelta(days=30), closed_at=NOW if state is LinkState.CLOSED else None)
    return LinkSummary(link, state, submissions, submissions // 3)


def gather_submission(i: int = 1, *, new_address: bool = True, job_id: int | None = None) -> GatherSubmission:
    return GatherSubmission(id=i, link_id=123_456, full_name=f"<!channel> *Bob* {i} " + "Longname-" * 20,
                            email=f"{LONG_LOCAL}{i}@old-host.example" + "x" * 200,
                            new_address=addresses(1)[0] if new_address else None, job_id=job_id)


def planned(n: int) -> list[Planned]:
    kinds = [Existence.EXISTS, Existence.WILL_BE_CREATED, Existence.UNCHECKED, None]
    return [Planned(gather_submission(i, new_address=i % 4 != 3, job_id=i if i % 5 == 0 else None),
                    addresses(1)[0] if i % 4 != 3 else None, kinds[i % 4]) for i in range(n)]


def approvals(n: int) -> list[Planned]:
    """A page of rows whose destination exists and whose password was not proven."""
    return [Planned(gather_submission(i), addresses(1)[0], Existence.EXISTS) for i in range(n)]


def progress() -> Progress:
    return Progress(msgs_done=45_678, msgs_total=98_765, msgs_left=53_087, bytes_done=5 * 1024**3,
                    bytes_total=17 * 1024**3, rate_msgs_per_s=38.4, eta_seconds=4321.0,
                    folder="INBOX/Archives/2019/Customers/" + "Very Long Folder Name/" * 10)


def summary() -> Summary:
    return Summary(transferred=98_000, skipped=765, errors=37, bytes_transferred=17 * 1024**3, rate_msgs_per_s=41.2,
                   error_lines=[f"Host2 failure: Error login on [imap.purelymail.com] {'x' * 400} #{i}"
                                for i in range(20)],
                   most_frequent_error="The destination mailbox is 100% full, " + "get free space. " * 40)


def subcommands(extra: int = 0) -> list[Subcommand]:
    real = [
        ("help", "help", "show this list"), ("credit", "credit", "the PurelyMail account's credit"),
        ("domain add", "domain add [example.com]", "add a domain, once its ownership TXT is published"),
        ("domain list", "domain list", "every domain with its DNS badges"),
        ("domain check", "domain check example.com", "a live check of the seven records"),
        ("domain recheck", "domain recheck example.com", "ask PurelyMail to re-run its checks"),
        ("domain remove", "domain remove example.com", "delete a domain in 24 hours"),
        ("pending", "pending", "the deletions scheduled"),
        ("mailbox list", "mailbox list [text] [domain:x]", "mailboxes"),
        ("mailbox sync", "mailbox sync", "refresh the mailbox cache"),
        ("mailbox add", "mailbox add", "create a mailbox"),
        ("mailbox show", "mailbox show alice@example.com", "one mailbox's settings"),
        ("mailbox delete", "mailbox delete alice@example.com", "delete a mailbox in 24 hours"),
        ("rule list", "rule list [example.com]", "routing rules"), ("rule add", "rule add", "a routing rule"),
        ("rule remove", "rule remove <id>", "delete a routing rule in 24 hours"),
        ("server add", "server add", "a source IMAP server"), ("server list", "server list", "source servers"),
        ("server remove", "server remove <name>", "forget a source server"),
        ("server test", "server test <name>", "a real IMAP login"), ("migrate", "migrate", "move a mailbox in"),
        ("migrate bulk", "migrate bulk", "move many mailboxes from a CSV"),
        ("jobs", "jobs [status]", "migrations"), ("job", "job <id>", "one migration"),
        ("audit", "audit [text] [user:@x] [since:7d]", "the audit log"),
    ]
    real += [(f"user extra{i}", f"user extra{i} <address> [--option-{i}]", "a subcommand added later " * 3)
             for i in range(extra)]
    return [Subcommand(name, usage, summary_, lambda request: None, Role.ADMIN) for name, usage, summary_ in real]


def dashboard(per_domain: int) -> Dashboard:
    return Dashboard([(name, 1000 - i) for i, name in enumerate(domain_names(per_domain))], 123_456, per_domain,
                     per_domain // 2, Decimal("4.5"), True, 4, 380, 17, NOW)


def user_details() -> UserDetails:
    methods = tuple(ResetMethod("email", f"backup{i}@elsewhere.example", "the IT desk's shared inbox " * 4, i % 2 == 0)
                    for i in range(60))
    return UserDetails(addresses(1)[0], True, True, False, True, methods)


# ---- every builder, with its inputs -----------------------------------------------------------

# (builder, sample name, a call that builds it). A builder returns (text, blocks) for a
# message, a view (dict with "type" modal or home), a list of blocks, or (for
# mailbox_options) the options of an external select.
Case = tuple[Callable[..., Any], str, Callable[[], Any]]
CASES: list[Case] = [
    (account.credit_blocks, "low", lambda: account.credit_blocks(Decimal("1.239"), Decimal("5"))),
    (account.credit_blocks, "fine", lambda: account.credit_blocks(Decimal("123456.78"), Decimal("5"))),
    (account.low_credit_blocks, "", lambda: account.low_credit_blocks(Decimal("1.239"), Decimal("5"))),
    (routing_rules.list_blocks, "none", lambda: routing_rules.list_blocks([], "example.com")),
    (routing_rules.list_blocks, "120 rules", lambda: routing_rules.list_blocks(sample_rules(120), None)),
    (routing_rules.add_modal, "150 domains", lambda: routing_rules.add_modal(domain_names(150), CHANNEL)),
    (routing_rules.add_modal, "no domains", lambda: routing_rules.add_modal([], CHANNEL)),
    (routing_rules.created_blocks, "rule", lambda: routing_rules.created_blocks(sample_rules(1)[0])),
    (routing_rules.created_blocks, "not listed yet", lambda: routing_rules.created_blocks(None)),
    (audit.audit_blocks, "none", lambda: audit.audit_blocks([], False, AuditQuery())),
    (audit.audit_blocks, "a page and more", lambda: audit.audit_blocks(
        audit_entries(16), True, AuditQuery("user.add " * 30, "U0ADMIN01", timedelta(days=7)))),
    (deletions.scheduled_blocks, "mailbox", lambda: deletions.scheduled_blocks(
        deletion(), "The mailbox and all its mail go with it. " * 20)),
    (deletions.cancelled_blocks, "domain", lambda: deletions.cancelled_blocks(deletion(kind="domain"), "U0ADMIN02")),
    (deletions.outcome_blocks, "done", lambda: deletions.outcome_blocks(deletion(status="done"))),
    (deletions.outcome_blocks, "failed", lambda: deletions.outcome_blocks(
        deletion(kind="routing_rule", status="failed"))),
    (deletions.pending_blocks, "none", lambda: deletions.pending_blocks([])),
    (deletions.pending_blocks, "80 scheduled", lambda: deletions.pending_blocks(
        [deletion(i, ("user", "domain", "routing_rule")[i % 3]) for i in range(1, 81)], NOW)),
    (domains.add_modal, "", lambda: domains.add_modal(CHANNEL)),
    (domains.ownership_needed_blocks, "other TXT records", lambda: domains.ownership_needed_blocks(
        AddOutcome(IDN, "purelymail_ownership_proof=3f9a", False, [f"google-site-verification={'x' * 250}"] * 12, ""),
        f"{IDN.ascii}. 3600 IN TXT \"purelymail_ownership_proof=3f9a\"")),
    (domains.ownership_needed_blocks, "DNS failing", lambda: domains.ownership_needed_blocks(
        AddOutcome(IDN, "c", False, [], "no answer from ns1.example or ns2.example within 5 s " * 20), "fix")),
    (domains.ownership_needed_blocks, "nothing there", lambda: domains.ownership_needed_blocks(
        AddOutcome(IDN, "c", False, [], ""), "fix")),
    (domains.check_blocks, "every record failing", lambda: domains.check_blocks(domain_check())),
    (domains.check_blocks, "all passing", lambda: domains.check_blocks(domain_check("pass"))),
    (domains.added_blocks, "", lambda: domains.added_blocks(AddOutcome(IDN, "c", True, [], "", domain_check("warn")))),
    (domains.list_blocks, "none", lambda: domains.list_blocks(DomainPage([], 0, 0, 1, None, None))),
    (domains.list_blocks, "a full page of 300", lambda: domains.list_blocks(DomainPage(
        [domain_row(name, i, checked=i % 5 != 0) for i, name in enumerate(domain_names(20))], 300, 120, 21,
        "1:" + "z" * 250, "0:" + "a" * 250))),
    (domains.recheck_blocks, "", lambda: domains.recheck_blocks(domain_row(IDN.ascii))),
    (domains.alert_blocks, "everything broke", lambda: domains.alert_blocks(
        IDN.ascii, [record(k, "fail", found=8) for k in KINDS], [])),
    (domains.alert_blocks, "recovered", lambda: domains.alert_blocks(IDN.ascii, [], list(KINDS))),
    (help.help_blocks, "every subcommand", lambda: help.help_blocks("/pm", subcommands())),
    (help.help_blocks, "with an intro", lambda: help.help_blocks(
        "/pm", subcommands(), intro="I don't know `dommain`.")),
    (home.dashboard_blocks, "300 domains", lambda: home.dashboard_blocks(dashboard(300))),
    (home.home_view, "admin", lambda: home.home_view("/pm", True, dashboard(300))),
    (home.home_view, "viewer", lambda: home.home_view("/pm", False)),
    (migrations.status_blocks, "running", lambda: migrations.status_blocks(job(), progress(), "a note " * 100)),
    (migrations.status_blocks, "queued", lambda: migrations.status_blocks(job(status="queued"))),
    (migrations.queued_blocks, "", lambda: migrations.queued_blocks(job(status="queued"))),
    (migrations.status_blocks, "dry run done", lambda: migrations.status_blocks(job(status="done", dry_run=True))),
    (migrations.summary_blocks, "failed", lambda: migrations.summary_blocks(job(status="failed"), summary(), 4321.5)),
    (migrations.report_blocks, "plan of 300 folders", lambda: migrations.report_blocks(
        job(status="done", dry_run=True), folders_summary(300))),
    (migrations.report_blocks, "check of 300 folders", lambda: migrations.report_blocks(
        job(status="failed"), folders_summary(300))),
    (migrations.report_blocks, "nothing counted", lambda: migrations.report_blocks(job(status="failed"), {})),
    (migrations.jobs_blocks, "none", lambda: migrations.jobs_blocks([], "failed")),
    (migrations.jobs_blocks, "60 jobs", lambda: migrations.jobs_blocks(jobs_in_every_state(60), None)),
    (migrations.job_blocks, "interrupted", lambda: migrations.job_blocks(job(status="interrupted"))),
    (migrations.servers_blocks, "none", lambda: migrations.servers_blocks([])),
    (migrations.servers_blocks, "60 servers", lambda: migrations.servers_blocks([server(i) for i in range(60)])),
    (migrations.server_add_modal, "", lambda: migrations.server_add_modal(CHANNEL)),
    (migrations.server_test_modal, "", lambda: migrations.server_test_modal(server(), CHANNEL)),
    (migrations.migrate_modal, "150 servers", lambda: migrations.migrate_modal(
        [server(i) for i in range(150)], CHANNEL)),
    (migrations.credentials_modal, "", lambda: migrations.credentials_modal(job(123_456), CHANNEL)),
    (migrations.mailbox_options, "150 and a long typed one", lambda: migrations.mailbox_options(
        addresses(150), "x" * 64 + "@" + "y" * 250)),
    (migrations.batch_blocks, "500 jobs", lambda: migrations.batch_blocks(
        MigrationBatch(id=7, name="Wave 1: " + "the accounting department " * 3), jobs_in_every_state(500))),
    (migrations.batch_blocks, "empty", lambda: migrations.batch_blocks(MigrationBatch(id=8, name="empty"), [])),
    (migrations.batch_blocks, "2,000 jobs", lambda: migrations.batch_blocks(
        MigrationBatch(id=9, name="everyone"), jobs_in_every_state(2000))),
    (migrations.bulk_template_blocks, "", lambda: migrations.bulk_template_blocks(template())),
    (migrations.bulk_modal, "150 servers", lambda: migrations.bulk_modal([server(i) for i in range(150)], CHANNEL)),
    (migrations.tenant_plan_blocks, "5,000 mailboxes, 900 apart", lambda: migrations.tenant_plan_blocks(
        TenantPlan("new.example", "example.com", [(a, a.replace("@", ".x@")) for a in addresses(5000)],
         addresses(900), addresses(80)), '{"s":1,"d":"new.example","t":"example.com","a":"","n":"w","r":false,'
                                         '"h":"0123456789abcdef0123456789abcdef"}')),
    (migrations.tenant_plan_blocks, "nothing to move", lambda: migrations.tenant_plan_blocks(
        TenantPlan("new.example", "new.example", [], [], []), "{}")),
    (migrations.csv_problems_blocks, "300 bad rows", lambda: migrations.csv_problems_blocks(
        [(i, "source_password is empty; " * 20) for i in range(300)])),
    (mailboxes.list_blocks, "empty cache", lambda: mailboxes.list_blocks(
        MailboxPage([], 0, 0, 1, None, None, None), "", None)),
    (mailboxes.list_blocks, "no match", lambda: mailboxes.list_blocks(
        MailboxPage([], 0, 5000, 1, None, None, NOW), "x" * 320, IDN.ascii)),
    (mailboxes.list_blocks, "a page of 5000", lambda: mailboxes.list_blocks(MailboxPage(
        addresses(20), 4000, 5000, 21, addresses(1)[0] * 2, addresses(1)[0], NOW), "first" * 60, "example.com")),
    (mailboxes.add_modal, "150 domains", lambda: mailboxes.add_modal(domain_names(150), CHANNEL)),
    (mailboxes.add_modal, "no domains", lambda: mailboxes.add_modal([], CHANNEL)),
    (mailboxes.reset_modal, "", lambda: mailboxes.reset_modal(addresses(1)[0], CHANNEL)),
    (kit.notice_modal, "a long title, 120 blocks", lambda: kit.notice_modal(
        "Mailbox created for " + addresses(1)[0], [kit.section("x" * 2900)] * 120)),
    (mailboxes.password_once_blocks, "generated", lambda: mailboxes.password_once_blocks(
        addresses(1)[0], "Xk3#v9!pQ2@wL7$zR5&m", "Created", "strong: 131 bits")),
    (mailboxes.password_once_blocks, "typed", lambda: mailboxes.password_once_blocks(addresses(1)[0], None, "Reset")),
    (mailboxes.user_blocks, "60 recovery methods", lambda: mailboxes.user_blocks(user_details())),
    (mailboxes.recovery_blocks, "60 methods", lambda: mailboxes.recovery_blocks(
        addresses(1)[0], list(user_details().reset_methods))),
    (mailboxes.recovery_blocks, "none", lambda: mailboxes.recovery_blocks(addresses(1)[0], [])),
    (mailboxes.recovery_modal, "", lambda: mailboxes.recovery_modal(addresses(1)[0], CHANNEL)),
    (mailboxes.sync_report_blocks, "500 each way, capped", lambda: mailboxes.sync_report_blocks(
        SyncReport(addresses(500), addresses(500, "gone.example"), 5000, True))),
    (mailboxes.sync_report_blocks, "failed", lambda: mailboxes.sync_report_blocks(
        SyncReport(error="PurelyMail: " + "503 " * 500))),
    (gather.link_blocks, "active", lambda: gather.link_blocks(link_summary(submissions=400))),
    (gather.link_blocks, "closed", lambda: gather.link_blocks(link_summary(LinkState.CLOSED))),
    (gather.link_secret_blocks, "", lambda: gather.link_secret_blocks(
        link_summary(), "https://purelyops.a-company-with-a-long-name.example/gather/" + "A" * 43)),
    (gather.announcement_blocks, "a long name", lambda: gather.announcement_blocks(gather_submission())),
    (gather.announcement_blocks, "no new address", lambda: gather.announcement_blocks(
        gather_submission(new_address=False))),
    (gather.list_blocks, "none", lambda: gather.list_blocks([])),
    (gather.list_blocks, "60 links", lambda: gather.list_blocks(
        [link_summary(list(LinkState)[i % 3], i) for i in range(60)])),
    (gather.show_blocks, "nobody yet", lambda: gather.show_blocks(link_summary(), [])),
    (gather.show_blocks, "300 submissions", lambda: gather.show_blocks(link_summary(submissions=300), planned(300))),
    (gather.show_blocks, "expired", lambda: gather.show_blocks(link_summary(LinkState.EXPIRED, 9), planned(9))),
    (gather.new_modal, "150 servers", lambda: gather.new_modal([server(i) for i in range(150)], domain_names(150),
                                                               CHANNEL)),
    (gather.new_modal, "a few domains", lambda: gather.new_modal([server(1)], domain_names(3), CHANNEL)),
    (gather.create_modal, "a page of 50, all to approve, 300 waiting", lambda: gather.create_modal(
        link_summary(submissions=300), approvals(50), 300, domain_names(150), CHANNEL)),
    (gather.create_modal, "an older link: a domain to choose", lambda: gather.create_modal(
        link_summary(submissions=3, domains=""), planned(3), 3, domain_names(3), CHANNEL)),
    (gather.create_modal, "every one gave an address", lambda: gather.create_modal(
        link_summary(submissions=3), planned(3), 3, [], CHANNEL)),
    (gather.jobs_outcome_blocks, "200 problems", lambda: gather.jobs_outcome_blocks(123_456, JobsOutcome(
        7, 300, [(a, "Xk3v9pQ2wL7zR5mAb1cD") for a in addresses(100)],
        ["PurelyMail did not create x: " + "no such domain " * 30] * 200, 100), True)),
    (gather.jobs_outcome_blocks, "nothing made", lambda: gather.jobs_outcome_blocks(1, JobsOutcome(), False)),
    (gather.passwords_blocks, "200 mailboxes", lambda: gather.passwords_blocks(
        [(a, "Xk3v9pQ2wL7zR5mAb1cD") for a in addresses(200)])),
]


def problems(output: Any) -> list[str]:
    """What Slack would refuse in a builder's output."""
    if isinstance(output, tuple):
        text, blocks = output
        found = check_message_blocks(blocks)
        if not isinstance(text, str) or not text.strip():
            found.append("no fallback text")
        elif len(text) > MESSAGE_TEXT_LIMIT:
            found.append(f"fallback text of {len(text)} characters")
        return found
    if isinstance(output, dict):
        return check_view(output)
    if output and "value" in output[0]:  # the options of an external select
        return BlockKitChecker().options_response({"options": output})
    return check_message_blocks(output)


@pytest.mark.parametrize(("build", "sample"), [(build, sample) for _, sample, build in CASES],
                         ids=[f"{b.__module__.rsplit('.', 1)[1]}.{b.__name__}:{s}".rstrip(":") for b, s, _ in CASES])
def test_slack_accepts_what_the_builder_makes(build: Callable[[], Any], sample: str) -> None:
    assert problems(build()) == []


@pytest.mark.parametrize(("build", "sample"), [(build, sample) for _, sample, build in CASES],
                         ids=[f"{b.__module__.rsplit('.', 1)[1]}.{b.__name__}:{s}".rstrip(":") for b, s, _ in CASES])
def test_a_messages_text_is_escaped_like_its_blocks(build: Callable[[], Any], sample: str) -> None:
    """Slack notifies from `text`: what a builder gives there went through kit.fallback, so
    nothing in it is Slack markup (no `<…>` sequence, no bare `&`)."""
    output = build()
    if isinstance(output, tuple):
        text = output[0]
        assert not re.search(r"[<>]|&(?!amp;|lt;|gt;)", text), text


def test_help_for_a_much_larger_group() -> None:
    """A group too long for one section (3,000 characters) goes on in the next ones, every
    subcommand listed once, under the group's title."""
    blocks = help.help_blocks("/pm", subcommands(30))
    assert problems(blocks) == []
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    mailboxes = [t for t in texts if "user extra" in t]
    assert len(mailboxes) > 1 and mailboxes[0].startswith("*Mailboxes*\n")
    listed = "\n".join(texts)
    assert all(listed.count(f"`/pm user extra{i} &lt;address&gt;") == 1 for i in range(30))


def test_every_builder_has_a_sample() -> None:
    """A new builder in bot/blocks/ gets a row in CASES."""
    covered = {(b.__module__, b.__name__) for b, _, _ in CASES}
    builders = set()
    for info in pkgutil.iter_modules(bot.blocks.__path__):
        module = importlib.import_module(f"bot.blocks.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_") and name.endswith(
                    ("_blocks", "_modal", "_view", "_options")):
                builders.add((module.__name__, name))
    assert builders - covered == set()


def test_the_checker_catches_what_slack_refuses() -> None:
    """The checker is not a rubber stamp: each of these is an error Slack gives."""
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert check_message_blocks([too_long]) == ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
    assert check_message_blocks([{"type": "divider"}] * 51)
    assert check_view({"type": "modal", "title": {"type": "plain_text", "text": "t"},
                       "blocks": [{"type": "input", "label": {"type": "plain_text", "text": "l"},
                                   "element": {"type": "plain_text_input", "action_id": "a"}}]})


@pytest.mark.parametrize("moves", [40, 5000])
def test_a_tenant_plan_says_how_many_mailboxes_it_does_not_list(moves: int) -> None:
    """Long addresses fill the plan's sections long before MAX_PLAN_LINES: every move is
    listed, or counted in "…and N more"; none is left out unsaid."""
    long = "x" * 200
    plan = TenantPlan("new.example", "example.com", [(f"{long}{n}@new.example", f"{long}{n}@example.com")
                                                     for n in range(moves)], [f"{long}{n}@new.example"
                                                                              for n in range(300)], [])
    _, blocks = migrations.tenant_plan_blocks(plan, "{}")
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    listed = sum(t.count(" → ") for t in texts)
    more = [int(m.replace(",", "")) for t in texts for m in re.findall(r"…and ([\d,]+) more", t)]
    assert listed + (more[0] if len(more) == 2 else 0) == moves
    assert len(more) == (2 if listed < moves else 1)  # the shared mailboxes' list is cut too
    assert blocks[-1]["type"] == "actions"  # the confirm button is never cut off
    apart = sum(t.count("@new.example") for t in texts if " → " not in t and "more" not in t)
    assert apart + more[-1] == 300
