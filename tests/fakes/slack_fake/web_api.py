"""The Web API methods the bot uses, answered as Slack answers them: chat.*, views.*, the
two-step file upload, users.info, usergroups.users.list, auth.test, and response URLs."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from tests.fakes.slack_fake.block_kit import check_message_blocks, check_view
from tests.fakes.slack_fake.records import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    LIVE_MARKUP,
    MESSAGE_TEXT_LIMIT,
    RESPONSE_URL_POSTS,
    RESPONSE_URL_TTL,
    TEAM_DOMAIN,
    TEAM_ID,
    USER_ID,
    VIEW_STACK_LIMIT,
    Call,
    LiveMarkup,
    Message,
    ResponseUrl,
    SlackError,
    Trigger,
    UploadedFile,
    ViewRecord,
)

APP_TOKEN_METHODS = {"apps.connections.open"}

# The Web API methods the fake knows, and the FakeSlack method that answers each.
METHODS: dict[str, str] = {
    "chat.postMessage": "_chat_post_message",
    "chat.postEphemeral": "_chat_post_ephemeral",
    "chat.update": "_chat_update",
    "views.open": "_views_open",
    "views.push": "_views_push",
    "views.update": "_views_update",
    "views.publish": "_views_publish",
    "files.getUploadURLExternal": "_files_get_upload_url",
    "files.completeUploadExternal": "_files_complete_upload",
    "users.info": "_users_info",
    "usergroups.users.list": "_usergroups_users_list",
    "auth.test": "_auth_test",
    "apps.connections.open": "_apps_connections_open",
}


class WebApi:
    """FakeSlack's Web API side: one method per Slack method, over FakeSlack's state."""

    _lock: threading.RLock
    _changed: threading.Condition
    calls: list[Call]
    views: dict[str, ViewRecord]
    home_views: dict[str, ViewRecord]
    users: dict[str, dict[str, Any]]
    usergroups: dict[str, list[str]]
    channels: set[str] | None
    not_member_of: set[str]
    uploaded_files: list[UploadedFile]
    live_markup: list[LiveMarkup]
    trigger_ttl: float
    bot_token: str
    app_token: str
    _triggers: dict[str, Trigger]
    _response_urls: dict[str, ResponseUrl]
    _uploads: dict[str, UploadedFile]

    def handle_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str], Call]:
        """Run one Web API call; returns (status, body, extra headers, recorded call)."""
        now = time.time()
        headers: dict[str, str] = {}
        with self._changed:
            call = Call(method, args, ok=False, error=None, status=200, at=now)
            try:
                name = METHODS.get(method)
                if name is None:
                    raise SlackError("unknown_method")
                self._authenticate(method, token)
                retry_after = self._rate_check(method, args)
                if retry_after is not None:
                    call.status, call.retry_after = 429, retry_after
                    headers["Retry-After"] = str(retry_after)
                    raise SlackError("ratelimited")
                body = getattr(self, name)(args, call)
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
        self._notice_live_markup(method, "text", text)
        for mrkdwn in _mrkdwn_texts(blocks):
            self._notice_live_markup(method, "blocks", mrkdwn)
        if text and len(text) > MESSAGE_TEXT_LIMIT:
            if method in ("chat.update", "chat.postEphemeral"):
                raise SlackError("msg_too_long")
            text = text[:MESSAGE_TEXT_LIMIT]
            warnings.append("message_truncated")  # guess: Slack truncates silently
        return text, blocks, warnings

    def _notice_live_markup(self, method: str, where: str, text: str | None) -> None:
        """Slack accepts it and acts on it (a notification to the channel, a link that says
        what it likes): the fake records it, for tests to assert that none came."""
        for found in LIVE_MARKUP.finditer(text or ""):
            self.live_markup.append(LiveMarkup(method, where, found.group(0)))

    def _check_channel(self, args: dict[str, Any], key: str = "channel") -> str:
        channel = args.get(key)
        if not isinstance(channel, str) or not CHANNEL_ID.match(channel):
            raise SlackError("channel_not_found")
        if self.channels is not None and channel not in self.channels and channel[0] not in "UWD":
            raise SlackError("channel_not_found")
        if channel in self.not_member_of:
            raise SlackError("not_in_channel")
        return channel

    # chat.* ------------------------------------------------------------------------------

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

    # views.* -----------------------------------------------------------------------------

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

    # files -------------------------------------------------------------------------------

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
            self._notice_live_markup(call.method, "initial_comment", rec.initial_comment)
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

    # users, groups, auth -----------------------------------------------------------------

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

    # response URLs -----------------------------------------------------------------------

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


def _mrkdwn_texts(node: Any) -> list[str]:
    """Every mrkdwn text object's text in blocks (sections, fields, context, confirm dialogs)."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            found.append(node["text"])
        for value in node.values():
            found += _mrkdwn_texts(value)
    elif isinstance(node, list):
        for item in node:
            found += _mrkdwn_texts(item)
    return found
