"""/metrics as an operator's Prometheus scrapes it: after a command, a failed PurelyMail
call, a Slack 429 and a migration, the counters have moved; the states are read from
PostgreSQL and Redis at scrape time. It is not public: on the web process's public port
only with METRICS_TOKEN as a bearer token, else on METRICS_PORT (loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from purelyops import mailboxes
from purelyops.runtime import Runtime
from tests.conftest import ROOT, STANDIN, BotServer, free_port, process_env, said, wait_until
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import add_server, job_row, queued, submit_migration
from tests.slack_requests import SlackDriver

TOKEN = "metrics-token-" + "7" * 24


@pytest.fixture
def settings(standin_settings):
    return standin_settings.model_copy(update={"metrics_token": TOKEN})


def scrape(bot: BotServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: {(name, sorted labels): value}."""
    response = httpx.get(bot.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_command_moves_the_ack_histogram_and_the_command_count(bot: BotServer, slack: SlackDriver,
                                                                   slack_fake: FakeSlack) -> None:
    before = scrape(bot)
    slack.command("help")
    said(slack_fake, "commands")
    wait_until(lambda: value(scrape(bot), "purelyops_commands_total", subcommand="help")
               > value(before, "purelyops_commands_total", subcommand="help"), 5, "the command to be counted")
    after = scrape(bot)
    assert value(after, "purelyops_slack_ack_seconds_count", kind="command") \
        == value(before, "purelyops_slack_ack_seconds_count", kind="command") + 1
    assert value(after, "purelyops_slack_ack_seconds_bucket", kind="command", le="+Inf") \
        == value(after, "purelyops_slack_ack_seconds_count", kind="command")
    assert value(after, "purelyops_state_up", store="postgresql") == 1
    assert value(after, "purelyops_state_up", store="redis") == 1


def test_a_failed_purelymail_call_is_counted_by_operation(bot: BotServer, slack: SlackDriver, slack_fake: FakeSlack,
                                                          purelymail_fake: FakePurelyMail) -> None:
    before = scrape(bot)
    purelymail_fake.fail_5xx["checkAccountCredit"] = 10
    slack.command("credit")
    said(slack_fake, "PurelyMail")
    after = scrape(bot)
    errors = "purelyops_purelymail_errors_total"
    assert value(after, errors, operation="checkAccountCredit", error="Unavailable") \
        >= value(before, errors, operation="checkAccountCredit", error="Unavailable") + 1
    assert value(after, "purelyops_purelymail_request_seconds_count", operation="checkAccountCredit") \
        > value(before, "purelyops_purelymail_request_seconds_count", operation="checkAccountCredit")


def test_a_slack_429_waited_out_is_counted(rt: Runtime, bot: BotServer, slack_fake: FakeSlack) -> None:
    before = scrape(bot)
    slack_fake.force_ratelimit("chat.postMessage", times=1, retry_after=0)
    rt.slack.chat_postMessage(channel="C0OPS0001", text="hello")
    after = scrape(bot)
    assert value(after, "purelyops_slack_rate_limited_total", method="chat.postMessage") \
        == value(before, "purelyops_slack_rate_limited_total", method="chat.postMessage") + 1


def test_the_last_user_sync_and_the_queues_are_read_at_scrape_time(rt: Runtime, bot: BotServer,
                                                                   purelymail_fake: FakePurelyMail) -> None:
    assert ("purelyops_job_last_success_timestamp_seconds", (("job", "user_sync"),)) not in scrape(bot)
    purelymail_fake.add_domain_direct("example.com")
    mailboxes.sync(rt)
    synced = value(scrape(bot), "purelyops_job_last_success_timestamp_seconds", job="user_sync")
    assert synced == pytest.approx(mailboxes.last_sync(rt).last_ok_at.timestamp())
    from rq import Queue

    Queue("default", connection=rt.redis).enqueue("workers.credit.run_credit_check")
    assert value(scrape(bot), "purelyops_queue_jobs", queue="default") == 1


def test_a_migration_in_a_worker_process_moves_the_copy_counters(rt: Runtime, settings, bot: BotServer,
                                                                 slack: SlackDriver, slack_fake: FakeSlack) -> None:
    before = scrape(bot)
    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the migration to be queued")
    assert value(scrape(bot), "purelyops_migrations", state="queued") == 1
    assert value(scrape(bot), "purelyops_queue_jobs", queue="migrations") == 1
    subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, check=True, timeout=60,
                   capture_output=True,
                   env=process_env(settings, IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_FIXTURE="01",
                                   IMAPSYNC_STANDIN_PACE="0.001", MIGRATION_PROGRESS_INTERVAL="0.3"))
    assert job_row(rt).status == "done"
    after = scrape(bot)  # counted in the worker's work horse, which has exited
    assert value(after, "purelyops_migration_messages_copied_total") \
        == value(before, "purelyops_migration_messages_copied_total") + 500
    assert value(after, "purelyops_migration_bytes_copied_total") \
        == value(before, "purelyops_migration_bytes_copied_total") + job_row(rt).bytes_done
    assert value(after, "purelyops_migration_runs_total", state="done", mode="real") \
        == value(before, "purelyops_migration_runs_total", state="done", mode="real") + 1
    assert value(after, "purelyops_migrations", state="done") == 1
    assert value(after, "purelyops_migrations", state="queued") == 0
    assert value(after, "purelyops_queue_jobs", queue="migrations") == 0


def test_a_worker_serves_its_machines_counts_on_worker_metrics_port(settings, spawn) -> None:
    port = free_port()
    spawn([sys.executable, "-m", "workers.worker"], process_env(settings, WORKER_METRICS_PORT=str(port)))
    text = wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics").text, 20, "the worker's metrics port")
    assert "purelyops_migration_messages_copied_total" in text
    assert "purelyops_migrations{" not in text  # the states are the web process's to serve


def test_metrics_on_the_public_port_needs_the_token(bot: BotServer) -> None:
    assert httpx.get(bot.url + "/metrics").status_code == 401
    for wrong in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}", "Bearer", f"bearer  {TOKEN}"):
        response = httpx.get(bot.url + "/metrics", headers={"Authorization": wrong})
        assert response.status_code == 401, wrong
        assert "purelyops" not in response.text
    assert "purelyops_state_up" in httpx.get(bot.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text


def test_without_a_token_metrics_is_not_on_the_public_port_at_all(rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(update={"metrics_token": ""})
    server = BotServer(rt, metrics_port=True)
    try:
        assert httpx.get(server.url + "/metrics").status_code == 404
        assert httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer"}).status_code == 404
        assert "purelyops_state_up" in httpx.get(server.metrics_url + "/metrics").text
        # The metrics port answers the operator's paths only: not Slack's, not the form.
        assert httpx.post(server.metrics_url + "/slack/events", content=b"x").status_code == 404
        assert httpx.get(server.metrics_url + "/gather/abc").status_code == 404
    finally:
        server.close()


def test_the_web_process_serves_metrics_on_metrics_port_on_loopback_only(settings, spawn) -> None:
    port, metrics_port = free_port(), free_port()
    proc = spawn([sys.executable, "-m", "bot"],
                 process_env(settings, PORT=str(port), METRICS_PORT=str(metrics_port), METRICS_TOKEN=TOKEN,
                             WEB_WORKERS="2"))
    public, private = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    wait_until(lambda: httpx.get(public + "/healthz").status_code == 200, what="the web process")
    assert httpx.get(public + "/healthz").text == "ok\n"
    assert httpx.get(public + "/metrics").status_code == 401
    assert httpx.get(public + "/metrics", headers={"Host": f"127.0.0.1:{metrics_port}"}).status_code == 401
    text = httpx.get(private + "/metrics").text
    assert 'purelyops_state_up{store="postgresql"} 1.0' in text
    assert httpx.get(private + "/healthz").json() == {"database": "ok", "redis": "ok"}
    assert httpx.get(public + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # Bound to loopback: another address of this machine does not answer on METRICS_PORT.
    other = _non_loopback_address()
    if other is not None:
        assert httpx.get(f"http://{other}:{port}/healthz").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{other}:{metrics_port}/metrics")
    assert TOKEN not in open(proc.log_path, errors="replace").read()


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address
