"""Create jobs under faults (issue 18, item 8): a run that takes longer than any fixed lock
keeps its lock, a crash after a mailbox was created gives that mailbox a new password,
shown to the admin, never a wrong one, and a run that stalled past its lock's life while
another took over makes no second batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from db.models import GatherSubmission, MigrationBatch, SourceServer
from db.session import session_scope
from purelyops import gather, migrations
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS, make_settings, process_env, wait_until


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, public_url="https://ops.example")


def link_with_submissions(rt: Runtime, people: dict[str, str]) -> int:
    """A credential link of the server "old", and one submission per person (old address →
    the new password they typed for their new mailbox)."""
    with session_scope(rt.database_url) as session:
        server = SourceServer(name="old", host="127.0.0.1", port=993, security="tls", created_by=ADMIN)
        session.add(server)
        session.flush()
        server_id = server.id
    link, _, _ = gather.create_link(rt, server_id, gather.EXPIRY_DAYS[0], "staff", actor_id=ADMIN, actor_name="",
                                    channel_id=OPS, idempotency_key="link-1", dest_domains=["new.example"])
    for email, new_password in people.items():
        answer = gather.Answer(full_name="A Person", email=email, password="old-pw-123",
                               new_address=email.replace("@old.example", "@new.example"), new_password=new_password)
        assert gather._store(rt, link, answer, None).verdict is gather.Verdict.ACCEPTED  # no proven password
    return link.id


def test_a_crash_after_a_mailbox_was_created_resets_its_password_and_shows_the_new_one(
        rt: Runtime, settings, purelymail_fake, monkeypatch) -> None:
    purelymail_fake.add_domain_direct("new.example")
    link_id = link_with_submissions(rt, {"ann@old.example": "Typed-by-Ann-9"})
    options = gather.JobOptions(None, dry_run=True)

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died here")

    with monkeypatch.context() as patched:
        patched.setattr(migrations, "create_batch", crash)
        with pytest.raises(RuntimeError):  # the mailbox exists now; its generated password was never shown
            gather.create_jobs(rt, link_id, options, actor_id=ADMIN, actor_name="", channel_id=OPS,
                               idempotency_key="create-1")
    assert "ann@new.example" in purelymail_fake.users

    outcome = gather.create_jobs(rt, link_id, options, actor_id=ADMIN, actor_name="", channel_id=OPS,
                                 idempotency_key="create-2")
    assert outcome.jobs == 1
    [(address, password)] = outcome.created
    assert address == "ann@new.example"
    assert purelymail_fake.users["ann@new.example"].password == password  # the one shown is the one that works
    [job] = migrations.list_jobs(rt)
    assert migrations.credentials(rt, job)["dest"] == ""  # a temporary app password, not Ann's typed one


def test_create_jobs_keeps_its_lock_for_as_long_as_it_runs(rt: Runtime, settings, purelymail_fake,
                                                           monkeypatch) -> None:
    """PurelyMail answers slowly (about a mailbox a second, here 0.4 s a call): the run
    lasts several lock lifetimes, and a second Create jobs is refused all along."""
    monkeypatch.setattr(gather, "CREATE_LOCK_SECONDS", 1.5)
    purelymail_fake.add_domain_direct("new.example")
    link_id = link_with_submissions(rt, {f"p{n}@old.example": "" for n in range(6)})
    purelymail_fake.latency = 0.4
    options = gather.JobOptions(None, dry_run=True)
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(gather.create_jobs(
        rt, link_id, options, actor_id=ADMIN, actor_name="", channel_id=OPS, idempotency_key="create-1")))
    first.start()
    started = time.monotonic()
    refused = 0
    try:
        while first.is_alive():
            time.sleep(0.5)
            if first.is_alive():
                with pytest.raises(gather.GatherError, match="right now"):
                    gather.create_jobs(rt, link_id, options, actor_id=ADMIN, actor_name="", channel_id=OPS,
                                       idempotency_key=f"create-again-{refused}")
                refused += 1
    finally:
        first.join(60)
    assert time.monotonic() - started > 3 * 1.5  # it outlived its lock's lifetime several times
    assert refused >= 6
    [outcome] = results
    assert outcome.jobs == 6 and len(migrations.list_jobs(rt)) == 6


# Create jobs in a process of its own, as a worker runs it, with a lock of 1.5 s.
STALLING_RUN = """
import sys
from purelyops import gather
from purelyops.runtime import Runtime
from purelyops.settings import load_settings

gather.CREATE_LOCK_SECONDS = 1.5
rt = Runtime(load_settings(_env_file=None))
try:
    outcome = gather.create_jobs(rt, int(sys.argv[1]), gather.JobOptions(None, dry_run=True), actor_id=sys.argv[2],
                                 actor_name="", channel_id=sys.argv[3], idempotency_key="create-first")
    print("batch", outcome.batch_id, outcome.jobs)
except gather.GatherError as error:
    print("refused:", error)
"""


def one_batch_of(rt: Runtime, purelymail_fake, second: gather.JobsOutcome) -> None:
    """The second run's batch is the only one, a job for each submission, and the passwords
    it showed are the ones that work."""
    with session_scope(rt.database_url) as session:
        assert session.scalar(select(func.count()).select_from(MigrationBatch)) == 1
        assert sorted(session.scalars(select(GatherSubmission.job_id))) == sorted(
            job.id for job in migrations.list_jobs(rt))
    assert len(migrations.list_jobs(rt)) == 2
    for address, password in second.created:
        assert purelymail_fake.users[address].password == password


def test_a_create_jobs_that_stalls_past_its_lock_while_another_takes_over_makes_no_second_batch(
        rt: Runtime, settings, purelymail_fake, tmp_path) -> None:
    """The first run's process stops (SIGSTOP: a paused VM, swap) while PurelyMail answers
    its last createUser, for longer than its lock lives; a second click's run takes the lock
    and makes the batch. When the first goes on, its batch finds the submissions taken and
    is undone: one batch, one job per submission."""
    purelymail_fake.add_domain_direct("new.example")
    link_id = link_with_submissions(rt, {"ann@old.example": "", "ben@old.example": ""})
    purelymail_fake.latency = 1.0
    first = subprocess.Popen([sys.executable, "-c", STALLING_RUN, str(link_id), ADMIN, OPS], cwd=tmp_path,
                             env=process_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Its last createUser has reached PurelyMail: every row passed its checks, the batch is next.
        wait_until(lambda: len(purelymail_fake.calls_to("createUser")) == 2 or first.poll() is not None, 30,
                   "the first run's last createUser")
        os.kill(first.pid, signal.SIGSTOP)
        assert first.poll() is None, first.communicate()
        purelymail_fake.latency = 0.0
        wait_until(lambda: not rt.redis.exists(gather.CREATE_LOCK.format(link_id)), 10, "its lock to expire")
        second = gather.create_jobs(rt, link_id, gather.JobOptions(None, dry_run=True), actor_id=ADMIN,
                                    actor_name="", channel_id=OPS, idempotency_key="create-second")
        assert second.jobs == 2 and sorted(address for address, _ in second.created) == [
            "ann@new.example", "ben@new.example"]  # its passwords are the ones that work
    finally:
        os.kill(first.pid, signal.SIGCONT)
    said, logged = first.communicate(timeout=30)
    assert said.startswith("refused:") and "created meanwhile by another Create jobs" in said, (said, logged)
    one_batch_of(rt, purelymail_fake, second)


def test_a_create_jobs_frozen_as_it_makes_the_batch_while_another_made_it_makes_none(
        rt: Runtime, settings, purelymail_fake, tmp_path) -> None:
    """The last gap: the first run's process stops (SIGSTOP) after every check of its lock,
    as its batch is on its way to PostgreSQL, for longer than the lock lives; a second
    run takes the lock and makes the batch. When the first goes on, its batch's transaction
    finds the submissions taken and is undone: one batch, one job per submission."""
    from tests.pg_stall import StallingProxy

    purelymail_fake.add_domain_direct("new.example")
    link_id = link_with_submissions(rt, {"ann@old.example": "", "ben@old.example": ""})
    proxy = StallingProxy(("127.0.0.1", 5432))
    first: subprocess.Popen | None = None
    frozen = threading.Event()

    def freeze() -> None:
        assert first is not None
        os.kill(first.pid, signal.SIGSTOP)
        frozen.set()

    proxy.before = (b"INSERT INTO migration_batches", freeze)
    try:
        through_proxy = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        first = subprocess.Popen([sys.executable, "-c", STALLING_RUN, str(link_id), ADMIN, OPS], cwd=tmp_path,
                                 env=process_env(settings, DATABASE_URL=through_proxy), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            assert frozen.wait(30), first.communicate(timeout=10) if first.poll() is not None else "not frozen"
            wait_until(lambda: not rt.redis.exists(gather.CREATE_LOCK.format(link_id)), 10, "its lock to expire")
            second = gather.create_jobs(rt, link_id, gather.JobOptions(None, dry_run=True), actor_id=ADMIN,
                                        actor_name="", channel_id=OPS, idempotency_key="create-second")
            assert second.jobs == 2
        finally:
            os.kill(first.pid, signal.SIGCONT)
        said, logged = first.communicate(timeout=30)
    finally:
        proxy.close()
    assert said.startswith("refused:") and "created meanwhile by another Create jobs" in said, (said, logged)
    one_batch_of(rt, purelymail_fake, second)
