"""The migration service without Slack: idempotency, state transitions, credentials, and
the validation every modal field and command argument goes through."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from db.models import SourceServer
from db.session import session_scope
from purelyops import migrations, servers
from purelyops.runtime import Runtime
from tests.conftest import ADMIN


@pytest.fixture
def server_id(rt: Runtime) -> int:
    with session_scope(rt.database_url) as session:
        server = SourceServer(name="old", host="127.0.0.1", port=993, security="tls", created_by=ADMIN)
        session.add(server)
        session.flush()
        return server.id


def spec(server_id: int, **changes) -> migrations.JobSpec:
    values = dict(server_id=server_id, source_email="a@old.example", source_password="src-secret",
                  dest_email="a@new.example", dest_password="dst-secret")
    values.update(changes)
    return migrations.JobSpec(**values)


def create(rt: Runtime, server_id: int, key: str = "k1", **changes) -> migrations.MigrationJob:
    return migrations.create_job(rt, spec(server_id, **changes), actor_id=ADMIN, actor_name="admin", channel_id="C1",
                                 idempotency_key=key)[0]


def test_the_same_key_makes_one_job_and_credentials_round_trip(rt: Runtime, server_id: int) -> None:
    first = create(rt, server_id)
    again, created = migrations.create_job(rt, spec(server_id), actor_id=ADMIN, actor_name="", channel_id="C1",
                                           idempotency_key="k1")
    assert again.id == first.id and not created
    assert b"src-secret" not in first.ciphertext
    assert migrations.credentials(rt, first) == {"source": "src-secret", "dest": "dst-secret"}


def test_transitions(rt: Runtime, server_id: int) -> None:
    job = create(rt, server_id)
    with pytest.raises(migrations.MigrationError, match="cannot be re-run"):
        migrations.requeue(rt, job.id, actor_id=ADMIN)
    assert migrations.cancel_job(rt, job.id, actor_id=ADMIN).status == "cancelled"
    with pytest.raises(migrations.MigrationError, match="only queued or running"):
        migrations.cancel_job(rt, job.id, actor_id=ADMIN)  # a double click
    assert migrations.requeue(rt, job.id, actor_id=ADMIN).status == "queued"
    with pytest.raises(migrations.MigrationError, match="was not a dry run|cannot be run for real"):
        migrations.requeue(rt, job.id, actor_id=ADMIN, dry_run=False)


def test_edit_credentials_keeps_what_is_blank_and_delete_purges(rt: Runtime, server_id: int) -> None:
    job = create(rt, server_id)
    job = migrations.update_credentials(rt, job.id, source_password="new-src", dest_password=None, actor_id=ADMIN)
    assert migrations.credentials(rt, job) == {"source": "new-src", "dest": "dst-secret"}
    migrations.delete_job(rt, job.id, actor_id=ADMIN)
    assert migrations.list_jobs(rt) == []


def test_old_credentials_are_purged_after_the_retention(rt: Runtime, server_id: int) -> None:
    job = create(rt, server_id)
    migrations.cancel_job(rt, job.id, actor_id=ADMIN)
    assert migrations.purge_old_credentials(rt) == 0
    assert migrations.purge_old_credentials(rt, datetime.now(timezone.utc) + timedelta(days=8)) == 1
    assert migrations.get_job(rt, job.id).ciphertext is None


# ---- hostile input --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "host", "port", "security", "field"), [
    ("-oldhost", "imap.old.example", "993", "tls", "name"),
    ("old host", "imap.old.example", "993", "tls", "name"),
    ("old\x00", "imap.old.example", "993", "tls", "name"),
    ("ölhost", "imap.old.example", "993", "tls", "name"),
    ("x" * 10_000, "imap.old.example", "993", "tls", "name"),
    ("", "imap.old.example", "993", "tls", "name"),
    ("old", "-imap.old.example", "993", "tls", "host"),
    ("old", "imap://old.example", "993", "tls", "host"),
    ("old", "imap.old.example/x", "993", "tls", "host"),
    ("old", "a@old.example", "993", "tls", "host"),
    ("old", "x" * 10_000, "993", "tls", "host"),
    ("old", "imap old.example", "993", "tls", "host"),
    ("old", "imap.old.example\x00", "993", "tls", "host"),
    ("old", "", "993", "tls", "host"),
    ("old", "imap.old.example", "0", "tls", "port"),
    ("old", "imap.old.example", "65536", "tls", "port"),
    ("old", "imap.old.example", "abc", "tls", "port"),
    ("old", "imap.old.example", "-1", "tls", "port"),
    ("old", "imap.old.example", "99999999999999999999", "tls", "port"),
    ("old", "imap.old.example", "", "tls", "port"),
    ("old", "imap.old.example", "٩٩٣", "tls", "port"),
    ("old", "imap.old.example", "993", "ssl", "security"),
    ("old", "imap.old.example", "993", "", "security"),
])
def test_bad_server_fields_are_named(name, host, port, security, field) -> None:
    with pytest.raises(servers.FieldProblems) as caught:
        servers.check_spec(name, host, port, security)
    assert field in caught.value.problems and caught.value.problems[field]


def test_good_server_fields_are_normalised() -> None:
    spec = servers.check_spec(" Old-Host ", "IMAP.Bücher.example.", "993", "starttls")
    assert (spec.name, spec.host, spec.port) == ("old-host", "imap.xn--bcher-kva.example", 993)


@pytest.mark.parametrize(("pattern", "words"), [
    ("(a+)+$", "repeated group"),
    ("(x*)*", "repeated group"),
    ("(a|aa)+{2}", "repeated group|not a valid"),
    ("(?{ system('id') })", "extension"),
    (r"^(\w|\w\w)*(\1)!$", "refers back to a group"),  # spun imapsync for ever on a 50-letter name
    (r"(a|ab)*", "alternatives can start alike"),
    (r"\w*\w*\w*\w*!", "more than 3 repeats"),
    ("[unclosed", "not a valid regular expression"),
    ("a{1,2", None),
    ("-x", "cannot start with -"),
    ("a\nb", "line breaks"),
    ("x" * 201, "at most 200"),
])
def test_folder_patterns_are_checked_without_running_them(pattern, words) -> None:
    started = time.monotonic()
    if words is None:
        migrations.check_exclude(pattern)
    else:
        with pytest.raises(migrations.MigrationError, match=words):
            migrations.check_exclude(pattern)
    assert time.monotonic() - started < 0.5  # checked, not run: a catastrophic pattern would take ages
    assert migrations.check_exclude("^Trash$|^Junk$") == "^Trash$|^Junk$"


@pytest.mark.parametrize("record", ["cut short", "gone"])
def test_a_job_queued_again_while_rq_s_record_of_its_last_run_is_cut_short(rt: Runtime, server_id: int,
                                                                            record: str) -> None:
    """RQ's worker may write its last heartbeat into an execution's record as it deletes it (a
    record of `last_heartbeat` alone), or the record expires before its registry: Sync again,
    Re-run and the retries must still queue the job, not raise out of RQ."""
    from rq import Queue
    from rq.job import JobStatus

    job = create(rt, server_id)
    assert migrations.enqueue(rt, job.id)
    old = Queue(migrations.QUEUE, connection=rt.redis).fetch_job(migrations.rq_job_id(job.id))
    old.set_status(JobStatus.FINISHED)
    execution = f"{old.id}:0f0e"
    rt.redis.zadd(old.execution_registry.key, {"0f0e": time.time() + 3600})
    if record == "cut short":
        rt.redis.hset(f"rq:execution:{execution}", "last_heartbeat", str(time.time()))
    assert migrations.enqueue(rt, job.id)
    again = Queue(migrations.QUEUE, connection=rt.redis).fetch_job(migrations.rq_job_id(job.id))
    assert again is not None and again.get_status() == JobStatus.QUEUED
    assert not rt.redis.exists(f"rq:execution:{execution}")  # the cut-short record went with its job
