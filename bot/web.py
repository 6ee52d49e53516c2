"""The web process's HTTP side: the paths it answers on PORT, and gunicorn serving them.

gunicorn serves in both modes: HTTP mode with WEB_WORKERS worker processes, Socket Mode
with one (which also holds the socket). Each worker builds its own runtime after the fork.

Two ports. PORT is public (Slack, the credential form): it answers `/healthz` with only
"ok" or "not ok", `/slack/events` with bodies up to 1 MiB, and `/metrics` only to a bearer
of METRICS_TOKEN. METRICS_PORT (on METRICS_HOST, loopback by default) is the operator's:
`/metrics` and a `/healthz` that says which store failed, and nothing else.

To answer a new path, add it to `routes`.
"""

from __future__ import annotations

import gc
import hmac
import io
import json
import logging
import os
import threading
import time
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
MAX_EVENT_BODY = 2**20  # Slack's requests are far smaller; a bigger body is refused unread (413)
HEALTH_CACHE_SECONDS = 2.0  # /healthz asks the stores at most this often per process, however often it is asked
StartResponse = Callable[..., object]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


log = logging.getLogger(__name__)


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


class CachedHealth:
    """`health`, asked of the stores at most once every HEALTH_CACHE_SECONDS in this process:
    however often anyone asks /healthz, PostgreSQL and Redis see one check. While a check is
    under way, every other asker gets the last answer at once ("not ok" before the first, and
    once the check has waited longer than the answer's life: a store that does not answer is
    not ok): a store that stalls holds the one thread that checks, never a thread per asker
    (they are Slack's threads too). A failing store is logged once per check."""

    def __init__(self, rt: Runtime, seconds: float = HEALTH_CACHE_SECONDS) -> None:
        self.rt = rt
        self.seconds = seconds
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._checking_since = float("inf")
        self._answer: tuple[int, dict] = (503, {"database": "not checked yet", "redis": "not checked yet"})

    def __call__(self) -> tuple[int, dict]:
        if not self._lock.acquire(blocking=False):
            waited = time.monotonic() - self._checking_since
            if waited > self.seconds:
                return 503, {"stores": f"no answer to the check for {waited:.0f} s"}
            return self._answer
        try:
            if time.monotonic() - self._at >= self.seconds:
                self._checking_since = time.monotonic()
                try:
                    self._answer = health(self.rt)
                finally:
                    self._checking_since = float("inf")
                self._at = time.monotonic()
                if self._answer[0] != 200:
                    failing = [store for store, state in self._answer[1].items() if state != "ok"]
                    log.warning("/healthz: not ok (%s unreachable)", ", ".join(failing))
            return self._answer
        finally:
            self._lock.release()


def _answer(start_response: StartResponse, status: str, payload: bytes, content_type: str,
            extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload))),
                            ("Cache-Control", "no-store"), *(extra or [])])
    return [payload]


def health_app(check: Callable[[], tuple[int, dict]], *, detail: bool) -> WSGIApp:
    """GET /healthz: 200 when PostgreSQL and Redis answer, else 503. On the public port it
    says only "ok" or "not ok" (`detail` False); on the metrics port, which store failed."""

    def answer(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return not_found(environ, start_response)
        status, body = check()
        line = f"{status} {'OK' if status == 200 else 'Service Unavailable'}"
        if detail:
            return _answer(start_response, line, json.dumps(body).encode(), "application/json")
        return _answer(start_response, line, b"ok\n" if status == 200 else b"not ok\n", "text/plain; charset=utf-8")

    return answer


def metrics_app(rt: Runtime) -> WSGIApp:
    """GET /metrics: Prometheus' text format, every process's counts and the stores' states
    (purelyops.metrics)."""
    return prometheus_wsgi_app(Scrape(rt.database_url, rt.redis))  # type: ignore[arg-type]


def bearer_only(token: str, answer: WSGIApp) -> WSGIApp:
    """`answer`, for a request that carries `Authorization: Bearer <token>` (compared in
    constant time); 401 for any other. Without a token configured, 404: not there at all."""
    expected = f"Bearer {token}".encode()

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if not token:
            return not_found(environ, start_response)
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            return _answer(start_response, "401 Unauthorized", b"Unauthorized\n", "text/plain; charset=utf-8",
                           [("WWW-Authenticate", 'Bearer realm="metrics"')])
        return answer(environ, start_response)

    return wsgi


def size_limited(answer: WSGIApp, limit: int = MAX_EVENT_BODY) -> WSGIApp:
    """`answer` with a body of at most `limit` bytes, read here first: a bigger one is 413
    before anything reads it, by its Content-Length or, sent chunked or without one, by
    reading at most `limit` + 1 bytes. What it reads it hands on as the whole body. A
    Content-Length of anything but ASCII digits ("+5", "-1", "²") is 400: Python's isdigit
    and int take other scripts' digits, and a WSGI server may hand any header on."""

    def too_large(start_response: StartResponse) -> Iterable[bytes]:
        return _answer(start_response, "413 Content Too Large", b"Request body too large\n",
                       "text/plain; charset=utf-8")

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                return _answer(start_response, "400 Bad Request", b"Bad Content-Length\n", "text/plain; charset=utf-8")
            if int(declared) > limit:
                return too_large(start_response)
            wanted = int(declared)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            wanted = limit + 1
        else:
            wanted = 0  # no length and not chunked: no body (a server would wait forever for one)
        body = b""
        while stream is not None and len(body) < wanted:
            chunk = stream.read(min(wanted - len(body), 65536))
            if not chunk:
                break
            body += chunk
        if len(body) > limit:
            return too_large(start_response)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return answer(environ, start_response)

    return wsgi


def not_found(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not found"]


def routes(rt: Runtime, app: App | None, check: Callable[[], tuple[int, dict]] | None = None,
           scrape: WSGIApp | None = None) -> dict[str, WSGIApp]:
    """Every path the web process answers on its public PORT, in both modes, and the WSGI
    app that answers it. A path that ends in "/" answers every path under it too
    (`"/gather/"` answers `/gather/<token>`). Slack's request URL is there only in HTTP
    mode, when `app` is given."""
    table = {HEALTH_PATH: health_app(check or CachedHealth(rt), detail=False),
             METRICS_PATH: bearer_only(rt.settings.metrics_token, scrape or metrics_app(rt)),
             GATHER_PREFIX: GatherPage(rt)}  # the credential form, in both modes
    if app is not None:
        table[EVENTS_PATH] = size_limited(acks_first(SlackRequestHandler(app)))
    return table


def metrics_routes(rt: Runtime, check: Callable[[], tuple[int, dict]] | None = None,
                   scrape: WSGIApp | None = None) -> dict[str, WSGIApp]:
    """What METRICS_PORT answers: the metrics, and the health of each store."""
    return {METRICS_PATH: scrape or metrics_app(rt), HEALTH_PATH: health_app(check or CachedHealth(rt), detail=True)}


def acks_first(answer: WSGIApp) -> WSGIApp:
    """Slack's requests, counted while they are answered: work after the ack waits for them
    (bot.work)."""

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        with answering():
            return answer(environ, start_response)

    return wsgi


def make_wsgi_app(rt: Runtime, app: App | None, metrics_port: int | None = None) -> WSGIApp:
    """The web process's app: the public routes, and on `metrics_port` (default
    METRICS_PORT) the metrics routes instead."""
    check, scrape = CachedHealth(rt), metrics_app(rt)
    public = dispatch(routes(rt, app, check, scrape))
    port = rt.settings.metrics_port if metrics_port is None else metrics_port
    if port is None:
        return public
    private = dispatch(metrics_routes(rt, check, scrape))

    def wsgi(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        return (private if local_port(environ) == port else public)(environ, start_response)

    return wsgi


def local_port(environ: dict) -> int | None:
    """The port of ours the request came in on: from the connection itself under gunicorn
    (never from a header), else the server's own port (the standard library's server)."""
    sock = environ.get("gunicorn.socket")
    try:
        return int(sock.getsockname()[1]) if sock is not None else int(environ.get("SERVER_PORT") or 0)
    except (OSError, ValueError, TypeError, IndexError):
        return None


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
            binds = [f"{host}:{settings.port}"]
            if settings.metrics_port is not None:  # answered by make_wsgi_app's metrics routes
                binds.append(_bind(settings.metrics_host, settings.metrics_port))
            for key, value in {"bind": binds, "workers": workers, "worker_class": "gthread",
                               # 16 threads for Slack, and the credential form's own few on top
                               # (it never takes more: bot.gather_page), so a flooded form leaves Slack's.
                               "threads": 16 + GATHER_THREADS,
                               "timeout": 30, "graceful_timeout": 10, "loglevel": "warning",
                               "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            try:
                answer = worker(Runtime(settings))
            except StartupRefused as refused:
                # gunicorn prints this without a traceback and stops, instead of forking again.
                raise AppImportError(str(refused)) from None
            # Everything loaded so far (Bolt, SQLAlchemy, the listeners: most of the heap) lives
            # as long as the process: the collector leaves it out of every pass from now on, so
            # that a full collection in the middle of a burst of acks takes milliseconds, not
            # a tenth of a second.
            gc.freeze()
            return answer

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


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
