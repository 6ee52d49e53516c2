"""Numbers an operator can watch: Prometheus metrics, served at /metrics by the web process.

Two kinds:

- Events, counted where they happen (an ack, a PurelyMail call, a Slack 429 waited out,
  messages copied, a DNS check): the counters and histograms below.
- States, read from PostgreSQL and Redis when /metrics is scraped (`StateCollector`):
  migrations by state, queue depths, domains by DNS health, when each periodic job last
  succeeded. Read at scrape time, they are right whichever process changed them.

Several processes count events: gunicorn's web workers, the RQ worker and the work horse
it forks for each job, the scheduler. With PROMETHEUS_MULTIPROC_DIR set (scripts/run sets
it), each writes its counts to files there (prometheus_client's multiprocess mode) and
/metrics adds up every process of this machine, dead ones included, so a count made in a
work horse that has exited still shows. Work horses of one worker never run at once, so
they share one set of files (named after their worker) instead of leaving one per job.
Without it, /metrics shows the answering process's own counts only. A worker on another
machine serves its machine's counts on WORKER_METRICS_PORT (`serve_on_port`).

None of it is for the public: the web process serves /metrics on METRICS_PORT (loopback
by default) and, on its public port, only to a bearer of METRICS_TOKEN (bot.web).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from purelyops.job_states import STATES

log = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
_horse_of: int | None = None  # in an RQ work horse: the pid of the worker that forked it


def _process_identifier() -> str:
    """Whose files this process writes: its own, or (a work horse) its worker's horses'."""
    return f"horse{_horse_of}" if _horse_of is not None and os.getpid() != _horse_of else str(os.getpid())


def forked_as_work_horse() -> None:
    """Called in an RQ work horse right after the fork (workers.worker installs it)."""
    global _horse_of
    _horse_of = os.getppid()


if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    # Chosen before any metric below is made: every value lives in this process's files.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

# --- events -----------------------------------------------------------------------------

ACK_SECONDS = Histogram(
    "purelyops_slack_ack_seconds", "Time from a Slack request's arrival in Bolt to its ack, by kind of request",
    ["kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0))
COMMANDS = Counter("purelyops_commands_total", "Slash commands run, by subcommand", ["subcommand"])
PURELYMAIL_SECONDS = Histogram(
    "purelyops_purelymail_request_seconds", "PurelyMail API requests (each attempt), by operation",
    ["operation"], buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
PURELYMAIL_ERRORS = Counter(
    "purelyops_purelymail_errors_total", "PurelyMail API requests that failed, by operation and kind of failure",
    ["operation", "error"])
SLACK_RATE_LIMITED = Counter(
    "purelyops_slack_rate_limited_total", "Slack Web API answers 429 that were waited out and retried, by method",
    ["method"])
SLACK_RATE_LIMIT_WAIT = Counter(
    "purelyops_slack_rate_limit_wait_seconds_total", "Seconds waited for Slack's Retry-After", ["method"])
MESSAGES_COPIED = Counter("purelyops_migration_messages_copied_total", "Messages imapsync copied to PurelyMail")
BYTES_COPIED = Counter("purelyops_migration_bytes_copied_total", "Bytes of messages imapsync copied to PurelyMail")
MIGRATION_RUNS = Counter(
    "purelyops_migration_runs_total", "imapsync runs that ended, by the state they left the job in and dry or real",
    ["state", "mode"])
DNS_CHECKS = Counter(
    "purelyops_dns_checks_total", "Domains the DNS monitor checked, by result (ok: no record fails)", ["result"])
DNS_CHANGES = Counter(
    "purelyops_dns_changes_total", "Records the DNS monitor found broken or recovered since the last check",
    ["change"])

REQUEST_KINDS = {"block_actions": "click", "view_submission": "view_submission", "view_closed": "view_closed",
                 "block_suggestion": "options", "event_callback": "event", "shortcut": "shortcut",
                 "message_action": "shortcut"}


def request_kind(body: dict) -> str:
    """A request from Slack, in one word: command, click, view_submission, event, options…"""
    if body.get("command"):
        return "command"
    return REQUEST_KINDS.get(str(body.get("type") or ""), "other")


def observe_purelymail(operation: str, seconds: float, error: Exception | None) -> None:
    PURELYMAIL_SECONDS.labels(operation).observe(seconds)
    if error is not None:
        PURELYMAIL_ERRORS.labels(operation, type(error).__name__).inc()


class CopiedCounter:
    """Adds what one imapsync run has copied to the counters as it goes: `update` with the
    run's totals so far (messages and bytes on its "copied to" lines)."""

    def __init__(self) -> None:
        self._messages = 0
        self._bytes = 0

    def update(self, messages: int, size: int) -> None:
        if messages > self._messages:
            MESSAGES_COPIED.inc(messages - self._messages)
            self._messages = messages
        if size > self._bytes:
            BYTES_COPIED.inc(size - self._bytes)
            self._bytes = size


# --- states, read at scrape time -----------------------------------------------------------


class StateCollector(Collector):
    """What PostgreSQL and Redis hold now. A store that cannot be read leaves its metrics
    out of this scrape (and `purelyops_state_up` says which)."""

    def __init__(self, database_url: str, redis_client: object) -> None:
        self.database_url = database_url
        self.redis = redis_client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("purelyops_state_up", "Whether /metrics could read this store", labels=["store"])
        try:
            yield from self._database()
            up.add_metric(["postgresql"], 1)
        except Exception as error:  # noqa: BLE001 - a scrape must answer even so
            log.warning("/metrics could not read PostgreSQL: %s", type(error).__name__)
            up.add_metric(["postgresql"], 0)
        try:
            yield from self._queues()
            up.add_metric(["redis"], 1)
        except Exception as error:  # noqa: BLE001
            log.warning("/metrics could not read Redis: %s", type(error).__name__)
            up.add_metric(["redis"], 0)
        yield up

    def _database(self) -> list[Metric]:
        from sqlalchemy import case, func, select

        from db.models import Domain, MigrationJob, SyncState
        from db.session import session_scope

        with session_scope(self.database_url) as session:
            by_state = select(MigrationJob.status, func.count()).group_by(MigrationJob.status)
            states = dict(session.execute(by_state).all())
            health = case((Domain.healthy.is_(None), "unchecked"), (Domain.healthy, "healthy"), else_="failing")
            domains = dict(session.execute(select(health, func.count()).where(Domain.is_shared.is_(False))
                                           .group_by(health)).all())
            jobs = session.execute(select(SyncState.name, SyncState.last_run_at, SyncState.last_ok_at)).all()
        migrations = GaugeMetricFamily("purelyops_migrations", "Migration jobs by state", labels=["state"])
        for state in sorted(set(STATES) | set(states)):
            migrations.add_metric([state], states.get(state, 0))
        by_health = GaugeMetricFamily("purelyops_domains", "Domains by the DNS monitor's last check", labels=["dns"])
        for kind in ("healthy", "failing", "unchecked"):
            by_health.add_metric([kind], domains.get(kind, 0))
        last_ok = GaugeMetricFamily("purelyops_job_last_success_timestamp_seconds",
                                    "When a periodic job (user_sync, credit…) last succeeded, Unix time",
                                    labels=["job"])
        last_run = GaugeMetricFamily("purelyops_job_last_run_timestamp_seconds",
                                     "When a periodic job last ran, whatever its outcome, Unix time", labels=["job"])
        for name, ran, ok in jobs:
            if ok is not None:
                last_ok.add_metric([name], ok.timestamp())
            if ran is not None:
                last_run.add_metric([name], ran.timestamp())
        return [migrations, by_health, last_ok, last_run]

    def _queues(self) -> list[Metric]:
        from rq import Queue

        depth = GaugeMetricFamily("purelyops_queue_jobs", "RQ jobs waiting in a queue", labels=["queue"])
        failed = GaugeMetricFamily("purelyops_queue_failed_jobs", "RQ jobs in a queue's failed registry",
                                   labels=["queue"])
        for queue in Queue.all(connection=self.redis):
            depth.add_metric([queue.name], queue.count)
            failed.add_metric([queue.name], queue.failed_job_registry.count)
        return [depth, failed]


# --- exposition -----------------------------------------------------------------------------


class Scrape:
    """What one scrape reports: the counts of every process of this machine (multiprocess
    mode) or of this process, and, given the stores, their states. Anything with this
    `collect` is what prometheus_client's exposition takes."""

    def __init__(self, database_url: str | None = None, redis_client: object | None = None) -> None:
        self.sources: list = [multiprocess.MultiProcessCollector(None) if MULTIPROC_DIR else REGISTRY]
        if database_url is not None:
            self.sources.append(StateCollector(database_url, redis_client))

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def serve_on_port(port: int, host: str = "127.0.0.1") -> None:
    """Serve this machine's counts (not the states: the web process serves those) on `port`,
    from a thread of this process: for workers on a machine without a web process."""
    from prometheus_client import start_http_server

    start_http_server(port, host, registry=Scrape())  # type: ignore[arg-type]
