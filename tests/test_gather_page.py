"""The public side of a credential link, as the people who receive it meet it: a real
headless Chromium fills the form by its labels against a real Dovecot, and plain HTTP
checks every status, header and limit; two real web processes share one rate limit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import update

from bot.gather_page import client_ip
from db.models import GatherLink
from db.session import session_scope
from purelyops import crypto, gather, servers
from purelyops.runtime import Runtime
from tests.conftest import (
    ADMIN,
    APP_TOKEN,
    OPS,
    ROOT,
    SIGNING_SECRET,
    free_port,
    make_settings,
    process_env,
    wait_until,
)
from tests.fakes.slack_fake import FakeSlack
from tests.gather_steps import (
    NEW_PEOPLE,
    PEOPLE,
    WebServer,
    add_old_server,
    answer,
    csp_violations,
    dovecot,
    fill_in,
    link_row,
    new_link,
    page_text,
    press,
    run_browser,
    run_new_server,
    run_old_server,
    submission_rows,
)
from tests.slack_requests import SlackDriver

old_server = pytest.fixture(run_old_server, name="old_server")
new_server = pytest.fixture(run_new_server, name="new_server")
browser = pytest.fixture(run_browser, scope="module", name="browser")

SCREENSHOT = ROOT / "docs" / "gather-form.png"  # written when PURELYOPS_SCREENSHOTS is set


@pytest.fixture
def web_port() -> int:
    return free_port()


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, web_port, new_server):
    # PurelyMail's IMAP server is a local Dovecot here: the form proves a new mailbox's password on it.
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake,
                         public_url=f"http://127.0.0.1:{web_port}/", tz="Europe/Berlin",
                         purelymail_imap_port=new_server.port, purelymail_imap_tls=False)


@pytest.fixture
def bot(rt: Runtime, web_port: int) -> WebServer:
    server = WebServer(rt, web_port)
    yield server
    server.close()


@pytest.fixture
def link(slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime, old_server) -> str:
    add_old_server(slack, slack_fake, old_server)
    return new_link(slack, slack_fake, rt)


def headers_are_safe(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


# ---- in a real browser ------------------------------------------------------------------------


def test_a_person_fills_the_form_in_a_browser_and_is_thanked(link: str, browser, rt: Runtime, tmp_path: Path) -> None:
    browser.get(link)
    assert browser.title == "Move your mailbox: Acme IT"
    text = page_text(browser)
    assert "Acme IT asks for the login of your old mailbox" in text
    assert "This form is open until" in text and "(Europe/Berlin)" in text
    assert browser.execute_script(  # the stylesheet loaded (CSP allows it): the card has its border
        "return getComputedStyle(document.querySelector('main')).borderTopStyle") == "solid"

    fill_in(browser, {"Full name": "Alice Liddell", "Email address": "alice@old.example",
                      "Password": "not-her-password"})
    # The README's screenshot: the form as a person sees it, filled in, before Submit.
    browser.set_window_size(720, 1240)
    shot = tmp_path / "gather-form.png"
    browser.get_screenshot_as_file(str(shot))
    if os.environ.get("PURELYOPS_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot.read_bytes())
    browser.set_window_size(820, 1200)
    press(browser, "Submit")
    text = page_text(browser)
    assert "We could not log in with these details." in text and "could not log in" in text
    assert "not-her-password" not in browser.page_source
    password = browser.find_element("id", "password")
    assert password.get_attribute("aria-invalid") == "true"
    assert "password-error" in password.get_attribute("aria-describedby")  # the error sits by its field
    assert submission_rows(rt) == []

    fill_in(browser, {"Password": PEOPLE["alice@old.example"], "New address (optional)": "alice@new.example"})
    press(browser, "Submit")
    assert browser.find_element("tag name", "h1").text == "Thank you"
    assert "Thank you, Alice Liddell. The login of alice@old.example worked" in page_text(browser)
    assert csp_violations(browser) == []
    (row,) = submission_rows(rt)
    assert (row.email, row.full_name, row.new_address) == ("alice@old.example", "Alice Liddell", "alice@new.example")

    browser.get(link)  # the same person again
    fill_in(browser, {"Full name": "Alice", "Email address": "ALICE@old.example",
                      "Password": PEOPLE["alice@old.example"]})
    press(browser, "Submit")
    assert browser.find_element("tag name", "h1").text == "Already submitted"


def test_the_form_reads_well_on_a_phone(link: str, browser) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 375, "height": 740, "deviceScaleFactor": 2, "mobile": True})
    try:
        browser.get(link)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        width = browser.execute_script("return document.getElementById('email').getBoundingClientRect().width")
        assert width > 280  # the inputs use the phone's width
        assert browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)") >= 16
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_labels_are_tied_to_their_inputs(link: str, browser) -> None:
    browser.get(link)
    labels = browser.execute_script(
        "return [...document.querySelectorAll('label')].map(l => [l.textContent.trim(), l.control && l.control.name])")
    assert labels == [["Full name", "full_name"], ["Email address", "email"], ["Password", "password"],
                      ["New address (optional)", "new_address"],
                      ["New mailbox password (optional)", "new_password"]]
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    assert browser.execute_script("return document.documentElement.lang") == "en"


# ---- every status, over HTTP ------------------------------------------------------------------


def test_the_form_and_its_stylesheet_carry_the_safety_headers(link: str) -> None:
    page = httpx.get(link)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    headers_are_safe(page)
    assert "<script" not in page.text and "http" not in page.text.split("<body>")[1]  # nothing from elsewhere
    assert urlsplit(link).path.split("/")[-1] not in page.text  # the token is not even in the page
    css = httpx.get(link.rsplit("/", 1)[0] + "/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    headers_are_safe(css)


def test_unknown_and_malformed_links_are_404(link: str) -> None:
    base = link.rsplit("/", 1)[0]
    for path in ("/" + "A" * 43, "/short", "/" + "A" * 43 + "/extra", "/style.css/x"):
        response = httpx.get(base + path)
        assert response.status_code == 404, path
        headers_are_safe(response)
        assert "This link is not valid" in response.text
    response = answer(base + "/" + "B" * 43)
    assert response.status_code == 404


def test_a_wrong_password_is_422_and_nothing_is_stored(link: str, rt: Runtime) -> None:
    response = answer(link, password="wrong-password-xyz", new_password="new-secret-abc")
    assert response.status_code == 422
    headers_are_safe(response)
    assert "could not log in" in response.text
    assert "wrong-password-xyz" not in response.text and "new-secret-abc" not in response.text
    assert 'value="alice@old.example"' in response.text  # what is not secret is kept for the next try
    assert submission_rows(rt) == []


def test_bad_fields_are_named_next_to_the_field(link: str, rt: Runtime) -> None:
    response = answer(link, full_name="", email="not an address", password="", new_address="x@@y")
    assert response.status_code == 422
    html = response.text
    for name, words in (("full_name", "Enter your full name."),
                        ("email", "Enter the address of your old mailbox"),
                        ("password", "Enter the password of your old mailbox."),
                        ("new_address", "Enter a full address")):
        error = html.index(f'id="{name}-error"')
        assert words in html[error:error + 300]
        assert html.index(f'<label for="{name}"') < error < html.index(f'<input id="{name}"')
        assert f'aria-describedby="{name}-hint {name}-error"' in html or f'aria-describedby="{name}-error"' in html
    too_long = answer(link, full_name="x" * 201)
    assert too_long.status_code == 422 and "at most 200 characters" in too_long.text
    assert submission_rows(rt) == []


def test_a_body_over_16_kib_is_refused(link: str, rt: Runtime) -> None:
    response = httpx.post(link, content=b"full_name=" + b"x" * (16 * 1024), timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    headers_are_safe(response)
    assert httpx.put(link, content=b"x").status_code == 405
    assert httpx.post(link, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
    assert submission_rows(rt) == []


def test_an_accepted_login_is_stored_encrypted_and_the_same_address_again_is_409(link: str, rt: Runtime) -> None:
    response = answer(link, email="carol@old.example", full_name="Carol  Smith", new_address="bob@new.example",
                      new_password=NEW_PEOPLE["bob@new.example"])
    assert response.status_code == 200, response.text
    headers_are_safe(response)
    assert "Thank you, Carol Smith." in response.text
    (row,) = submission_rows(rt)
    assert PEOPLE["carol@old.example"].encode() not in row.ciphertext
    assert crypto.decrypt(rt.settings.credential_keys, row.key_id, row.ciphertext, f"gather-submission:{row.id}") == \
        {"source": PEOPLE["carol@old.example"], "dest": NEW_PEOPLE["bob@new.example"]}
    assert row.dest_proven == "bob@new.example"  # proven by a login at PurelyMail's IMAP server
    with pytest.raises(crypto.CredentialsUnreadable):  # bound to its row
        crypto.decrypt(rt.settings.credential_keys, row.key_id, row.ciphertext, f"gather-submission:{row.id + 1}")
    again = answer(link, email="Carol@Old.Example", password="anything")
    assert again.status_code == 409 and "Already submitted" in again.text
    assert len(submission_rows(rt)) == 1
    # Asking again and again who already submitted is limited like failed logins.
    statuses = [answer(link, email="carol@old.example", password="anything").status_code for _ in range(5)]
    assert statuses == [409] * 4 + [429]


def test_closed_and_expired_links_are_410(link: str, rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    link_id = link_row(rt).id
    with session_scope(rt.database_url) as session:
        session.execute(update(GatherLink).where(GatherLink.id == link_id)
                        .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    for response in (httpx.get(link), answer(link)):
        assert response.status_code == 410 and "This form has closed" in response.text
        headers_are_safe(response)
    with session_scope(rt.database_url) as session:
        session.execute(update(GatherLink).where(GatherLink.id == link_id)
                        .values(expires_at=datetime.now(timezone.utc) + timedelta(days=1)))
    assert httpx.get(link).status_code == 200
    slack.command(f"gather close {link_id}")
    slack_fake.wait_for("response_url", lambda c: "is closed" in str(c.args.get("text")))
    assert httpx.get(link).status_code == 410
    assert answer(link).status_code == 410
    assert submission_rows(rt) == []


def test_an_old_server_that_does_not_answer_is_503_and_not_counted(link: str, rt: Runtime, old_server) -> None:
    old_server.stop()
    for _ in range(7):
        response = answer(link, password="whatever-1")
        assert response.status_code == 503 and "could not be reached" in response.text
        assert response.headers["retry-after"] == "60"
    assert submission_rows(rt) == []


# ---- the rate limit, shared by two web processes -----------------------------------------------


def test_too_many_failures_are_429_across_two_web_processes(settings, slack_fake: FakeSlack, old_server, spawn,
                                                           rt: Runtime) -> None:
    ports = [free_port(), free_port()]
    procs = [spawn([sys.executable, "-m", "bot"],
                   process_env(settings, PORT=str(port), PUBLIC_URL=f"http://127.0.0.1:{ports[0]}", LOG_LEVEL="DEBUG",
                               FORWARDED_FOR_HOPS="1", PURELYMAIL_IMAP_PORT=str(settings.purelymail_imap_port),
                               PURELYMAIL_IMAP_TLS="false"))
             for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        wait_until(lambda url=url: httpx.get(url + "/healthz").status_code == 200, what="a web process")
    driver = SlackDriver(urls[0] + "/slack/events", SIGNING_SECRET, slack_fake, user_id=ADMIN, channel_id=OPS)
    add_old_server(driver, slack_fake, old_server)
    link = new_link(driver, slack_fake, rt)
    token = link.rsplit("/", 1)[1]
    on = [f"{url}/gather/{token}" for url in urls]

    # From one address (as the admin's proxy appends it; what the client sent stays to its left): five
    # failures, whichever process answers.
    office = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    for n in range(5):
        assert answer(on[n % 2], email="bob@old.example", password=f"bad-{n}", headers=office).status_code == 422
    for url in on:  # the sixth try, on either process: even the right password waits
        refused = answer(url, email="bob@old.example", headers=office)
        assert refused.status_code == 429 and "Too many attempts" in refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 900
        headers_are_safe(refused)
    # The same IP is refused for another address too; another IP with another address is not.
    assert answer(on[1], email="dave@old.example", headers=office).status_code == 429
    assert answer(on[1], email="dave@old.example", headers={"X-Forwarded-For": "198.51.100.9"}).status_code == 200

    # One address, from five different IPs: its sixth try is refused too, from any IP.
    for n in range(5):
        response = answer(on[n % 2], email="alice@old.example", password=f"bad-{n}",
                          headers={"X-Forwarded-For": f"192.0.2.{n + 1}"})
        assert response.status_code == 422
    assert answer(on[0], email="alice@old.example", headers={"X-Forwarded-For": "192.0.2.99"}).status_code == 429
    # The same address spelt differently (case, the root's dot) is the same address.
    assert answer(on[1], email="ALICE@Old.Example.", password=PEOPLE["alice@old.example"],
                  headers={"X-Forwarded-For": "192.0.2.98"}).status_code == 429
    # An IPv6 client is counted per /64: five failures from five addresses of one network.
    for n in range(5):
        response = answer(on[n % 2], email=f"nobody{n}@old.example", password="bad",
                          headers={"X-Forwarded-For": f"2001:db8:1:2:{n + 1:x}::{n + 7:x}"})
        assert response.status_code == 422
    assert answer(on[0], email="carol@old.example", headers={"X-Forwarded-For": "2001:db8:1:2:ffff::1"}).status_code \
        == 429
    # Without the address our proxy appends (the port reached directly), nothing is tried.
    direct = answer(on[0], email="carol@old.example")
    assert direct.status_code == 400

    # Nothing secret in either process's log: no token, no password typed.
    logs = "".join(Path(proc.log_path).read_text() for proc in procs)
    assert token not in logs
    assert not [p for p in [*PEOPLE.values(), "bad-0", "bad-4"] if p in logs]
    assert [s.email for s in submission_rows(rt)] == ["dave@old.example"]


@pytest.mark.timeout(240)
def test_a_web_process_whose_clock_runs_20_minutes_ahead_keeps_both_shared_limits(
        settings, spawn, rt: Runtime, old_server, slow_server) -> None:
    """Two web processes, one on the true clock and one 20 minutes ahead (Debian's faketime,
    the monotonic clock left alone): Redis' clock decides, so the one ahead frees none of the
    other's login checks in flight, forgets none of its failures, and locks out no longer
    than FAIL_WINDOW_S."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed")
    ports = [free_port(), free_port()]
    common = dict(PUBLIC_URL=f"http://127.0.0.1:{ports[0]}", FORWARDED_FOR_HOPS="1")
    spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(ports[0]), **common))
    site = os.pathsep.join([str(ROOT / "tests" / "faketime_site"), str(ROOT)])  # time.sleep despite libfaketime
    spawn(["faketime", "-f", "+1200s", sys.executable, "-m", "bot"],
          process_env(settings, PORT=str(ports[1]), DONT_FAKE_MONOTONIC="1", PYTHONPATH=site, **common))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        wait_until(lambda url=url: httpx.get(url + "/healthz").status_code == 200, 30, "a web process")
    ahead_by = parsedate_to_datetime(httpx.get(urls[1] + "/healthz").headers["date"]) - datetime.now(timezone.utc)
    assert timedelta(minutes=19) < ahead_by < timedelta(minutes=21)  # its own clock, as its Date header says
    links = {}
    for name, imap in (("slow", slow_server), ("fast", old_server)):
        server, _ = servers.add_server(rt, servers.ServerSpec(name, "127.0.0.1", imap.port, "none"), actor_id=ADMIN)
        _, token, _ = gather.create_link(rt, server.id, 7, "", actor_id=ADMIN, actor_name="admin", channel_id=OPS,
                                         idempotency_key=name, dest_domains=["new.example"])
        links[name] = [f"{url}/gather/{token}" for url in urls]
    on_time, ahead = 0, 1

    # Every login check is under way on the true clock's process (wrong passwords, 3 s each)...
    with ThreadPoolExecutor(gather.CHECK_SLOTS) as pool:
        checks = [pool.submit(answer, links["slow"][on_time], email=f"person{n}@old.example", password="wrong",
                              headers={"X-Forwarded-For": f"192.0.2.{n + 1}"}) for n in range(gather.CHECK_SLOTS)]
        wait_until(lambda: rt.redis.zcard(gather.CHECK_SLOTS_KEY) == gather.CHECK_SLOTS, 10, "the checks")
        # ...and the process ahead, which reads their slots by Redis' clock, finds none free.
        busy = answer(links["slow"][ahead], email="bob@old.example", password="wrong",
                      headers={"X-Forwarded-For": "198.51.100.1"})
        assert busy.status_code == 503 and "The form is busy" in busy.text
        assert [check.result().status_code for check in checks] == [422] * gather.CHECK_SLOTS

    # Failures counted by one process are counted by the other, for the same 15 minutes.
    for address, counted, asked in (("alice@old.example", on_time, ahead), ("carol@old.example", ahead, on_time)):
        for n in range(gather.FAIL_LIMIT):
            response = answer(links["fast"][counted], email=address, password=f"bad-{n}",
                              headers={"X-Forwarded-For": f"203.0.113.{n + 1}"})
            assert response.status_code == 422
        refused = answer(links["fast"][asked], email=address, headers={"X-Forwarded-For": "203.0.113.99"})
        assert refused.status_code == 429, (address, refused.status_code)
        assert 0 < int(refused.headers["retry-after"]) <= gather.FAIL_WINDOW_S, address
    assert submission_rows(rt) == []


def test_the_client_address_has_one_source() -> None:
    # FORWARDED_FOR_HOPS=0: the TCP peer, whatever the headers say.
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7",
                      "HTTP_X_REAL_IP": "203.0.113.8"}) == "127.0.0.1"
    # N: the Nth address from the right of X-Forwarded-For (what the client wrote is further left).
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}, 1) == "203.0.113.7"
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7, 10.0.0.2"},
                     2) == "203.0.113.7"
    # No other header and no fallback: too few hops, or junk where the address should be, is None.
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "203.0.113.8"}, 1) is None
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, 2) is None
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "junk"}, 1) is None
    # IPv6 per /64; an IPv4-mapped address is its IPv4 address.
    assert client_ip({"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}) == client_ip({"REMOTE_ADDR": "2001:db8:1:2::9"}) == \
        "2001:db8:1:2::/64"
    assert client_ip({"REMOTE_ADDR": "2001:db8:1:3::1"}) != client_ip({"REMOTE_ADDR": "2001:db8:1:2::1"})
    assert client_ip({"REMOTE_ADDR": "::ffff:203.0.113.7"}) == "203.0.113.7"


# (FORWARDED_FOR_HOPS, the X-Forwarded-For header lines a request comes with, as bytes or
# words, and the address its attempts count against: None, refused in words).
HOSTILE_FORWARDED_FOR = [
    (1, [], None), (1, [""], None), (1, ["unknown"], None), (1, ["203.0.113.1, evil"], None),
    (1, ["evil, 198.51.100.1"], "198.51.100.1"), (1, ["198.51.100.2:80"], None), (1, ["[2001:db8::1]:443"], None),
    (1, ["[::1]"], "::/64"), (1, ["[2001:db8:1:2::7]"], "2001:db8:1:2::/64"), (1, ["fe80::1%eth0"], "fe80::/64"),
    (1, ["::ffff:198.51.100.3"], "198.51.100.3"), (1, ["6.6.6.6 ,\t 198.51.100.4"], "198.51.100.4"),
    (1, ["198.51.100.5,"], None), (1, [", ".join(f"10.{n // 250}.{n % 250}.1" for n in range(600)) + ", 198.51.100.6"],
                                   "198.51.100.6"),
    (1, ["\u00e9vil, 198.51.100.7".encode("latin-1")], "198.51.100.7"), (1, ["198.51.100.8, \u00e9".encode()], None),
    (1, ["\uff11.\uff12.\uff13.\uff14".encode()], None), (1, ["01.2.3.4"], None), (1, ["0x7f.1"], None),
    # The client's own header line first, then the one the proxy appends: one list, the proxy's last.
    (1, ["6.6.6.6", "198.51.100.9"], "198.51.100.9"),
    (2, ["198.51.100.10"], None), (2, ["6.6.6.6, 198.51.100.11, 10.0.0.2"], "198.51.100.11"),
    (2, ["unknown, 10.0.0.2"], None), (2, ["[::1], 10.0.0.2"], "::/64"), (2, [", 10.0.0.2"], None),
    (2, ["198.51.100.12, garbage"], "198.51.100.12"),
]


def test_hostile_x_forwarded_for_keys_one_address_or_is_refused_in_words(settings, spawn, rt: Runtime,
                                                                         old_server) -> None:
    """Behind one proxy and behind two, through gunicorn as deployed: whatever a client puts
    in X-Forwarded-For, a post counts against one well-defined address (an IPv6 one's /64)
    or is refused in words, never a 500; what the client wrote to the left of what the
    proxies append never changes the address."""
    urls, procs = {}, []
    for hops in (1, 2):
        port = free_port()
        urls[hops] = f"http://127.0.0.1:{port}"
        procs.append(spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port), PUBLIC_URL=urls[hops],
                                                                      FORWARDED_FOR_HOPS=str(hops))))
    for url in urls.values():
        wait_until(lambda url=url: httpx.get(url + "/healthz").status_code == 200, 30, "a web process")
    server, _ = servers.add_server(rt, servers.ServerSpec("oldhost", "127.0.0.1", old_server.port, "none"),
                                   actor_id=ADMIN)
    _, token, _ = gather.create_link(rt, server.id, 7, "", actor_id=ADMIN, actor_name="admin", channel_id=OPS,
                                     idempotency_key="forwarded", dest_domains=["new.example"])
    posts = iter(range(1000))

    def post(hops: int, lines: list[str | bytes]) -> httpx.Response:
        """A wrong password, from an address of its own: only the IP's count can refuse it."""
        return httpx.post(f"{urls[hops]}/gather/{token}", timeout=30,
                          data={"full_name": "A Person", "email": f"person{next(posts)}@old.example",
                                "password": "wrong"},
                          headers=[("X-Forwarded-For", line) for line in lines])

    def counted(address: str) -> int:
        return rt.redis.zcard(f"purelyops:gather:failures:ip:{gather._digest(address)}")

    for hops, lines, address in HOSTILE_FORWARDED_FOR:
        before = counted(address) if address else 0
        response = post(hops, lines)
        if address is None:
            assert response.status_code == 400 and "The form could not be sent" in response.text, (hops, lines)
        else:
            assert response.status_code == 422, (hops, lines, response.status_code)
            assert counted(address) == before + 1, (hops, lines, address)
    # A header longer than gunicorn reads (8190 bytes) is refused by gunicorn itself, in its words.
    assert post(1, [", ".join(["203.0.113.2"] * 800)]).status_code == 431

    # What is made up to the left never changes the address: the sixth failure is refused.
    for hops, ours in ((1, "203.0.113.7"), (2, "203.0.113.8, 10.0.0.2")):
        for made_up in ("6.6.6.6", "unknown", "[::1]", "\u00e9", ", ".join(["192.0.2.1"] * 50)):
            assert post(hops, [f"{made_up}, {ours}".encode()]).status_code == 422
        refused = post(hops, [f"9.9.9.9, {ours}"])
        assert refused.status_code == 429 and "Too many attempts" in refused.text, hops
    assert submission_rows(rt) == []
    assert not [proc for proc in procs if "Traceback" in Path(proc.log_path).read_text(errors="replace")]


def test_a_made_up_x_forwarded_for_per_request_still_reaches_too_many_attempts(link: str, rt: Runtime) -> None:
    """FORWARDED_FOR_HOPS unset: every post counts against its TCP peer, whatever it claims."""
    statuses = [answer(link, email=f"someone{n}@old.example", password=f"guess-{n}",
                       headers={"X-Forwarded-For": f"203.0.113.{n + 1}", "X-Real-IP": f"198.51.100.{n + 1}"}
                       ).status_code for n in range(6)]
    assert statuses == [422] * 5 + [429]


def test_an_address_that_imap_would_read_differently_is_refused_or_normalised(link: str, rt: Runtime) -> None:
    for typed in ('"alice@old.example"', "alice\\@old.example", "ali ce@old.example", "alice@old.example\x00"):
        response = answer(link, email=typed, password=PEOPLE["alice@old.example"])
        assert response.status_code == 422 and "without quotes or spaces" in response.text, typed
    assert submission_rows(rt) == []
    assert answer(link, email="alice@OLD.Example.", password=PEOPLE["alice@old.example"]).status_code == 200
    (row,) = submission_rows(rt)
    assert row.email == "alice@old.example"
    assert answer(link, email="alice@old.example", password="anything").status_code == 409


def test_a_new_address_outside_the_links_domains_is_refused(link: str, rt: Runtime) -> None:
    page = httpx.get(link)
    assert "It ends in @new.example." in page.text
    response = answer(link, email="bob@old.example", new_address="ceo@corp.example")
    assert response.status_code == 422 and "Your new address must end in @new.example" in response.text
    assert submission_rows(rt) == []


@pytest.fixture
def slow_server() -> Iterator:
    """A Dovecot that answers a wrong password after 3 s (auth_failure_delay), as real servers delay them."""
    yield from dovecot(PEOPLE, auth_failure_delay=3)


def test_a_server_that_delays_wrong_passwords_still_reaches_too_many_attempts(
        slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime, slow_server, monkeypatch) -> None:
    monkeypatch.setattr(gather, "LOGIN_CHECK_TIMEOUT", 1.5)  # shorter than the server's delay
    add_old_server(slack, slack_fake, slow_server)
    link = new_link(slack, slack_fake, rt)
    for n in range(5):
        response = answer(link, email="bob@old.example", password=f"wrong-{n}")
        assert response.status_code == 422, response.text
        assert "The login did not succeed" in response.text and "could not be reached" not in response.text
    refused = answer(link, email="bob@old.example")
    assert refused.status_code == 429 and "Too many attempts" in refused.text
    assert submission_rows(rt) == []


class HangsUpOnLogin:
    """An IMAP server that greets, and drops the connection as soon as a login arrives."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"* OK IMAP4rev1 ready\r\n")
                conn.settimeout(5)
                try:
                    for line in conn.makefile("rb"):
                        tag, _, command = line.partition(b" ")
                        if command.upper().startswith(b"CAPABILITY"):
                            conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                        else:  # LOGIN (or anything else): hang up, with a reset (as a dropped link reads)
                            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            break
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_a_connection_dropped_once_the_login_was_sent_is_a_failed_attempt(
        slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime) -> None:
    hangs_up = HangsUpOnLogin()
    try:
        add_old_server(slack, slack_fake, hangs_up)
        link = new_link(slack, slack_fake, rt)
        for n in range(5):
            response = answer(link, email="bob@old.example", password=f"wrong-{n}")
            assert response.status_code == 422 and "The login did not succeed" in response.text
        assert answer(link, email="bob@old.example").status_code == 429
    finally:
        hangs_up.close()


def test_at_most_a_few_login_checks_at_once_across_processes_beyond_that_busy_and_not_counted(
        link: str, rt: Runtime) -> None:
    now_ms = int(time.time() * 1000)
    # Other web processes hold every slot: this one answers "busy", and counts nothing.
    rt.redis.zadd(gather.CHECK_SLOTS_KEY, {f"elsewhere-{n}": now_ms + 60_000 for n in range(gather.CHECK_SLOTS)})
    for _ in range(7):
        busy = answer(link, email="bob@old.example", password="wrong")
        assert busy.status_code == 503 and "The form is busy" in busy.text and "try again in a minute" in busy.text
        assert busy.headers["retry-after"] == "60"
    # A process that died holding its slots leaks nothing: their time is up.
    rt.redis.delete(gather.CHECK_SLOTS_KEY)
    rt.redis.zadd(gather.CHECK_SLOTS_KEY, {f"crashed-{n}": now_ms - 1 for n in range(gather.CHECK_SLOTS)})
    statuses = [answer(link, email="bob@old.example", password=f"wrong-{n}").status_code for n in range(6)]
    assert statuses == [422] * 5 + [429]  # the seven busy answers were not attempts
    assert rt.redis.zcard(gather.CHECK_SLOTS_KEY) == 0  # every check gave its slot back


def test_64_form_posts_in_flight_and_slack_still_acks_within_100_ms(
        settings, slack_fake: FakeSlack, spawn, rt: Runtime, slow_server) -> None:
    """One web process (WEB_WORKERS=1) behind a proxy; a flood of posts, each from a made-up
    client, waits on an old server that takes 3 s over every wrong password."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port), PUBLIC_URL=url,
                                                            WEB_WORKERS="1", FORWARDED_FOR_HOPS="1"))
    wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, what="the web process")
    server, _ = servers.add_server(rt, servers.ServerSpec("oldhost", "127.0.0.1", slow_server.port, "none"),
                                   actor_id=ADMIN)
    _, token, _ = gather.create_link(rt, server.id, 7, "", actor_id=ADMIN, actor_name="admin", channel_id=OPS,
                                     idempotency_key="flood", dest_domains=["new.example"])
    driver = SlackDriver(url + "/slack/events", SIGNING_SECRET, slack_fake, user_id=ADMIN, channel_id=OPS)
    driver.command("help")  # warm-up
    flood = subprocess.Popen([sys.executable, "-m", "tests.bench.form_flood", f"{url}/gather/{token}", "8"],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the flood is on, and the login checks wait on the slow server
        acks = []
        for _ in range(25):
            start = time.perf_counter()
            assert driver.command("help").status_code == 200
            acks.append(time.perf_counter() - start)
            time.sleep(0.1)
        flooded = json.loads(flood.communicate(timeout=60)[0])
    finally:
        if flood.poll() is None:
            flood.kill()
    assert flooded["most_in_flight"] == 64, flooded
    assert sorted(acks)[-2] < 0.1, (sorted(acks), flooded, Path(proc.log_path).read_text()[-2000:])
    # Beyond the few login checks at once, posts are told "busy" (503); the others were checked (422).
    assert flooded["statuses"].get("503", 0) > 0 and flooded["statuses"].get("422", 0) > 0, flooded
    assert submission_rows(rt) == []


def test_the_form_is_served_in_socket_mode_too(settings, slack_fake: FakeSlack, old_server, spawn,
                                               rt: Runtime) -> None:
    port = free_port()
    proc = spawn([sys.executable, "-m", "bot"], process_env(settings, PORT=str(port), SLACK_APP_TOKEN=APP_TOKEN,
                                                            PUBLIC_URL=f"http://127.0.0.1:{port}"))
    assert slack_fake.socket_connected(timeout=20), Path(proc.log_path).read_text()
    server, _ = servers.add_server(rt, servers.ServerSpec("oldhost", "127.0.0.1", old_server.port, "none"),
                                   actor_id=ADMIN)
    _, token, _ = gather.create_link(rt, server.id, 7, "", actor_id=ADMIN, actor_name="admin", channel_id=OPS,
                                     idempotency_key="socket-mode", dest_domains=["new.example"])
    url = f"http://127.0.0.1:{port}/gather/{token}"
    page = wait_until(lambda: (r := httpx.get(url)).status_code == 200 and r, 20, "the form")
    assert "<strong>Your email administrator</strong> asks for the login of your old mailbox" in page.text
    assert answer(url, email="bob@old.example").status_code == 200
    assert [s.email for s in submission_rows(rt)] == ["bob@old.example"]
