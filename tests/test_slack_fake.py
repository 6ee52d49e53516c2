"""The Slack fake is as strict as Slack, and the request driver signs like Slack.

These tests drive the fake with slack_sdk's own clients (WebClient, SocketModeClient,
RateLimitErrorRetryHandler), so a bot that passes against the fake speaks slack_sdk's real
wire format, and they check the driver's requests with slack_sdk's SignatureVerifier.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver, command_form

BOT = "xoxb-1-fake-bot"
APP = "xapp-1-fake-app"
SECRET = "0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=BOT, app_token=APP)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeSlack) -> FakeSlack:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT, base_url=fake.api_url, timeout=5)


def error_of(call: Callable[[], Any]) -> dict[str, Any]:
    """The body of the SlackApiError that `call` raises."""
    with pytest.raises(SlackApiError) as info:
        call()
    return dict(info.value.response.data)


def section(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(text: str = "Go", action_id: str = "go", value: str = "1") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, "value": value}


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def modal(**extra: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "add_domain",
        "title": {"type": "plain_text", "text": "Add a domain"},
        "submit": {"type": "plain_text", "text": "Add"},
        "blocks": [
            {
                "type": "input",
                "block_id": "domain",
                "label": {"type": "plain_text", "text": "Domain"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    view.update(extra)
    return view


# -- tokens ---------------------------------------------------------------------------------


def test_tokens_are_checked_like_slack(fake: FakeSlack, client: WebClient) -> None:
    assert error_of(WebClient(base_url=fake.api_url).auth_test)["error"] == "not_authed"
    assert error_of(WebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test)["error"] == "invalid_auth"
    assert (
        error_of(lambda: WebClient(token=APP, base_url=fake.api_url).chat_postMessage(channel="C1", text="hi"))["error"]
        == "not_allowed_token_type"
    )
    assert error_of(lambda: client.apps_connections_open(app_token=BOT))["error"] == "not_allowed_token_type"
    assert client.apps_connections_open(app_token=APP)["url"].startswith("ws://127.0.0.1:")
    assert client.auth_test()["user_id"]
    # A token in a JSON body is ignored by Slack; a form `token` works.
    r = httpx.post(fake.api_url + "chat.postMessage", json={"token": BOT, "channel": "C1", "text": "x"})
    assert r.status_code == 200 and r.json() == {"ok": False, "error": "not_authed"}
    r = httpx.post(fake.api_url + "auth.test", data={"token": BOT})
    assert r.json()["ok"] is True
    assert error_of(lambda: client.api_call("chat.fly"))["error"] == "unknown_method"
    assert [c.error for c in fake.calls if not c.ok] == [
        "not_authed",
        "invalid_auth",
        "not_allowed_token_type",
        "not_allowed_token_type",
        "not_authed",
        "unknown_method",
    ]
    assert "token" not in fake.calls_to("auth.test")[-1].args


# -- Block Kit limits -------------------------------------------------------------------------


def _select(n: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {"type": "static_select", "action_id": "pick", "options": [option(f"o{i}", str(i)) for i in range(n)]}
        ],
    }


MESSAGE_VIOLATIONS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("51 blocks", [section() for _ in range(51)], "no more than 50 items allowed [json-pointer:/blocks]"),
    ("section text", [section("x" * 3001)], "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"),
    (
        "11 fields",
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
        "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
    ),
    (
        "field text",
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]",
    ),
    (
        "header",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
    ),
    (
        "header mrkdwn",
        [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
        "must be a `plain_text` text object [json-pointer:/blocks/0/text/type]",
    ),
    (
        "button text",
        [{"type": "actions", "elements": [button("b" * 76)]}],
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
    ),
    (
        "button value",
        [{"type": "actions", "elements": [button(value="v" * 2001)]}],
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
    ),
    (
        "option text",
        [
            {
                "type": "actions",
                "elements": [{"type": "static_select", "action_id": "p", "options": [option("o" * 76, "1")]}],
            }
        ],
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/options/0/text/text]",
    ),
    (
        "action_id",
        [{"type": "actions", "elements": [button(action_id="a" * 256)]}],
        "must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]",
    ),
    ("block_id", [section(block_id="b" * 256)], "must be less than 256 characters [json-pointer:/blocks/0/block_id]"),
    (
        "26 actions",
        [{"type": "actions", "elements": [button(action_id=f"a{i}") for i in range(26)]}],
        "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
    ),
    (
        "11 context",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
    ),
    ("101 options", [_select(101)], "no more than 100 items allowed [json-pointer:/blocks/0/elements/0/options]"),
    ("duplicate block_id", [section(block_id="x"), section(block_id="x")], "duplicate block_id `x`"),
    ("duplicate action_id", [{"type": "actions", "elements": [button(), button()]}], "duplicate action_id `go`"),
    (
        "unknown block",
        [{"type": "sectoin", "text": {"type": "mrkdwn", "text": "t"}}],
        "unsupported type: sectoin [json-pointer:/blocks/0/type]",
    ),
    ("unknown property", [section(txt="typo")], "invalid additional property: txt [json-pointer:/blocks/0/txt]"),
    ("empty text", [section("")], "must be more than 0 characters [json-pointer:/blocks/0/text/text]"),
]


@pytest.mark.parametrize(
    ("blocks", "expected"), [v[1:] for v in MESSAGE_VIOLATIONS], ids=[v[0] for v in MESSAGE_VIOLATIONS]
)
def test_message_block_limits_answer_invalid_blocks(
    fake: FakeSlack, client: WebClient, blocks: list[dict[str, Any]], expected: str
) -> None:
    body = error_of(lambda: client.chat_postMessage(channel="C1", text="fallback", blocks=blocks))
    assert body["error"] == "invalid_blocks"
    assert any(expected in e for e in body["errors"]), body["errors"]
    assert body["response_metadata"]["messages"][0].startswith("[ERROR] ")
    call = fake.calls_to("chat.postMessage")[-1]
    assert call.rejected and call.error == "invalid_blocks" and call.errors == body["errors"]
    assert fake.messages("C1") == []


def test_a_message_at_every_limit_is_accepted(fake: FakeSlack, client: WebClient) -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        section("s" * 3000, block_id="b" * 255),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {
            "type": "actions",
            "elements": [button("b" * 75, action_id=f"a{i}") for i in range(24)]
            + [
                {
                    "type": "static_select",
                    "action_id": "p" * 255,
                    "options": [option("o" * 75, str(i)) for i in range(100)],
                }
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
    ] + [{"type": "divider"}] * 45
    r = client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    assert r["ok"] and fake.messages("C1")[0].blocks == blocks


VIEW_VIOLATIONS: list[tuple[str, dict[str, Any], str]] = [
    (
        "title",
        modal(title={"type": "plain_text", "text": "t" * 25}),
        "must be less than 25 characters [json-pointer:/view/title/text]",
    ),
    (
        "submit",
        modal(submit={"type": "plain_text", "text": "s" * 25}),
        "must be less than 25 characters [json-pointer:/view/submit/text]",
    ),
    (
        "close",
        modal(close={"type": "plain_text", "text": "c" * 25}),
        "must be less than 25 characters [json-pointer:/view/close/text]",
    ),
    (
        "private_metadata",
        modal(private_metadata="m" * 3001),
        "must be less than 3001 characters [json-pointer:/view/private_metadata]",
    ),
    (
        "max_length",
        modal(
            blocks=[
                {
                    "type": "input",
                    "block_id": "d",
                    "label": {"type": "plain_text", "text": "D"},
                    "element": {"type": "plain_text_input", "action_id": "v", "max_length": 3001},
                }
            ]
        ),
        "must be an integer from 0 to 3000 [json-pointer:/view/blocks/0/element/max_length]",
    ),
    (
        "101 blocks",
        modal(blocks=[section() for _ in range(101)]),
        "no more than 100 items allowed [json-pointer:/view/blocks]",
    ),
    (
        "input without submit",
        {k: v for k, v in modal().items() if k != "submit"},
        "must define `submit` to use an `input` block in modals",
    ),
]


@pytest.mark.parametrize(("view", "expected"), [v[1:] for v in VIEW_VIOLATIONS], ids=[v[0] for v in VIEW_VIOLATIONS])
def test_view_limits_answer_invalid_arguments(
    fake: FakeSlack, client: WebClient, view: dict[str, Any], expected: str
) -> None:
    trigger = fake.new_trigger_id("U1")
    body = error_of(lambda: client.views_open(trigger_id=trigger, view=view))
    assert body["error"] == "invalid_arguments"  # Slack's answer for a bad view
    assert any(expected in m for m in body["response_metadata"]["messages"]), body
    assert fake.calls_to("views.open")[-1].rejected
    assert client.views_open(trigger_id=trigger, view=modal())["ok"]  # the trigger was not used up


def test_home_tab_allows_100_blocks_and_no_more(fake: FakeSlack, client: WebClient) -> None:
    home = {"type": "home", "blocks": [section() for _ in range(100)]}
    assert client.views_publish(user_id="U1", view=home)["view"]["type"] == "home"
    body = error_of(lambda: client.views_publish(user_id="U1", view={**home, "blocks": home["blocks"] * 2}))
    assert body["error"] == "invalid_arguments"
    assert error_of(lambda: client.views_publish(user_id="U1", view=modal()))["error"] == "invalid_arguments"


def test_blocks_without_text_are_accepted_with_a_missing_text_warning(fake: FakeSlack, client: WebClient) -> None:
    r = client.chat_postMessage(channel="C1", blocks=[section()])
    assert r["ok"] and r["response_metadata"]["warnings"] == ["missing_text"]
    client.chat_postMessage(channel="C1", text="fallback", blocks=[section()])
    assert [c.warnings for c in fake.calls_to("chat.postMessage")] == [["missing_text"], []]
    assert error_of(lambda: client.chat_postMessage(channel="C1"))["error"] == "no_text"


def test_markup_slack_would_notify_or_link_from_is_recorded(fake: FakeSlack, client: WebClient) -> None:
    """Slack accepts `<!channel>` and links in a bot's text and blocks, and acts on them: the
    fake records each (what the bot escaped, `&lt;!channel&gt;`, is words and is not)."""
    client.chat_postMessage(channel="C0OPS0001", text="Folder <!channel> <https://evil.example|x> is short",
                            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "<!here> <@U0ADMIN001>"}}])
    client.chat_postMessage(channel="C0OPS0001", text="Folder &lt;!channel&gt; is short <!date^1700000000^{date}|x>")
    assert [(m.method, m.where, m.markup) for m in fake.live_markup] == [
        ("chat.postMessage", "text", "<!channel>"), ("chat.postMessage", "text", "<https://evil.example|x>"),
        ("chat.postMessage", "blocks", "<!here>")]


LIVE = ["<!channel>", "<!here>", "<!everyone>", "<!channel|channel>", "<!here|here>", "<!everyone|everyone>",
        "<!CHANNEL|@channel>", "<!group>", "<!subteam^S123>", "<!subteam^S123|@team>", "<https://evil.example>",
        "<https://evil.example|your bank>", "<mailto:ceo@evil.example|the CEO>"]
INERT = ["&lt;!channel&gt;", "&lt;!here|here&gt;", "<@U0ADMIN001>", "<@U0ADMIN001|admin>",
         "<!date^1700000000^{date}|14 Nov>", "<!channelx>", "!channel", "<#C0OPS0001>"]


@pytest.mark.parametrize("where", ["text", "blocks"])
def test_every_mention_of_many_and_every_link_is_recorded_labelled_or_not(fake: FakeSlack, client: WebClient,
                                                                         where: str) -> None:
    """The mentions that notify a channel, those online, the workspace or a user group, and
    links, each also with a label of its own after a `|`, as Slack reads them in text and in
    blocks. A member the bot names (`<@U…>`), a date, and what it escaped are not."""
    for n, markup in enumerate(LIVE + INERT):
        text, channel = f"Folder {markup} is short", f"C0TEST{n:04d}"  # a channel each: no rate limit
        if where == "text":
            client.chat_postMessage(channel=channel, text=text)
        else:
            client.chat_postMessage(channel=channel, text="fallback",
                                    blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    assert [(m.where, m.markup) for m in fake.live_markup] == [(where, markup) for markup in LIVE]


def test_long_text_is_cut_in_posts_and_refused_in_updates(fake: FakeSlack, client: WebClient) -> None:
    r = client.chat_postMessage(channel="C1", text="x" * 40_001)
    assert len(fake.messages("C1")[0].text or "") == 40_000
    assert error_of(lambda: client.chat_update(channel="C1", ts=r["ts"], text="y" * 40_001))["error"] == "msg_too_long"


def test_form_encoded_blocks_are_validated_too(fake: FakeSlack) -> None:
    r = httpx.post(
        fake.api_url + "chat.postMessage",
        headers={"Authorization": f"Bearer {BOT}"},
        data={"channel": "C1", "text": "t", "blocks": json.dumps([section("x" * 3001)])},
    )
    assert r.json()["error"] == "invalid_blocks"
    r = httpx.post(
        fake.api_url + "chat.postMessage",
        headers={"Authorization": f"Bearer {BOT}"},
        data={"channel": "C1", "text": "t", "blocks": "[not json"},
    )
    assert r.json()["error"] == "invalid_blocks_format"


# -- messages -------------------------------------------------------------------------------


def test_update_needs_an_existing_non_ephemeral_message(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="v1")
    client.chat_update(channel="C1", ts=posted["ts"], text="v2", blocks=[section("v2")])
    (msg,) = fake.messages("C1")
    assert (msg.text, msg.edits, msg.blocks) == ("v2", 1, [section("v2")])
    assert error_of(lambda: client.chat_update(channel="C1", ts="1.000001", text="x"))["error"] == "message_not_found"
    eph = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert [m.text for m in fake.ephemerals("U1")] == ["only you"] and fake.ephemerals("U2") == []
    body = error_of(lambda: client.chat_update(channel="C1", ts=eph["message_ts"], text="x"))
    assert body["error"] == "cant_update_message"
    assert error_of(lambda: client.chat_postMessage(channel="#ops", text="x"))["error"] == "channel_not_found"
    fake.not_member_of.add("C2")
    assert error_of(lambda: client.chat_postMessage(channel="C2", text="x"))["error"] == "not_in_channel"


def test_users_and_usergroups(fake: FakeSlack, client: WebClient) -> None:
    assert error_of(lambda: client.users_info(user="U404"))["error"] == "user_not_found"
    fake.add_user("U1", "alice", email="alice@example.com", is_admin=True)
    assert client.users_info(user="U1")["user"]["profile"]["email"] == "alice@example.com"
    assert error_of(lambda: client.usergroups_users_list(usergroup="S404"))["error"] == "no_such_subteam"
    fake.usergroups = {"S1": ["U1", "U2"]}
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]


# -- rate limits ------------------------------------------------------------------------------


def test_ratelimited_calls_get_429_and_retry_after(fake: FakeSlack, client: WebClient) -> None:
    fake.force_ratelimit("users.info", times=1, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        client.users_info(user="U1")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"
    assert info.value.response["error"] == "ratelimited"
    assert [(c.method, c.retry_after) for c in fake.ratelimited] == [("users.info", 7)]


def test_sliding_windows_per_method_and_per_channel(fake: FakeSlack, client: WebClient) -> None:
    for _ in range(3):  # chat.postMessage: a short burst per channel is fine...
        client.chat_postMessage(channel="C1", text="x")
    body = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))  # ...a fourth is not
    assert body["error"] == "ratelimited"
    client.chat_postMessage(channel="C2", text="x")  # another channel has its own budget
    fake.rate_scale = 25  # chat.update: Tier 3 (50/min) becomes 2 per 2.4 s
    ts = fake.messages("C1")[0].ts
    client.chat_update(channel="C1", ts=ts, text="1")
    client.chat_update(channel="C1", ts=ts, text="2")
    with pytest.raises(SlackApiError) as info:
        client.chat_update(channel="C1", ts=ts, text="3")
    assert info.value.response.status_code == 429
    assert int(info.value.response.headers["Retry-After"]) in (1, 2, 3)
    assert [c.method for c in fake.ratelimited] == ["chat.postMessage", "chat.update"]


def test_retry_handler_honours_retry_after(fake: FakeSlack) -> None:
    client = WebClient(token=BOT, base_url=fake.api_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    fake.force_ratelimit("chat.postMessage", times=1, retry_after=1)
    started = time.monotonic()
    assert client.chat_postMessage(channel="C1", text="eventually")["ok"]
    assert time.monotonic() - started >= 1.0
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0


# -- triggers and views -----------------------------------------------------------------------


def test_trigger_id_is_single_use_and_expires(fake: FakeSlack, client: WebClient) -> None:
    trigger = fake.new_trigger_id("U1")
    assert client.views_open(trigger_id=trigger, view=modal())["view"]["id"].startswith("V")
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=modal()))["error"] == "exchanged_trigger_id"
    assert error_of(lambda: client.views_open(trigger_id="1.2.abc", view=modal()))["error"] == "invalid_trigger_id"
    fake.trigger_ttl = 0.2
    late = fake.new_trigger_id("U1")
    time.sleep(0.3)
    assert error_of(lambda: client.views_open(trigger_id=late, view=modal()))["error"] == "expired_trigger_id"
    aged = fake.new_trigger_id("U1")
    fake.expire_trigger(aged)
    assert error_of(lambda: client.views_open(trigger_id=aged, view=modal()))["error"] == "expired_trigger_id"


def test_views_update_push_and_hash(fake: FakeSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id=fake.new_trigger_id("U1"), view=modal())["view"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(private_metadata="2"))
    assert updated["view"]["hash"] != opened["hash"]
    stale = error_of(lambda: client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal()))
    assert stale["error"] == "hash_conflict"
    assert error_of(lambda: client.views_update(view_id="VNOPE", view=modal()))["error"] == "not_found"
    assert (
        error_of(lambda: client.views_push(trigger_id=fake.new_trigger_id("U1"), view=modal()))["error"] == "not_found"
    )
    for _ in range(2):
        client.views_push(trigger_id=fake.new_trigger_id("U1", view_id=opened["id"]), view=modal())
    full = error_of(lambda: client.views_push(trigger_id=fake.new_trigger_id("U1", view_id=opened["id"]), view=modal()))
    assert full["error"] == "push_limit_reached"
    fake.close_view(opened["id"])
    assert fake.open_views() == []
    assert error_of(lambda: client.views_update(view_id=opened["id"], view=modal()))["error"] == "not_found"


# -- response URLs ------------------------------------------------------------------------------


def test_response_url_takes_five_posts_in_thirty_minutes(fake: FakeSlack) -> None:
    url = fake.new_response_url(channel_id="C1", user_id="U1")
    for i in range(5):
        assert httpx.post(url, json={"text": f"step {i}"}).status_code == 200
    sixth = httpx.post(url, json={"text": "one too many"})
    assert (sixth.status_code, sixth.text) == (404, "used_url")
    assert [r["text"] for r in fake.responses(url)] == [f"step {i}" for i in range(5)]
    assert [m.text for m in fake.ephemerals("U1")] == [f"step {i}" for i in range(5)]
    old = fake.new_response_url(channel_id="C1", user_id="U1")
    fake.expire_response_url(old)
    assert (httpx.post(old, json={"text": "x"}).status_code, httpx.post(old, json={"text": "x"}).text) == (
        404,
        "expired_url",
    )
    assert httpx.post(fake.base_url + "/response/nope", json={"text": "x"}).status_code == 404
    bad = httpx.post(fake.new_response_url("C1", "U1"), json={"text": "t", "blocks": [section("x" * 3001)]})
    assert (bad.status_code, bad.text) == (400, "invalid_blocks")
    assert fake.calls_to("response_url")[-1].errors


def test_response_url_replaces_and_deletes_the_original(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C1", text="pending", blocks=[section("pending")])["ts"]
    url = fake.new_response_url(channel_id="C1", user_id="U1", message_ts=ts)
    httpx.post(url, json={"replace_original": True, "text": "done", "blocks": [section("done")]})
    assert [m.text for m in fake.messages("C1")] == ["done"]
    httpx.post(url, json={"response_type": "in_channel", "text": "for everyone"})
    assert [m.text for m in fake.messages("C1")] == ["done", "for everyone"]
    httpx.post(url, json={"delete_original": True})
    assert [m.text for m in fake.messages("C1")] == ["for everyone"]


# -- files ------------------------------------------------------------------------------------


def test_two_step_upload(fake: FakeSlack, client: WebClient) -> None:
    r = client.files_upload_v2(
        content="imapsync log\nline 2",
        filename="sync.log",
        title="Sync log",
        channel="C1",
        thread_ts="1.000001",
        initial_comment="log attached",
    )
    (f,) = fake.uploaded_files
    assert (f.id, f.content, f.title, f.channel_id, f.thread_ts) == (
        r["file"]["id"],
        b"imapsync log\nline 2",
        "Sync log",
        "C1",
        "1.000001",
    )
    assert fake.messages("C1")[-1].files == [f.id]
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "files.upload_url",
        "files.completeUploadExternal",
    ]
    reserved = client.files_getUploadURLExternal(filename="x.txt", length=3)
    body = error_of(lambda: client.files_completeUploadExternal(files=[{"id": reserved["file_id"]}], channel_id="C1"))
    assert body["error"] == "file_not_found"  # reserved but never uploaded
    assert httpx.post(fake.base_url + "/upload/v1/unknown", content=b"x").status_code == 404
    assert "imapsync log" in fake.all_text()


# -- recording ------------------------------------------------------------------------------


def test_wait_for_sees_calls_made_later_from_other_threads(fake: FakeSlack, client: WebClient) -> None:
    threading.Timer(0.2, lambda: client.chat_postMessage(channel="C1", text="later")).start()
    call = fake.wait_for("chat.postMessage", lambda c: c.args.get("text") == "later", timeout=3)
    assert call.ok and call.args["channel"] == "C1"
    with pytest.raises(AssertionError):
        fake.wait_for("chat.update", timeout=0.2)


# -- Socket Mode ------------------------------------------------------------------------------


def test_socket_mode_hello_and_envelope_ack_round_trip(fake: FakeSlack) -> None:
    received: list[str] = []
    sm = SocketModeClient(
        app_token=APP, web_client=WebClient(token=BOT, base_url=fake.api_url), auto_reconnect_enabled=False
    )
    sm.on_message_listeners.append(received.append)

    def answer(client: SocketModeClient, req: SocketModeRequest) -> None:
        payload = {"text": f"got {req.payload.get('text')}"} if req.type == "slash_commands" else None
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=payload))

    sm.socket_mode_request_listeners.append(answer)
    try:
        sm.connect()
        assert fake.socket_connected(timeout=3)
        form = command_form(
            "domains",
            user_id="U1",
            channel_id="C1",
            response_url=fake.new_response_url(),
            trigger_id=fake.new_trigger_id("U1"),
        )
        ack = fake.socket_send("slash_commands", form, timeout=3)
        assert ack["payload"] == {"text": "got domains"} and ack["envelope_id"] == fake.envelopes[0].envelope_id
        assert fake.envelopes[0].elapsed is not None and fake.envelopes[0].elapsed < 3
        assert [m.text for m in fake.ephemerals("U1")] == ["got domains"]  # applied like an HTTP ack
        assert fake.socket_send("events_api", {"event": {"type": "app_home_opened", "user": "U1"}}, timeout=3)
        # slack_sdk hands messages to listeners from a thread pool: "hello" came, in no fixed order
        assert "hello" in [json.loads(message)["type"] for message in received]
        # A Socket Mode URL is good for one connection.
        with pytest.raises(InvalidStatus) as refused:
            connect(sm.wss_uri, open_timeout=3)
        assert refused.value.response.status_code == 401
    finally:
        sm.close()


# -- the request driver ---------------------------------------------------------------------------


class Capture:
    """A stand-in bot endpoint: records raw requests, answers with `reply`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.reply: tuple[int, bytes, str] = (200, b"", "text/plain")
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                capture.requests.append(({k: v for k, v in self.headers.items()}, raw))
                status, body, ctype = capture.reply
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"


@pytest.fixture
def endpoint() -> Iterator[Capture]:
    capture = Capture()
    yield capture
    capture.server.shutdown()
    capture.server.server_close()


def test_driver_signs_like_slack(fake: FakeSlack, endpoint: Capture) -> None:
    slack = SlackDriver(endpoint.url, SECRET, fake)
    verifier = SignatureVerifier(SECRET)
    r = slack.command("domains list", user_id="U1", channel_id="C1")
    assert r.status_code == 200 and r.elapsed.total_seconds() < 3
    headers, raw = endpoint.requests[-1]
    assert verifier.is_valid_request(raw, headers)
    form = dict(parse_qsl(raw.decode()))
    assert list(form) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert (form["command"], form["text"], form["response_url"]) == ("/pm", "domains list", slack.last_response_url)
    slack.command("x", timestamp=int(time.time()) - 600)  # a replay: valid HMAC, stale timestamp
    assert not verifier.is_valid_request(*reversed(endpoint.requests[-1]))
    slack.command("x", signature="v0=" + "0" * 64)
    assert not verifier.is_valid_request(*reversed(endpoint.requests[-1]))
    slack.event({"type": "app_home_opened", "user": "U1", "tab": "home"}, event_id="Ev1", retry_num=1)
    headers, raw = endpoint.requests[-1]
    assert verifier.is_valid_request(raw, headers)
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    assert json.loads(raw)["event_id"] == "Ev1"


def test_driver_clicks_only_what_the_bot_sent(fake: FakeSlack, client: WebClient, endpoint: Capture) -> None:
    slack = SlackDriver(endpoint.url, SECRET, fake, user_id="U1", channel_id="C1")
    ts = client.chat_postMessage(
        channel="C1",
        text="Delete?",
        blocks=[
            section("Delete example.com?"),
            {"type": "actions", "block_id": "confirm", "elements": [button("Delete", "delete", "example.com")]},
        ],
    )["ts"]
    slack.block_action("delete", value="example.com")
    payload = json.loads(dict(parse_qsl(endpoint.requests[-1][1].decode()))["payload"])
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": "C1", "is_ephemeral": False}
    assert payload["actions"][0]["block_id"] == "confirm" and payload["actions"][0]["value"] == "example.com"
    assert payload["message"]["blocks"][1]["block_id"] == "confirm"
    with pytest.raises(LookupError):
        slack.block_action("delete", value="other.org")  # no such button in that message
    with pytest.raises(LookupError):
        slack.block_action("delete", message_ts="1.000001")  # no such message
    slack.block_action("never_sent", value="7")  # nothing in the fake to check: a made-up message
    payload = json.loads(dict(parse_qsl(endpoint.requests[-1][1].decode()))["payload"])
    assert "message" not in payload and payload["actions"][0]["value"] == "7"


def test_driver_submissions_apply_the_bots_answer(fake: FakeSlack, client: WebClient, endpoint: Capture) -> None:
    slack = SlackDriver(endpoint.url, SECRET, fake, user_id="U1")
    view = client.views_open(trigger_id=fake.new_trigger_id("U1"), view=modal(private_metadata="C1"))["view"]
    with pytest.raises(ValueError):
        slack.view_submission("add_domain", {})  # a required input left empty: Slack won't submit
    endpoint.reply = (
        200,
        json.dumps({"response_action": "errors", "errors": {"domain": "Not a domain"}}).encode(),
        "application/json",
    )
    slack.view_submission("add_domain", {"domain": {"value": "bad domain"}})
    payload = json.loads(dict(parse_qsl(endpoint.requests[-1][1].decode()))["payload"])
    assert payload["view"]["state"]["values"] == {
        "domain": {"value": {"type": "plain_text_input", "value": "bad domain"}}
    }
    assert payload["view"]["private_metadata"] == "C1" and payload["view"]["id"] == view["id"]
    assert fake.acks[-1].ok and [v.id for v in fake.open_views()] == [view["id"]]
    endpoint.reply = (200, b"", "text/plain")
    slack.view_submission("add_domain", {"domain": {"value": "example.com"}})
    assert fake.open_views() == []
    endpoint.reply = (200, b"Working on it", "text/plain")
    slack.command("domains add example.com", user_id="U1", channel_id="C1")
    assert [m.text for m in fake.ephemerals("U1")] == ["Working on it"]
