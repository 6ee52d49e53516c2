"""The first working command, as Slack would drive it: signed requests in, Slack calls out."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bot import web
from bot.web import dispatch
from purelyops.runtime import make_redis
from tests.conftest import ADMIN, SIGNING_SECRET, BotServer
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver


def test_help_is_acked_at_once_then_answered_ephemerally(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    response = slack.command("help")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() < 1.0

    call = slack_fake.wait_for("response_url")
    assert call.args["response_type"] == "ephemeral"
    text = json.dumps(call.args["blocks"])
    assert "/pm help" in text
    assert call.args["text"]  # a fallback text always goes with blocks


def test_empty_command_shows_help(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    assert slack.command("").status_code == 200
    assert "/pm help" in json.dumps(slack_fake.wait_for("response_url").args["blocks"])


def test_unknown_subcommand_gets_a_hint_and_the_help(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    assert slack.command("hlep me").status_code == 200
    call = slack_fake.wait_for("response_url")
    assert "I don't know `hlep`. Did you mean `help`?" in call.args["text"]
    assert "/pm help" in json.dumps(call.args["blocks"])


def test_unknown_subcommand_is_escaped(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("<!channel>")
    text = slack_fake.wait_for("response_url").args["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_bad_signature_is_refused_and_has_no_effect(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    before = len(slack_fake.calls)
    response = slack.command("help", signature="v0=" + "0" * 64)
    assert response.status_code == 401
    time.sleep(0.3)
    assert slack_fake.calls[before:] == []


def test_stale_timestamp_is_refused_as_a_replay(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    before = len(slack_fake.calls)
    response = slack.command("help", timestamp=int(time.time()) - 6 * 60)
    assert response.status_code == 401
    time.sleep(0.3)
    assert slack_fake.calls[before:] == []


def test_signature_from_another_secret_is_refused(bot: BotServer, slack_fake: FakeSlack) -> None:
    impostor = SlackDriver(bot.url + "/slack/events", "not-the-" + SIGNING_SECRET, slack_fake)
    assert impostor.command("help").status_code == 401


def test_app_home_publishes_a_view(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    response = slack.event({"type": "app_home_opened", "user": ADMIN, "channel": "D0HOME", "tab": "home"})
    assert response.status_code == 200
    call = slack_fake.wait_for("views.publish")
    assert call.ok and call.args["user_id"] == ADMIN
    view = call.args["view"] if isinstance(call.args["view"], dict) else json.loads(call.args["view"])
    assert view["type"] == "home"
    assert "You are an admin" in json.dumps(view)


def test_healthz_on_the_public_port_says_only_ok(bot: BotServer) -> None:
    response = httpx.get(bot.url + "/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"


def test_healthz_is_503_when_redis_is_down_and_only_the_metrics_port_says_which(rt) -> None:
    rt.__dict__["redis"] = make_redis("redis://127.0.0.1:1/0")
    server = BotServer(rt, metrics_port=True)
    try:
        public = httpx.get(server.url + "/healthz")
        assert public.status_code == 503 and public.text == "not ok\n"
        private = httpx.get(server.metrics_url + "/healthz")
        assert private.status_code == 503
        assert private.json() == {"database": "ok", "redis": "unreachable"}
    finally:
        server.close()


def test_healthz_is_503_when_postgres_is_down_and_only_the_metrics_port_says_which(rt) -> None:
    rt.settings = rt.settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nothing"}
    )
    server = BotServer(rt, metrics_port=True)
    try:
        public = httpx.get(server.url + "/healthz")
        assert public.status_code == 503 and public.text == "not ok\n"
        assert httpx.get(server.metrics_url + "/healthz").json() == {"database": "unreachable", "redis": "ok"}
    finally:
        server.close()


def test_a_flood_of_healthz_asks_the_stores_once_every_few_seconds(bot: BotServer, monkeypatch) -> None:
    """Anyone can ask the public /healthz: a thousand askers must not become a thousand
    database connections. (Asked during the process's very first check, /healthz has no
    answer yet and says "not ok" at once: the flood comes after it.)"""
    checks = []
    real = web.database_reachable
    monkeypatch.setattr(web, "database_reachable", lambda url: checks.append(url) or real(url))
    with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
        assert client.get(bot.url + "/healthz").status_code == 200
        answers = list(pool.map(lambda _: client.get(bot.url + "/healthz").status_code, range(200)))
    assert answers == [200] * 200
    assert 1 <= len(checks) <= 3


def test_other_paths_are_not_found(bot: BotServer) -> None:
    assert httpx.get(bot.url + "/").status_code == 404
    assert httpx.post(bot.url + "/healthz").status_code == 404
    assert httpx.get(bot.url + "/healthz/more").status_code == 404


def test_a_path_ending_in_a_slash_answers_the_paths_under_it() -> None:
    """How a new page joins the web process (bot.web.routes): `/gather/` answers `/gather/<token>`."""

    def page(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    def get(wsgi, path: str) -> tuple[str, bytes]:
        status: list[str] = []
        body = b"".join(wsgi({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, headers: status.append(s)))
        return status[0], body

    wsgi = dispatch({"/gather/": page, "/exact": page})
    assert get(wsgi, "/gather/abc123") == ("200 OK", b"/gather/abc123")
    assert get(wsgi, "/exact") == ("200 OK", b"/exact")
    assert get(wsgi, "/exact/more")[0] == "404 Not Found"
    assert get(wsgi, "/gatherer")[0] == "404 Not Found"
