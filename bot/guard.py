"""The one wrapper every interactive request runs in: slash commands, clicks, modal submissions.

`guard` gives the request one PurelyMail deadline (INTERACTIVE_DEADLINE_S for all its
calls, retries and throttle waits included, so the admin hears back in seconds, not
minutes), checks the role (a refusal is audited), runs the work, and turns a failure
into words: a service's refusal (purelyops.errors.Refused) is shown as it is; an
expected failure (PurelyMail, Slack, the database or Redis) is one log line without a
traceback; anything else is a bug, logged with its traceback under a short error id that
the admin's message repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.blocks.kit import message
from bot.mrkdwn import clip, escape
from bot.request import Request
from purelyops import purelymail
from purelyops.access import NotAllowed, Role, RoleUnknown, require
from purelyops.errors import Busy, Refused
from purelyops.failures import describe_failure, failure_reason, is_expected, new_error_id

log = logging.getLogger(__name__)

INTERACTIVE_DEADLINE_S = 10.0
"""All the PurelyMail calls of one command, click or submission, in all."""

Reply = Callable[..., None]  # reply(text, blocks=None)


def guard(request: Request, role: Role | None, what: str, work: Callable[[], None], *, target: str | None = None,
          reply: Reply | None = None) -> None:
    """Run `work` for a requester who has `role` (None: anyone); otherwise refuse, in the
    words "Only … can {what}", and audit the refusal under `target` (default `what`). Any
    failure becomes a message in words, never a traceback, given to `reply` (default
    `request.reply`)."""
    target = target or what
    reply = reply or request.reply
    try:
        with purelymail.deadline(INTERACTIVE_DEADLINE_S):
            if role is not None:
                require(request.rt, request.user_id, request.user_name, role, what, target=target)
            work()
    except Refused as error:
        _tell(reply, target, refused_message(error))
    except RoleUnknown as error:
        _tell(reply, target, *failure_message(str(error)))
    except Exception as error:  # noqa: BLE001 - every failure is reported in words
        if is_expected(error):
            log.warning("%s failed: %s", target, failure_reason(error))
            _tell(reply, target, *failure_message(describe_failure(error)))
        else:
            error_id = new_error_id()
            log.error("%s failed [error id %s]", target, error_id, exc_info=error)
            _tell(reply, target, *failure_message(describe_failure(error, error_id)))


def failure_message(words: str) -> tuple[str, list[dict]]:
    """A failure in words, as a message: the fallback text escaped for mrkdwn, and the block
    in plain text, so nothing in the words (a `<!channel>`, a `*`) is read as markup."""
    return message(f":warning: {words}", [
        {"type": "section", "text": {"type": "plain_text", "text": clip(f":warning: {words}", 3000), "emoji": True}}])


_ICONS = ((NotAllowed, ":no_entry:"), (Busy, ":hourglass:"))  # any other refusal: ":warning:"


def refused_message(error: Refused) -> str:
    """A service's refusal, as mrkdwn: its words are escaped, its `code` stays code."""
    icon = next((icon for kind, icon in _ICONS if isinstance(error, kind)), ":warning:")
    return f"{icon} {escape(error)}"


def _tell(reply: Reply, target: str, text: str, blocks: list[dict] | None = None) -> None:
    try:
        reply(text, blocks)
    except Exception as error:  # noqa: BLE001 - Slack itself may be what failed
        log.warning("%s: could not tell the admin either: %s", target, failure_reason(error))
