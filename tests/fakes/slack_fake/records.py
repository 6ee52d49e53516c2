"""What the fake Slack remembers: its workspace's ids and limits, and one record type per
thing that happened (a call, a message, a view, a file, a trigger, an acknowledgement)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TEAM_ID = "T0FAKETEAM"
TEAM_DOMAIN = "purelyops-test"
APP_ID = "A0FAKEAPP1"
BOT_ID = "B0FAKEBOT1"
BOT_USER_ID = "U0FAKEBOT1"

ACK_DEADLINE = 3.0  # seconds Slack waits for the HTTP (or Socket Mode) acknowledgement
TRIGGER_TTL = 3.0
RESPONSE_URL_POSTS = 5
RESPONSE_URL_TTL = 30 * 60.0
VIEW_STACK_LIMIT = 3
MESSAGE_TEXT_LIMIT = 40_000

CHANNEL_ID = re.compile(r"^[CGDU][A-Z0-9_]+$")
USER_ID = re.compile(r"^[UW][A-Z0-9_]+$")


@dataclass
class Call:
    """One request that reached the fake: a Web API method, a response-URL post
    (method "response_url") or a raw file upload (method "files.upload_url").

    `args` are the merged query, form and JSON arguments, with JSON-in-form fields (blocks,
    view, files, attachments) decoded and the token removed. `errors` holds the human-readable
    reasons of an `invalid_blocks` / `invalid_arguments` answer, `warnings` Slack's warnings
    (such as `missing_text`)."""

    method: str
    args: dict[str, Any]
    ok: bool
    error: str | None
    status: int
    at: float
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    response: Any = None
    retry_after: int | None = None

    @property
    def rejected(self) -> bool:
        return not self.ok


# Slack's special sequences in mrkdwn that notify or link, as Slack reads them in a message's
# text (the notification comes from `text`) and in its blocks: a mention of everyone in the
# channel (`<!group>` is its older name), of those online, of the workspace, of a user
# group, each bare or with a label after a `|` (`<!here|here>`, as Slack's own clients write
# them), and a link, with a label of its own or not. The bot may write `<@U…>` (a member it
# names) and `<!date^…>`; any of these in its text came from a value it did not escape.
LIVE_MARKUP = re.compile(r"<(!(?:channel|here|everyone|group)(?:\|[^>]*)?|!subteam\^[^>]*"
                         r"|(?:https?|mailto|ftp|file):[^>]*)>", re.I)


@dataclass
class LiveMarkup:
    """A sequence of LIVE_MARKUP that Slack would act on in a message from the bot: the
    method or path it came through, where in the message (`text`, `blocks`, a file's
    `initial_comment`) and the sequence."""

    method: str
    where: str
    markup: str


@dataclass
class Message:
    """A message as the fake's Slack workspace holds it now (edits applied).

    `ephemeral_user` is set for ephemeral messages (chat.postEphemeral, ephemeral response-URL
    posts, slash command acknowledgements): only that user sees them. `source` says how it
    came: "chat.postMessage", "chat.postEphemeral", "response_url", "ack" or
    "files.completeUploadExternal"."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    source: str
    thread_ts: str | None = None
    ephemeral_user: str | None = None
    response_url: str | None = None
    attachments: list[Any] | None = None
    metadata: Any = None
    files: list[str] = field(default_factory=list)
    edits: int = 0
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return self.ephemeral_user is not None


@dataclass
class ViewRecord:
    """A modal or Home tab view the bot opened, pushed, updated or published."""

    id: str
    type: str
    user_id: str | None
    view: dict[str, Any]
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    external_id: str | None = None
    open: bool = True
    updates: int = 0

    def as_slack(self) -> dict[str, Any]:
        """The view object as Slack returns it from views.* and sends it in payloads."""
        v = self.view
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "type": self.type,
            "title": v.get("title"),
            "close": v.get("close"),
            "submit": v.get("submit"),
            "blocks": v.get("blocks", []),
            "private_metadata": v.get("private_metadata", ""),
            "callback_id": v.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self.hash,
            "clear_on_close": bool(v.get("clear_on_close", False)),
            "notify_on_close": bool(v.get("notify_on_close", False)),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": APP_ID,
            "external_id": self.external_id or "",
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }


@dataclass
class UploadedFile:
    """A file going through the two-step upload: reserved, uploaded (bytes), completed (shared)."""

    id: str
    filename: str
    length: int
    upload_token: str
    content: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False

    @property
    def uploaded(self) -> bool:
        return self.content is not None


@dataclass
class ResponseUrl:
    """A response_url the fake issued, with what it is bound to and the posts it took."""

    id: str
    url: str
    issued_at: float
    channel_id: str | None
    user_id: str | None
    message_ts: str | None
    posts: list[dict[str, Any]] = field(default_factory=list)
    last_ts: str | None = None


@dataclass
class Trigger:
    """A trigger_id the fake issued (put it in a command or interaction payload)."""

    id: str
    issued_at: float
    user_id: str | None
    view_id: str | None
    used: bool = False


@dataclass
class Ack:
    """What the bot answered to a request Slack sent it (recorded by the request driver).

    `late` is True when the answer took longer than Slack's 3 s; Slack then shows the user an
    error and ignores the body. `ok` is False when Slack would reject the body."""

    kind: str
    status: int
    body: Any
    elapsed: float
    ok: bool
    late: bool
    errors: list[str] = field(default_factory=list)


@dataclass
class SocketEnvelope:
    """An envelope the fake sent over Socket Mode and the client's acknowledgement."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    ack: dict[str, Any] | None = None
    acked_at: float | None = None

    @property
    def elapsed(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.sent_at


class SlackError(Exception):
    """Raised inside a method handler: the call fails with Slack error `error`."""

    def __init__(self, error: str, errors: list[str] | None = None, *, style: str = "errors") -> None:
        super().__init__(error)
        self.error = error
        self.errors = errors or []
        self.style = style  # "errors" (messages: errors + response_metadata) or "metadata" (views)
