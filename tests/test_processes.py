"""The Procfile processes, started for real against the fakes: HTTP mode, Socket Mode,
worker and scheduler."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
import redis
from rq import Worker
from rq.cron import CronScheduler

from purelyops.settings import Settings
from tests.conftest import APP_TOKEN, SIGNING_SECRET, free_port, process_env, wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

ROOT = Path(__file__).resolve().parent.parent


def test_http_mode_answers_a_signed_help(settings: Settings, slack_fake: FakeSlack, spawn) -> None:
    port = free_port()
    spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port)))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, what="the web process")

    driver = SlackDriver(url + "/slack/events", SIGNING_SECRET, slack_fake)
    assert driver.command("help").status_code == 200
    assert "/pm help" in str(slack_fake.wait_for("response_url").args["blocks"])
    assert driver.command("help", signature="v0=" + "1" * 64).status_code == 401


def test_http_mode_with_several_web_processes(settings: Settings, slack_fake: FakeSlack, spawn) -> None:
    port = free_port()
    spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port), WEB_WORKERS="2"))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, what="the web processes")
    driver = SlackDriver(url + "/slack/events", SIGNING_SECRET, slack_fake)
    for _ in range(4):
        assert driver.command("help").status_code == 200
    wait_until(lambda: len(slack_fake.calls_to("response_url")) == 4, 10, "four answers")
    assert driver.command("help", signature="v0=" + "1" * 64).status_code == 401


def test_socket_mode_answers_help_over_the_socket(settings: Settings, slack_fake: FakeSlack, spawn) -> None:
    port = free_port()
    proc = spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port), SLACK_APP_TOKEN=APP_TOKEN))
    assert slack_fake.socket_connected(timeout=20), open(proc.log_path).read()
    payload = {
        "command": "/pm", "text": "help", "user_id": "U0ADMIN01", "channel_id": "C0OPS",
        "response_url": slack_fake.new_response_url(), "trigger_id": slack_fake.new_trigger_id(),
        "team_id": "T0TEAM", "api_app_id": "A0APP",
    }
    ack = slack_fake.socket_send("slash_commands", payload)
    assert ack["envelope_id"]
    assert "/pm help" in str(slack_fake.wait_for("response_url").args["blocks"])
    # In Socket Mode nothing listens for Slack over HTTP; /healthz still answers.
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert httpx.post(f"http://127.0.0.1:{port}/slack/events").status_code == 404


@pytest.mark.parametrize(("variable", "wrong"),
                         [("SLACK_APP_TOKEN", "xapp-1-wrong"), ("SLACK_BOT_TOKEN", "xoxb-1-wrong")],
                         ids=["socket mode, bad app token", "bad bot token"])
def test_a_token_slack_refuses_stops_the_web_process_with_words(settings: Settings, spawn, variable: str,
                                                                  wrong: str) -> None:
    proc = spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(free_port()), **{variable: wrong}))
    assert proc.wait(30) == 2
    output = open(proc.log_path).read()
    assert f"Slack did not accept {variable} (invalid_auth)" in output
    assert "Traceback" not in output


def test_procfile_starts_web_worker_and_scheduler(settings: Settings, slack_fake: FakeSlack, spawn) -> None:
    port = free_port()
    honcho = str(Path(sys.executable).with_name("honcho"))
    proc = spawn([honcho, "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start", "web", "worker", "scheduler"],
                 process_env(settings, PORT=str(port)))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, what="web")
    connection = redis.Redis.from_url(settings.redis_url)
    wait_until(lambda: Worker.all(connection=connection), what="an RQ worker")
    wait_until(lambda: CronScheduler.all(connection=connection), what="the RQ cron scheduler")

    driver = SlackDriver(url + "/slack/events", SIGNING_SECRET, slack_fake)
    assert driver.command("help").status_code == 200
    slack_fake.wait_for("response_url")

    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(20) is not None
    wait_until(lambda: not Worker.all(connection=connection), what="the worker to leave")
