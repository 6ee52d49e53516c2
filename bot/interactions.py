"""Buttons and modals: ack first, then the handler with its `bot.request.Request`, in
`bot.guard.guard` (role check, one PurelyMail deadline, failures in words), as the router
does for slash commands."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.kit import notice_modal, section
from bot.guard import guard
from bot.mrkdwn import clip
from bot.request import Handler, Request, modal_title
from bot.work import after_ack
from purelyops.access import Role
from purelyops.fields import FieldProblems
from purelyops.runtime import Runtime


def guarded(rt: Runtime, role: Role, what: str) -> Callable[[Handler], Callable]:
    """Wrap a click handler: ack at once, refuse (and audit) without `role`, report failures in words."""

    def decorate(handler: Handler) -> Callable:
        def listener(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
            ack()
            after_ack(run, Request.of_click(rt, body, respond, client))

        def run(request: Request) -> None:
            guard(request, role, what, lambda: handler(request))

        return listener

    return decorate


FieldErrors = FieldProblems  # what a modal's validator raises: {block_id: message}, shown inline


def _inline(problems: FieldProblems) -> dict[str, str]:
    """The problems as a modal's inline errors, each within Slack's 150 characters."""
    return {block: clip(message, 150) for block, message in problems.problems.items()}


def values_of(view: dict) -> dict[str, object]:
    """{block_id: what was typed or chosen} for a view's single-element input blocks."""
    out: dict[str, object] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for state in actions.values():
            if "files" in state:
                out[block_id] = list(state["files"] or [])
            elif "selected_options" in state:
                out[block_id] = [o["value"] for o in state["selected_options"] or []]
            elif "selected_option" in state:
                out[block_id] = (state["selected_option"] or {}).get("value")
            else:
                out[block_id] = state.get("value") or ""
    return out


_REFUSED = object()


def _validated(ack: Ack, view: dict, validate: Callable[[dict[str, object]], object]) -> object:
    """The form's values as `validate` makes them, or _REFUSED after acking its inline errors."""
    try:
        return validate(values_of(view))
    except FieldProblems as invalid:
        ack(response_action="errors", errors=_inline(invalid))
        return _REFUSED


def guarded_view(rt: Runtime, role: Role, what: str, validate: Callable[[dict[str, object]], object], *,
                 working: str = "") -> Callable:
    """Wrap a modal's submission: `validate(values)` runs before the ack and raises
    FieldErrors for inline errors; then the ack, then (in the work pool) the role check and
    `handler(request, validated)`, with failures reported in words. With `working`, the
    ack keeps the modal open showing those words until the answer replaces them (the one
    place a secret's failure can be told without a direct message)."""

    def decorate(handler: Callable[[Request, object], None]) -> Callable:
        def listener(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
            parsed = _validated(ack, view, validate)
            if parsed is _REFUSED:
                return
            if working:
                ack(response_action="update", view=notice_modal(modal_title(view), [section(working)]))
            else:
                ack()
            after_ack(run, Request.of_submission(rt, body, view, client, kept_open=bool(working)), parsed)

        def run(request: Request, parsed: object) -> None:
            guard(request, role, what, lambda: handler(request, parsed))

        return listener

    return decorate


def guarded_view_now(rt: Runtime, role: Role, what: str, validate: Callable[[dict[str, object]], object]) -> Callable:
    """Like guarded_view, for a modal whose work is a quick local write (the database, a short
    DNS look-up): the role check and `handler(request, validated)` run before the ack, so what
    it writes is there as soon as the modal closes, and the FieldProblems it raises show inline.
    What the handler returns (a callable, or None) runs after the ack: answers go to Slack
    from there, like every outside call."""

    def decorate(handler: Callable[[Request, object], Callable[[], None] | None]) -> Callable:
        def listener(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
            parsed = _validated(ack, view, validate)
            if parsed is _REFUSED:
                return
            request = Request.of_submission(rt, body, view, client, kept_open=False)
            inline: list[FieldProblems] = []
            later: list[Callable[[], None]] = []
            replies: list[tuple[tuple, dict]] = []

            def work() -> None:
                try:
                    then = handler(request, parsed)
                except FieldProblems as problems:
                    inline.append(problems)
                    return
                if then is not None:
                    later.append(then)

            guard(request, role, what, work, reply=lambda *args, **kwargs: replies.append((args, kwargs)))
            if inline:
                ack(response_action="errors", errors=_inline(inline[0]))
                return
            ack()
            after_ack(finish, request, replies, later)

        def finish(request: Request, replies: list[tuple[tuple, dict]],
                   later: list[Callable[[], None]]) -> None:
            for args, kwargs in replies:
                request.reply(*args, **kwargs)
            for then in later:  # the role was checked before the ack
                guard(request, None, what, then)

        return listener

    return decorate
