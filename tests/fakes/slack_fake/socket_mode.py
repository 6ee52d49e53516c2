"""Socket Mode as Slack serves it: apps.connections.open hands out a one-use WebSocket URL,
the fake greets each connection with `hello`, sends envelopes (`socket_send`) and applies
the client's acknowledgement as it applies an HTTP answer."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from tests.fakes.slack_fake.records import APP_ID, Call, SocketEnvelope

# Refused handshakes (a reused Socket Mode URL) are expected in tests; keep them out of the log.
SOCKET_LOG = logging.getLogger("tests.fakes.slack_fake.socket")
SOCKET_LOG.setLevel(logging.CRITICAL)


class SocketMode:
    """FakeSlack's Socket Mode side: its connections, tickets and envelopes."""

    _lock: threading.RLock
    _changed: threading.Condition
    _connections: list[ServerConnection]
    _tickets: set[str]
    envelopes: list[SocketEnvelope]
    socket_messages: list[dict[str, Any]]
    ws_port: int

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

    def _apps_connections_open(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.ws_port}/link/?ticket={ticket}&app_id={APP_ID}"}
