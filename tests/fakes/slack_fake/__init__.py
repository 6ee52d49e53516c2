"""A strict fake of Slack for tests: the Web API, response URLs, file uploads and Socket Mode,
over real HTTP and WebSocket on 127.0.0.1.

The bot's `slack_sdk.WebClient(base_url=fake.api_url)` talks to it exactly as it would talk to
slack.com, and the fake answers like Slack does, strictness included:

* tokens: no token is `not_authed`, an unknown one `invalid_auth`, a known token of the wrong
  kind (an `xapp-` token on a bot method, or the reverse) `not_allowed_token_type`. Tokens in a
  JSON body are ignored, as Slack ignores them (use the `Authorization` header).
* Block Kit: every message, view and response-URL body is checked against the limits of the
  project's Slack reference (see `BlockKitChecker`) and `slack_sdk.models` validation. Messages
  answer `invalid_blocks` with `errors`, views answer `invalid_arguments` with
  `response_metadata.messages`, as Slack does. `blocks` without `text` is accepted but recorded
  as the `missing_text` warning.
* rate limits: a sliding window per method (per channel for chat.postMessage). Over the limit is
  HTTP 429 with `Retry-After`. `rate_scale` tightens every window; `force_ratelimit` forces one.
* trigger ids are single use and expire after `trigger_ttl` (3 s); response URLs take 5 posts
  in 30 minutes; views keep a stack (3 deep) and a hash.

    fake = FakeSlack(bot_token="xoxb-test", app_token="xapp-test")
    fake.start()              # HTTP and WebSocket servers on free loopback ports
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    ...                       # fake.calls, fake.messages("C1"), fake.wait_for("chat.update")
    fake.reset()              # forget everything; default switches (between tests)
    fake.stop()

Where Slack's exact wording or behaviour is not documented, the choice is marked "guess".

Its parts: `fake` (FakeSlack: state, set-up, inspection, acknowledgements), `web_api` (the
methods), `socket_mode`, `rate_limits`, `http_handler` (the HTTP routes), `records` (what it
remembers) and `block_kit` (the Block Kit checker, usable on its own).
"""

from tests.fakes.slack_fake.block_kit import BlockKitChecker, check_message_blocks, check_view, find_element
from tests.fakes.slack_fake.fake import FakeSlack, iter_strings
from tests.fakes.slack_fake.rate_limits import RATE_LIMITS, Window, scaled
from tests.fakes.slack_fake.records import (
    ACK_DEADLINE,
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    Ack,
    Call,
    Message,
    ResponseUrl,
    SlackError,
    SocketEnvelope,
    Trigger,
    UploadedFile,
    ViewRecord,
)

__all__ = [
    "ACK_DEADLINE", "APP_ID", "BOT_ID", "BOT_USER_ID", "RATE_LIMITS", "TEAM_DOMAIN", "TEAM_ID",
    "Ack", "BlockKitChecker", "Call", "FakeSlack", "Message", "ResponseUrl", "SlackError", "SocketEnvelope",
    "Trigger", "UploadedFile", "ViewRecord", "Window", "check_message_blocks", "check_view", "find_element",
    "iter_strings", "scaled",
]
