"""The web process's HTTP side: the paths it answers on PORT, and gunicorn serving them.

gunicorn serves in both modes: HTTP mode with WEB_WORKERS worker processes, Socket Mode
with one (which also holds the socket). Each worker builds its own runtime after the fork.

To answer a new path, add it to `routes`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import AppImportError
from prometheus_client import make_wsgi_app as prometheus_wsgi_app
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.gather_page import PREFIX as GATHER_PREFIX
from bot.gather_page import THREADS as GATHER_THREADS
from bot.gather_page import GatherPage
from bot.work import answering
from db.session import database_reachable
from purelyops.metrics import Scrape
from purelyops.runtime import Runtime
from purelyops.settings import Settings

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
STARTUP_REFUSED = 2  # the exit status of a web process that cannot start, as for bad settings
StartResponse = Callable[..., object]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


class StartupRefused(Exception):
    """A worker cannot start, and says why in words (e.g. Slack refused the app token)."""


def health(rt: Runtime) -> tuple[int, dict]:
    """Whether this process can reach PostgreSQL and Redis."""
    database = database_reachable(rt.database_url)
    try:
        cache = bool(rt.redis.ping())
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        cache = False
    body = {"database": "ok" if database else "unreachable", "redis": "ok" if cache else "unreachable"}
    return (200 if database and cache else 503), body


def health_app(rt: Runtime) -> WSGIApp:
    """GET /healthz: 200 when PostgreSQL and Redis answer, else 503, with which one failed."""

    def answer(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return not_found(environ, start_response)
        status, body = health(rt)
        payload = json.dumps(body).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    return answer


def metrics_app(rt: Runtime) -> WSGIApp:
    """GET /metrics: Prometheus' text format, every process's counts and the stores' states
    (purelyops.metrics)."""
    return prometheus_wsgi_app(Scrape(rt.database_url, rt.redis))  # type: ignore[arg-type]


def not_found(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not found"]


def routes(rt: Runtime, app: App | None) -> dict[str, WSGIApp]:
    """Every path the web process answers, in both modes, and the WSGI app that answers it.
    A path that ends in "/" answers every path under it too (`"/gather/"` answers
    `/gather/<token>`). Slack's request URL is there only in HTTP mode, when `app` is given."""
    table = {HEALTH_PATH: health_app(rt), METRICS_PATH: metrics_app(rt),
             GATHER_PREFIX: GatherPage(rt)}  # the credential form, in both modes
    if app is not None:
        table[EVENTS_PATH] = acks_first(SlackRequestHandler(app))
    return table


def acks_first(answer: WSGIApp) -> WSGIApp:
    """Slack's requests, counted while they are answered: work after the ack waits for them
    (bot.work)."""

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        with answering():
            return answer(environ, start_response)

    return wsgi


def make_wsgi_app(rt: Runtime, app: App | None) -> WSGIApp:
    return dispatch(routes(rt, app))


def dispatch(table: dict[str, WSGIApp]) -> WSGIApp:
    """One WSGI app that hands each request to the app of its path in `table` (a path
    ending in "/" takes the paths under it); any other path is 404."""
    prefixes = [(path, answer) for path, answer in table.items() if path.endswith("/")]

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        answer = table.get(path) or next((a for prefix, a in prefixes if path.startswith(prefix)), not_found)
        return answer(environ, start_response)

    return wsgi


def serve(settings: Settings, worker: Callable[[Runtime], WSGIApp], workers: int, host: str = "0.0.0.0") -> int:
    """Serve PORT with gunicorn until it is stopped: `workers` processes, each of which
    builds its own Runtime after the fork and calls `worker` with it for its WSGI app.
    Returns the exit status: STARTUP_REFUSED when a worker raised StartupRefused (its
    words are printed), else 0."""

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{settings.port}", "workers": workers, "worker_class": "gthread",
                               # 16 threads for Slack, and the credential form's own few on top
                               # (it never takes more: bot.gather_page), so a flooded form leaves Slack's.
                               "threads": 16 + GATHER_THREADS,
                               "timeout": 30, "graceful_timeout": 10, "loglevel": "warning",
                               "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            try:
                return worker(Runtime(settings))
            except StartupRefused as refused:
                # gunicorn prints this without a traceback and stops, instead of forking again.
                raise AppImportError(str(refused)) from None

    master = os.getpid()
    try:
        Server().run()
    except SystemExit as stop:
        # A worker's exit passes through here too (it was forked in there): only the master
        # turns gunicorn's "the app failed to load" into our status.
        if os.getpid() == master and stop.code == Arbiter.APP_LOAD_ERROR:
            return STARTUP_REFUSED
        raise
    return 0
