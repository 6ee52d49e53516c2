"""Deletion-queue listeners: `pending`, and the Cancel button on every scheduled deletion."""

from __future__ import annotations

from slack_bolt import Ack, App, Respond

from bot.blocks.deletions import CANCEL_ACTION, cancelled_blocks, pending_blocks
from bot.router import CommandRequest, Router
from purelyops import audit, deletions
from purelyops.access import Role, RoleUnknown, has_role, refusal
from purelyops.failures import describe_failure
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    @router.add("pending", "pending", "list scheduled deletions, with Cancel", role=Role.VIEWER)
    def show_pending(request: CommandRequest) -> None:
        request.reply(*pending_blocks(deletions.pending(request.rt)))

    def cancel_deletion(ack: Ack, body: dict, respond: Respond) -> None:
        ack()
        user_id = body["user"]["id"]
        try:
            if not has_role(rt, user_id, Role.ADMIN):
                audit.record_now(rt, actor_id=user_id, action="refused", target="cancel deletion",
                                 result="refused", detail="needs admin")
                respond(text=f":no_entry: {refusal(Role.ADMIN, 'cancel a deletion')}", response_type="ephemeral",
                        replace_original=False)
                return
            deletion_id = int(body["actions"][0]["value"])
            deletion = deletions.cancel(rt, deletion_id, user_id)
        except deletions.NotPending:
            respond(text="That deletion is no longer pending: it was already cancelled or carried out.",
                    response_type="ephemeral", replace_original=False)
            return
        except (RoleUnknown, ValueError) as error:
            respond(text=f":warning: {error}", response_type="ephemeral", replace_original=False)
            return
        except Exception as error:  # noqa: BLE001 - reported in words
            respond(text=f":warning: {describe_failure(error)}", response_type="ephemeral", replace_original=False)
            return
        text, blocks = cancelled_blocks(deletion, user_id)
        respond(text=text, blocks=blocks, replace_original=True)

    app.action(CANCEL_ACTION)(cancel_deletion)
