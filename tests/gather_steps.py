"""Steps for credential-link tests: an old IMAP server (a real Dovecot) with a
few people on it, the bot serving Slack and the public form on a port its PUBLIC_URL names,
a headless Chromium (Debian's chromium and chromium-driver, driven by Selenium), and the
admin's and the mailbox owners' steps. A test module makes fixtures of the two servers with
`old_server = pytest.fixture(run_old_server, name="old_server")` and
`browser = pytest.fixture(run_browser, scope="module", name="browser")`."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from db.models import GatherLink, GatherSubmission, SourceServer
from db.session import session_scope
from purelyops.runtime import Runtime
from tests.conftest import BotServer, wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import open_modal, submit_server
from tests.slack_requests import SlackDriver

# People on the old server, with the passwords they really have there.
PEOPLE = {
    "alice@old.example": "alice-Old-pw-1",
    "bob@old.example": "bob-Old-pw-2",
    "carol@old.example": "pässwörd-Ü-3",  # not ASCII: the login check uses AUTHENTICATE PLAIN
    "dave@old.example": "dave-Old-pw-4",
}
LINK_URL = re.compile(r"https?://[^\s`<>|]+/gather/[A-Za-z0-9_-]{32,}")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


# Mailboxes at "PurelyMail" (a second Dovecot standing for PURELYMAIL_IMAP_HOST), with their passwords.
NEW_PEOPLE = {
    "bob@new.example": "bob-new-pw-Zz9",
    "ceo@new.example": "ceo-Real-pw-7",
    "dave@new.example": "dave-new-pw-Yy8",
}


def dovecot(users: dict[str, str], *, auth_failure_delay: float = 0, auth_penalty: bool = False) -> Iterator:
    """A real Dovecot holding `users`, by default answering a wrong password at once and
    without its growing auth penalty (which only slows the rate-limit tests)."""
    from tests import imap_servers

    if not os.path.exists(imap_servers.DOVECOT):
        pytest.skip("dovecot is not installed (scripts/test installs dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="purelyops-gather-"))
    root.chmod(0o755)
    server = imap_servers.Dovecot(root / "imap", users, auth_failure_delay=auth_failure_delay,
                                  auth_penalty=auth_penalty).start()
    try:
        yield server
    finally:  # also when closed early (the benchmark's `close()`)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_old_server() -> Iterator:
    """A real Dovecot holding PEOPLE's old mailboxes, answering a wrong password at once."""
    yield from dovecot(PEOPLE)


def run_new_server() -> Iterator:
    """A real Dovecot standing for PurelyMail's IMAP server (PURELYMAIL_IMAP_HOST/PORT point at it)."""
    yield from dovecot(NEW_PEOPLE)


class WebServer(BotServer):
    """The bot's WSGI app (Slack's /slack/events and the public /gather/… pages) on `port`."""

    def __init__(self, rt: Runtime, port: int) -> None:
        super().__init__(rt, port)


def add_old_server(slack: SlackDriver, slack_fake: FakeSlack, old_server) -> None:
    submit_server(slack, slack_fake, "127.0.0.1", old_server.port, "none", name="oldhost")
    slack_fake.wait_for("chat.postEphemeral", lambda c: "Source server *oldhost*" in c.args.get("text", ""))


def server_id(rt: Runtime) -> str:
    with session_scope(rt.database_url) as session:
        return str(session.scalars(select(SourceServer.id)).one())


def new_link(slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime, *, days: str = "7", name: str = "Acme IT",
             domains: tuple[str, ...] = ("new.example",)) -> str:
    """`gather new` and its modal, as the admin: the link, from the message only they see.
    The mail goes to `domains` (chosen from the list when the modal offers one)."""
    before = len(slack_fake.calls_to("chat.postEphemeral"))
    open_modal(slack, slack_fake, "gather new", "gather_new")
    view = [v for v in slack_fake.open_views() if v.view.get("callback_id") == "gather_new"][-1].view
    (element,) = [b["element"] for b in view["blocks"] if b.get("block_id") == "domains"]
    chosen = list(domains) if element["type"] == "multi_static_select" else ", ".join(domains)
    values = {"server": {"value": server_id(rt)}, "expiry": {"value": days}, "domains": {"value": chosen}}
    if name:
        values["name"] = {"value": name}
    assert slack.view_submission("gather_new", values).status_code == 200
    shown = wait_until(lambda: [c for c in slack_fake.calls_to("chat.postEphemeral")[before:]
                                if LINK_URL.search(str(c.args.get("blocks")))], 10, "the link")
    return LINK_URL.search(str(shown[-1].args["blocks"])).group(0)  # type: ignore[union-attr]


def answer(url: str, *, full_name: str = "Alice Liddell", email: str = "alice@old.example",
           password: str | None = None, new_address: str = "", new_password: str = "",
           headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    """The form, posted as a browser posts it."""
    fields = {"full_name": full_name, "email": email,
              "password": PEOPLE.get(email, "") if password is None else password,
              "new_address": new_address, "new_password": new_password, **extra}
    return httpx.post(url, data=fields, headers=headers or {}, timeout=30)


def link_row(rt: Runtime) -> GatherLink:
    with session_scope(rt.database_url) as session:
        link = session.scalars(select(GatherLink).order_by(GatherLink.id.desc())).first()
        session.expunge(link)
        return link


def submission_rows(rt: Runtime) -> list[GatherSubmission]:
    with session_scope(rt.database_url) as session:
        rows = list(session.scalars(select(GatherSubmission).order_by(GatherSubmission.id)))
        session.expunge_all()
        return rows


# ---- a real browser ---------------------------------------------------------------------------


def run_browser() -> Iterator:
    """Debian's Chromium, headless, driven through Debian's chromedriver (no download)."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (scripts/test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=820,1200", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def field_by_label(driver, label: str):
    """The input a label is tied to (label for=…), as a screen reader finds it."""
    from selenium.webdriver.common.by import By

    found = driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    return driver.find_element(By.ID, found.get_attribute("for"))


def fill_in(driver, values: dict[str, str]) -> None:
    for label, value in values.items():
        element = field_by_label(driver, label)
        element.clear()
        element.send_keys(value)


def press(driver, text: str) -> None:
    """Click the button and wait for the page that answers (the old one gone, the new one loaded)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']").click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete", 30, "the page")


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry.get("message", "") or "Refused to" in entry.get("message", "")]
