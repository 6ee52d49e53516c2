"""Migration benchmarks.

P4: wall time of a migration through the worker / bare imapsync on the same input: the
    stand-in replaying fixture 10 at its real pace, and real imapsync on Dovecot when it
    is on PATH. Goal ≤ 1.05.
P5: 20 migrations at once posting progress into one channel, against the Slack fake's
    rate limits: updates per job at most one per 3 s, and no 429 reaching the user.
P7: N workers running N migrations at once (stand-in, fixed pacing), N = 1, 2, 4, 8:
    throughput relative to one worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete

from bot.migration_messages import start
from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, ROOT, STANDIN, process_env


def _reset(rt: Runtime, host: str = "127.0.0.1", port: int = 993, security: str = "tls") -> int:
    with session_scope(rt.database_url) as session:
        session.execute(delete(MigrationJob))
        session.execute(delete(SourceServer))
        server = SourceServer(name="bench", host=host, port=port, security=security, created_by=ADMIN)
        session.add(server)
        session.flush()
        return server.id


def _jobs(rt: Runtime, server_id: int, count: int, tag: str) -> list[int]:
    ids = []
    for i in range(count):
        spec = migrations.JobSpec(server_id, f"u{i}@old.example", "pw-src", f"{tag}-u{i}@new.example", "pw-dst")
        job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id="C0OPS0001",
                                       idempotency_key=f"{tag}-{i}-{time.time_ns()}")
        start(rt, job)
        ids.append(job.id)
    return ids


def _workers(settings, count: int, burst: bool = True, **env: str) -> list[subprocess.Popen]:
    args = [sys.executable, "-m", "workers.worker"] + (["--burst"] if burst else [])
    return [subprocess.Popen(args, cwd=ROOT, env=process_env(settings, **env), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def _run_time(rt: Runtime, job_id: int) -> float:
    job = migrations.get_job(rt, job_id)
    assert job.status == "done", (job.status, job.verdict)
    return (job.finished_at - job.started_at).total_seconds()


def p4(settings, slack, purelymail) -> None:
    rt = Runtime(settings)
    env = dict(IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="real")
    bare, worker = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("1", "2"):
            Path(tmp, name).write_text("pw")
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([STANDIN, f"--passfile1={tmp}/1", f"--passfile2={tmp}/2"], env={**os.environ, **env},
                           stdout=subprocess.DEVNULL, check=True)
            bare.append(time.perf_counter() - started)
    for _ in range(3):
        [job_id] = _jobs(rt, _reset(rt), 1, "p4")
        for proc in _workers(settings, 1, **env):
            proc.wait()
        worker.append(_run_time(rt, job_id))
    b, w = statistics.median(bare), statistics.median(worker)
    print(f"P4 stand-in replaying fixture 10 (3,000 messages) at its real pace: bare {b:.2f} s, through the worker "
          f"{w:.2f} s (claim to finish, incl. Slack updates and log upload); ratio {w / b:.3f} "
          f"(goal <= 1.05: {'met' if w / b <= 1.05 else 'NOT met'})")
    if shutil.which("imapsync"):
        _p4_real(settings, rt)
    else:
        print("P4 real imapsync: not on PATH, skipped")


def _p4_real(settings, rt: Runtime) -> None:
    from tests.imap_servers import Dovecot

    root = Path(tempfile.mkdtemp(prefix="purelyops-bench-"))
    root.chmod(0o755)
    bare, worker = [], []
    try:
        for run in range(2):
            source = Dovecot(root / f"s{run}", {"a@old.example": "pw-src"}).start()
            dest = Dovecot(root / f"d{run}", {"a@new.example": "pw-dst"}).start()
            source.append("a@old.example", 300)
            for name, value in (("1", "pw-src"), ("2", "pw-dst")):
                Path(root, name).write_text(value)
            args = ["imapsync", "--host1=127.0.0.1", f"--port1={source.port}", "--user1=a@old.example",
                    f"--passfile1={root}/1", "--host2=127.0.0.1", f"--port2={dest.port}", "--user2=a@new.example",
                    f"--passfile2={root}/2", "--nolog", "--noreleasecheck"]
            started = time.perf_counter()
            subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
            bare.append(time.perf_counter() - started)
            dest.stop()
            dest = Dovecot(root / f"e{run}", {"a@new.example": "pw-dst"}).start()
            server_id = _reset(rt, "127.0.0.1", source.port, "none")
            spec = migrations.JobSpec(server_id, "a@old.example", "pw-src", "a@new.example", "pw-dst")
            job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id="C0OPS0001",
                                           idempotency_key=f"real-{run}-{time.time_ns()}")
            start(rt, job)
            for proc in _workers(settings, 1, IMAPSYNC_BIN="imapsync", PURELYMAIL_IMAP_HOST="127.0.0.1",
                                 PURELYMAIL_IMAP_PORT=str(dest.port), PURELYMAIL_IMAP_TLS="false"):
                proc.wait()
            worker.append(_run_time(rt, job.id))
            source.stop()
            dest.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    b, w = statistics.median(bare), statistics.median(worker)
    print(f"P4 real imapsync 2.229, 300 messages between two Dovecots: bare {b:.2f} s, through the worker {w:.2f} s; "
          f"ratio {w / b:.3f}")


def p5(settings, slack, purelymail) -> None:
    rt = Runtime(settings)
    count = 20
    ids = _jobs(rt, _reset(rt), count, "p5")
    procs = _workers(settings, count, IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_FIXTURE="10",
                     IMAPSYNC_STANDIN_PACE="0.004", MIGRATION_PROGRESS_INTERVAL="3",
                     MAX_CONCURRENT_MIGRATIONS=str(count), MAX_PER_SOURCE_HOST=str(count))
    for proc in procs:
        proc.wait()
    statuses = [migrations.get_job(rt, i).status for i in ids]
    by_message: dict[str, list[float]] = {}
    for call in slack.calls_to("chat.update"):
        if call.ok:
            by_message.setdefault(call.args["ts"], []).append(call.at)
    gaps = [b - a for times in by_message.values() for a, b in zip(times, times[1:], strict=False)]
    limited = len(slack.ratelimited)
    lost = [c for c in slack.rejected if c.status != 429]
    print(f"P5 {count} jobs into one channel: {statuses.count('done')}/{count} done; "
          f"{sum(map(len, by_message.values()))} progress updates; "
          f"shortest gap between two updates of one job {min(gaps) if gaps else 0:.2f} s "
          f"(median {statistics.median(gaps) if gaps else 0:.2f} s); the fake answered {limited} 429s, "
          f"all retried after Retry-After; calls that failed otherwise: {len(lost)}")


def p7(settings, slack, purelymail) -> None:
    from rq import Worker

    rt = Runtime(settings)
    rates = {}
    env = dict(IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_FIXTURE="01", IMAPSYNC_STANDIN_PACE="0.004",
               MAX_CONCURRENT_MIGRATIONS="8", MAX_PER_SOURCE_HOST="8", MIGRATION_PROGRESS_INTERVAL="5")
    for n in (1, 2, 4, 8):
        server_id = _reset(rt)
        procs = _workers(settings, n, burst=False, **env)  # started first: their start-up is not measured
        try:
            while len(Worker.all(connection=rt.redis)) < n:
                time.sleep(0.1)
            started = time.perf_counter()
            ids = _jobs(rt, server_id, n, f"p7-{n}")
            while not all(migrations.get_job(rt, i).status == "done" for i in ids):
                time.sleep(0.05)
            rates[n] = n / (time.perf_counter() - started)
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGINT)
            for proc in procs:
                proc.wait(30)
    base = rates[1]
    print(f"P7 N workers × N jobs (stand-in, fixed pacing; {os.cpu_count()} cores): " + ", ".join(
        f"N={n}: {r:.2f} jobs/s ({r / base:.2f}× one worker)" for n, r in rates.items()))
    print("P7 the limits across two worker processes are held in Redis: tests/test_migration_faults.py checks that "
          "with MAX_CONCURRENT_MIGRATIONS=1 never two of three jobs run at once")



def _hosts(rt: Runtime, count: int) -> list[int]:
    """`count` source servers on distinct loopback addresses (MAX_PER_SOURCE_HOST counts per host)."""
    server_id = _reset(rt)
    ids = [server_id]
    with session_scope(rt.database_url) as session:
        for n in range(2, count + 1):
            server = SourceServer(name=f"bench{n}", host=f"127.0.0.{n}", port=993, security="tls", created_by=ADMIN)
            session.add(server)
            session.flush()
            ids.append(server.id)
    return ids


def _throughput(rt: Runtime, settings, workers: int, jobs_per_host: list[int], **env: str) -> tuple[float, int]:
    """Jobs per second with `workers` worker processes (started beforehand), and the most
    migrations seen running at once."""
    from rq import Worker

    server_ids = _hosts(rt, len(jobs_per_host))
    procs = _workers(settings, workers, burst=False, **env)
    most = 0
    try:
        while len(Worker.all(connection=rt.redis)) < workers:
            time.sleep(0.1)
        started = time.perf_counter()
        ids = [i for server_id, count in zip(server_ids, jobs_per_host, strict=True)
               for i in _jobs(rt, server_id, count, f"p7io-{server_id}")]
        while True:
            states = [migrations.get_job(rt, i).status for i in ids]
            most = max(most, states.count("running"))
            if all(s == "done" for s in states):
                break
            time.sleep(0.05)
        return len(ids) / (time.perf_counter() - started), most
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            proc.wait(30)


def p7io(settings, slack, purelymail) -> None:
    """P7, I/O-bound: a stand-in that spends its time waiting like a real imapsync on the
    network (fixture 10 at its real pace: 2,817 messages in 8.5 s, sleeping between them)."""
    rt = Runtime(settings)
    env = dict(IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="real",
               MAX_CONCURRENT_MIGRATIONS="8", MAX_PER_SOURCE_HOST="8", MIGRATION_PROGRESS_INTERVAL="5")
    rates = {}
    for n in (1, 2, 4, 8):
        rates[n], _ = _throughput(rt, settings, n, [n], **env)
    base = rates[1]
    print(f"P7 I/O-bound stand-in, N workers × N jobs ({os.cpu_count()} cores): " + ", ".join(
        f"N={n}: {r:.2f} jobs/s ({r / base:.2f}×)" for n, r in rates.items())
          + f"; goal: near-linear to 8 ({'met' if rates[8] / base >= 6 else 'NOT met'})")
    limited, most = _throughput(rt, settings, 8, [8], **{**env, "MAX_PER_SOURCE_HOST": "2"})
    spread, most_spread = _throughput(rt, settings, 8, [2, 2, 2, 2], **{**env, "MAX_PER_SOURCE_HOST": "2"})
    print(f"P7 8 workers, MAX_PER_SOURCE_HOST=2: 8 jobs from one host {limited:.2f} jobs/s (at most {most} at once); "
          f"8 jobs from four hosts {spread:.2f} jobs/s (at most {most_spread} at once)")
    two, most_two = _throughput(rt, settings, 2, [2, 2], **{**env, "MAX_CONCURRENT_MIGRATIONS": "1"})
    print(f"P7 two worker processes sharing one Redis, MAX_CONCURRENT_MIGRATIONS=1: {two:.2f} jobs/s, "
          f"at most {most_two} running at once (goal 1: {'met' if most_two == 1 else 'NOT met'})")
