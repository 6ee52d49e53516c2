"""A strict fake of Slack for tests: the Web API, response URLs, file uploads and Socket Mode,
over real HTTP and WebSocket on 127.0.0.1.

The bot's `slack_sdk.WebClient(base_url=fake.api_url)` talks to it exactly as it would talk to
slack.com, and the fake answers like Slack does, strictness included:

* tokens: no token is `not_authed`, an unknown one `invalid_auth`, a known token of the wrong
  kind (an `xapp-` token on a bot method, or the reverse) `not_allowed_token_type`. Tokens in a
  JSON body are ignored, as Slack ignores them (use the `Authorization` header).
* Block Kit: every message, view and response-URL body is checked against the limits of the
  project's Slack reference (see `BlockKitChecker`) and `slack_sdk.models` validation. Messages
  answer `invalid_blocks` with `errors`, views answer `invalid_arguments` with
  `response_metadata.messages`, as Slack does. `blocks` without `text` is accepted but recorded
  as the `missing_text` warning.
* rate limits: a sliding window per method (per channel for chat.postMessage). Over the limit is
  HTTP 429 with `Retry-After`. `rate_scale` tightens every window; `force_ratelimit` forces one.
* trigger ids are single use and expire after `trigger_ttl` (3 s); response URLs take 5 posts
  in 30 minutes; views keep a stack (3 deep) and a hash.

    fake = FakeSlack(bot_token="xoxb-test", app_token="xapp-test")
    fake.start()              # HTTP and WebSocket servers on free loopback ports
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    ...                       # fake.calls, fake.messages("C1"), fake.wait_for("chat.update")
    fake.reset()              # forget everything; default switches (between tests)
    fake.stop()

Where Slack's exact wording or behaviour is not documented, the choice is marked "guess".
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakes.http_server import LoopbackHTTPServer

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
MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100

# Refused handshakes (a reused Socket Mode URL) are expected in tests; keep them out of the log.
SOCKET_LOG = logging.getLogger("tests.fakes.slack_fake.socket")
SOCKET_LOG.setLevel(logging.CRITICAL)

CHANNEL_ID = re.compile(r"^[CGDU][A-Z0-9_]+$")
USER_ID = re.compile(r"^[UW][A-Z0-9_]+$")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Block Kit validation
# --------------------------------------------------------------------------------------------

SELECTS = {
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
}
MULTI_SELECTS = {"multi_" + s for s in SELECTS}
TEXT_INPUTS = {"plain_text_input", "email_text_input", "url_text_input", "number_input", "rich_text_input"}
ACTIONS_ELEMENTS = (
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "overflow",
        "radio_buttons",
        "timepicker",
        "workflow_button",
    }
    | SELECTS
    | MULTI_SELECTS
)
ACCESSORY_ELEMENTS = (
    {"button", "checkboxes", "datepicker", "image", "overflow", "radio_buttons", "timepicker", "workflow_button"}
    | SELECTS
    | MULTI_SELECTS
)
INPUT_ELEMENTS = (
    {"checkboxes", "datepicker", "datetimepicker", "file_input", "radio_buttons", "timepicker"}
    | SELECTS
    | MULTI_SELECTS
    | TEXT_INPUTS
)
_SELECT_COMMON = {"action_id", "confirm", "focus_on_load", "placeholder"}
_MULTI_COMMON = _SELECT_COMMON | {"max_selected_items"}
_INPUT_COMMON = {"action_id", "initial_value", "dispatch_action_config", "focus_on_load", "placeholder"}
ELEMENT_PROPS: dict[str, set[str]] = {
    "button": {"text", "action_id", "url", "value", "style", "confirm", "accessibility_label"},
    "static_select": _SELECT_COMMON | {"options", "option_groups", "initial_option"},
    "multi_static_select": _MULTI_COMMON | {"options", "option_groups", "initial_options"},
    "external_select": _SELECT_COMMON | {"initial_option", "min_query_length"},
    "multi_external_select": _MULTI_COMMON | {"initial_options", "min_query_length"},
    "users_select": _SELECT_COMMON | {"initial_user"},
    "multi_users_select": _MULTI_COMMON | {"initial_users"},
    "conversations_select": _SELECT_COMMON
    | {"initial_conversation", "default_to_current_conversation", "response_url_enabled", "filter"},
    "multi_conversations_select": _MULTI_COMMON
    | {"initial_conversations", "default_to_current_conversation", "filter"},
    "channels_select": _SELECT_COMMON | {"initial_channel", "response_url_enabled"},
    "multi_channels_select": _MULTI_COMMON | {"initial_channels"},
    "overflow": {"action_id", "options", "confirm"},
    "datepicker": _SELECT_COMMON | {"initial_date"},
    "timepicker": _SELECT_COMMON | {"initial_time", "timezone"},
    "datetimepicker": {"action_id", "initial_date_time", "confirm", "focus_on_load"},
    "plain_text_input": _INPUT_COMMON | {"multiline", "min_length", "max_length"},
    "email_text_input": set(_INPUT_COMMON),
    "url_text_input": set(_INPUT_COMMON),
    "number_input": _INPUT_COMMON | {"is_decimal_allowed", "min_value", "max_value"},
    "rich_text_input": set(_INPUT_COMMON),
    "checkboxes": {"action_id", "options", "initial_options", "confirm", "focus_on_load"},
    "radio_buttons": {"action_id", "options", "initial_option", "confirm", "focus_on_load"},
    "image": {"image_url", "slack_file", "alt_text"},
    "file_input": {"action_id", "filetypes", "max_files"},
    "workflow_button": {"text", "workflow", "style", "accessibility_label", "action_id"},
}
BLOCK_TYPES = {
    "section",
    "divider",
    "header",
    "context",
    "actions",
    "input",
    "image",
    "rich_text",
    "markdown",
    "file",
    "video",
    "table",
    "context_actions",
}
BLOCK_PROPS: dict[str, set[str]] = {
    "section": {"text", "fields", "accessory", "expand"},
    "divider": set(),
    "header": {"text"},
    "context": {"elements"},
    "actions": {"elements"},
    "input": {"label", "element", "dispatch_action", "hint", "optional"},
    "image": {"image_url", "slack_file", "alt_text", "title"},
    "markdown": {"text"},
}
VIEW_PROPS = {
    "type",
    "title",
    "blocks",
    "close",
    "submit",
    "private_metadata",
    "callback_id",
    "clear_on_close",
    "notify_on_close",
    "external_id",
    "submit_disabled",
}


class BlockKitChecker:
    """Checks Block Kit JSON against Slack's limits and collects Slack-style messages
    ("must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]").

    The explicit checks cover the limits in the project's Slack reference; after them each
    block (or view) is also parsed with `slack_sdk.models` and `validate_json()` is run on the
    whole object tree, so the SDK's own rules apply as well."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    # -- entry points -------------------------------------------------------------------

    def message_blocks(self, blocks: Any, ptr: str = "/blocks") -> list[str]:
        """Check a message's `blocks` (at most 50)."""
        self._blocks(blocks, ptr, MESSAGE_BLOCKS_LIMIT)
        return self.errors

    def view(self, view: Any, ptr: str = "/view") -> list[str]:
        """Check a modal or Home tab view object (at most 100 blocks)."""
        if not isinstance(view, dict):
            self._err("must be an object", ptr)
            return self.errors
        vtype = view.get("type")
        if vtype not in ("modal", "home"):
            self._err(f"unsupported type: {vtype}", f"{ptr}/type")
            return self.errors
        self._props(view, VIEW_PROPS, ptr)
        if vtype == "modal":
            self._text(view.get("title"), f"{ptr}/title", plain=True, max_len=24, required=True, name="title")
        elif "title" in view:
            self._text(view.get("title"), f"{ptr}/title", plain=True, max_len=24, required=False, name="title")
        for key in ("submit", "close"):
            if key in view:
                if vtype == "home":
                    self._err(f"invalid additional property: {key}", f"{ptr}/{key}")
                else:
                    self._text(view[key], f"{ptr}/{key}", plain=True, max_len=24, required=False, name=key)
        self._str(view, "private_metadata", 3000, ptr)
        self._str(view, "callback_id", 255, ptr)
        self._str(view, "external_id", 255, ptr)
        if "blocks" not in view:
            self._err("missing required field: blocks", ptr)
        else:
            self._blocks(view["blocks"], f"{ptr}/blocks", VIEW_BLOCKS_LIMIT)
            blocks = view["blocks"] if isinstance(view["blocks"], list) else []
            if vtype == "modal" and "submit" not in view:
                for i, b in enumerate(blocks):
                    if isinstance(b, dict) and b.get("type") == "input":
                        self._err("must define `submit` to use an `input` block in modals", f"{ptr}/blocks/{i}/input")
        if not self.errors:
            self._sdk(lambda: View(**view), ptr)
        return self.errors

    def options_response(self, body: Any, ptr: str = "") -> list[str]:
        """Check the bot's answer to a block_suggestion (options for an external_select)."""
        if not isinstance(body, dict) or not ({"options", "option_groups"} & body.keys()):
            self._err("must provide `options` or `option_groups`", ptr or "/")
            return self.errors
        if "options" in body:
            self._options(body["options"], f"{ptr}/options", max_items=100, plain=True, min_items=0)
        if "option_groups" in body:
            self._option_groups(body["option_groups"], f"{ptr}/option_groups")
        return self.errors

    # -- plumbing -----------------------------------------------------------------------

    def _err(self, message: str, ptr: str) -> None:
        self.errors.append(f"{message} [json-pointer:{ptr}]")

    def _props(self, obj: dict[str, Any], allowed: set[str], ptr: str) -> None:
        for key in obj:
            if key not in allowed and key not in ("type", "block_id"):
                self._err(f"invalid additional property: {key}", f"{ptr}/{key}")

    def _str(self, obj: dict[str, Any], key: str, max_len: int, ptr: str, *, required: bool = False) -> None:
        if key not in obj or obj[key] is None:
            if required:
                self._err(f"missing required field: {key}", ptr)
            return
        value = obj[key]
        if not isinstance(value, str):
            self._err("must be a string", f"{ptr}/{key}")
        elif len(value) > max_len:
            self._err(f"must be less than {max_len + 1} characters", f"{ptr}/{key}")

    def _array(
        self, obj: dict[str, Any], key: str, ptr: str, *, min_items: int, max_items: int, required: bool = True
    ) -> list[Any]:
        if key not in obj:
            if required:
                self._err(f"missing required field: {key}", ptr)
            return []
        value = obj[key]
        if not isinstance(value, list):
            self._err("must be an array", f"{ptr}/{key}")
            return []
        if len(value) < min_items:
            self._err(f"must provide at least {min_items} items", f"{ptr}/{key}")
        if len(value) > max_items:
            self._err(f"no more than {max_items} items allowed", f"{ptr}/{key}")
        return value

    def _text(
        self,
        obj: Any,
        ptr: str,
        *,
        plain: bool = False,
        max_len: int | None = None,
        required: bool = True,
        name: str = "text",
    ) -> None:
        """A text composition object: {"type": "plain_text"|"mrkdwn", "text": ...}."""
        if obj is None:
            if required:
                parent, _, key = ptr.rpartition("/")
                self._err(f"missing required field: {key or name}", parent or "/")
            return
        if not isinstance(obj, dict):
            self._err("must be a text object", ptr)
            return
        ttype = obj.get("type")
        if ttype not in ("plain_text", "mrkdwn"):
            self._err("must be a valid text object type (plain_text or mrkdwn)", f"{ptr}/type")
            return
        if plain and ttype != "plain_text":
            self._err("must be a `plain_text` text object", f"{ptr}/type")
        allowed = {"text", "emoji"} if ttype == "plain_text" else {"text", "verbatim"}
        self._props(obj, allowed, ptr)
        text = obj.get("text")
        if text is None:
            self._err("missing required field: text", ptr)
        elif not isinstance(text, str):
            self._err("must be a string", f"{ptr}/text")
        elif len(text) == 0:
            self._err("must be more than 0 characters", f"{ptr}/text")
        elif max_len is not None and len(text) > max_len:
            self._err(f"must be less than {max_len + 1} characters", f"{ptr}/text")

    def _sdk(self, build: Callable[[], Any], ptr: str) -> None:
        """Parse with slack_sdk's model classes and run every `validate_json()` in the tree."""
        try:
            obj = build()
            if obj is None:
                self._err("unsupported block", ptr)
                return
            self._sdk_walk(obj)
        except Exception as exc:  # noqa: BLE001 - any SDK complaint is a rejection
            self._err(f"{exc}", ptr)

    def _sdk_walk(self, obj: Any) -> None:
        if isinstance(obj, JsonObject):
            obj.validate_json()
            for attr in sorted(obj.attributes):
                self._sdk_walk(getattr(obj, attr, None))
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                self._sdk_walk(item)

    # -- blocks -------------------------------------------------------------------------

    def _blocks(self, blocks: Any, ptr: str, limit: int) -> None:
        if not isinstance(blocks, list):
            self._err("must be an array", ptr)
            return
        if len(blocks) > limit:
            self._err(f"no more than {limit} items allowed", ptr)
        seen: dict[str, int] = {}
        for i, block in enumerate(blocks):
            bptr = f"{ptr}/{i}"
            before = len(self.errors)
            self._block(block, bptr)
            if isinstance(block, dict) and isinstance(block.get("block_id"), str):
                bid = block["block_id"]
                if bid in seen:
                    # guess: Slack's exact wording for a repeated block_id
                    self._err(f"duplicate block_id `{bid}` (also in block {seen[bid]})", f"{bptr}/block_id")
                seen.setdefault(bid, i)
            if len(self.errors) == before and isinstance(block, dict) and block.get("type") in BLOCK_TYPES:
                self._sdk(lambda b=block: Block.parse(b), bptr)

    def _block(self, block: Any, ptr: str) -> None:
        if not isinstance(block, dict):
            self._err("must be an object", ptr)
            return
        btype = block.get("type")
        if btype is None:
            self._err("missing required field: type", ptr)
            return
        if btype not in BLOCK_TYPES:
            self._err(f"unsupported type: {btype}", f"{ptr}/type")
            return
        if btype in BLOCK_PROPS:
            self._props(block, BLOCK_PROPS[btype], ptr)
        self._str(block, "block_id", 255, ptr)
        check = getattr(self, f"_block_{btype}", None)
        if check is not None:
            check(block, ptr)

    def _block_section(self, block: dict[str, Any], ptr: str) -> None:
        if "text" not in block and "fields" not in block:
            self._err("must define either `text` or `fields`", ptr)
        if "text" in block:
            self._text(block["text"], f"{ptr}/text", max_len=3000)
        fields = self._array(block, "fields", ptr, min_items=1, max_items=10, required=False)
        for i, f in enumerate(fields):
            self._text(f, f"{ptr}/fields/{i}", max_len=2000)
        if "accessory" in block:
            self._element(block["accessory"], f"{ptr}/accessory", ACCESSORY_ELEMENTS, set())

    def _block_header(self, block: dict[str, Any], ptr: str) -> None:
        self._text(block.get("text"), f"{ptr}/text", plain=True, max_len=150)

    def _block_context(self, block: dict[str, Any], ptr: str) -> None:
        for i, el in enumerate(self._array(block, "elements", ptr, min_items=1, max_items=10)):
            eptr = f"{ptr}/elements/{i}"
            if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                self._text(el, eptr, max_len=3000)
            else:
                self._element(el, eptr, {"image"}, set())

    def _block_actions(self, block: dict[str, Any], ptr: str) -> None:
        action_ids: set[str] = set()
        for i, el in enumerate(self._array(block, "elements", ptr, min_items=1, max_items=25)):
            self._element(el, f"{ptr}/elements/{i}", ACTIONS_ELEMENTS, action_ids)

    def _block_input(self, block: dict[str, Any], ptr: str) -> None:
        self._text(block.get("label"), f"{ptr}/label", plain=True, max_len=2000)
        if "hint" in block:
            self._text(block["hint"], f"{ptr}/hint", plain=True, max_len=2000)
        if "element" not in block:
            self._err("missing required field: element", ptr)
        else:
            self._element(block["element"], f"{ptr}/element", INPUT_ELEMENTS, set())

    def _block_image(self, block: dict[str, Any], ptr: str) -> None:
        if "image_url" not in block and "slack_file" not in block:
            self._err("must define either `image_url` or `slack_file`", ptr)
        self._str(block, "image_url", 3000, ptr)
        self._str(block, "alt_text", 2000, ptr, required=True)
        if "title" in block:
            self._text(block["title"], f"{ptr}/title", plain=True, max_len=2000)

    def _block_markdown(self, block: dict[str, Any], ptr: str) -> None:
        self._str(block, "text", 12_000, ptr, required=True)

    # -- elements -----------------------------------------------------------------------

    def _element(self, el: Any, ptr: str, allowed: set[str], action_ids: set[str]) -> None:
        if not isinstance(el, dict):
            self._err("must be an object", ptr)
            return
        etype = el.get("type")
        if etype not in ELEMENT_PROPS:
            self._err(f"unsupported type: {etype}", f"{ptr}/type")
            return
        if etype not in allowed:
            self._err(f"unsupported type: {etype} (not allowed in this block)", f"{ptr}/type")
            return
        self._props(el, ELEMENT_PROPS[etype], ptr)
        self._str(el, "action_id", 255, ptr)
        action_id = el.get("action_id")
        if isinstance(action_id, str):
            if action_id in action_ids:
                # guess: Slack's exact wording for a repeated action_id
                self._err(f"duplicate action_id `{action_id}` in this block", f"{ptr}/action_id")
            action_ids.add(action_id)
        if "placeholder" in el:
            self._text(el["placeholder"], f"{ptr}/placeholder", plain=True, max_len=150)
        if "confirm" in el:
            self._confirm(el["confirm"], f"{ptr}/confirm")
        if etype == "button":
            self._text(el.get("text"), f"{ptr}/text", plain=True, max_len=75)
            self._str(el, "value", 2000, ptr)
            self._str(el, "url", 3000, ptr)
            self._str(el, "accessibility_label", 75, ptr)
            if "style" in el and el["style"] not in ("primary", "danger"):
                self._err("must be one of `primary`, `danger`", f"{ptr}/style")
        elif etype in ("static_select", "multi_static_select"):
            if ("options" in el) == ("option_groups" in el):
                self._err("must provide exactly one of `options` or `option_groups`", ptr)
            if "options" in el:
                self._options(el["options"], f"{ptr}/options", max_items=100, plain=True)
            if "option_groups" in el:
                self._option_groups(el["option_groups"], f"{ptr}/option_groups")
        elif etype == "overflow":
            self._options(el.get("options"), f"{ptr}/options", max_items=5, plain=True, url_ok=True)
        elif etype in ("checkboxes", "radio_buttons"):
            self._options(el.get("options"), f"{ptr}/options", max_items=10, plain=False)
        elif etype == "plain_text_input":
            for key in ("min_length", "max_length"):
                value = el.get(key)
                if value is not None and (not isinstance(value, int) or not 0 <= value <= 3000):
                    self._err("must be an integer from 0 to 3000", f"{ptr}/{key}")
            if isinstance(el.get("max_length"), int) and el["max_length"] < 1:
                self._err("must be at least 1", f"{ptr}/max_length")
            self._str(el, "initial_value", 3000, ptr)
        elif etype == "image":
            self._str(el, "image_url", 3000, ptr)
            self._str(el, "alt_text", 2000, ptr, required=True)

    def _options(
        self, options: Any, ptr: str, *, max_items: int, plain: bool, url_ok: bool = False, min_items: int = 1
    ) -> None:
        if options is None:
            parent, _, key = ptr.rpartition("/")
            self._err(f"missing required field: {key}", parent)
            return
        if not isinstance(options, list):
            self._err("must be an array", ptr)
            return
        if len(options) < min_items:
            self._err(f"must provide at least {min_items} items", ptr)
        if len(options) > max_items:
            self._err(f"no more than {max_items} items allowed", ptr)
        for i, opt in enumerate(options):
            optr = f"{ptr}/{i}"
            if not isinstance(opt, dict):
                self._err("must be an object", optr)
                continue
            self._props(opt, {"text", "value", "description"} | ({"url"} if url_ok else set()), optr)
            self._text(opt.get("text"), f"{optr}/text", plain=plain, max_len=75)
            self._str(opt, "value", 150, optr, required=True)
            if "description" in opt:
                self._text(opt["description"], f"{optr}/description", plain=plain, max_len=75)
            self._str(opt, "url", 3000, optr)

    def _option_groups(self, groups: Any, ptr: str) -> None:
        if not isinstance(groups, list):
            self._err("must be an array", ptr)
            return
        if len(groups) > 100:
            self._err("no more than 100 items allowed", ptr)
        for i, group in enumerate(groups):
            gptr = f"{ptr}/{i}"
            if not isinstance(group, dict):
                self._err("must be an object", gptr)
                continue
            self._props(group, {"label", "options"}, gptr)
            self._text(group.get("label"), f"{gptr}/label", plain=True, max_len=75)
            self._options(group.get("options"), f"{gptr}/options", max_items=100, plain=True)

    def _confirm(self, confirm: Any, ptr: str) -> None:
        if not isinstance(confirm, dict):
            self._err("must be an object", ptr)
            return
        self._props(confirm, {"title", "text", "confirm", "deny", "style"}, ptr)
        self._text(confirm.get("title"), f"{ptr}/title", plain=True, max_len=100)
        self._text(confirm.get("text"), f"{ptr}/text", max_len=300)
        self._text(confirm.get("confirm"), f"{ptr}/confirm", plain=True, max_len=30)
        self._text(confirm.get("deny"), f"{ptr}/deny", plain=True, max_len=30)
        if "style" in confirm and confirm["style"] not in ("primary", "danger"):
            self._err("must be one of `primary`, `danger`", f"{ptr}/style")


def check_message_blocks(blocks: Any) -> list[str]:
    """Slack-style error messages for a message's blocks; empty when Slack would accept them."""
    return BlockKitChecker().message_blocks(blocks)


def check_view(view: Any) -> list[str]:
    """Slack-style error messages for a modal or Home tab view; empty when Slack would accept it."""
    return BlockKitChecker().view(view)


def find_element(
    blocks: list[dict[str, Any]] | None, action_id: str, block_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The (block, element) carrying `action_id` in a list of blocks, or None."""
    for block in blocks or []:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif block.get("type") == "section" and block.get("accessory"):
            candidates = [block["accessory"]]
        elif block.get("type") == "input" and block.get("element"):
            candidates = [block["element"]]
        for el in candidates:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block, el
    return None


def iter_strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (keys included), depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from iter_strings(v)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_strings(item)


# --------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """At most `limit` calls in any `seconds`-long sliding window."""

    limit: int
    seconds: float


TIER_1 = (Window(5, 60.0),)  # "1+ per minute"; Slack tolerates small bursts (guess: 5)
TIER_2 = (Window(20, 60.0),)
TIER_3 = (Window(50, 60.0),)
TIER_4 = (Window(100, 60.0),)
# chat.postMessage: about 1 per second per channel, with short bursts (guess: 3 in a second,
# 70 in a minute).
POST_MESSAGE = (Window(3, 1.0), Window(70, 60.0))

RATE_LIMITS: dict[str, tuple[Window, ...]] = {
    "chat.postMessage": POST_MESSAGE,
    "chat.update": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.push": TIER_4,
    "views.publish": TIER_4,
    "users.info": TIER_4,
    "usergroups.users.list": TIER_2,
    "auth.test": TIER_4,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "apps.connections.open": TIER_1,
}


def scaled(window: Window, scale: float) -> Window:
    """A window `scale` times tighter: `scale` times fewer calls in a window `scale` times
    shorter (never below one call; the sustained rate is kept)."""
    if scale == 1.0:
        return window
    limit = max(1, round(window.limit / scale))
    return Window(limit, window.seconds * limit / window.limit)


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------

# Methods whose documented content types include JSON; others ignore a JSON body, like Slack.
JSON_METHODS = {
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "views.open",
    "views.update",
    "views.push",
    "views.publish",
    "files.completeUploadExternal",
}
JSON_IN_FORM = {"blocks", "view", "files", "attachments", "metadata"}
APP_TOKEN_METHODS = {"apps.connections.open"}


class FakeSlack:
    """The fake Slack workspace: Web API under `api_url`, response URLs, upload URLs and a
    Socket Mode WebSocket server. All state is guarded by one lock; read it through the
    helpers (`calls_to`, `wait_for`, `messages`, `ephemerals`, `responses`, ...)."""

    def __init__(
        self, bot_token: str = "xoxb-test", app_token: str = "xapp-test", signing_secret: str | None = None
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret  # kept for drivers; the fake never signs anything
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._ws: Server | None = None
        self._ws_thread: threading.Thread | None = None
        self._connections: list[ServerConnection] = []
        self._tickets: set[str] = set()
        self.port = 0
        self.ws_port = 0
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Start the HTTP server and the Socket Mode server, each on a free loopback port."""
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._http = LoopbackHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-slack-http"
        )
        self._http_thread.start()
        self._ws = serve(
            self._socket_session,
            "127.0.0.1",
            0,
            process_request=self._socket_handshake,
            compression=None,
            server_header="fake-slack",
            logger=SOCKET_LOG,
        )
        self.ws_port = self._ws.socket.getsockname()[1]
        self._ws_thread = threading.Thread(target=self._ws.serve_forever, daemon=True, name="fake-slack-ws")
        self._ws_thread.start()
        return self

    def stop(self) -> None:
        """Close every Socket Mode connection and stop both servers."""
        self.socket_close_all()
        if self._ws is not None:
            self._ws.shutdown()
            self._ws = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL for `WebClient(base_url=...)`; ends with `/api/`."""
        return f"{self.base_url}/api/"

    def reset(self) -> None:
        """Forget every call, message, view, file, trigger, response URL and rate window, and
        put the switches back to their defaults. Socket Mode connections stay open."""
        with self._lock:
            self.calls: list[Call] = []
            self.user_files: dict[str, tuple[str, bytes]] = {}
            self.acks: list[Ack] = []
            self.envelopes: list[SocketEnvelope] = []
            self.socket_messages: list[dict[str, Any]] = []
            self.uploaded_files: list[UploadedFile] = []
            self.views: dict[str, ViewRecord] = {}
            self.home_views: dict[str, ViewRecord] = {}
            self.users: dict[str, dict[str, Any]] = {}
            self.usergroups: dict[str, list[str]] = {}
            self.channels: set[str] | None = None  # None: every well-formed channel id exists
            self.not_member_of: set[str] = set()  # channels the bot was not invited to
            self.rate_scale = 1.0
            self.rate_limits_enabled = True
            self.trigger_ttl = TRIGGER_TTL
            self._messages: list[Message] = []
            self._triggers: dict[str, Trigger] = {}
            self._response_urls: dict[str, ResponseUrl] = {}
            self._uploads: dict[str, UploadedFile] = {}
            self._windows: dict[tuple[str, str], deque[float]] = {}
            self._forced: dict[str, list[int]] = {}
            self._last_ts = 0.0
            self._counter = 0
            self._changed.notify_all()

    # -- test-side configuration -------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        email: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """Make `user_id` known to users.info; returns the user object Slack will answer."""
        name = name or user_id.lower()
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": deleted,
            "real_name": real_name or name,
            "tz": "Europe/Berlin",
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": {"real_name": real_name or name, "display_name": name, "email": email, "team": TEAM_ID},
        }
        user.update(extra)
        with self._lock:
            self.users[user_id] = user
        return user

    def new_trigger_id(self, user_id: str | None = None, view_id: str | None = None) -> str:
        """A fresh trigger_id, as Slack puts in a command or interaction: usable once, for
        `trigger_ttl` seconds. `view_id` ties it to an open modal (needed by views.push)."""
        with self._lock:
            self._counter += 1
            tid = f"{1000000000 + self._counter}.{int(time.time())}.{secrets.token_hex(16)}"
            self._triggers[tid] = Trigger(tid, time.monotonic(), user_id, view_id)
            return tid

    def add_user_file(self, name: str, content: bytes) -> dict[str, Any]:
        """A file a user uploaded through a modal's file_input: the file object Slack puts in
        the view's state. Its url_private serves the bytes only with the bot token; without
        it Slack answers 200 with its HTML sign-in page, as the real one does."""
        with self._lock:
            file_id = f"F{secrets.token_hex(5).upper()}"
            self.user_files[file_id] = (name, content)
        return {"id": file_id, "name": name, "title": name, "mimetype": "text/csv", "filetype": "csv",
                "size": len(content), "url_private": f"{self.base_url}/files-pri/{file_id}/{name}",
                "url_private_download": f"{self.base_url}/files-pri/{file_id}/download/{name}"}

    def serve_user_file(self, path: str, token: str | None) -> tuple[int, bytes, str]:
        file_id = path.split("/", 1)[0]
        with self._lock:
            found = self.user_files.get(file_id)
        if found is None:
            return 404, b"Not Found", "text/plain"
        if token != self.bot_token:
            return 200, b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>", \
                "text/html; charset=utf-8"
        return 200, found[1], "application/octet-stream"

    def new_response_url(
        self, channel_id: str | None = None, user_id: str | None = None, message_ts: str | None = None
    ) -> str:
        """A fresh response_url bound to where the interaction happened (`message_ts` is the
        message a button was clicked in, for `replace_original` / `delete_original`)."""
        with self._lock:
            rid = f"T{secrets.token_hex(4)}/{secrets.token_hex(12)}"
            url = f"{self.base_url}/response/{rid}"
            self._response_urls[rid] = ResponseUrl(rid, url, time.monotonic(), channel_id, user_id, message_ts)
            return url

    def force_ratelimit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls to `method` with 429 and `Retry-After: retry_after`."""
        with self._lock:
            self._forced[method] = [times, retry_after]

    def expire_trigger(self, trigger_id: str) -> None:
        """Age a trigger_id past its lifetime (instead of sleeping 3 s in a test)."""
        with self._lock:
            self._triggers[trigger_id].issued_at -= self.trigger_ttl + 1

    def expire_response_url(self, url: str) -> None:
        """Age a response_url past its 30 minutes."""
        with self._lock:
            self._response_urls[url.rsplit("/response/", 1)[1]].issued_at -= RESPONSE_URL_TTL + 1

    def close_view(self, view_id: str) -> None:
        """The user closed a modal (the X): the view and the ones pushed above it are gone."""
        with self._lock:
            rec = self.views[view_id]
            for other in self.views.values():
                if other.root_view_id == rec.root_view_id and other.open:
                    if self._stack_index(other) >= self._stack_index(rec):
                        other.open = False
            self._changed.notify_all()

    # -- inspection --------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        """Every recorded call to `method`, oldest first."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    @property
    def ratelimited(self) -> list[Call]:
        """Every call the fake answered with HTTP 429."""
        with self._lock:
            return [c for c in self.calls if c.status == 429]

    @property
    def rejected(self) -> list[Call]:
        """Every call that failed (ok false, or a non-200 status)."""
        with self._lock:
            return [c for c in self.calls if not c.ok]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        *,
        ok: bool | None = None,
    ) -> Call:
        """The first call to `method` that matches `predicate` (and `ok`, if given), waiting up
        to `timeout` seconds for it: the bot answers Slack first and calls the API afterwards,
        from other threads. Raises AssertionError listing the calls seen on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for call in self.calls:
                    if call.method != method or (ok is not None and call.ok != ok):
                        continue
                    if predicate is None or predicate(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.error or "ok") for c in self.calls]
                    raise AssertionError(f"no matching {method} call within {timeout}s; calls: {seen}")
                self._changed.wait(min(left, 0.05))

    def messages(self, channel: str) -> list[Message]:
        """The channel's visible (non-ephemeral, not deleted) messages, oldest first. A user id
        stands for the bot's DM with that user."""
        channel = self._dm(channel)
        with self._lock:
            return [m for m in self._messages if m.channel == channel and not m.ephemeral and not m.deleted]

    def ephemerals(self, user: str | None = None) -> list[Message]:
        """Ephemeral messages (chat.postEphemeral, ephemeral response-URL posts and slash
        command acknowledgements), for `user` or everyone, oldest first."""
        with self._lock:
            return [
                m
                for m in self._messages
                if m.ephemeral and not m.deleted and (user is None or m.ephemeral_user == user)
            ]

    def all_messages(self) -> list[Message]:
        """Every message in the workspace, deleted ones included."""
        with self._lock:
            return list(self._messages)

    def responses(self, response_url: str | None = None) -> list[dict[str, Any]]:
        """The accepted JSON bodies posted to `response_url` (or to any response URL)."""
        with self._lock:
            urls = list(self._response_urls.values())
            if response_url is not None:
                urls = [u for u in urls if u.url == response_url]
            posts = [(p["_at"], p) for u in urls for p in u.posts]
            return [{k: v for k, v in p.items() if k != "_at"} for _, p in sorted(posts, key=lambda x: x[0])]

    def open_views(self, user_id: str | None = None) -> list[ViewRecord]:
        """Modals still open (not closed, submitted or cleared), oldest first."""
        with self._lock:
            return [
                v
                for v in self.views.values()
                if v.open and v.type == "modal" and (user_id is None or v.user_id == user_id)
            ]

    def file(self, file_id: str) -> UploadedFile:
        with self._lock:
            return self._uploads[file_id]

    def all_text(self) -> str:
        """Every string the bot ever sent to Slack (API arguments, response-URL bodies,
        uploaded file contents, acknowledgement bodies, Socket Mode acks), one per line: search
        it for secrets that must never leak."""
        with self._lock:
            parts: list[str] = []
            for call in self.calls:
                parts.extend(iter_strings(call.args))
            for f in self._uploads.values():
                if f.content is not None:
                    parts.append(f.content.decode("utf-8", "replace"))
            for ack in self.acks:
                parts.extend(iter_strings(ack.body))
            for msg in self.socket_messages:
                parts.extend(iter_strings(msg))
            return "\n".join(parts)

    # -- Socket Mode -------------------------------------------------------------------------

    def socket_connected(self, timeout: float = 5.0) -> bool:
        """Whether a Socket Mode client is connected (and greeted), waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def socket_send(
        self,
        type: str,
        payload: dict[str, Any],
        timeout: float = 5.0,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> dict[str, Any]:
        """Deliver `payload` to the newest Socket Mode connection in an envelope of `type`
        ("slash_commands", "interactive" or "events_api") and return the client's ack
        (`{"envelope_id": ..., "payload": ...}`). Raises TimeoutError without an ack.
        The envelope (with its ack time) is kept in `envelopes`, and the ack is applied and
        recorded in `acks` as `record_ack` does for HTTP (Slack gives up after 3 s)."""
        if not self.socket_connected(timeout):
            raise TimeoutError("no Socket Mode client connected")
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": type != "events_api",
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        record = SocketEnvelope(envelope_id, type, payload, time.monotonic())
        with self._lock:
            conn = self._connections[-1]
            self.envelopes.append(record)
        conn.send(json.dumps(envelope))
        deadline = time.monotonic() + timeout
        with self._changed:
            while record.ack is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no ack for envelope {envelope_id} ({type}) within {timeout}s")
                self._changed.wait(min(left, 0.05))
            return record.ack

    def socket_request_disconnect(self, reason: str = "warning") -> None:
        """Send Slack's `{"type": "disconnect"}` to every connection (clients then reconnect
        through apps.connections.open)."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.send(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}))
            except ConnectionClosed:
                pass

    def socket_close_all(self) -> None:
        """Drop every Socket Mode connection abruptly (as a network failure would)."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.close()

    def _socket_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        ticket = dict(parse_qsl(parts.query)).get("ticket", "")
        with self._lock:
            if parts.path.rstrip("/") != "/link" or ticket not in self._tickets:
                return connection.respond(401, "invalid or used ticket\n")
            self._tickets.discard(ticket)  # a Socket Mode URL is good for one connection
        return None

    def _socket_session(self, conn: ServerConnection) -> None:
        with self._lock:
            self._connections.append(conn)
            count = len(self._connections)
        try:
            conn.send(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": count,
                        "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
                        "connection_info": {"app_id": APP_ID},
                    }
                )
            )
            with self._changed:
                self._changed.notify_all()
            for raw in conn:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                now = time.monotonic()
                with self._changed:
                    self.socket_messages.append(message)
                    for env in self.envelopes:
                        if env.envelope_id == message.get("envelope_id") and env.ack is None:
                            env.ack, env.acked_at = message, now
                            self._socket_ack(env)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                if conn in self._connections:
                    self._connections.remove(conn)
                self._changed.notify_all()

    # -- acknowledgements (what the bot answered to Slack's requests) --------------------------

    def record_ack(
        self,
        kind: str,
        status: int,
        body: bytes,
        content_type: str,
        elapsed: float,
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        view_id: str | None = None,
    ) -> Ack:
        """Apply the bot's HTTP answer to a request Slack sent, as Slack would, and record it.

        kind: "slash_commands" (a text or JSON body becomes an ephemeral message, or an
        in-channel one with `response_type`), "view_submission" (empty closes the view;
        `response_action` errors / update / push / clear), "block_suggestion" (options),
        "block_actions" and "events" (body ignored). A late (> 3 s) or non-200 answer is
        what the user sees as an error; its body is then ignored."""
        text = body.decode("utf-8", "replace")
        parsed: Any = text
        if text and "json" in content_type:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        return self._record_ack(kind, status, parsed, elapsed, user_id, channel_id, view_id)

    def _record_ack(
        self,
        kind: str,
        status: int,
        body: Any,
        elapsed: float,
        user_id: str | None,
        channel_id: str | None,
        view_id: str | None,
    ) -> Ack:
        ack = Ack(kind, status, body, elapsed, ok=status == 200, late=elapsed > ACK_DEADLINE)
        if status != 200:
            ack.errors.append(f"HTTP {status}")
        with self._changed:
            if ack.ok and not ack.late:
                try:
                    self._apply_ack(kind, body, user_id, channel_id, view_id)
                except SlackError as exc:
                    ack.ok = False
                    ack.errors = [exc.error, *exc.errors]
            self.acks.append(ack)
            self._changed.notify_all()
        return ack

    def _socket_ack(self, env: SocketEnvelope) -> None:
        """Apply a Socket Mode ack's payload as Slack applies an HTTP answer."""
        p = env.payload
        if env.type == "slash_commands":
            kind, user, channel, view = "slash_commands", p.get("user_id"), p.get("channel_id"), None
        elif env.type == "interactive":
            kind = str(p.get("type"))
            user = (p.get("user") or {}).get("id")
            channel = (p.get("channel") or {}).get("id")
            view = (p.get("view") or {}).get("id")
        else:
            kind, user, channel, view = "events", None, None, None
        body = (env.ack or {}).get("payload", "")
        self._record_ack(kind, 200, body, env.elapsed or 0.0, user, channel, view)

    def _apply_ack(
        self, kind: str, body: Any, user_id: str | None, channel_id: str | None, view_id: str | None
    ) -> None:
        if kind == "slash_commands" and body not in ("", None):
            payload = body if isinstance(body, dict) else {"text": body}
            text, blocks, _ = self._message_content(payload, "ack")
            if payload.get("response_type") == "in_channel" and channel_id:
                self._store(Message(self._dm(channel_id), self._ts(), text, blocks, "ack"))
            else:
                self._store(
                    Message(
                        self._dm(channel_id or "C0UNKNOWN"),
                        self._ts(),
                        text,
                        blocks,
                        "ack",
                        ephemeral_user=user_id or "U0UNKNOWN",
                    )
                )
        elif kind == "block_suggestion":
            errors = BlockKitChecker().options_response(body if body != "" else None)
            if errors:
                raise SlackError("invalid_options", errors)
        elif kind == "view_submission" and view_id is not None and view_id in self.views:
            rec = self.views[view_id]
            action = body.get("response_action") if isinstance(body, dict) else None
            if body in ("", None) or action is None:
                if isinstance(body, dict) and body:
                    raise SlackError("invalid_response", ["unknown answer without response_action"])
                self.close_view(view_id)
            elif action == "errors":
                errors = body.get("errors")
                inputs = {b.get("block_id") for b in rec.view.get("blocks", []) if b.get("type") == "input"}
                if not isinstance(errors, dict) or not errors:
                    raise SlackError("invalid_response", ["errors must be a non-empty object"])
                unknown = [k for k in errors if k not in inputs]
                if unknown:
                    raise SlackError("invalid_response", [f"no input block with block_id {k!r}" for k in unknown])
            elif action == "update":
                errors = check_view(body.get("view"))
                if errors:
                    raise SlackError("invalid_arguments", errors)
                rec.view, rec.hash = body["view"], self._hash()
                rec.updates += 1
            elif action == "push":
                errors = check_view(body.get("view"))
                if errors:
                    raise SlackError("invalid_arguments", errors)
                if len(self._stack(rec.root_view_id)) >= VIEW_STACK_LIMIT:
                    raise SlackError("push_limit_reached")
                self._new_view(body["view"], rec.user_id, root=rec.root_view_id, previous=rec.id)
            elif action == "clear":
                for other in self._stack(rec.root_view_id):
                    other.open = False
            else:
                raise SlackError("invalid_response", [f"unknown response_action {action!r}"])

    # -- internals: state helpers ------------------------------------------------------------

    def _ts(self) -> str:
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def _hash(self) -> str:
        return f"{int(time.time())}.{secrets.token_hex(4)}"

    @staticmethod
    def _dm(channel: str) -> str:
        return "D" + channel[1:] if channel[:1] in ("U", "W") else channel

    def _store(self, message: Message) -> Message:
        self._messages.append(message)
        return message

    def _find_message(self, channel: str, ts: str) -> Message | None:
        channel = self._dm(channel)
        for m in self._messages:
            if m.channel == channel and m.ts == ts and not m.deleted:
                return m
        return None

    def find_message(self, channel: str, ts: str) -> Message | None:
        """The message `ts` in `channel` (ephemeral ones included), or None."""
        with self._lock:
            return self._find_message(channel, ts)

    def _stack(self, root_view_id: str) -> list[ViewRecord]:
        return sorted(
            (v for v in self.views.values() if v.root_view_id == root_view_id and v.open), key=self._stack_index
        )

    def _stack_index(self, rec: ViewRecord) -> int:
        depth, cur = 0, rec
        while cur.previous_view_id is not None and cur.previous_view_id in self.views:
            depth += 1
            cur = self.views[cur.previous_view_id]
        return depth

    def _new_view(
        self, view: dict[str, Any], user_id: str | None, *, root: str | None = None, previous: str | None = None
    ) -> ViewRecord:
        vid = "V" + secrets.token_hex(5).upper()
        external_id = view.get("external_id")
        if external_id and any(v.external_id == external_id for v in self.views.values()):
            raise SlackError("duplicate_external_id")
        rec = ViewRecord(vid, view["type"], user_id, view, self._hash(), root or vid, previous, external_id)
        self.views[vid] = rec
        return rec

    def _message_content(self, args: dict[str, Any], method: str) -> tuple[str | None, list[Any] | None, list[str]]:
        """Validate text/blocks of a message; returns (text, blocks, warnings)."""
        text = args.get("text")
        blocks = args.get("blocks")
        warnings: list[str] = []
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                raise SlackError("invalid_blocks_format") from None
        if blocks is not None and not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        if blocks == []:
            blocks = None
        if text is not None and not isinstance(text, str):
            text = str(text)
        if not text and blocks is None and not args.get("attachments"):
            raise SlackError("no_text")
        if blocks is not None:
            errors = check_message_blocks(blocks)
            if errors:
                raise SlackError("invalid_blocks", errors)
            if not text:
                warnings.append("missing_text")
        if text and len(text) > MESSAGE_TEXT_LIMIT:
            if method in ("chat.update", "chat.postEphemeral"):
                raise SlackError("msg_too_long")
            text = text[:MESSAGE_TEXT_LIMIT]
            warnings.append("message_truncated")  # guess: Slack truncates silently
        return text, blocks, warnings

    def _check_channel(self, args: dict[str, Any], key: str = "channel") -> str:
        channel = args.get(key)
        if not isinstance(channel, str) or not CHANNEL_ID.match(channel):
            raise SlackError("channel_not_found")
        if self.channels is not None and channel not in self.channels and channel[0] not in "UWD":
            raise SlackError("channel_not_found")
        if channel in self.not_member_of:
            raise SlackError("not_in_channel")
        return channel

    # -- internals: rate limits --------------------------------------------------------------

    def _rate_check(self, method: str, args: dict[str, Any]) -> int | None:
        """None if the call may proceed (and is counted), else the Retry-After seconds."""
        forced = self._forced.get(method)
        if forced and forced[0] > 0:
            forced[0] -= 1
            return forced[1]
        windows = RATE_LIMITS.get(method)
        if not windows or not self.rate_limits_enabled:
            return None
        key = str(args.get("channel", "")) if method == "chat.postMessage" else ""
        stamps = self._windows.setdefault((method, key), deque())
        now = time.monotonic()
        wait = 0.0
        for w in (scaled(w, self.rate_scale) for w in windows):
            inside = [t for t in stamps if t > now - w.seconds]
            if len(inside) >= w.limit:
                wait = max(wait, inside[-w.limit] + w.seconds - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        stamps.append(now)
        longest = max(scaled(w, self.rate_scale).seconds for w in windows)
        while stamps and stamps[0] <= now - longest:
            stamps.popleft()
        return None

    # -- internals: Web API --------------------------------------------------------------

    def handle_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str], Call]:
        """Run one Web API call; returns (status, body, extra headers, recorded call)."""
        now = time.time()
        headers: dict[str, str] = {}
        with self._changed:
            call = Call(method, args, ok=False, error=None, status=200, at=now)
            try:
                handler = METHODS.get(method)
                if handler is None:
                    raise SlackError("unknown_method")
                self._authenticate(method, token)
                retry_after = self._rate_check(method, args)
                if retry_after is not None:
                    call.status, call.retry_after = 429, retry_after
                    headers["Retry-After"] = str(retry_after)
                    raise SlackError("ratelimited")
                body = handler(self, args, call)
                body = {"ok": True, **body}
                if call.warnings:
                    body["warning"] = ",".join(call.warnings)
                    body["response_metadata"] = {"warnings": list(call.warnings)}
                call.ok = True
            except SlackError as exc:
                call.error = exc.error
                call.errors = list(exc.errors)
                body = {"ok": False, "error": exc.error}
                if exc.error == "unknown_method":
                    body["req_method"] = method
                if exc.errors:
                    if exc.style == "errors":
                        body["errors"] = list(exc.errors)
                    body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in exc.errors]}
            call.response = body
            self.calls.append(call)
            self._changed.notify_all()
            return call.status, body, headers, call

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise SlackError("invalid_auth")
        wants_app = method in APP_TOKEN_METHODS
        if (token == self.app_token) != wants_app:
            raise SlackError("not_allowed_token_type")

    # chat.* ----------------------------------------------------------------------------

    def _chat_post_message(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._check_channel(args)
        text, blocks, call.warnings = self._message_content(args, call.method)
        thread_ts = args.get("thread_ts")
        msg = self._store(
            Message(
                self._dm(channel),
                self._ts(),
                text,
                blocks,
                "chat.postMessage",
                thread_ts=thread_ts,
                attachments=args.get("attachments"),
                metadata=args.get("metadata"),
            )
        )
        return {"channel": msg.channel, "ts": msg.ts, "message": self._message_json(msg)}

    def _chat_post_ephemeral(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._check_channel(args)
        user = args.get("user")
        if not isinstance(user, str) or not USER_ID.match(user):
            raise SlackError("user_not_in_channel")
        text, blocks, call.warnings = self._message_content(args, call.method)
        msg = self._store(
            Message(
                self._dm(channel),
                self._ts(),
                text,
                blocks,
                "chat.postEphemeral",
                thread_ts=args.get("thread_ts"),
                ephemeral_user=user,
            )
        )
        return {"message_ts": msg.ts}

    def _chat_update(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._check_channel(args)
        ts = args.get("ts")
        if not ts:
            raise SlackError("message_not_found")
        msg = self._find_message(channel, str(ts))
        if msg is None:
            raise SlackError("message_not_found")
        if msg.ephemeral:
            raise SlackError("cant_update_message")
        text, blocks, call.warnings = self._message_content(args, call.method)
        msg.text = text
        if "blocks" in args:
            msg.blocks = blocks
        msg.edits += 1
        return {"channel": msg.channel, "ts": msg.ts, "text": msg.text or "", "message": self._message_json(msg)}

    @staticmethod
    def _message_json(msg: Message) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": msg.ts,
            "text": msg.text or "",
        }
        if msg.blocks is not None:
            out["blocks"] = msg.blocks
        if msg.thread_ts:
            out["thread_ts"] = msg.thread_ts
        return out

    # views.* ---------------------------------------------------------------------------

    def _use_trigger(self, args: dict[str, Any]) -> Trigger:
        tid = args.get("trigger_id") or args.get("interactivity_pointer")
        if not tid:
            raise SlackError("invalid_arguments", ["missing required field: trigger_id"], style="metadata")
        trigger = self._triggers.get(str(tid))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        return trigger

    def _view_arg(self, args: dict[str, Any], *, home: bool) -> dict[str, Any]:
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                raise SlackError(
                    "invalid_arguments", ["must be a valid JSON object [json-pointer:/view]"], style="metadata"
                ) from None
        if view is None:
            raise SlackError("invalid_arguments", ["missing required field: view"], style="metadata")
        errors = check_view(view)
        if not errors and home != (view.get("type") == "home"):
            errors = [f"unsupported type: {view.get('type')} [json-pointer:/view/type]"]
        if errors:
            raise SlackError("invalid_arguments", errors, style="metadata")
        return view

    def _views_open(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        view = self._view_arg(args, home=False)
        trigger = self._use_trigger(args)
        rec = self._new_view(view, trigger.user_id)
        trigger.used = True
        return {"view": rec.as_slack()}

    def _views_push(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        view = self._view_arg(args, home=False)
        trigger = self._use_trigger(args)
        below = self.views.get(trigger.view_id or "")
        if below is None or not below.open or below.type != "modal":
            raise SlackError("not_found")  # a push needs a trigger from inside an open modal
        stack = self._stack(below.root_view_id)
        if len(stack) >= VIEW_STACK_LIMIT:
            raise SlackError("push_limit_reached")
        rec = self._new_view(view, trigger.user_id, root=below.root_view_id, previous=stack[-1].id)
        trigger.used = True
        return {"view": rec.as_slack()}

    def _views_update(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if not view_id and not external_id:
            raise SlackError("invalid_arguments", ["must provide `view_id` or `external_id`"], style="metadata")
        rec = (
            self.views.get(str(view_id))
            if view_id
            else next((v for v in self.views.values() if external_id and v.external_id == external_id), None)
        )
        if rec is None or not rec.open:
            raise SlackError("not_found")
        view = self._view_arg(args, home=rec.type == "home")
        if args.get("hash") and args["hash"] != rec.hash:
            raise SlackError("hash_conflict")
        rec.view, rec.hash = view, self._hash()
        rec.updates += 1
        return {"view": rec.as_slack()}

    def _views_publish(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        user_id = args.get("user_id")
        if not user_id:
            raise SlackError("invalid_arguments", ["missing required field: user_id"], style="metadata")
        view = self._view_arg(args, home=True)
        rec = self.home_views.get(str(user_id))
        if rec is not None and args.get("hash") and args["hash"] != rec.hash:
            raise SlackError("hash_conflict")
        if rec is None:
            rec = self._new_view(view, str(user_id))
            self.home_views[str(user_id)] = rec
        else:
            rec.view, rec.hash = view, self._hash()
            rec.updates += 1
        return {"view": rec.as_slack()}

    # files -----------------------------------------------------------------------------

    def _files_get_upload_url(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        filename, length = args.get("filename"), args.get("length")
        if not filename or length in (None, ""):
            raise SlackError(
                "invalid_arguments", [f"missing required field: {'filename' if not filename else 'length'}"]
            )
        try:
            size = int(length)
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments", ["length must be an integer"]) from None
        if size < 0:
            raise SlackError("invalid_arguments", ["length must not be negative"])
        fid = "F" + secrets.token_hex(5).upper()
        token = secrets.token_urlsafe(16)
        self._uploads[fid] = UploadedFile(fid, str(filename), size, token)
        return {"upload_url": f"{self.base_url}/upload/v1/{token}", "file_id": fid}

    def _files_complete_upload(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                raise SlackError("invalid_arguments", ["files must be a JSON array"]) from None
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments", ["missing required field: files"])
        channel_id = args.get("channel_id") or None
        if channel_id is not None:
            self._check_channel(args, "channel_id")
        if args.get("thread_ts") and channel_id is None:
            raise SlackError("invalid_arguments", ["thread_ts needs channel_id"])
        records: list[UploadedFile] = []
        for entry in files:
            rec = self._uploads.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if rec is None or not rec.uploaded or rec.completed:
                raise SlackError("file_not_found")  # guess for "never uploaded" / "completed twice"
            records.append(rec)
        out = []
        for entry, rec in zip(files, records, strict=True):
            rec.title = entry.get("title") or rec.filename
            rec.channel_id, rec.thread_ts = channel_id, args.get("thread_ts")
            rec.initial_comment = args.get("initial_comment")
            rec.completed = True
            out.append(
                {
                    "id": rec.id,
                    "name": rec.filename,
                    "title": rec.title,
                    "size": len(rec.content or b""),
                    "channels": [channel_id] if channel_id else [],
                }
            )
        self.uploaded_files.extend(records)
        if channel_id is not None:
            self._store(
                Message(
                    self._dm(channel_id),
                    self._ts(),
                    args.get("initial_comment"),
                    None,
                    "files.completeUploadExternal",
                    thread_ts=args.get("thread_ts"),
                    files=[r.id for r in records],
                )
            )
        return {"files": out}

    def handle_upload(self, token: str, data: bytes) -> tuple[int, str]:
        """The raw POST to an upload_url: store the bytes (Slack answers `OK - <size>`)."""
        with self._changed:
            rec = next((f for f in self._uploads.values() if f.upload_token == token), None)
            call = Call(
                "files.upload_url",
                {"filename": rec.filename if rec else None, "size": len(data)},
                ok=rec is not None,
                error=None if rec else "not_found",
                status=200 if rec else 404,
                at=time.time(),
            )
            self.calls.append(call)
            self._changed.notify_all()
            if rec is None:
                return 404, "Not Found"
            rec.content = data
            return 200, f"OK - {len(data)}"

    # users, groups, auth, socket --------------------------------------------------------

    def _users_info(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        user = self.users.get(str(args.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def _usergroups_users_list(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        group = args.get("usergroup")
        if not group:
            raise SlackError("invalid_arguments", ["missing required field: usergroup"])
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _auth_test(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "PurelyOps Test",
            "user": "purelyops",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.ws_port}/link/?ticket={ticket}&app_id={APP_ID}"}

    # response URLs ---------------------------------------------------------------------

    def handle_response_url(self, rid: str, payload: Any) -> tuple[int, str]:
        """A POST to a response_url; returns (status, text body) as hooks.slack.com does."""
        with self._changed:
            args = payload if isinstance(payload, dict) else {"_raw": payload}
            call = Call("response_url", args, ok=False, error=None, status=200, at=time.time())
            self.calls.append(call)
            self._changed.notify_all()
            url = self._response_urls.get(rid)
            status, text = self._response_post(url, payload, call)
            call.status, call.ok = status, status == 200
            call.error = None if call.ok else text
            call.response = text
            return status, text

    def _response_post(self, url: ResponseUrl | None, payload: Any, call: Call) -> tuple[int, str]:
        if url is None:
            return 404, "no_service"  # guess for an id Slack never issued
        if time.monotonic() - url.issued_at > RESPONSE_URL_TTL:
            return 404, "expired_url"
        if len(url.posts) >= RESPONSE_URL_POSTS:
            return 404, "used_url"
        if not isinstance(payload, dict):
            return 400, "invalid_payload"
        if payload.get("delete_original"):
            target = self._original(url)
            if target is not None:
                target.deleted = True
        else:
            try:
                text, blocks, call.warnings = self._message_content(payload, "response_url")
            except SlackError as exc:
                call.errors = list(exc.errors)
                return 400, exc.error
            target = self._original(url) if payload.get("replace_original") else None
            if target is not None:
                target.text, target.blocks = text, blocks
                target.edits += 1
            else:
                channel = self._dm(url.channel_id or "C0UNKNOWN")
                in_channel = payload.get("response_type") == "in_channel"
                msg = self._store(
                    Message(
                        channel,
                        self._ts(),
                        text,
                        blocks,
                        "response_url",
                        thread_ts=payload.get("thread_ts"),
                        response_url=url.url,
                        ephemeral_user=None if in_channel else (url.user_id or "U0UNKNOWN"),
                    )
                )
                url.last_ts = msg.ts
        url.posts.append({**payload, "_at": time.monotonic()})
        return 200, "ok"

    def _original(self, url: ResponseUrl) -> Message | None:
        ts = url.message_ts or url.last_ts
        if ts is None or url.channel_id is None:
            return None
        return self._find_message(url.channel_id, ts)


METHODS: dict[str, Callable[[FakeSlack, dict[str, Any], Call], dict[str, Any]]] = {
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.update": FakeSlack._chat_update,
    "views.open": FakeSlack._views_open,
    "views.push": FakeSlack._views_push,
    "views.update": FakeSlack._views_update,
    "views.publish": FakeSlack._views_publish,
    "files.getUploadURLExternal": FakeSlack._files_get_upload_url,
    "files.completeUploadExternal": FakeSlack._files_complete_upload,
    "users.info": FakeSlack._users_info,
    "usergroups.users.list": FakeSlack._usergroups_users_list,
    "auth.test": FakeSlack._auth_test,
    "apps.connections.open": FakeSlack._apps_connections_open,
}


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Routes /api/<method>, /upload/v1/<token> and /response/<id> to the fake."""

    fake: FakeSlack
    protocol_version = "HTTP/1.1"
    server_version = "fake-slack"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parts.path.startswith("/api/"):
            self._api(parts.path[len("/api/") :], parts.query, raw)
        elif parts.path.startswith("/files-pri/") and self.command == "GET":
            auth = self.headers.get("Authorization") or ""
            status, data, ctype = self.fake.serve_user_file(parts.path[len("/files-pri/"):],
                                                            auth[7:].strip() if auth.lower().startswith("bearer ") else None)
            self._send(status, data, ctype)
        elif parts.path.startswith("/upload/v1/") and self.command == "POST":
            status, text = self.fake.handle_upload(parts.path[len("/upload/v1/") :], raw)
            self._send(status, text.encode(), "text/plain; charset=utf-8")
        elif parts.path.startswith("/response/") and self.command == "POST":
            try:
                payload: Any = json.loads(raw or b"null")
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            status, text = self.fake.handle_response_url(parts.path[len("/response/") :], payload)
            self._send(status, text.encode(), "text/html" if status == 200 else "text/plain; charset=utf-8")
        else:
            self._send(404, b"Not Found", "text/plain")

    def _api(self, method: str, query: str, raw: bytes) -> None:
        args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        form_token = args.pop("token", None)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if raw:
            if ctype.startswith("application/json"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._json(200, {"ok": False, "error": "invalid_json"})
                    return
                if not isinstance(body, dict):
                    self._json(200, {"ok": False, "error": "invalid_json"})
                    return
                body.pop("token", None)  # Slack ignores a token inside a JSON body
                if method in JSON_METHODS:
                    args.update(body)
            elif ctype.startswith("application/x-www-form-urlencoded") or not ctype:
                form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
                form_token = form.pop("token", None) or form_token
                args.update(form)
            else:
                self._json(200, {"ok": False, "error": "invalid_form_data"})
                return
        for key in JSON_IN_FORM & args.keys():
            if isinstance(args[key], str) and key != "blocks":
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass
        if isinstance(args.get("blocks"), str):
            try:
                args["blocks"] = json.loads(args["blocks"])
            except ValueError:
                pass  # left a string: the method answers invalid_blocks_format
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else form_token
        status, body, headers, _ = self.fake.handle_api(method, args, token)
        self._json(status, body, headers)

    def _json(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _send(self, status: int, data: bytes, ctype: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
