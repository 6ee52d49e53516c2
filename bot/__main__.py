"""`python -m bot`: the web process. Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT."""

from __future__ import annotations

import logging
import sys
import threading

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.app import build_app
from bot.web import serve, serve_workers
from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings

log = logging.getLogger("bot")


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    setup_logging(settings)
    # Many threads wait briefly for acks; switch between them often so that none waits
    # behind a busy one for the default 5 ms (this keeps Slack's acks fast under bursts).
    sys.setswitchinterval(0.0005)
    rt = Runtime(settings)
    try:
        app = build_app(rt)
    except (SlackApiError, SlackClientError) as error:
        print(f"purelyops cannot start: Slack did not accept SLACK_BOT_TOKEN ({_slack_reason(error)}).", file=sys.stderr)
        return 2
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        # /healthz stays available on PORT in Socket Mode; Slack's traffic arrives over the socket.
        threading.Thread(target=serve, args=(rt, None), daemon=True, name="healthz").start()
        log.info("Starting in Socket Mode")
        try:
            SocketModeHandler(app, settings.slack_app_token).start()
        except (SlackApiError, SlackClientError) as error:
            print(f"purelyops cannot start: Slack did not accept SLACK_APP_TOKEN ({_slack_reason(error)}).", file=sys.stderr)
            return 2
    else:
        log.info("Starting in HTTP mode on port %s at /slack/events", settings.port)
        if settings.web_workers > 1:
            serve_workers(rt, build_app)
        else:
            serve(rt, app)
    return 0


def _slack_reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if response is not None:
        return str(response.get("error", "unknown error"))
    return "Slack could not be reached"


if __name__ == "__main__":
    sys.exit(main())
