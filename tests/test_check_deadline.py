"""The check after a run has an end: a source that trickles its answers (each byte well
within any read timeout) cannot hold the job, its slot and its app password for ever, and a
Cancel while the check waits on it ends the job at once. The imapsync stand-in copies (it
needs no IMAP); the check goes to a real Dovecot through a proxy that trickles."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests import migration_steps
from tests.conftest import ROOT, STANDIN, process_env, wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import add_server, job_row, queued, submit_migration
from tests.pg_stall import StallingProxy
from tests.slack_requests import SlackDriver

pytestmark = pytest.mark.usefixtures("slack_accepts_everything")


@pytest.fixture
def settings(standin_settings):
    return standin_settings


@pytest.fixture
def trickling_source(standin_imap) -> Iterator[StallingProxy]:
    """The stand-in's source Dovecot behind a proxy that sends its answers a byte every 20 ms."""
    proxy = StallingProxy(("127.0.0.1", standin_imap[0].port))
    proxy.trickle = 0.02
    migration_steps.SOURCE_PORT = proxy.port  # the server `add_server` adds
    yield proxy
    proxy.close()


@contextmanager
def migration_running(rt, settings, slack: SlackDriver, slack_fake: FakeSlack,
                      **env: str) -> Iterator[subprocess.Popen]:
    """A migration submitted in Slack, and a worker process running it (killed if the test leaves it running)."""
    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the queued message")
    proc = subprocess.Popen([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT,
                            env=process_env(settings, IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_FIXTURE="01",
                                            IMAPSYNC_STANDIN_PACE="0.001", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_check_that_cannot_finish_in_time_leaves_the_run_unproven_and_retried(
        rt, settings, slack: SlackDriver, slack_fake: FakeSlack, trickling_source: StallingProxy) -> None:
    with migration_running(rt, settings, slack, slack_fake, MIGRATION_CHECK_TIMEOUT="4") as proc:
        started = time.monotonic()
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert time.monotonic() - started < 30
    job = job_row(rt)
    assert "nothing is proven" in job.verdict and job.status != "done"
    assert "the source server answered too slowly: the listing did not finish within 4 s" in job.verdict
    # a server that is slow now may not be later
    assert (job.status, job.retries) == ("queued", 1) and job.retry_at is not None, job.verdict
    slack_fake.wait_for("chat.postMessage", lambda c: "answered too slowly" in c.args.get("text", ""))


def test_a_cancel_while_the_check_waits_on_a_slow_server_ends_the_job_at_once(
        rt, settings, slack: SlackDriver, slack_fake: FakeSlack, trickling_source: StallingProxy) -> None:
    with migration_running(rt, settings, slack, slack_fake) as proc:  # the check may take an hour
        slack_fake.wait_for("chat.update", lambda c: "checking every message" in str(c.args), timeout=30)
        time.sleep(1)
        slack.block_action("migration_cancel", value=str(job_row(rt).id), message_ts=job_row(rt).thread_ts)
        asked = time.monotonic()
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert time.monotonic() - asked < 10
    job = job_row(rt)
    assert job.status == "cancelled" and "cancelled by" in job.verdict, (job.status, job.verdict)
