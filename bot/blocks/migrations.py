"""Block Kit for migrations: the thread's status message and summary, the job list, and
the server and migration modals."""

from __future__ import annotations

from dataclasses import asdict

from bot.blocks.kit import (
    actions,
    button,
    checkboxes,
    confirm,
    context,
    divider,
    external_select,
    file_input,
    input_block,
    line_sections,
    message,
    modal,
    option,
    options,
    radio_buttons,
    said,
    section,
    static_select,
    text_input,
)
from bot.mrkdwn import clip, code, escape
from bot.payloads import modal_metadata
from db.models import MigrationBatch, MigrationJob, SourceServer
from purelyops import migration_report
from purelyops.imapsync_output import Progress, Summary
from purelyops.oauth_tokens import GOOGLE, METHODS, MICROSOFT, PASSWORD
from purelyops.providers import OTHER, PROVIDERS
from purelyops.providers import label as provider_label
from purelyops.servers import SECURITY

SERVER_ADD_CALLBACK = "server_add"
SERVER_TEST_CALLBACK = "server_test"
MIGRATE_CALLBACK = "migrate"
DEST_SELECT = "dest_mailbox"
CREDENTIALS_CALLBACK = "migration_credentials"
BULK_CALLBACK = "migrate_bulk"
CANCEL_ACTION = "migration_cancel"
RERUN_ACTION = "migration_rerun"
RUN_REAL_ACTION = "migration_run_real"
SYNC_AGAIN_ACTION = "migration_sync_again"
CREDENTIALS_ACTION = "migration_edit_credentials"
DELETE_ACTION = "migration_delete"
BATCH_RUN_ALL = "batch_run_all"
TENANT_CONFIRM = "migrate_tenant_confirm"
MAX_PLAN_LINES = 1000
BATCH_CANCEL_ALL = "batch_cancel_all"
BATCH_RERUN_FAILED = "batch_rerun_failed"
BAR = 20
MESSAGE_BLOCKS = 50  # Slack's limit for one message
ICONS = {"queued": ":hourglass:", "running": ":arrows_counterclockwise:", "done": ":white_check_mark:",
         "incomplete": ":heavy_exclamation_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:",
         "interrupted": ":warning:"}


def size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def title(job: MigrationJob) -> str:
    dry = " (dry run)" if job.dry_run else ""
    return f"Migration #{job.id} {job.source_email} → {job.dest_email}{dry}"


def job_buttons(job: MigrationJob) -> list[dict]:
    value = str(job.id)
    buttons = []
    if job.status in ("queued", "running"):
        buttons.append(button("Cancel", CANCEL_ACTION, value, "danger", confirm(
            "Cancel this migration?", f"Migration #{job.id} stops; what was copied stays. A re-run resumes.",
            "Cancel it")))
    if job.status in ("failed", "interrupted", "cancelled"):
        buttons.append(button("Re-run", RERUN_ACTION, value, "primary"))
    if job.status == "done" and job.dry_run:
        buttons.append(button("Run for real", RUN_REAL_ACTION, value, "primary"))
    if job.status in ("done", "incomplete") and not job.dry_run:
        style = "primary" if job.status == "incomplete" else None
        buttons.append(button("Sync again", SYNC_AGAIN_ACTION, value, style))
    if job.status != "running":
        buttons.append(button("Edit credentials", CREDENTIALS_ACTION, value))
        buttons.append(button("Delete", DELETE_ACTION, value, confirm=confirm(
            "Delete this migration?", f"Migration #{job.id} and its stored credentials are deleted. "
            "Mail already copied stays.", "Delete")))
    return buttons


def status_blocks(job: MigrationJob, progress: Progress | None = None, note: str = "") -> tuple[str, list[dict]]:
    """The one status message in the thread: state, a progress bar, counts, rate, ETA."""
    text = f"{title(job)}: {job.status}"
    lines = [f"{ICONS.get(job.status, '')} *{escape(title(job))}*: {job.status}"]
    if progress is not None and (progress.msgs_total or progress.bytes_total):
        filled = round(progress.fraction * BAR)
        lines.append(f"`{'█' * filled}{'░' * (BAR - filled)}` {progress.fraction * 100:.0f}%")
        lines.append(f"{progress.msgs_done:,} of {progress.msgs_total:,} messages · {size(progress.bytes_done)} of "
                     f"{size(progress.bytes_total)}")
        extra = []
        if progress.rate_msgs_per_s:
            extra.append(f"{progress.rate_msgs_per_s:.1f} msgs/s")
        if progress.eta_seconds is not None and job.status == "running":
            extra.append(f"about {duration(progress.eta_seconds)} left")
        if progress.folder:
            extra.append(f"folder {code(clip(progress.folder, 80))}")
        if extra:
            lines.append(" · ".join(extra))
    if note:
        lines.append(escape(note))
    blocks = [section("\n".join(lines))]
    buttons = job_buttons(job)
    if buttons:
        blocks.append(actions(*buttons))
    return message(text, blocks)


def queued_blocks(job: MigrationJob) -> tuple[str, list[dict]]:
    """The thread's first message: the job is queued."""
    return message(f"{title(job)} queued", status_blocks(job)[1])


SHOWN_FOLDERS = 20  # folders listed in a message; the full table goes into a file beyond that


def report_blocks(job: MigrationJob, summary: dict) -> list[dict]:
    """A dry run's plan, or a real run's folder-by-folder check, as sections."""
    if job.dry_run:
        plan = migration_report.plan(summary, job.max_age_days)
        if not plan.rows:
            return []
        shown, rest = migration_report.largest(plan.rows, SHOWN_FOLDERS)
        lines = [f"*Plan*: {plan.total_msgs:,} messages, {migration_report.mib(plan.total_bytes)} in "
                 f"{len([r for r in plan.rows if r.state != 'skipped'])} folder(s); {escape(plan.fits_words)}"]
        if job.max_age_days:
            lines.append(f"Only mail newer than {job.max_age_days} days is counted and copied.")
        if plan.undated:
            lines.append(f"{plan.undated:,} message(s) without a usable Date are left out: imapsync cannot tell their "
                         "age.")
        lines += [f"{r.icon} {code(clip(r.name, 80))}: " + (escape(r.why) if r.state == "skipped" else
                  f"{r.source_msgs:,} messages, {migration_report.mib(r.source_bytes)}") for r in shown]
    else:
        result = migration_report.check(summary, job.source_provider)
        if result.error:
            return [section(clip(f"*Check*: nothing could be checked: {escape(result.error)}", 3000))]
        if not result.rows:
            return []
        shown, rest = migration_report.largest(result.rows, SHOWN_FOLDERS)
        head = (f"all {result.source_msgs:,} messages found at the destination" if result.complete
                else f"{result.missing:,} of {result.source_msgs:,} messages missing: {result.short_words}")
        lines = [f"*Check* at the destination, folder by folder: {escape(clip(head, 1500))}"]
        lines += [f"{r.icon} {code(clip(r.name, 80))}: " + (escape(r.why) if r.state == "skipped" else
                  f"{r.dest_msgs or 0:,} of {r.source_msgs:,}" + (f" ({escape(r.why)})" if r.why else ""))
                  for r in shown]
        if result.undated:
            lines.append(f"{result.undated:,} message(s) without a usable Date were left out by the maximum age.")
    if rest:
        lines.append(f"…and {rest} more folder(s): the whole table is in a file in the migration's thread.")
    return [section(clip("\n".join(lines), 3000))]


def report_table(job: MigrationJob, summary: dict) -> str | None:
    """The whole folder table, when a message shows only part of it."""
    rows = (migration_report.plan(summary, job.max_age_days) if job.dry_run
            else migration_report.check(summary, job.source_provider)).rows
    if len(rows) <= SHOWN_FOLDERS:
        return None
    return migration_report.table(rows, with_dest=not job.dry_run)


def summary_blocks(job: MigrationJob, summary: Summary, seconds: float) -> tuple[str, list[dict]]:
    """The end of a run. Its counts are what the check found at the destination, never what
    imapsync says it tried; a dry run's are imapsync's plan."""
    rate = summary.rate_msgs_per_s or (summary.transferred / seconds if seconds else 0)
    text = f"Migration #{job.id} {job.status}: {job.verdict}"
    lines = [f"{ICONS.get(job.status, '')} *Migration #{job.id} {job.status}*: {escape(job.verdict or '')}"]
    checked = (summary.check or {}) if not job.dry_run else {}
    if checked and not checked.get("error"):
        folders = checked.get("folders") or []
        arrived, total = sum(f["arrived"] for f in folders), sum(f["source_msgs"] for f in folders)
        lines.append(f"At the destination: {arrived:,} of {total:,} messages (checked by purelyops) · "
                     f"{size(summary.bytes_transferred)} moved in {duration(seconds)} ({rate:.1f} msgs/s) · "
                     f"errors {summary.errors:,}")
    elif job.dry_run:
        lines.append(f"Would copy {summary.would_copy:,} · errors {summary.errors:,} · in {duration(seconds)}")
    else:
        lines.append(f"Not checked at the destination · {size(summary.bytes_transferred)} moved in "
                     f"{duration(seconds)} · errors {summary.errors:,}")
    if summary.most_frequent_error:
        lines.append(f"imapsync says: {escape(clip(summary.most_frequent_error, 300))}")
    if summary.error_lines:
        shown = "\n".join(escape(clip(line, 280)) for line in summary.error_lines[:3])
        lines.append(f"First errors:\n```{shown}```")
    return message(text, [section("\n".join(lines))] + report_blocks(job, asdict(summary)))


def jobs_blocks(jobs: list[MigrationJob], status: str | None) -> tuple[str, list[dict]]:
    if not jobs:
        text = f"No {status + ' ' if status else ''}migrations."
        return said(text)
    text = f"{len(jobs)} migration(s)" + (f" {status}" if status else "")
    blocks = [section(f"*{escape(text)}* (newest first)")]
    for job in jobs[:40]:
        progress = f" · {job.msgs_done:,}/{job.msgs_total:,} msgs" if job.msgs_total else ""
        blocks.append(section(f"{ICONS.get(job.status, '')} *#{job.id}* "
                               f"{code(job.source_email)} → {code(job.dest_email)}"
                               f"{' (dry run)' if job.dry_run else ''} · {job.status}{progress}"))
    return message(text, blocks)


def job_blocks(job: MigrationJob) -> tuple[str, list[dict]]:
    progress = Progress(msgs_done=job.msgs_done, msgs_total=job.msgs_total, bytes_done=job.bytes_done,
                        bytes_total=job.bytes_total)
    note = f"Result: {job.verdict}" if job.verdict else ""
    text, blocks = status_blocks(job, progress, note)
    return message(text, blocks[:1] + report_blocks(job, job.summary or {}) + blocks[1:])


def servers_blocks(servers: list[SourceServer]) -> tuple[str, list[dict]]:
    if not servers:
        text = "No source servers yet. Add one with `server add`."
        return said(text)
    lines = [f"*{escape(s.name)}* {code(f'{s.host}:{s.port}')} · {SECURITY[s.security]} · "
             f"{escape(provider_label(s.provider))}"
             + ("" if s.auth == PASSWORD else f" · signs in with a {METHODS.get(s.auth, s.auth)}") for s in servers]
    return message(f"{len(servers)} source server(s)", line_sections(lines)[:50])


def server_add_modal(channel_id: str) -> dict:
    security = options(list(SECURITY.items()))
    methods = options(list(METHODS.items()))
    providers = options([(p.key, p.label) for p in PROVIDERS.values()])
    passwords = "\n".join(f"*{escape(p.label)}*: {escape(p.password)}." for p in PROVIDERS.values() if p.key != OTHER)
    return modal("Add a source server", [
        input_block("name", "Name", text_input(32, placeholder="oldhost"), hint="A short name for commands."),
        input_block("provider", "Provider", static_select(providers, providers[-1]),
                    hint="Any but Other: its IMAP host, port 993 and TLS are filled in; leave the fields below."),
        context("What password logs in:\n" + passwords),
        input_block("host", "IMAP host", text_input(253, placeholder="imap.oldhost.example"), optional=True,
                    hint="Only with Other."),
        input_block("port", "Port", text_input(5, initial_value="993"), optional=True, hint="Only with Other."),
        input_block("security", "Security", radio_buttons(security, security[0]),
                    hint="Only with Other. 'none' sends passwords unencrypted: only on a trusted network."),
        divider(),
        input_block("auth", "Sign-in", radio_buttons(methods, methods[0]),
                    hint="How purelyops logs in to the mailboxes. With an app or a service account, nobody's "
                         "password is needed."),
        context(SIGN_IN_SETUP[MICROSOFT]),
        input_block("tenant_id", "Tenant ID", text_input(253, placeholder="72f988bf-86f1-41af-91ab-2d7cd011db47"),
                    optional=True, hint="Microsoft 365 app: Entra ID → Overview → Tenant ID."),
        input_block("client_id", "Application (client) ID", text_input(36), optional=True,
                    hint="Microsoft 365 app: App registrations → the app → Overview."),
        input_block("client_secret", "Client secret", text_input(512), optional=True,
                    hint="Microsoft 365 app: the secret's Value. Stored encrypted, never shown again."),
        input_block("certificate", "Or a certificate", text_input(3000, multiline=True), optional=True,
                    hint="Instead of a secret: the certificate and its private key in PEM. Stored encrypted."),
        context(SIGN_IN_SETUP[GOOGLE]),
        input_block("service_account_key", "Service account JSON key", text_input(3000, multiline=True),
                    optional=True, hint="Google Workspace: the whole JSON key file. Stored encrypted, never shown "
                                        "again."),
    ], callback_id=SERVER_ADD_CALLBACK, submit="Add", private_metadata=channel_id)


SIGN_IN_SETUP = {
    MICROSOFT: ("*Microsoft 365 app*: in Entra ID, register an app; API permissions → Add → APIs my organization "
                "uses → Office 365 Exchange Online → Application permissions → *IMAP.AccessAsApp* (and Microsoft "
                "Graph → *User.Read.All* to list mailboxes for `migrate bulk`); *Grant admin consent*; Certificates "
                "& secrets → new client secret. Then in Exchange Online PowerShell: `New-ServicePrincipal -AppId "
                "<client id> -ObjectId <enterprise app object id>` and, for each mailbox, `Add-MailboxPermission "
                "-Identity <mailbox> -User <service principal id> -AccessRights FullAccess`. The README has the "
                "steps."),
    GOOGLE: ("*Google Workspace service account*: in Google Cloud, make a service account and a JSON key; in the "
             "Admin console → Security → API controls → *Domain-wide delegation*, add its client ID with the scope "
             "`https://mail.google.com/` (and `https://www.googleapis.com/auth/admin.directory.user.readonly` to "
             "list users for `migrate bulk`). IMAP must be on for the users (Gmail → End user access)."),
}


def server_test_modal(server: SourceServer, channel_id: str) -> dict:
    return modal("Test a login", [
        section(f"A real login on {code(f'{server.host}:{server.port}')}. The password is used once and kept nowhere."),
        input_block("address", "Address", text_input(320)),
        input_block("password", "Password", text_input(1024)),
    ], callback_id=SERVER_TEST_CALLBACK, submit="Test", private_metadata=modal_metadata(channel_id, server.id))


def server_select(servers: list[SourceServer]) -> dict:
    return static_select(options([(str(s.id), f"{s.name} ({s.host})") for s in servers]))


def migrate_modal(servers: list[SourceServer], channel_id: str) -> dict:
    credential = options([("password", "The mailbox's password"), ("app", "A temporary app password (made for you)")])
    return modal("Migrate a mailbox", [
        input_block("server", "Source server", server_select(servers)),
        input_block("source_email", "Source address", text_input(320)),
        input_block("source_password", "Source password", text_input(1024), optional=True,
                    hint="Leave it empty for a server that signs in with an app or a service account."),
        input_block("dest_email", "Destination mailbox at PurelyMail",
                    external_select(DEST_SELECT, "Type part of the address"),
                    hint="Mailboxes from the mailbox cache; a full address not listed yet works too."),
        input_block("dest_mode", "Destination credential", radio_buttons(credential, credential[1])),
        input_block("dest_password", "Destination password", text_input(1024), optional=True,
                    hint="Only with 'The mailbox's password'."),
        input_block("options", "Options", checkboxes(options([("dry", "Dry run: check, copy nothing")])),
                    optional=True),
        input_block("exclude", "Folders to exclude (regular expression)", text_input(200), optional=True,
                    hint="Like ^Trash$|^Junk$"),
        input_block("max_age", "Only mail newer than (days)", text_input(5), optional=True),
    ], callback_id=MIGRATE_CALLBACK, submit="Queue", private_metadata=channel_id)


def credentials_modal(job: MigrationJob, channel_id: str) -> dict:
    modes = options([("keep", "Keep what is stored"), ("password", "The mailbox's password (below)"),
                     ("app", "A temporary app password (made for each run)")])
    return modal(f"Credentials of #{job.id}", [
        section("Leave a password blank to keep what is stored."),
        input_block("source_password", f"Password of {job.source_email}", text_input(1024), optional=True),
        input_block("dest_mode", f"Login to {job.dest_email}", radio_buttons(modes, modes[0])),
        input_block("dest_password", f"Password of {job.dest_email}", text_input(1024), optional=True,
                    hint="Only with 'The mailbox's password'."),
    ], callback_id=CREDENTIALS_CALLBACK, submit="Save", private_metadata=modal_metadata(channel_id, job.id))


def mailbox_options(addresses: list[str], typed: str | None) -> list[dict]:
    """Options for the destination select: what the cache matched, and what was typed."""
    values = ([typed] if typed and typed not in addresses else []) + addresses
    return [option(a, a[:150]) for a in values[:100]]


BATCH_LINES = 100  # mailbox lines in a batch message; past them, counts by state and "N more"
# Which mailboxes a collapsed batch message still shows, first: those that need a look, then
# those moving; a line each in the batch's order.
BATCH_SHOWN_FIRST = ("failed", "incomplete", "interrupted", "running", "cancelled", "queued", "done")


def batch_line(job: MigrationJob) -> str:
    """One mailbox of a batch: icon, source → destination, state, messages (and why it failed)."""
    line = (f"{ICONS.get(job.status, '')} #{job.id} {code(clip(job.source_email, 80))} → "
            f"{code(clip(job.dest_email, 80))} · {job.status}{' (dry run)' if job.dry_run else ''}")
    if job.msgs_total:
        line += f" · {job.msgs_done:,} of {job.msgs_total:,} messages"
    if job.status in ("failed", "incomplete", "interrupted") and job.verdict:
        line += f": {escape(clip(job.verdict, 150))}"
    return line


def _state_counts(jobs: list[MigrationJob]) -> str:
    counts = {state: sum(1 for j in jobs if j.status == state) for state in ICONS}
    return " · ".join(f"{ICONS[s]} {n} {s}" for s, n in counts.items() if n)


def batch_mailbox_sections(jobs: list[MigrationJob], max_blocks: int, max_lines: int = BATCH_LINES) -> list[dict]:
    """A line per mailbox in as few sections as they fit in, at most `max_blocks` of them and
    `max_lines` lines. Past that, the mailboxes that need a look (failed, interrupted) and the
    running ones are kept, and one last line counts the rest by state: "…and N more"."""
    if len(jobs) <= max_lines:
        sections = line_sections([batch_line(j) for j in jobs])
        if len(sections) <= max_blocks:
            return sections
    rank = {state: n for n, state in enumerate(BATCH_SHOWN_FIRST)}
    ranked = sorted(jobs, key=lambda j: (rank.get(j.status, len(rank)), j.id))
    count = min(max_lines, len(jobs))
    while True:
        shown = sorted(ranked[:count], key=lambda j: j.id)
        rest = ranked[count:]
        lines = [batch_line(j) for j in shown]
        if rest:
            lines.append(f"…and {len(rest):,} more: {_state_counts(rest)}")
        sections = line_sections(lines)
        if len(sections) <= max_blocks or count == 0:
            return sections[:max_blocks]
        count = count * max_blocks // len(sections)  # fewer lines, in proportion to what did not fit


def batch_blocks(batch: MigrationBatch, jobs: list[MigrationJob]) -> tuple[str, list[dict]]:
    """The batch message: counts by state, messages moved so far, a line per mailbox
    (collapsed past BATCH_LINES, or what Block Kit holds), and the batch actions."""
    counts = {state: sum(1 for j in jobs if j.status == state) for state in ICONS}
    dry = sum(1 for j in jobs if j.dry_run)
    done_msgs, total_msgs = sum(j.msgs_done for j in jobs), sum(j.msgs_total for j in jobs)
    finished = counts["done"] + counts["incomplete"] + counts["failed"] + counts["cancelled"] + counts["interrupted"]
    text = f"Batch {batch.name}: {finished} of {len(jobs)} migrations finished"
    filled = round(finished / len(jobs) * BAR) if jobs else 0
    lines = [f"*Batch {escape(batch.name)}*: {len(jobs)} migration(s)" + (f", {dry} dry run(s)" if dry else ""),
             f"`{'█' * filled}{'░' * (BAR - filled)}` {finished} of {len(jobs)} finished · {done_msgs:,} of "
             f"{total_msgs:,} messages so far", _state_counts(jobs)]
    buttons = []
    if any(j.status == "done" and j.dry_run for j in jobs):
        buttons.append(button("Run all for real", BATCH_RUN_ALL, str(batch.id), "primary"))
    if counts["queued"] + counts["running"]:
        buttons.append(button("Cancel all", BATCH_CANCEL_ALL, str(batch.id), "danger", confirm(
            "Cancel the whole batch?", "Queued migrations will not run; running ones stop. Copied mail stays.",
            "Cancel all")))
    if counts["failed"] + counts["incomplete"] + counts["interrupted"] + counts["cancelled"]:
        buttons.append(button("Re-run failed", BATCH_RERUN_FAILED, str(batch.id)))
    blocks = [section("\n".join(lines))]
    blocks += batch_mailbox_sections(jobs, MESSAGE_BLOCKS - len(blocks) - (1 if buttons else 0))
    if buttons:
        blocks.append(actions(*buttons))
    return message(text, blocks)


def bulk_template_blocks(template: str) -> tuple[str, list[dict]]:
    """The reply to `migrate bulk`: the CSV to start from, to copy into a file or the form."""
    text = "The CSV for migrate bulk: its first line, then a line per mailbox"
    return message(text, [
        section("*The CSV for `migrate bulk`*: keep the first line and put one mailbox on each line after it, like "
                "the example. Save it as a `.csv` file for the form, or paste it into the form's text box. A blank "
                "`dest_password` means a temporary app password. A password with a comma goes in double quotes. "
                "The filled-in file holds passwords: give it only to the form, never to a channel."),
        section(f"```{escape(template)}```"),
    ])


def bulk_modal(servers: list[SourceServer], channel_id: str) -> dict:
    return modal("Migrate many mailboxes", [
        input_block("name", "Batch name", text_input(80)),
        input_block("server", "Source server", server_select(servers)),
        input_block("file", "CSV file", file_input(["csv", "txt"]), optional=True,
                    hint="source_email,source_password,dest_email,dest_password"),
        input_block("pasted", "…or paste the CSV", text_input(3000, multiline=True), optional=True),
        input_block("tenant_domain", "…or every mailbox of a domain, from the tenant", text_input(253),
                    optional=True, hint="For a server that signs in with a Microsoft 365 app (Graph, User.Read.All) "
                                        "or a Google Workspace service account (Directory). Shows the plan first."),
        input_block("dest_domain", "…to the same names at the PurelyMail domain", text_input(253), optional=True,
                    hint="Leave empty for the same domain."),
        input_block("directory_admin", "Google Workspace: a super admin to list the users as", text_input(320),
                    optional=True, hint="Only for a Google Workspace server: the Directory API acts as this admin."),
        input_block("options", "Options", checkboxes(options([("real", "Run for real (default: a dry run first)")])),
                    optional=True),
    ], callback_id=BULK_CALLBACK, submit="Check and queue", private_metadata=channel_id)


def _listed(lines: list[str], total: int, limit: int) -> list[dict]:
    """`lines`, the first of `total`, in at most `limit` sections: what does not fit is
    counted in the last one ("…and N more"), never left out unsaid."""
    sections = line_sections(lines)
    if len(sections) <= limit and len(lines) == total:
        return sections
    kept = sections[:limit - 1]
    shown = sum(block["text"]["text"].count("\n") + 1 for block in kept)
    return [*kept, section(f"…and {total - shown:,} more")]


def tenant_plan_blocks(plan, value: str) -> tuple[str, list[dict]]:  # noqa: ANN001 - an oauth_tokens.TenantPlan
    """The batch's plan from a tenant, before anything runs, with the button that confirms it."""
    text = (f"Plan: {len(plan.moves)} mailbox(es) of {plan.domain} to the same names at {plan.dest_domain}. "
            "Nothing runs until you confirm.")
    lines = [f"{escape(a)} → {escape(b)}" for a, b in plan.moves[:MAX_PLAN_LINES]]
    body = [section(f"*{escape(text)}*"), *_listed(lines, len(plan.moves), 30)]
    if plan.apart:
        body.append(section(f"*Not included: {len(plan.apart)} disabled account(s) or shared mailbox(es)* "
                            "(sign-in blocked; add them with a CSV if they should move):"))
        body += _listed([escape(a) for a in plan.apart[:200]], len(plan.apart), 5)
    if plan.no_mailbox:
        body.append(section(f"*Not included: {len(plan.no_mailbox)} account(s) without a mailbox:* "
                            + escape(", ".join(plan.no_mailbox[:50]))[:2500]))
    if plan.moves:
        body.append(actions(button(f"Create {len(plan.moves)} jobs", TENANT_CONFIRM, value, style="primary",
                                   confirm=confirm("Create the batch?", f"{len(plan.moves)} migration jobs from "
                                                   f"{plan.domain}.", "Create", style=None))))
    return text, body[:48]


def csv_problems_blocks(problems: list[tuple[int, str]]) -> tuple[str, list[dict]]:
    """Every bad row by its line number (the first 40), and that nothing was created."""
    text = f"The CSV has {len(problems)} problem(s); nothing was created."
    lines = [(f"line {line}: " if line else "") + escape(clip(message, 200)) for line, message in problems[:40]]
    if len(problems) > 40:
        lines.append(f"…and {len(problems) - 40} more")
    return message(text, [section(f":warning: *{escape(text)}* Fix these and submit again:"),
                  section("\n".join(lines))])
