"""The HTTP side of the bot: Slack's request URL and the health check, served by waitress."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.gather_page import PREFIX as GATHER_PREFIX
from bot.gather_page import GatherPage
from db.session import database_reachable
from purelyops.runtime import Runtime

EVENTS_PATH = "/slack/events"
StartResponse = Callable[..., object]


def health(rt: Runtime) -> tuple[int, dict]:
    """Whether this process can reach PostgreSQL and Redis."""
    database = database_reachable(rt.database_url)
    try:
        cache = bool(rt.redis.ping())
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        cache = False
    body = {"database": "ok" if database else "unreachable", "redis": "ok" if cache else "unreachable"}
    return (200 if database and cache else 503), body


def make_wsgi_app(rt: Runtime, app: App | None) -> Callable:
    """/slack/events goes to Bolt (when `app` is given, i.e. in HTTP mode); /healthz answers here."""
    slack_handler = SlackRequestHandler(app) if app is not None else None
    gather_page = GatherPage(rt)  # credential links' public form, in HTTP and Socket Mode alike

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            status, body = health(rt)
            payload = json.dumps(body).encode()
            start_response(
                f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if path == EVENTS_PATH and slack_handler is not None:
            return slack_handler(environ, start_response)
        if path.startswith(GATHER_PREFIX):
            return gather_page(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found"]

    return wsgi


def serve_workers(rt: Runtime, build: Callable[[Runtime], App], host: str = "0.0.0.0") -> None:
    """HTTP mode with WEB_WORKERS processes (gunicorn), so that bursts of Slack requests
    are acked on every core. Each process builds its own runtime and app after the fork."""
    from gunicorn.app.base import BaseApplication

    settings = rt.settings

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{settings.port}", "workers": settings.web_workers,
                               "worker_class": "gthread", "threads": 16, "timeout": 30, "graceful_timeout": 10,
                               "loglevel": "warning", "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self) -> Callable:
            worker_rt = Runtime(settings)
            return make_wsgi_app(worker_rt, build(worker_rt))

    Server().run()


def serve(rt: Runtime, app: App | None, host: str = "0.0.0.0") -> None:
    from waitress import serve as waitress_serve

    waitress_serve(make_wsgi_app(rt, app), host=host, port=rt.settings.port, threads=16, ident="purelyops")
