"""The fake's HTTP side: routes /api/<method>, /files-pri/…, /upload/v1/<token> and
/response/<id> to FakeSlack, reading arguments the way Slack reads them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from tests.fakes.slack_fake.fake import FakeSlack

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
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            status, data, ctype = self.fake.serve_user_file(parts.path[len("/files-pri/"):], token)
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
