"""Acting as Slack towards the bot's HTTP endpoint: signed slash commands, button clicks,
modal submissions, option requests and Events API deliveries.

Bodies are built the way Slack builds them (form fields for commands, a form field `payload`
holding JSON for interactions, a JSON envelope for events) and signed with Slack's v0
algorithm. With a `FakeSlack`, the driver takes trigger ids and response URLs from it, reads
the clicked message or the submitted modal from its state when the fake has it (then the
element, button value, option and required inputs must really be there, as in Slack's
client; when the fake has no such message or modal the payload is made up), and hands the
bot's answer back to the fake (`FakeSlack.record_ack`), which applies it as Slack would: a
`response_action` updates the modal, an empty answer closes it, a slash command's answer
becomes an ephemeral message.

    slack = SlackDriver(bot_url + "/slack/events", SIGNING_SECRET, fake)
    r = slack.command("domains list")          # httpx.Response; r.elapsed is the ack time
    fake.responses(slack.last_response_url)    # what the bot posted to that response_url

The payload builders (`command_form`, `block_actions_payload`, ...) are public so the same
payloads can be sent over Socket Mode with `FakeSlack.socket_send`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.slack_fake import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, FakeSlack, find_element

VERIFICATION_TOKEN = "fakeVerificationToken0001"  # the deprecated token Slack still sends


def sign(signing_secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Slack's v0 request signature: "v0=" + hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))."""
    raw = body.decode("utf-8") if isinstance(body, bytes) else body
    base = f"v0:{timestamp}:{raw}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def _user(user_id: str, fake: FakeSlack | None) -> dict[str, Any]:
    name = user_id.lower()
    if fake is not None and user_id in fake.users:
        name = fake.users[user_id].get("name", name)
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def _action_ts() -> str:
    return f"{time.time():.6f}"


def command_form(
    text: str,
    *,
    user_id: str,
    channel_id: str,
    command: str = "/pm",
    response_url: str,
    trigger_id: str,
    user_name: str | None = None,
    channel_name: str = "ops",
    **extra: Any,
) -> dict[str, str]:
    """A slash command's form fields, in Slack's order (also the Socket Mode payload)."""
    form = {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    form.update({k: str(v) for k, v in extra.items()})
    return form


def _action(
    element: dict[str, Any] | None, action_id: str, block_id: str, value: Any, selected_option: dict[str, Any] | None
) -> dict[str, Any]:
    """The `actions[0]` entry Slack sends for a click on / choice in `element`."""
    etype = (element or {}).get("type", "button")
    action: dict[str, Any] = {"type": etype, "action_id": action_id, "block_id": block_id, "action_ts": _action_ts()}
    if etype == "button":
        action["text"] = (element or {}).get("text", {"type": "plain_text", "text": action_id})
        if value is not None or (element and "value" in element):
            action["value"] = value if value is not None else element["value"]  # type: ignore[index]
        if element and "style" in element:
            action["style"] = element["style"]
    elif etype in ("static_select", "external_select", "radio_buttons", "overflow"):
        action["selected_option"] = selected_option or _option_for(element, value)
    elif etype in ("multi_static_select", "multi_external_select", "checkboxes"):
        values = value if isinstance(value, list) else [value]
        action["selected_options"] = [_option_for(element, v) for v in values]
    elif etype == "users_select":
        action["selected_user"] = value
    elif etype == "multi_users_select":
        action["selected_users"] = list(value or [])
    elif etype == "conversations_select":
        action["selected_conversation"] = value
    elif etype == "channels_select":
        action["selected_channel"] = value
    elif etype == "datepicker":
        action["selected_date"] = value
    elif etype == "timepicker":
        action["selected_time"] = value
    else:
        action["value"] = value
    return action


def _option_for(element: dict[str, Any] | None, value: Any) -> dict[str, Any]:
    """The option of `element` whose value is `value` (external selects: a made-up one)."""
    options = list((element or {}).get("options") or [])
    for group in (element or {}).get("option_groups") or []:
        options.extend(group.get("options") or [])
    for opt in options:
        if opt.get("value") == value:
            return opt
    if options:
        raise LookupError(f"no option with value {value!r} in {element.get('action_id') if element else None}")
    return {"text": {"type": "plain_text", "text": str(value)}, "value": value}


def _state_value(element: dict[str, Any] | None, raw: Any) -> dict[str, Any]:
    """A `view.state.values` entry for `element` from a test's shorthand value."""
    if isinstance(raw, dict) and "type" in raw:
        return raw
    etype = (element or {}).get("type", "plain_text_input")
    if etype in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
        return {"type": etype, "value": raw}
    if etype in ("static_select", "external_select", "radio_buttons"):
        return {"type": etype, "selected_option": None if raw is None else _option_for(element, raw)}
    if etype in ("multi_static_select", "multi_external_select", "checkboxes"):
        return {"type": etype, "selected_options": [_option_for(element, v) for v in (raw or [])]}
    keys = {
        "users_select": "selected_user",
        "multi_users_select": "selected_users",
        "conversations_select": "selected_conversation",
        "channels_select": "selected_channel",
        "multi_conversations_select": "selected_conversations",
        "multi_channels_select": "selected_channels",
        "datepicker": "selected_date",
        "timepicker": "selected_time",
        "file_input": "files",
    }
    return {"type": etype, keys.get(etype, "value"): raw}


def _initial(element: dict[str, Any]) -> Any:
    """What an untouched element holds: its initial value, option or options."""
    if "initial_option" in element:
        return element["initial_option"].get("value")
    if "initial_options" in element:
        return [o.get("value") for o in element["initial_options"]]
    return element.get("initial_value")


def view_state(view: dict[str, Any] | None, values: dict[str, Any]) -> dict[str, Any]:
    """`view.state.values` as Slack sends it on submission: every input block of `view`, with
    the test's `values` ({block_id: {action_id: shorthand or full entry}}) filled in, and
    blocks the test leaves out holding their initial value, as an untouched field does.

    Raises ValueError for a required input left empty (Slack's client will not submit) and
    LookupError for a block_id / action_id the view does not have."""
    state: dict[str, dict[str, Any]] = {}
    inputs = [b for b in (view or {}).get("blocks", []) if b.get("type") == "input"]
    if view is None or not view.get("blocks"):
        for bid, actions in values.items():
            state[bid] = {aid: _state_value(None, raw) for aid, raw in actions.items()}
        return state
    known = {b.get("block_id"): b for b in inputs}
    for bid, actions in values.items():
        if bid not in known:
            raise LookupError(f"the view has no input block {bid!r}")
        element = known[bid].get("element", {})
        for aid in actions:
            if aid != element.get("action_id"):
                raise LookupError(f"input block {bid!r} has no action_id {aid!r}")
    for block in inputs:
        element = block.get("element", {})
        bid, aid = block.get("block_id"), element.get("action_id")
        raw = values[bid].get(aid) if bid in values else _initial(element)  # untouched: as the view set it
        if raw in (None, "", []) and not block.get("optional"):
            raise ValueError(f"required input {bid!r} is empty: Slack would not submit the modal")
        state[bid] = {aid: _state_value(element, raw)}
    return state


class SlackDriver:
    """Sends signed requests to the bot as Slack would, and records its answers in the fake.

    `user_id` / `channel_id` are the defaults for every request. After each request,
    `last_response_url`, `last_trigger_id` and `last_payload` say what was sent."""

    def __init__(
        self,
        url: str,
        signing_secret: str,
        fake: FakeSlack | None = None,
        *,
        user_id: str = "U_ADMIN",
        channel_id: str = "C_OPS",
        timeout: float = 15.0,
    ) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.fake = fake
        self.user_id = user_id
        self.channel_id = channel_id
        self.http = httpx.Client(timeout=timeout)
        self.last_response_url: str | None = None
        self.last_trigger_id: str | None = None
        self.last_payload: dict[str, Any] | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SlackDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- signing and sending -----------------------------------------------------------------

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST `body` signed with the v0 algorithm. `timestamp` / `signature` override the
        computed ones (for replay and forgery tests); `retry_num` adds Slack's retry headers."""
        ts = int(time.time()) if timestamp is None else timestamp
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature if signature is not None else sign(self.signing_secret, ts, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            sent["X-Slack-Retry-Num"] = str(retry_num)
            sent["X-Slack-Retry-Reason"] = retry_reason
        sent.update(headers or {})
        return self.http.post(self.url, content=body, headers=sent)

    def _form(self, fields: dict[str, str], **sign_opts: Any) -> httpx.Response:
        return self.post(urlencode(fields).encode(), "application/x-www-form-urlencoded", **sign_opts)

    def _interaction(self, payload: dict[str, Any], **sign_opts: Any) -> httpx.Response:
        self.last_payload = payload
        return self._form({"payload": json.dumps(payload)}, **sign_opts)

    def _ack(self, kind: str, response: httpx.Response, **where: Any) -> None:
        if self.fake is not None:
            self.fake.record_ack(
                kind,
                response.status_code,
                response.content,
                response.headers.get("content-type", ""),
                response.elapsed.total_seconds(),
                **where,
            )

    def _trigger(self, user_id: str, view_id: str | None = None) -> str:
        tid = (
            self.fake.new_trigger_id(user_id, view_id)
            if self.fake is not None
            else f"{secrets.randbelow(10**10)}.{int(time.time())}.{secrets.token_hex(16)}"
        )
        self.last_trigger_id = tid
        return tid

    def _response_url(self, channel_id: str | None, user_id: str, message_ts: str | None = None) -> str:
        url = (
            self.fake.new_response_url(channel_id, user_id, message_ts)
            if self.fake is not None
            else f"https://hooks.slack.com/actions/{TEAM_ID}/{secrets.token_hex(6)}/{secrets.token_hex(12)}"
        )
        self.last_response_url = url
        return url

    # -- requests ------------------------------------------------------------------------------

    def command(
        self,
        text: str,
        user_id: str | None = None,
        channel_id: str | None = None,
        command: str = "/pm",
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        retry_num: int | None = None,
        **extra: Any,
    ) -> httpx.Response:
        """A slash command, e.g. `command("domains add example.com")` is `/pm domains add ...`."""
        user_id, channel_id = user_id or self.user_id, channel_id or self.channel_id
        fields = command_form(
            text,
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            response_url=self._response_url(channel_id, user_id),
            trigger_id=self._trigger(user_id),
            user_name=_user(user_id, self.fake)["name"],
            **extra,
        )
        self.last_payload = dict(fields)
        r = self._form(fields, timestamp=timestamp, signature=signature, retry_num=retry_num)
        self._ack("slash_commands", r, user_id=user_id, channel_id=channel_id)
        return r

    def block_action(
        self,
        action_id: str,
        value: Any = None,
        user_id: str | None = None,
        channel_id: str | None = None,
        message_ts: str | None = None,
        view: dict[str, Any] | str | None = None,
        block_id: str | None = None,
        selected_option: dict[str, Any] | None = None,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        state_values: dict[str, Any] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        """A click (or choice) on element `action_id` in a message (`message_ts`, else the
        channel's newest message from the bot that has it) or in a modal (`view`: a view id or
        view object). When the fake has that message or view, the element (and a button's
        `value`) must really be in it; `message_ts` must name a message the fake holds."""
        user_id, channel_id = user_id or self.user_id, channel_id or self.channel_id
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": _user(user_id, self.fake),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        blocks: list[dict[str, Any]] | None = None
        if view is not None:
            view_obj = self._view_object(view)
            blocks = view_obj.get("blocks")
            view_obj["state"] = {"values": state_values or {}}
            payload["container"] = {"type": "view", "view_id": view_obj.get("id")}
            payload["view"] = view_obj
            payload["trigger_id"] = self._trigger(user_id, view_obj.get("id"))
            self.last_response_url = None
        else:
            message = self._message(channel_id, message_ts, action_id, block_id)
            if message is not None:
                blocks = message.get("blocks")
                message_ts = message["ts"]
            message_ts = message_ts or f"{time.time():.6f}"
            is_ephemeral = bool(message and message.pop("_ephemeral", False))
            payload["container"] = {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": is_ephemeral,
            }
            payload["channel"] = {"id": channel_id, "name": "ops"}
            if message is not None and not is_ephemeral:
                payload["message"] = message
            payload["state"] = {"values": state_values or {}}
            payload["trigger_id"] = self._trigger(user_id)
            payload["response_url"] = self._response_url(channel_id, user_id, message_ts)
        element: dict[str, Any] | None = None
        if blocks is not None:
            element, block_id = self._element(blocks, action_id, block_id, value)
        payload["actions"] = [_action(element, action_id, block_id or "blk", value, selected_option)]
        payload.update(extra)
        r = self._interaction(payload, timestamp=timestamp, signature=signature)
        self._ack("block_actions", r, user_id=user_id, channel_id=channel_id)
        return r

    def view_submission(
        self,
        callback_id: str,
        values: dict[str, Any],
        private_metadata: str | None = None,
        user_id: str | None = None,
        view_id: str | None = None,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        """The user presses Submit on the modal `view_id` (default: their newest open modal
        with `callback_id`). `values` is {block_id: {action_id: value}}; a value may be the
        full state entry or a shorthand (a string, an option value, a list of values, a user
        id) converted after the element's type. `private_metadata` defaults to the view's.
        Without such a modal in the fake, a view is made up and `values` sent as given."""
        user_id = user_id or self.user_id
        view_obj = self._modal(callback_id, user_id, view_id)
        if view_obj.get("callback_id") != callback_id:
            raise LookupError(f"view {view_obj.get('id')} has callback_id {view_obj.get('callback_id')!r}")
        if private_metadata is not None:
            view_obj["private_metadata"] = private_metadata
        view_obj["state"] = {"values": view_state(view_obj, values)}
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": _user(user_id, self.fake),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self._trigger(user_id, view_obj["id"]),
            "view": view_obj,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        payload.update(extra)
        r = self._interaction(payload, timestamp=timestamp, signature=signature)
        self._ack("view_submission", r, user_id=user_id, view_id=view_obj["id"])
        return r

    def block_suggestion(
        self,
        action_id: str,
        value: str,
        user_id: str | None = None,
        view_id: str | None = None,
        block_id: str | None = None,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        """The user types `value` into the external_select `action_id` of a modal (default:
        their newest open modal that has it); the bot answers with options."""
        user_id = user_id or self.user_id
        view_obj: dict[str, Any] | None = None
        if self.fake is not None:
            candidates = [self.fake.views[view_id]] if view_id else reversed(self.fake.open_views(user_id))
            for rec in candidates:
                found = find_element(rec.view.get("blocks"), action_id, block_id)
                if found is not None:
                    view_obj, block_id = rec.as_slack(), found[0].get("block_id")
                    break
        view_obj = view_obj or {"id": view_id or "V0SYNTH", "type": "modal", "blocks": [], "state": {"values": {}}}
        payload: dict[str, Any] = {
            "type": "block_suggestion",
            "user": _user(user_id, self.fake),
            "container": {"type": "view", "view_id": view_obj["id"]},
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "action_id": action_id,
            "block_id": block_id or "blk",
            "value": value,
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "view": view_obj,
            "enterprise": None,
            "is_enterprise_install": False,
        }
        payload.update(extra)
        r = self._interaction(payload, timestamp=timestamp, signature=signature)
        self._ack("block_suggestion", r, user_id=user_id, view_id=view_obj["id"])
        return r

    def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> httpx.Response:
        """An Events API delivery of `event` (e.g. {"type": "app_home_opened", "user": ...}).
        Pass the same `event_id` with `retry_num` to replay a delivery as Slack's retries do."""
        envelope = event_envelope(event, event_id=event_id)
        self.last_payload = envelope
        r = self.post(
            json.dumps(envelope).encode(),
            "application/json",
            timestamp=timestamp,
            signature=signature,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )
        self._ack("events", r)
        return r

    def url_verification(
        self, challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    ) -> httpx.Response:
        """The check Slack makes when the request URL is saved."""
        body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
        return self.post(json.dumps(body).encode(), "application/json")

    # -- lookups in the fake -------------------------------------------------------------------

    def _view_object(self, view: dict[str, Any] | str) -> dict[str, Any]:
        if isinstance(view, str):
            if self.fake is None or view not in self.fake.views:
                raise LookupError(f"unknown view {view!r}")
            return self.fake.views[view].as_slack()
        if self.fake is not None and view.get("id") in self.fake.views:
            return self.fake.views[view["id"]].as_slack()
        return dict(view)

    def _modal(self, callback_id: str, user_id: str, view_id: str | None) -> dict[str, Any]:
        if self.fake is None:
            return {
                "id": view_id or "V0SYNTH",
                "type": "modal",
                "callback_id": callback_id,
                "blocks": [],
                "private_metadata": "",
                "hash": "1.0",
                "root_view_id": view_id or "V0SYNTH",
            }
        if view_id is not None:
            rec = self.fake.views.get(view_id)
            if rec is None or not rec.open:
                raise LookupError(f"view {view_id!r} is not open")
            return rec.as_slack()
        for rec in reversed(self.fake.open_views(user_id)):
            if rec.view.get("callback_id") == callback_id:
                return rec.as_slack()
        # No such modal was opened through the fake: make one up (its state is taken as given).
        return {
            "id": "V0SYNTH",
            "type": "modal",
            "callback_id": callback_id,
            "blocks": [],
            "private_metadata": "",
            "hash": "1.0",
            "root_view_id": "V0SYNTH",
        }

    def _message(
        self, channel_id: str, message_ts: str | None, action_id: str, block_id: str | None
    ) -> dict[str, Any] | None:
        """The message (as Slack puts it in a payload) the click happens in, from the fake."""
        if self.fake is None:
            return None
        if message_ts is not None:
            msg = self.fake.find_message(channel_id, message_ts)
            if msg is None:
                raise LookupError(f"no message {message_ts} in {channel_id}")
        else:
            candidates = [
                m
                for m in self.fake.all_messages()
                if m.channel == channel_id and not m.deleted and find_element(m.blocks, action_id, block_id) is not None
            ]
            if not candidates:
                return None  # the fake never saw such a message: the payload is made up
            msg = candidates[-1]
        out: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "ts": msg.ts,
            "text": msg.text or "",
            "blocks": msg.blocks or [],
            "team": TEAM_ID,
        }
        if msg.ephemeral:
            out["_ephemeral"] = True
        return out

    @staticmethod
    def _element(
        blocks: list[dict[str, Any]], action_id: str, block_id: str | None, value: Any
    ) -> tuple[dict[str, Any], str]:
        """The element to act on: by action_id (and block_id), a button also by its value."""
        matches: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for block in blocks:
            found = find_element([block], action_id, block_id)
            if found is not None:
                matches.append(found)
        if not matches:
            raise LookupError(f"no element with action_id {action_id!r} there")
        if value is not None:
            exact = [m for m in matches if m[1].get("type") != "button" or m[1].get("value") == value]
            if not exact:
                raise LookupError(f"no {action_id!r} button with value {value!r}")
            matches = exact
        block, element = matches[0]
        return element, block.get("block_id") or "blk"


def event_envelope(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The Events API `event_callback` envelope around `event` (also the Socket Mode payload)."""
    now = int(time.time())
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": {"event_ts": f"{time.time():.6f}", **event},
        "type": "event_callback",
        "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_hex(12),
    }
