"""Block Kit for the deletion queue: the scheduled notice, the `pending` list, outcomes."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.blocks.kit import actions, button, confirm, context, header, message, said, section, slack_date
from bot.mrkdwn import code, escape
from db.models import PendingDeletion
from purelyops.deletions import KINDS

CANCEL_ACTION = "deletion_cancel"


def time_left(due_at: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int((due_at - (now or datetime.now(timezone.utc))).total_seconds()))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def cancel_button(deletion: PendingDeletion) -> dict:
    noun = KINDS[deletion.kind]
    return button("Cancel deletion", CANCEL_ACTION, str(deletion.id), confirm=confirm(
        "Cancel this deletion?", f"The {noun} {code(deletion.target)} will be kept.", "Keep it", style=None))


def scheduled_blocks(deletion: PendingDeletion, consequence: str = "") -> tuple[str, list[dict]]:
    """The notice that a deletion is scheduled, with its Cancel button."""
    noun = KINDS[deletion.kind]
    text = f"The {noun} {deletion.target} will be deleted in {time_left(deletion.due_at)}."
    due = slack_date(deletion.due_at, "{date_short_pretty} {time}", "at the due time")
    lines = [f":hourglass_flowing_sand: The {noun} {code(deletion.target)} will be deleted "
             f"in *{time_left(deletion.due_at)}* ({due})."]
    if consequence:
        lines.append(escape(consequence))
    return message(text, [section("\n".join(lines)), actions(cancel_button(deletion))])


def cancelled_blocks(deletion: PendingDeletion, by: str) -> tuple[str, list[dict]]:
    noun = KINDS[deletion.kind]
    text = f"Deletion of the {noun} {deletion.target} cancelled."
    return message(text, [section(f":white_check_mark: Deletion of the {noun} {code(deletion.target)} cancelled by "
                          f"<@{escape(by)}>. Nothing was deleted.")])


def outcome_blocks(deletion: PendingDeletion) -> tuple[str, list[dict]]:
    noun = KINDS[deletion.kind]
    if deletion.status == "done":
        text = f"The {noun} {deletion.target} was deleted."
        line = (f":wastebasket: The {noun} {code(deletion.target)} was deleted, as scheduled by "
                f"<@{escape(deletion.requested_by)}>.")
    else:
        text = f"The {noun} {deletion.target} could not be deleted."
        line = (f":x: The {noun} {code(deletion.target)} could not be deleted: "
                f"{escape(deletion.error or 'unknown error')}\n"
                f"Schedule it again when the cause is fixed.")
    return message(text, [section(line)])


def pending_blocks(deletions: list[PendingDeletion], now: datetime | None = None) -> tuple[str, list[dict]]:
    """Every scheduled deletion with who asked, the time left and Cancel (at most 45 shown)."""
    if not deletions:
        return said("Nothing is scheduled for deletion.")
    text = f"{len(deletions)} deletion(s) scheduled"
    blocks = [header("Scheduled deletions")]
    for deletion in deletions[:45]:
        blocks.append(section(f"*{KINDS[deletion.kind]}* {code(deletion.target)}\nasked by "
                              f"<@{escape(deletion.requested_by)}>, deleted in {time_left(deletion.due_at, now)}",
                              cancel_button(deletion)))
    if len(deletions) > 45:
        blocks.append(context(f"…and {len(deletions) - 45} more."))
    return message(text, blocks)
