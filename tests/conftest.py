"""Shared fixtures: real PostgreSQL and Redis, faithful fakes of Slack and PurelyMail, and
the bot itself serving HTTP on loopback, driven by signed Slack requests."""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

# Metrics in prometheus_client's multiprocess mode, as scripts/run has them, in a directory of
# this run's own: chosen before purelyops.metrics is imported (below), and handed to the
# processes the tests start, so that /metrics adds up what a worker process counted.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="purelyops-metrics-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import httpx
import psycopg
import pytest
import redis

from bot.app import build_app
from bot.web import make_wsgi_app
from db.schema import upgrade
from purelyops.dnscheck import DnsLookupError, lookup_txt
from purelyops.runtime import Runtime
from purelyops.settings import Settings, load_settings
from tests.fakes.dns_server import FakeDNS
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

if TYPE_CHECKING:
    from tests.imap_servers import Dovecot

ROOT = Path(__file__).resolve().parent.parent
# The imapsync stand-in: replays the real imapsync logs in tests/fixtures/imapsync.
STANDIN = str(ROOT / "tests" / "bin" / "fake-imapsync")
PG_ADMIN = os.environ.get("PURELYOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("PURELYOPS_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
REDIS_DBS = range(1, 12)  # 12 is the benchmarks', 15 the client tests'

BOT_TOKEN = "xoxb-1111-2222-purelyopstest"
APP_TOKEN = "xapp-1-A111-2222-purelyopstest"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PM_TOKEN = "pm-test-token-5bd1e0"
ADMIN = "U0ADMIN01"
ALERTS = "C0ALERTS1"
OPS = "C0OPS0001"
CREDENTIALS_KEY = "k1:" + base64.b64encode(bytes(range(32))).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this test session, migrated to head, dropped afterwards."""
    name = f"purelyops_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    from db.session import get_engine

    get_engine(url).dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database of our own: test runs side by side never share queues or keys."""
    claims = redis.Redis.from_url(f"{REDIS_BASE}/0")
    for db in REDIS_DBS:
        key = f"purelyops:test-claim:{db}"
        if claims.set(key, os.getpid(), nx=True, ex=3600):
            url = f"{REDIS_BASE}/{db}"
            redis.Redis.from_url(url).flushdb()
            yield url
            claims.delete(key)
            return
    pytest.exit("every Redis test database is in use by other test runs", returncode=3)


@pytest.fixture(scope="session")
def slack_fake() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def purelymail_fake() -> Iterator[FakePurelyMail]:
    fake = FakePurelyMail(token=PM_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def clean_state(database_url: str, redis_url: str, slack_fake: FakeSlack,
                purelymail_fake: FakePurelyMail) -> Iterator[None]:
    """Every test starts with empty tables, an empty Redis database and fresh fakes. After it,
    nothing the bot sent Slack held markup that Slack would notify or link from (a
    `<!channel>`, a `<https://…|…>` in a text or a block): every value was escaped."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"
        )]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    redis.Redis.from_url(redis_url).flushdb()
    slack_fake.reset()
    purelymail_fake.reset()
    yield
    assert slack_fake.live_markup == [], "unescaped Slack markup reached Slack"


def make_settings(database_url: str, redis_url: str, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
                  **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack_fake.api_url,
        purelymail_api_token=PM_TOKEN,
        purelymail_api_url=purelymail_fake.url,
        purelymail_rate=50,
        purelymail_burst=50,
        database_url=database_url,
        redis_url=redis_url,
        credentials_key=CREDENTIALS_KEY,
        admin_user_ids=ADMIN,
        alert_channel=ALERTS,
        # Tests never reach PurelyMail's real IMAP server: nothing listens here on 993.
        purelymail_imap_host="127.0.0.1",
        # The tests' IMAP servers (Dovecot) listen on loopback; tests of the refusal pass [].
        source_hosts_allow=["127.0.0.0/8", "::1"],
    )
    values.update(overrides)
    return load_settings(**values)  # type: ignore[return-value]


@pytest.fixture
def settings(clean_state: None, database_url: str, redis_url: str, slack_fake: FakeSlack,
             purelymail_fake: FakePurelyMail) -> Settings:
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake)


# What the stand-in's logs (fixture 01) say was copied: the servers of its tests hold it, on both sides.
STANDIN_FOLDERS = {"Archive/2024": 100, "INBOX": 100, "Projects/Acme": 100, "Sent": 100, "Trash": 100}


@pytest.fixture
def standin_imap() -> Iterator[tuple]:
    """Two Dovecots for the stand-in's tests: every login works, every address sees one
    mailbox, and both hold the same 500 messages in fixture 01's folders, so that the check
    after a run (purelyops.mail_check) finds what the replayed log says was copied."""
    from tests import imap_servers, migration_steps

    if not os.path.exists(imap_servers.DOVECOT):
        pytest.skip("dovecot is not installed (the README test command installs dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="purelyops-standin-"))
    root.chmod(0o755)
    servers = []
    for side in ("source", "dest"):
        server = imap_servers.Dovecot(root / side, {}, any_login=True)
        (root / side / "mail").mkdir(parents=True)
        os.chown(root / side / "mail", server.uid, server.gid)
        imap_servers.seed_maildir(server.mail_dir, STANDIN_FOLDERS, server.uid, server.gid)
        servers.append(server.start())
    migration_steps.SOURCE_PORT = servers[0].port
    yield tuple(servers)
    for server in servers:
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def standin_settings(clean_state: None, database_url: str, redis_url: str, slack_fake: FakeSlack,
                     purelymail_fake: FakePurelyMail, standin_imap) -> Settings:
    """Settings for migration tests: the imapsync stand-in, quick progress and kill grace,
    and real IMAP servers holding what its logs say was copied (standin_imap): the source
    server of migration_steps.add_server, and PurelyMail's stand-in.
    A module uses them with `def settings(standin_settings)`."""
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=STANDIN,
                         migration_progress_interval=0.3, migration_kill_grace=1.0,
                         purelymail_imap_port=standin_imap[1].port, purelymail_imap_tls=False)


@pytest.fixture
def dns(purelymail_fake: FakePurelyMail) -> Iterator[FakeDNS]:
    """A DNS server the bot asks, which PurelyMail's addDomain consults too: it accepts a
    domain only when its ownership TXT is really visible there."""
    server = FakeDNS().start()

    def visible(domain: str, code: str) -> bool:
        try:
            return code in lookup_txt(domain, server.spec, 2.0)
        except DnsLookupError:
            return False

    purelymail_fake.ownership_verifier = visible
    yield server
    server.stop()
    assert server.errors == []


@pytest.fixture
def dns_settings(clean_state: None, database_url: str, redis_url: str, slack_fake: FakeSlack,
                 purelymail_fake: FakePurelyMail, dns: FakeDNS) -> Settings:
    """Settings whose DNS_RESOLVER is the `dns` fake. A module uses them with `def settings(dns_settings)`."""
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, dns_resolver=dns.spec)


@pytest.fixture
def slack_accepts_everything(slack_fake: FakeSlack) -> Iterator[None]:
    """After the test, Slack refused none of the bot's calls. A module whose tests never
    expect a refusal uses it with `pytestmark = pytest.mark.usefixtures("slack_accepts_everything")`."""
    yield
    assert [(c.method, c.error, c.errors) for c in slack_fake.rejected] == []


@pytest.fixture
def dovecot_pair() -> Iterator[tuple[Dovecot, Dovecot]]:
    """Two real Dovecot IMAP servers on loopback: the old host (alice@old.example) and
    PurelyMail's stand-in (alice@new.example)."""
    from tests import imap_servers  # not at the top: it imports free_port from here

    if not os.path.exists(imap_servers.DOVECOT):
        pytest.skip("dovecot is not installed (the README test command installs dovecot-imapd)")
    # Dovecot's own processes run as unprivileged users: they need a directory they can enter.
    root = Path(tempfile.mkdtemp(prefix="purelyops-dovecot-"))
    root.chmod(0o755)
    source = imap_servers.Dovecot(root / "source", {"alice@old.example": "source-pw-1"}).start()
    dest = imap_servers.Dovecot(root / "dest", {"alice@new.example": "dest-pw-2"}).start()
    yield source, dest
    source.stop()
    dest.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot_tls():
    """A Dovecot with implicit TLS on `.tls_port` and STARTTLS on `.port`, its certificate
    issued by a private CA whose PEM is `.tls.ca_file` (tests/imap_servers.py)."""
    from tests import imap_servers

    yield from imap_servers.run_dovecot_tls()


@pytest.fixture(params=["tls", "starttls"])
def imap_tls(request: pytest.FixtureRequest, dovecot_tls):
    """The TLS Dovecot, once over implicit TLS and once over STARTTLS."""
    from tests import imap_servers

    return imap_servers.tls_endpoint(request.param, dovecot_tls)


def said(slack_fake: FakeSlack, words: str, method: str = "response_url"):
    """The first `method` call whose text or blocks contain `words` (waiting for it)."""
    return slack_fake.wait_for(method, lambda c: words in str(c.args.get("text", "")) + str(c.args.get("blocks", "")))


class BotServer:
    """The bot's WSGI app served on a loopback port by a thread of this process (the
    standard library's WSGI server, a thread per request), so that tests can reach into the
    bot's runtime. The web process itself runs it in gunicorn (tests/test_processes.py)."""

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        request_queue_size = 256  # a burst of concurrent requests is queued, not reset

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    def __init__(self, rt: Runtime, port: int = 0, *, metrics_port: bool = False) -> None:
        """With `metrics_port`, the app also answers on a second port, as on METRICS_PORT
        (its URL is `metrics_url`)."""
        self.rt = rt
        self.app = build_app(rt)
        self.servers = [self.Server(("127.0.0.1", port), self.QuietHandler)]
        if metrics_port:
            self.servers.append(self.Server(("127.0.0.1", 0), self.QuietHandler))
        self.server = self.servers[0]
        app = make_wsgi_app(rt, self.app, self.servers[1].server_port if metrics_port else None)
        for server in self.servers:
            server.set_app(app)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="bot-http").start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.metrics_url = f"http://127.0.0.1:{self.servers[-1].server_port}" if metrics_port else None

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a deployed process would have, built from the test settings."""
    env = {
        # The Procfile says `python`: it must be this virtualenv's, as in scripts/run.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": settings.slack_bot_token,
        "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
        "SLACK_API_URL": settings.slack_api_url,
        "PURELYMAIL_API_TOKEN": settings.purelymail_api_token,
        "PURELYMAIL_API_URL": settings.purelymail_api_url,
        "PURELYMAIL_RATE": str(settings.purelymail_rate),
        "PURELYMAIL_BURST": str(settings.purelymail_burst),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CREDENTIALS_KEY": settings.credentials_key,
        "ADMIN_USER_IDS": ",".join(settings.admin_user_ids),
        "ALERT_CHANNEL": settings.alert_channel,
        "DNS_RESOLVER": settings.dns_resolver,
        "SOURCE_HOSTS_ALLOW": ",".join(settings.source_hosts_allow),
        "IMAP_CA_FILE": settings.imap_ca_file,
        "PURELYMAIL_IMAP_HOST": settings.purelymail_imap_host,
        "PURELYMAIL_IMAP_PORT": str(settings.purelymail_imap_port),
        "PURELYMAIL_IMAP_TLS": str(settings.purelymail_imap_tls).lower(),
        "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"],
    }
    env.update(extra)
    return env


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_burst_worker(settings: Settings, timeout: float = 60) -> subprocess.CompletedProcess:
    """A real RQ worker process that works off the queues and stops."""
    return subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], env=process_env(settings),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """Start processes in their own process groups; stop them all afterwards."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(tmp_path / f"proc{len(started)}.log", "wb")
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def rt(settings: Settings) -> Runtime:
    return Runtime(settings)


@pytest.fixture
def bot(rt: Runtime) -> Iterator[BotServer]:
    server = BotServer(rt)
    yield server
    server.close()


@pytest.fixture
def slack(bot: BotServer, slack_fake: FakeSlack) -> SlackDriver:
    """Acts as Slack towards the bot: signed commands, clicks and submissions."""
    return SlackDriver(bot.url + "/slack/events", SIGNING_SECRET, slack_fake, user_id=ADMIN, channel_id=OPS)


def kill_session(sid: int) -> None:
    """SIGKILL every process of a session (RQ's work horse has a process group of its own)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                os.kill(int(entry), signal.SIGKILL)
