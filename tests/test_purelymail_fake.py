"""The fake PurelyMail itself, spoken to with raw HTTP: it must keep PurelyMail's quirks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.purelymail_fake import FakePurelyMail

TOKEN = "pm-fake-test-token"
PARSE_ERROR = {"type": "error", "message": "Request could not be parsed"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakePurelyMail]:
    fake = FakePurelyMail(token=TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakePurelyMail) -> FakePurelyMail:
    server.reset()
    return server


def post(
    fake: FakePurelyMail, op: str, body: Any = None, *, token: str | None = TOKEN, raw: bytes | None = None
) -> httpx.Response:
    """POST one operation the way a client would; `raw` sends bytes as they are."""
    headers = {"Purelymail-Api-Token": token} if token is not None else {}
    if raw is None:
        raw = httpx.Request("POST", "http://x", json={} if body is None else body).content
    return httpx.post(f"{fake.url}/api/v0/{op}", content=raw, headers=headers, timeout=5)


def test_unknown_operation_is_an_html_404(fake: FakePurelyMail) -> None:
    answer = post(fake, "listUsers")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "text/html" and answer.text.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(("token", "message"), [
    (None, "Token must be supplied in Purelymail-Api-Token header"),
    ("wrong", "Token not valid."),
])
def test_bad_token_is_an_error_envelope_with_http_200(fake: FakePurelyMail, token: str | None, message: str) -> None:
    answer = post(fake, "listDomains", token=token)
    assert answer.status_code == 200
    assert answer.json() == {"type": "error", "code": "invalidToken", "message": message}


def test_bearer_auth_does_not_work(fake: FakePurelyMail) -> None:
    answer = httpx.post(f"{fake.url}/api/v0/listDomains", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.json()["code"] == "invalidToken"


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'"text"'])
def test_a_body_that_is_not_an_object_cannot_be_parsed(fake: FakePurelyMail, raw: bytes) -> None:
    assert post(fake, "listDomains", raw=raw).json() == PARSE_ERROR


@pytest.mark.parametrize("body", [
    {"domainName": "example.com", "password": "pw"},  # no userName
    {"userName": "a", "domainName": "example.com", "password": 12345},  # mistyped
    {"userName": "a", "domainName": None, "password": "pw"},  # null required field
    {"userName": "a", "domainName": "example.com", "password": "pw", "sendWelcomeEmail": "no"},
])
def test_missing_or_mistyped_fields_cannot_be_parsed(fake: FakePurelyMail, body: dict[str, Any]) -> None:
    fake.add_domain_direct("example.com")
    assert post(fake, "createUser", body).json() == PARSE_ERROR
    assert fake.users == {}


def test_unknown_fields_are_ignored_and_recorded(fake: FakePurelyMail) -> None:
    fake.add_user_direct("alice@example.com", password="old")

    answer = post(fake, "modifyUser", {"userName": "alice@example.com", "password": "new"})

    assert answer.json() == {"type": "success", "result": {}}
    assert fake.users["alice@example.com"].password == "old"
    assert fake.ignored_fields == [("modifyUser", "password")]
    assert fake.calls == [("modifyUser", {"userName": "alice@example.com", "password": "new"})]


def test_create_user_takes_local_part_on_an_owned_domain(fake: FakePurelyMail) -> None:
    body = {"userName": "alice", "domainName": "example.com", "password": "pw"}
    assert post(fake, "createUser", body).json()["message"] == "Domain does not exist"

    fake.add_domain_direct("example.com")
    assert post(fake, "createUser", body).json() == {"type": "success", "result": {}}
    assert post(fake, "createUser", body).json()["type"] == "error"  # duplicate
    assert post(fake, "createUser", {**body, "userName": "bob@example.com"}).json()["type"] == "error"
    user = fake.users["alice@example.com"]
    assert user.welcome_email_sent and user.enable_password_reset  # PurelyMail's defaults


def test_other_user_operations_take_the_full_address(fake: FakePurelyMail) -> None:
    fake.add_user_direct("alice@example.com")
    assert post(fake, "getUser", {"userName": "alice"}).json()["message"] == "User does not exist"
    assert post(fake, "getUser", {"userName": "alice@example.com"}).json()["type"] == "success"


def test_list_user_is_capped_at_1000_unless_switched_off(fake: FakePurelyMail) -> None:
    for n in range(1005):
        fake.add_user_direct(f"u{n}@example.com")
    assert len(post(fake, "listUser").json()["result"]["users"]) == 1000
    fake.list_user_cap = None
    assert len(post(fake, "listUser").json()["result"]["users"]) == 1005


def test_ownership_code_is_one_per_account() -> None:
    one, two = FakePurelyMail(), FakePurelyMail()
    assert one.ownership_code != two.ownership_code
    code = one.ownership_code
    one.reset()
    assert one.ownership_code == code and code.startswith("purelymail_ownership_proof=")


def test_add_domain_asks_the_ownership_verifier(fake: FakePurelyMail) -> None:
    asked: list[tuple[str, str]] = []
    fake.ownership_verifier = lambda domain, code: asked.append((domain, code)) or domain == "ok.example"

    refused = post(fake, "addDomain", {"domainName": "no.example"}).json()
    assert refused["type"] == "error" and "DNS ownership checks did not pass" in refused["message"]
    assert post(fake, "addDomain", {"domainName": "ok.example"}).json()["type"] == "success"
    assert post(fake, "addDomain", {"domainName": "ok.example"}).json()["message"] == "Domain already exists"
    assert asked == [("no.example", fake.ownership_code), ("ok.example", fake.ownership_code)]
    assert fake.domains["ok.example"].dns.wire() == {
        "passesMx": False, "passesSpf": False, "passesDkim": False, "passesDmarc": False,
    }


def test_routing_rule_ids_only_show_in_the_list(fake: FakePurelyMail) -> None:
    fake.add_domain_direct("example.com")
    body = {"domainName": "example.com", "prefix": False, "matchUser": "", "targetAddresses": ["a@b.example"]}
    assert post(fake, "createRoutingRule", body).json() == {"type": "success", "result": {}}
    (rule,) = post(fake, "listRoutingRules").json()["result"]["rules"]
    assert rule["catchall"] is False and isinstance(rule["id"], int)
    assert post(fake, "deleteRoutingRule", {"routingRuleId": rule["id"]}).json()["type"] == "success"
    assert fake.rules == {}


def test_update_domain_settings_uses_name_and_overwrites_what_is_sent(fake: FakePurelyMail) -> None:
    fake.add_domain_direct("example.com")
    assert post(fake, "updateDomainSettings", {"domainName": "example.com"}).json() == PARSE_ERROR
    post(fake, "updateDomainSettings", {"name": "example.com", "allowAccountReset": False})
    assert fake.domains["example.com"].allow_account_reset is False


def test_list_password_reset_names_its_list_users(fake: FakePurelyMail) -> None:
    fake.add_user_direct("alice@example.com")
    post(fake, "upsertPasswordReset", {"userName": "alice@example.com", "type": "email", "target": "a@home.example"})
    assert post(fake, "listPasswordReset", {"userName": "alice@example.com"}).json()["result"] == {
        "users": [{"type": "email", "target": "a@home.example", "description": None, "allowMfaReset": False}],
    }
    bad_type = {"userName": "alice@example.com", "type": "pigeon", "target": "x"}
    assert post(fake, "upsertPasswordReset", bad_type).json() == PARSE_ERROR


def test_fault_switches(fake: FakePurelyMail) -> None:
    fake.fail_5xx = {"listDomains": 1}
    failed = post(fake, "listDomains")
    assert failed.status_code == 502 and "<html" in failed.text
    assert post(fake, "listDomains").status_code == 200

    fake.malformed_json = {"*": 1}
    garbled = post(fake, "checkAccountCredit")
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    assert post(fake, "checkAccountCredit").json()["result"]["credit"] == fake.credit

    fake.latency = 0.3
    started = time.monotonic()
    post(fake, "getOwnershipCode")
    assert time.monotonic() - started >= 0.3


def test_reset_forgets_state_and_switches(fake: FakePurelyMail) -> None:
    fake.add_user_direct("alice@example.com")
    fake.fail_5xx = {"*": 3}
    post(fake, "listUser")
    fake.reset()
    assert (fake.users, fake.domains, fake.calls, fake.fail_5xx) == ({}, {}, [], {})


def test_a_request_left_hanging_is_dropped_on_reset(fake: FakePurelyMail) -> None:
    fake.add_user_direct("alice@example.com")
    fake.hang = {"deleteUser": 30}
    errors: list[Exception] = []

    def call() -> None:
        try:
            post(fake, "deleteUser", {"userName": "alice@example.com"})
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while not fake.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    fake.reset()
    fake.add_user_direct("alice@example.com")  # the next test's state
    caller.join(timeout=2)

    assert not caller.is_alive() and isinstance(errors[0], httpx.RemoteProtocolError)
    assert "alice@example.com" in fake.users
