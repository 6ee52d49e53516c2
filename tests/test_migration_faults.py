"""Migrations when things break: a worker killed mid-job, Redis losing its data, and the
limits holding across worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.migration_messages import start
from db.models import SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests import migration_steps
from tests.conftest import ADMIN, ROOT, STANDIN, kill_session, make_settings, process_env, wait_until
from workers.migration import reconcile


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, standin_imap):
    """The stand-in, between Dovecots that hold what its logs say was copied (conftest.standin_imap)."""
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=STANDIN,
                         migration_progress_interval=0.5, migration_heartbeat=2, max_concurrent_migrations=1,
                         purelymail_imap_port=standin_imap[1].port, purelymail_imap_tls=False)


def worker_env(settings, record: Path, **env: str) -> dict[str, str]:
    values = dict(IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_RECORD=str(record), MIGRATION_HEARTBEAT="2",
                  MAX_CONCURRENT_MIGRATIONS="1", MIGRATION_PROGRESS_INTERVAL="0.5")
    return process_env(settings, **{**values, **env})


def new_jobs(rt: Runtime, count: int, host: str = "127.0.0.1") -> list[int]:
    with session_scope(rt.database_url) as session:
        server = SourceServer(name=f"s{host}", host=host, port=migration_steps.SOURCE_PORT, security="none",
                              created_by=ADMIN)
        session.add(server)
        session.flush()
        server_id = server.id
    ids = []
    for i in range(count):
        spec = migrations.JobSpec(server_id, f"u{i}@old.example", "pw-source", f"u{i}@new.example", "pw-dest")
        job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id="C0OPS0001",
                                       idempotency_key=f"{host}-{i}")
        start(rt, job)
        ids.append(job.id)
    return ids


def status(rt: Runtime, job_id: int) -> str:
    return migrations.get_job(rt, job_id).status


def test_a_killed_worker_leaves_an_interrupted_job_that_is_rerun(rt: Runtime, settings, tmp_path: Path,
                                                                 slack_fake) -> None:
    [job_id] = new_jobs(rt, 1)
    proc = subprocess.Popen([sys.executable, "-m", "workers.worker"], cwd=ROOT, start_new_session=True,
                            env=worker_env(settings, tmp_path, IMAPSYNC_STANDIN_FIXTURE="10",
                                           IMAPSYNC_STANDIN_PACE="0.01"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: list(tmp_path.glob("run-*.json")), 20, "imapsync to start")
        imapsync_pid = int(next(tmp_path.glob("run-*.json")).stem.split("-")[1])
        time.sleep(0.5)
        kill_session(proc.pid)  # the worker machine dies: the worker and its work horse, at once
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{imapsync_pid}").exists()
               or Path(f"/proc/{imapsync_pid}/stat").read_text().split()[2] == "Z", 10, "imapsync to die with it")
    assert status(rt, job_id) == "running"
    time.sleep(2.5)  # its heartbeat runs out
    assert reconcile(rt) == {"interrupted": 1, "enqueued": 1}
    slack_fake.wait_for("chat.postMessage", lambda c: "was interrupted" in c.args.get("text", ""))
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=60,
                            env=worker_env(settings, tmp_path, IMAPSYNC_STANDIN_FIXTURE="10"), capture_output=True)
    assert result.returncode == 0
    job = migrations.get_job(rt, job_id)
    assert (job.status, job.attempts) == ("done", 2)


def test_queued_jobs_survive_redis_losing_its_data(rt: Runtime, settings, tmp_path: Path) -> None:
    ids = new_jobs(rt, 2)
    rt.redis.flushdb()
    assert reconcile(rt)["enqueued"] == 2
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=60,
                            env=worker_env(settings, tmp_path, IMAPSYNC_STANDIN_FIXTURE="02",
                                           MAX_CONCURRENT_MIGRATIONS="4"),
                            capture_output=True)
    assert result.returncode == 0
    assert [status(rt, i) for i in ids] == ["done", "done"]


def test_the_limit_holds_across_two_worker_processes(rt: Runtime, settings, tmp_path: Path) -> None:
    ids = new_jobs(rt, 3)
    procs = [subprocess.Popen([sys.executable, "-m", "workers.worker"], cwd=ROOT, start_new_session=True,
                              env=worker_env(settings, tmp_path, IMAPSYNC_STANDIN_FIXTURE="01",
                                             IMAPSYNC_STANDIN_PACE="0.002"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    most = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [status(rt, i) for i in ids]
            most = max(most, states.count("running"))
            if states == ["done"] * 3:
                break
            time.sleep(0.05)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(20)
    assert [status(rt, i) for i in ids] == ["done"] * 3
    assert most == 1


def test_every_queued_job_is_queued_again_after_redis_lost_its_data(rt: Runtime, settings) -> None:
    """A batch alone can hold 2,000 jobs: the reconciler puts every one back, not the first 1,000."""
    from rq import Queue

    with session_scope(rt.database_url) as session:
        server = SourceServer(name="big", host="127.0.0.1", port=993, security="tls", created_by=ADMIN)
        session.add(server)
        session.flush()
        server_id = server.id
    specs = [migrations.JobSpec(server_id, f"u{i}@old.example", "pw", f"u{i}@new.example", "pw") for i in range(1100)]
    migrations.create_batch(rt, "big", server_id, specs, actor_id=ADMIN, actor_name="", channel_id="C0OPS0001",
                            idempotency_key="big-batch")
    rt.redis.flushdb()
    assert reconcile(rt)["enqueued"] == 1100
    assert Queue(migrations.QUEUE, connection=rt.redis).count == 1100
