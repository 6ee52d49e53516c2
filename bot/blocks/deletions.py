"""Block Kit for the deletion queue: the scheduled notice, the `pending` list, outcomes."""

from __future__ import annotations

from datetime import datetime, timezone

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
    return {
        "type": "button",
        "action_id": CANCEL_ACTION,
        "text": {"type": "plain_text", "text": "Cancel deletion"},
        "value": str(deletion.id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Cancel this deletion?"},
            "text": {"type": "mrkdwn", "text": f"The {noun} {code(deletion.target)} will be kept."},
            "confirm": {"type": "plain_text", "text": "Keep it"},
            "deny": {"type": "plain_text", "text": "Back"},
        },
    }


def scheduled_blocks(deletion: PendingDeletion, consequence: str = "") -> tuple[str, list[dict]]:
    """The notice that a deletion is scheduled, with its Cancel button."""
    noun = KINDS[deletion.kind]
    text = f"The {noun} {deletion.target} will be deleted in {time_left(deletion.due_at)}."
    lines = [f":hourglass_flowing_sand: The {noun} {code(deletion.target)} will be deleted "
             f"in *{time_left(deletion.due_at)}* (<!date^{int(deletion.due_at.timestamp())}^{{date_short_pretty}} {{time}}|at the due time>)."]
    if consequence:
        lines.append(escape(consequence))
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {"type": "actions", "elements": [cancel_button(deletion)]},
    ]


def cancelled_blocks(deletion: PendingDeletion, by: str) -> tuple[str, list[dict]]:
    noun = KINDS[deletion.kind]
    text = f"Deletion of the {noun} {deletion.target} cancelled."
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text":
                   f":white_check_mark: Deletion of the {noun} {code(deletion.target)} cancelled by <@{escape(by)}>. Nothing was deleted."}}]


def outcome_blocks(deletion: PendingDeletion) -> tuple[str, list[dict]]:
    noun = KINDS[deletion.kind]
    if deletion.status == "done":
        text = f"The {noun} {deletion.target} was deleted."
        line = f":wastebasket: The {noun} {code(deletion.target)} was deleted, as scheduled by <@{escape(deletion.requested_by)}>."
    else:
        text = f"The {noun} {deletion.target} could not be deleted."
        line = (f":x: The {noun} {code(deletion.target)} could not be deleted: {escape(deletion.error or 'unknown error')}\n"
                f"Schedule it again when the cause is fixed.")
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]


def pending_blocks(deletions: list[PendingDeletion], now: datetime | None = None) -> tuple[str, list[dict]]:
    """Every scheduled deletion with who asked, the time left and Cancel (at most 45 shown)."""
    if not deletions:
        return "Nothing is scheduled for deletion.", [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Nothing is scheduled for deletion."}}]
    text = f"{len(deletions)} deletion(s) scheduled"
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": "Scheduled deletions"}}]
    for deletion in deletions[:45]:
        blocks.append({
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{KINDS[deletion.kind]}* {code(deletion.target)}\n"
                     f"asked by <@{escape(deletion.requested_by)}>, deleted in {time_left(deletion.due_at, now)}"},
            "accessory": cancel_button(deletion),
        })
    if len(deletions) > 45:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {len(deletions) - 45} more."}]})
    return text, blocks
