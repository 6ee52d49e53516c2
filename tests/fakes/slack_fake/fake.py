"""FakeSlack itself: its state, its life cycle, what a test sets up and reads back, and how the
bot's answers to Slack's requests (acknowledgements) are applied. The Web API methods,
Socket Mode and rate limits are its parts in the modules next to this one."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from websockets.sync.server import Server, ServerConnection, serve

from tests.fakes.http_server import LoopbackHTTPServer
from tests.fakes.slack_fake.block_kit import BlockKitChecker, check_view
from tests.fakes.slack_fake.http_handler import _Handler
from tests.fakes.slack_fake.rate_limits import RateLimits
from tests.fakes.slack_fake.records import (
    ACK_DEADLINE,
    RESPONSE_URL_TTL,
    TEAM_ID,
    TRIGGER_TTL,
    VIEW_STACK_LIMIT,
    Ack,
    Call,
    LiveMarkup,
    Message,
    ResponseUrl,
    SlackError,
    SocketEnvelope,
    Trigger,
    UploadedFile,
    ViewRecord,
)
from tests.fakes.slack_fake.socket_mode import SOCKET_LOG, SocketMode
from tests.fakes.slack_fake.web_api import WebApi


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


class FakeSlack(WebApi, SocketMode, RateLimits):
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
            # Markup in the bot's text that Slack acts on: who it would notify, where it would link.
            self.live_markup: list[LiveMarkup] = []
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
