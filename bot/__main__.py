"""`python -m bot`: the web process. Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT."""

from __future__ import annotations

import logging
import sys

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackClientError

from bot.app import build_app
from bot.web import STARTUP_REFUSED, StartupRefused, WSGIApp, make_wsgi_app, serve
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
    try:
        _app(Runtime(settings))  # SLACK_BOT_TOKEN is checked once, before any web worker starts
    except StartupRefused as refused:
        print(refused, file=sys.stderr)
        return STARTUP_REFUSED
    if settings.socket_mode:
        log.info("Starting in Socket Mode")
        return serve(settings, socket_mode_worker, workers=1)
    log.info("Starting in HTTP mode on port %s at /slack/events", settings.port)
    return serve(settings, http_worker, workers=settings.web_workers)


def http_worker(rt: Runtime) -> WSGIApp:
    """A web worker in HTTP mode: Slack's requests arrive at /slack/events."""
    return make_wsgi_app(rt, _app(rt))


def socket_mode_worker(rt: Runtime) -> WSGIApp:
    """The web worker in Socket Mode: Slack's requests arrive over the socket, which this
    worker holds; PORT answers /healthz and the other paths, but not /slack/events."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    app = _app(rt)
    try:
        SocketModeHandler(app, rt.settings.slack_app_token).connect()
    except SlackClientError as error:  # SlackApiError is one too
        raise _refused("SLACK_APP_TOKEN", error) from None
    return make_wsgi_app(rt, None)


def _app(rt: Runtime) -> App:
    try:
        return build_app(rt)
    except SlackClientError as error:  # SlackApiError is one too
        raise _refused("SLACK_BOT_TOKEN", error) from None
    except BoltError as error:
        # Bolt raises its own error when auth.test refuses the token, from within Slack's.
        if isinstance(error.__context__, SlackClientError):
            raise _refused("SLACK_BOT_TOKEN", error.__context__) from None
        raise


def _refused(variable: str, error: Exception) -> StartupRefused:
    return StartupRefused(f"purelyops cannot start: Slack did not accept {variable} ({_slack_reason(error)}).")


def _slack_reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if response is not None:
        return str(response.get("error", "unknown error"))
    return "Slack could not be reached"


if __name__ == "__main__":
    sys.exit(main())
