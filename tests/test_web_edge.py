"""The web process's public edge, driven as the internet would: /slack/events takes no body
over 1 MiB, and a request Bolt refuses (a wrong signature, a stale timestamp) leaves its
body, modal passwords and all, in no log; /healthz never keeps its askers waiting on a
store that stalls."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import quote, quote_plus, urlencode

import httpx
import pytest

from bot.web import HEALTH_CACHE_SECONDS
from purelyops.runtime import Runtime
from purelyops.settings import Settings
from tests.conftest import SIGNING_SECRET, BotServer, free_port, process_env, wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.pg_stall import StallingProxy
from tests.slack_requests import SlackDriver, sign

# One word that reads the same raw, URL-encoded and JSON-escaped, in a password that does not.
CANARY = "zq7781canary"
PASSWORD = f"Pa55 w0rd&{CANARY}!"
LIMIT = 2**20


def web_process(settings: Settings, spawn, **env: str) -> tuple[str, object]:
    port = free_port()
    proc = spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port), **env))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, what="the web process")
    return url, proc


def stopped_log(proc) -> str:
    """Everything the process wrote (stdout and stderr), once it has stopped."""
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(15)
    with open(proc.log_path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def password_submission(driver: SlackDriver, **sign_opts) -> httpx.Response:
    """A `migrate` modal submitted with a source and a destination password."""
    state = {"source_password": {"value": {"type": "plain_text_input", "value": PASSWORD}},
             "dest_password": {"value": {"type": "plain_text_input", "value": PASSWORD}},
             "source_email": {"value": {"type": "plain_text_input", "value": "alice@old.example"}}}
    return driver.view_submission("migrate", state, **sign_opts)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_refused_modal_leaves_its_passwords_in_no_log(settings: Settings, slack_fake: FakeSlack, spawn,
                                                        level: str) -> None:
    url, proc = web_process(settings, spawn, LOG_LEVEL=level)
    driver = SlackDriver(url + "/slack/events", SIGNING_SECRET, slack_fake)
    # A signing secret being rotated: signed, but with another secret.
    rotated = SlackDriver(url + "/slack/events", "the-next-signing-secret-0000", slack_fake)
    assert password_submission(rotated).status_code == 401
    # A forged signature, and a clock 6 minutes off (signed right, too old).
    assert password_submission(driver, signature="v0=" + "1" * 64).status_code == 401
    assert password_submission(driver, timestamp=int(time.time()) - 360).status_code == 401
    assert driver.command("help").status_code == 200  # the process is up and logging
    log = stopped_log(proc)
    for form in (CANARY, PASSWORD, quote_plus(PASSWORD), quote(PASSWORD), json.dumps(PASSWORD)):
        assert form not in log
    assert "payload=" not in log and "view_submission" not in log


def test_a_body_over_1_mib_is_refused_before_anyone_reads_it(settings: Settings, slack_fake: FakeSlack,
                                                             spawn) -> None:
    url, proc = web_process(settings, spawn)
    events = url + "/slack/events"
    big = urlencode({"command": "/pm", "text": "help", "filler": CANARY + "x" * (2 * LIMIT)}).encode()
    ts = str(int(time.time()))
    signed = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
              "X-Slack-Signature": sign(SIGNING_SECRET, ts, big)}
    with httpx.Client(timeout=30) as client:
        # Declared: refused by its Content-Length, even signed right.
        response = client.post(events, content=big, headers=signed)
        assert response.status_code == 413
        # Sent chunked, with no length: refused once 1 MiB + 1 byte has come.
        response = client.post(events, content=(big[i:i + 65536] for i in range(0, len(big), 65536)), headers=signed)
        assert response.status_code == 413
        # Exactly the limit is still read (and refused for its signature, as any forged body).
        at_limit = b"x" * LIMIT
        assert client.post(events, content=at_limit, headers=signed).status_code == 401
    # Slack's own requests still pass, the connection handling intact.
    driver = SlackDriver(events, SIGNING_SECRET, slack_fake)
    assert driver.command("help").status_code == 200
    assert CANARY not in stopped_log(proc)


# Content-Length values a client may send, as bytes on the wire: digits that are not ASCII
# (b"\xb2" is "²" to a server that reads headers as Latin-1, as WSGI's do), signs, spaces,
# other notations.
ODD_LENGTHS = [b"\xb2", b"\xb9\xb2\xb3", "５".encode(), "²".encode(), "٥".encode(), b"+5", b"-1", b"5 5", b"0x5",
               b"5.0", b"1e3", b"5,5"]


def post_with_length(url: str, length: bytes) -> int:
    """The status of a POST to /slack/events that declares `length` as its Content-Length
    (and sends 5 bytes), over a raw socket: no client library would send most of these."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: " + length +
                     b"\r\nConnection: close\r\n\r\nhello")
        answer = b""
        while b"\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_an_odd_content_length_is_400_never_a_500(settings: Settings, slack_fake: FakeSlack, spawn, capfd) -> None:
    """Whichever server hands the request on: gunicorn refuses most of these itself; a WSGI
    server that passes them through (the standard library's, here) reaches size_limited,
    which takes only ASCII digits."""
    url, proc = web_process(settings, spawn)
    for length in ODD_LENGTHS:
        assert post_with_length(url, length) == 400, length
    # Spaces around the digits are no part of the value (RFC 9110): a length of 5, read as one.
    assert post_with_length(url, b" 5 ") == 401  # read, and refused for its signature as any forged body
    assert "Traceback" not in stopped_log(proc)

    bot = BotServer(Runtime(settings))
    try:
        for length in ODD_LENGTHS:
            assert post_with_length(bot.url, length) == 400, length
        assert post_with_length(bot.url, b" 5 ") == 401
    finally:
        bot.close()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_healthz_askers_never_wait_for_a_check_that_a_stalled_store_holds(settings: Settings, spawn) -> None:
    """PostgreSQL stalls (a proxy that forwards nothing): the one /healthz that checks waits
    for it, and every other asker meanwhile gets the last answer at once, so that a few
    dozen public /healthz requests never hold the threads that answer Slack; once the check
    has waited longer than an answer lives, "not ok", at once too."""
    proxy = StallingProxy(("127.0.0.1", 5432))
    try:
        stalling = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        url, _ = web_process(settings, spawn, DATABASE_URL=stalling, WEB_WORKERS="1")
        proxy.stall()
        time.sleep(HEALTH_CACHE_SECONDS + 0.5)  # the last answer is due: the next asker checks again

        def ask() -> tuple[int, str]:
            response = httpx.get(url + "/healthz", timeout=60)
            return response.status_code, response.text

        with ThreadPoolExecutor(41) as pool:
            checker = pool.submit(ask)
            asked = time.monotonic()
            time.sleep(0.5)  # its check is under way, waiting on PostgreSQL
            askers = [pool.submit(ask) for _ in range(40)]
            done, _ = wait(askers, timeout=HEALTH_CACHE_SECONDS)
            answered = [future.result() for future in done]
            time.sleep(max(0.0, asked + HEALTH_CACHE_SECONDS + 1 - time.monotonic()))
            late = pool.submit(ask).result(timeout=1)
            waiting = checker.running()
            proxy.resume()
            assert checker.result(timeout=30)[0] == 200  # its check ends once PostgreSQL answers
        assert waiting
        assert answered == [(200, "ok\n")] * 40  # the last answer, at once, while the check waited
        assert late == (503, "not ok\n")  # the store has not answered for longer than an answer lives
    finally:
        proxy.close()
