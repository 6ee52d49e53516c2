"""Block Kit for migrations: the thread's status message and summary, the job list, and
the server and migration modals."""

from __future__ import annotations

from typing import Any

from bot.blocks.kit import button, confirm, plain, section
from bot.mrkdwn import clip, code, escape
from bot.payloads import modal_metadata
from db.models import MigrationBatch, MigrationJob, SourceServer
from purelyops.imapsync_output import Progress, Summary
from purelyops.servers import SECURITY

SERVER_ADD_CALLBACK = "server_add"
SERVER_TEST_CALLBACK = "server_test"
MIGRATE_CALLBACK = "migrate"
DEST_SELECT = "dest_mailbox"
CREDENTIALS_CALLBACK = "migration_credentials"
CANCEL_ACTION = "migration_cancel"
RERUN_ACTION = "migration_rerun"
RUN_REAL_ACTION = "migration_run_real"
CREDENTIALS_ACTION = "migration_edit_credentials"
DELETE_ACTION = "migration_delete"
BAR = 20
ICONS = {"queued": ":hourglass:", "running": ":arrows_counterclockwise:", "done": ":white_check_mark:",
         "failed": ":x:", "cancelled": ":no_entry_sign:", "interrupted": ":warning:"}










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


def actions(job: MigrationJob) -> list[dict]:
    value = str(job.id)
    buttons = []
    if job.status in ("queued", "running"):
        buttons.append(button("Cancel", CANCEL_ACTION, value, "danger", confirm(
            "Cancel this migration?", f"Migration #{job.id} stops; what was copied stays. A re-run resumes.", "Cancel it")))
    if job.status in ("failed", "interrupted", "cancelled"):
        buttons.append(button("Re-run", RERUN_ACTION, value, "primary"))
    if job.status == "done" and job.dry_run:
        buttons.append(button("Run for real", RUN_REAL_ACTION, value, "primary"))
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
    buttons = actions(job)
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return text, blocks


def summary_blocks(job: MigrationJob, summary: Summary, seconds: float) -> tuple[str, list[dict]]:
    rate = summary.rate_msgs_per_s or (summary.transferred / seconds if seconds else 0)
    text = f"Migration #{job.id} {job.status}: {job.verdict}"
    lines = [f"{ICONS.get(job.status, '')} *Migration #{job.id} {job.status}*: {escape(job.verdict or '')}",
             f"Transferred {summary.transferred:,} · skipped {summary.skipped:,} · errors {summary.errors:,} · "
             f"{size(summary.bytes_transferred)} in {duration(seconds)} ({rate:.1f} msgs/s)"]
    if summary.most_frequent_error:
        lines.append(f"imapsync says: {escape(clip(summary.most_frequent_error, 300))}")
    if summary.error_lines:
        shown = "\n".join(escape(clip(line, 280)) for line in summary.error_lines[:3])
        lines.append(f"First errors:\n```{shown}```")
    return text, [section("\n".join(lines))]


def jobs_blocks(jobs: list[MigrationJob], status: str | None) -> tuple[str, list[dict]]:
    if not jobs:
        text = f"No {status + ' ' if status else ''}migrations."
        return text, [section(text)]
    text = f"{len(jobs)} migration(s)" + (f" {status}" if status else "")
    blocks = [section(f"*{escape(text)}* (newest first)")]
    for job in jobs[:40]:
        progress = f" · {job.msgs_done:,}/{job.msgs_total:,} msgs" if job.msgs_total else ""
        blocks.append(section(f"{ICONS.get(job.status, '')} *#{job.id}* {code(job.source_email)} → {code(job.dest_email)}"
                               f"{' (dry run)' if job.dry_run else ''} · {job.status}{progress}"))
    return text, blocks


def job_blocks(job: MigrationJob) -> tuple[str, list[dict]]:
    progress = Progress(msgs_done=job.msgs_done, msgs_total=job.msgs_total, bytes_done=job.bytes_done,
                        bytes_total=job.bytes_total)
    note = f"Result: {job.verdict}" if job.verdict else ""
    return status_blocks(job, progress, note)


def servers_blocks(servers: list[SourceServer]) -> tuple[str, list[dict]]:
    if not servers:
        text = "No source servers yet. Add one with `server add`."
        return text, [section(text)]
    lines = [f"*{escape(s.name)}* {code(f'{s.host}:{s.port}')} · {SECURITY[s.security]}" for s in servers[:45]]
    return f"{len(servers)} source server(s)", [section("\n".join(lines))]


def _input(block_id: str, label: str, element: dict, *, optional: bool = False, hint: str = "") -> dict:
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": plain(label), "element": element,
                             "optional": optional}
    if hint:
        block["hint"] = plain(hint)
    return block


def _text(max_length: int = 255, **extra: Any) -> dict:
    return {"type": "plain_text_input", "action_id": "value", "max_length": max_length, **extra}


def _options(pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"text": plain(label), "value": value} for value, label in pairs]


def server_add_modal(channel_id: str) -> dict:
    security = _options([(k, v) for k, v in SECURITY.items()])
    return {"type": "modal", "callback_id": SERVER_ADD_CALLBACK, "private_metadata": channel_id,
            "title": plain("Add a source server"), "submit": plain("Add"), "close": plain("Cancel"),
            "blocks": [
                _input("name", "Name", _text(32, placeholder=plain("oldhost")), hint="A short name for commands."),
                _input("host", "IMAP host", _text(253, placeholder=plain("imap.oldhost.example"))),
                _input("port", "Port", _text(5, initial_value="993")),
                _input("security", "Security", {"type": "radio_buttons", "action_id": "value", "options": security,
                                                "initial_option": security[0]},
                       hint="'none' sends passwords unencrypted: only on a trusted network."),
            ]}


def server_test_modal(server: SourceServer, channel_id: str) -> dict:
    return {"type": "modal", "callback_id": SERVER_TEST_CALLBACK, "private_metadata": modal_metadata(channel_id, server.id),
            "title": plain("Test a login"), "submit": plain("Test"), "close": plain("Cancel"),
            "blocks": [
                section(f"A real login on {code(f'{server.host}:{server.port}')}. The password is used once and "
                         "kept nowhere."),
                _input("address", "Address", _text(320)),
                _input("password", "Password", _text(1024)),
            ]}


def migrate_modal(servers: list[SourceServer], channel_id: str) -> dict:
    credential = _options([("password", "The mailbox's password"), ("app", "A temporary app password (made for you)")])
    return {"type": "modal", "callback_id": MIGRATE_CALLBACK, "private_metadata": channel_id,
            "title": plain("Migrate a mailbox"), "submit": plain("Queue"), "close": plain("Cancel"),
            "blocks": [
                _input("server", "Source server", {"type": "static_select", "action_id": "value", "options": _options(
                    [(str(s.id), f"{s.name} ({s.host})") for s in servers[:100]])}),
                _input("source_email", "Source address", _text(320)),
                _input("source_password", "Source password", _text(1024)),
                _input("dest_email", "Destination mailbox at PurelyMail",
                       {"type": "external_select", "action_id": DEST_SELECT, "min_query_length": 1,
                        "placeholder": plain("Type part of the address")},
                       hint="Mailboxes from the users cache; a full address not listed yet works too."),
                _input("dest_mode", "Destination credential", {"type": "radio_buttons", "action_id": "value",
                                                               "options": credential, "initial_option": credential[1]}),
                _input("dest_password", "Destination password", _text(1024), optional=True,
                       hint="Only with 'The mailbox's password'."),
                _input("options", "Options", {"type": "checkboxes", "action_id": "value",
                                              "options": _options([("dry", "Dry run: check, copy nothing")])},
                       optional=True),
                _input("exclude", "Folders to exclude (regular expression)", _text(200), optional=True,
                       hint="Like ^Trash$|^Junk$"),
                _input("max_age", "Only mail newer than (days)", _text(5), optional=True),
            ]}


def credentials_modal(job: MigrationJob, channel_id: str) -> dict:
    modes = _options([("keep", "Keep what is stored"), ("password", "The mailbox's password (below)"),
                      ("app", "A temporary app password (made for each run)")])
    return {"type": "modal", "callback_id": CREDENTIALS_CALLBACK, "private_metadata": modal_metadata(channel_id, job.id),
            "title": plain(f"Credentials of #{job.id}"), "submit": plain("Save"), "close": plain("Cancel"),
            "blocks": [
                section("Leave a password blank to keep what is stored."),
                _input("source_password", f"Password of {job.source_email}", _text(1024), optional=True),
                _input("dest_mode", f"Login to {job.dest_email}", {"type": "radio_buttons", "action_id": "value",
                                                                   "options": modes, "initial_option": modes[0]}),
                _input("dest_password", f"Password of {job.dest_email}", _text(1024), optional=True,
                       hint="Only with 'The mailbox's password'."),
            ]}


BULK_CALLBACK = "migrate_bulk"


def mailbox_options(addresses: list[str], typed: str | None) -> list[dict]:
    """Options for the destination select: what the cache matched, and what was typed."""
    values = ([typed] if typed and typed not in addresses else []) + addresses
    return [{"text": plain(a), "value": a[:150]} for a in values[:100]]
BATCH_RUN_ALL = "batch_run_all"
BATCH_CANCEL_ALL = "batch_cancel_all"
BATCH_RERUN_FAILED = "batch_rerun_failed"


def batch_blocks(batch: MigrationBatch, jobs: list[MigrationJob]) -> tuple[str, list[dict]]:
    """The batch message: counts by state, messages moved so far, and the batch actions."""
    counts = {state: sum(1 for j in jobs if j.status == state) for state in ICONS}
    dry = sum(1 for j in jobs if j.dry_run)
    done_msgs, total_msgs = sum(j.msgs_done for j in jobs), sum(j.msgs_total for j in jobs)
    finished = counts["done"] + counts["failed"] + counts["cancelled"] + counts["interrupted"]
    text = f"Batch {batch.name}: {finished} of {len(jobs)} migrations finished"
    states = " · ".join(f"{ICONS[s]} {n} {s}" for s, n in counts.items() if n)
    filled = round(finished / len(jobs) * BAR) if jobs else 0
    lines = [f"*Batch {escape(batch.name)}*: {len(jobs)} migration(s)" + (f", {dry} dry run(s)" if dry else ""),
             f"`{'█' * filled}{'░' * (BAR - filled)}` {finished} of {len(jobs)} finished · {done_msgs:,} of "
             f"{total_msgs:,} messages so far", states]
    failed = [j for j in jobs if j.status in ("failed", "interrupted")][:10]
    if failed:
        lines.append("Failed: " + "; ".join(f"#{j.id} {code(j.source_email)}: {escape(clip(j.verdict or '', 120))}"
                                             for j in failed))
    buttons = []
    if any(j.status == "done" and j.dry_run for j in jobs):
        buttons.append(button("Run all for real", BATCH_RUN_ALL, str(batch.id), "primary"))
    if counts["queued"] + counts["running"]:
        buttons.append(button("Cancel all", BATCH_CANCEL_ALL, str(batch.id), "danger", confirm(
            "Cancel the whole batch?", "Queued migrations will not run; running ones stop. Copied mail stays.",
            "Cancel all")))
    if counts["failed"] + counts["interrupted"] + counts["cancelled"]:
        buttons.append(button("Re-run failed", BATCH_RERUN_FAILED, str(batch.id)))
    blocks = [section("\n".join(lines))]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return text, blocks


def bulk_modal(servers: list[SourceServer], channel_id: str) -> dict:
    return {"type": "modal", "callback_id": BULK_CALLBACK, "private_metadata": channel_id,
            "title": plain("Migrate many mailboxes"), "submit": plain("Check and queue"), "close": plain("Cancel"),
            "blocks": [
                _input("name", "Batch name", _text(80)),
                _input("server", "Source server", {"type": "static_select", "action_id": "value", "options": _options(
                    [(str(s.id), f"{s.name} ({s.host})") for s in servers[:100]])}),
                _input("file", "CSV file", {"type": "file_input", "action_id": "value", "filetypes": ["csv", "txt"],
                                            "max_files": 1}, optional=True,
                       hint="source_email,source_password,dest_email,dest_password"),
                _input("pasted", "…or paste the CSV", _text(3000, multiline=True), optional=True),
                _input("options", "Options", {"type": "checkboxes", "action_id": "value",
                                              "options": _options([("real", "Run for real (default: a dry run first)")])},
                       optional=True),
            ]}


def csv_problems_blocks(problems: list[tuple[int, str]]) -> tuple[str, list[dict]]:
    """Every bad row by its line number (the first 40), and that nothing was created."""
    text = f"The CSV has {len(problems)} problem(s); nothing was created."
    lines = [(f"line {line}: " if line else "") + escape(clip(message, 200)) for line, message in problems[:40]]
    if len(problems) > 40:
        lines.append(f"…and {len(problems) - 40} more")
    return text, [section(f":warning: *{escape(text)}* Fix these and submit again:"),
                  section("\n".join(lines))]
