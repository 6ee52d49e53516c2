"""The PurelyMail client against the fake PurelyMail over real HTTP, and the shared throttle.

Each test reads as an admin's call: what went over the wire (fake.calls), what the
fake's state became, and which exception (with which sentence) came back.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from purelyops.purelymail import (
    AuthError,
    BadRequest,
    DomainDetails,
    DomainExistsError,
    NotFound,
    OwnershipNotVerified,
    ProtocolError,
    PurelyMailClient,
    PurelyMailError,
    RequestRejected,
    ResetMethod,
    RoutingRule,
    Timeout,
    Unavailable,
    UserDetails,
)
from purelyops.throttle import Throttle, ThrottleTimeout, ThrottleUnavailable
from tests.fakes.purelymail_fake import SCHEMAS, FakePurelyMail

TOKEN = "pm-client-test-token-9f3a"
PASSWORD = "Tr0ub4dor&3-secret"
REDIS_DB = 15


@pytest.fixture(scope="module")
def server() -> Iterator[FakePurelyMail]:
    fake = FakePurelyMail(token=TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakePurelyMail) -> FakePurelyMail:
    server.reset()
    server.add_domain_direct("example.com")
    return server


@pytest.fixture
def client(fake: FakePurelyMail) -> Iterator[PurelyMailClient]:
    with PurelyMailClient(fake.url, TOKEN, timeout=0.5) as pm:
        yield pm


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Every operation, on the wire ------------------------------------------------------


def test_create_user_sends_local_part_and_admin_defaults(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    client.create_user("alice", "example.com", PASSWORD)

    assert fake.calls_to("createUser") == [{
        "userName": "alice", "domainName": "example.com", "password": PASSWORD,
        "enablePasswordReset": False, "enableSearchIndexing": True, "sendWelcomeEmail": False,
    }]
    user = fake.users["alice@example.com"]
    assert user.password == PASSWORD and not user.welcome_email_sent and not user.enable_password_reset


def test_create_user_with_recovery_contacts(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    client.create_user(
        "bob", "example.com", PASSWORD, enable_password_reset=True,
        recovery_email="bob@home.example", recovery_email_description="home",
        recovery_phone="+15550100", recovery_phone_description="cell",
    )

    body = fake.calls_to("createUser")[0]
    assert body["recoveryEmail"] == "bob@home.example" and body["recoveryEmailDescription"] == "home"
    assert body["recoveryPhone"] == "+15550100" and body["recoveryPhoneDescription"] == "cell"
    assert client.list_password_reset("bob@example.com") == [
        ResetMethod("email", "bob@home.example", "home", False),
        ResetMethod("phone", "+15550100", "cell", False),
    ]


def test_create_user_refuses_a_full_address_before_sending(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    with pytest.raises(ValueError):
        client.create_user("alice@example.com", "example.com", PASSWORD)
    assert fake.calls == []


def test_list_get_and_delete_users(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.add_user_direct("alice@example.com")
    fake.add_user_direct("bob@example.com", require_two_factor_authentication=True)

    assert client.list_users() == ["alice@example.com", "bob@example.com"]
    assert client.get_user("bob@example.com") == UserDetails(
        address="bob@example.com", enable_search_indexing=True, recovery_enabled=True,
        require_two_factor_authentication=True, enable_spam_filtering=True, reset_methods=(),
    )
    client.delete_user("alice@example.com")

    assert list(fake.users) == ["bob@example.com"]
    assert fake.calls == [
        ("listUser", {}),
        ("getUser", {"userName": "bob@example.com"}),
        ("deleteUser", {"userName": "alice@example.com"}),
    ]


def test_list_users_stops_at_1000_and_warns(
    fake: FakePurelyMail, client: PurelyMailClient, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(1001):
        fake.add_user_direct(f"u{n}@example.com")

    with caplog.at_level(logging.WARNING, logger="purelyops.purelymail"):
        assert len(client.list_users()) == 1000
    assert "may be cut short" in caplog.text


def test_modify_user_sends_only_given_fields_and_new_password(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.add_user_direct("alice@example.com", password="old")

    client.modify_user("alice@example.com", new_password=PASSWORD)
    client.modify_user("alice@example.com", new_address="alicia@example.com", enable_search_indexing=False)

    assert fake.calls_to("modifyUser") == [
        {"userName": "alice@example.com", "newPassword": PASSWORD},
        {"userName": "alice@example.com", "newUserName": "alicia@example.com", "enableSearchIndexing": False},
    ]
    user = fake.users["alicia@example.com"]
    assert user.password == PASSWORD and not user.enable_search_indexing
    assert fake.ignored_fields == []


def test_two_factor_needs_a_reset_method_first(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.add_user_direct("alice@example.com")

    with pytest.raises(RequestRejected) as caught:
        client.modify_user("alice@example.com", require_two_factor_authentication=True)
    assert not isinstance(caught.value, NotFound)
    assert str(caught.value).startswith("PurelyMail refused modifyUser: ")

    client.upsert_password_reset("alice@example.com", "email", "alice@home.example")
    client.modify_user("alice@example.com", require_two_factor_authentication=True)
    assert fake.users["alice@example.com"].require_two_factor_authentication


def test_password_reset_methods(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.add_user_direct("alice@example.com")

    client.upsert_password_reset(
        "alice@example.com", "email", "a@home.example", description="home", allow_mfa_reset=True
    )
    client.upsert_password_reset("alice@example.com", "email", "a@work.example", existing_target="a@home.example")
    assert client.list_password_reset("alice@example.com") == [ResetMethod("email", "a@work.example", None, False)]
    client.delete_password_reset("alice@example.com", "a@work.example")
    assert client.list_password_reset("alice@example.com") == []

    assert fake.calls_to("upsertPasswordReset") == [
        {"userName": "alice@example.com", "type": "email", "target": "a@home.example",
         "description": "home", "allowMfaReset": True},
        {"userName": "alice@example.com", "type": "email", "target": "a@work.example",
         "existingTarget": "a@home.example"},
    ]
    assert fake.calls_to("deletePasswordReset") == [{"userName": "alice@example.com", "target": "a@work.example"}]
    assert fake.calls_to("listPasswordReset") == [{"userName": "alice@example.com"}] * 2


def test_app_passwords_use_user_handle_to_create(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.add_user_direct("alice@example.com")

    value = client.create_app_password("alice@example.com", "Thunderbird")
    assert fake.users["alice@example.com"].app_passwords == {value: "Thunderbird"}
    client.delete_app_password("alice@example.com", value)

    assert fake.users["alice@example.com"].app_passwords == {}
    assert fake.calls == [
        ("createAppPassword", {"userHandle": "alice@example.com", "name": "Thunderbird"}),
        ("deleteAppPassword", {"userName": "alice@example.com", "appPassword": value}),
    ]


def test_routing_rules(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    client.create_routing_rule("example.com", prefix=True, match_user="sales", target_addresses=["a@x.example"])
    client.create_routing_rule(
        "example.com", prefix=False, match_user="", target_addresses=["b@x.example"], catchall=True
    )

    assert fake.calls_to("createRoutingRule") == [
        {"domainName": "example.com", "prefix": True, "matchUser": "sales",
         "targetAddresses": ["a@x.example"], "catchall": False},
        {"domainName": "example.com", "prefix": False, "matchUser": "",
         "targetAddresses": ["b@x.example"], "catchall": True},
    ]
    first, second = client.list_routing_rules()
    assert first == RoutingRule(first.id, "example.com", True, "sales", ("a@x.example",), False)
    assert second.catchall and first.id > 2**32

    client.delete_routing_rule(first.id)
    assert fake.calls_to("deleteRoutingRule") == [{"routingRuleId": first.id}]
    assert list(fake.rules) == [second.id]


def test_add_domain_after_ownership_is_verified(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    code = client.get_ownership_code()
    assert code == fake.ownership_code and code.startswith("purelymail_ownership_proof=")

    with pytest.raises(OwnershipNotVerified) as caught:
        client.add_domain("new.example")
    assert "DNS ownership checks did not pass" in caught.value.message

    fake.verified_domains.add("new.example")
    client.add_domain("new.example")
    with pytest.raises(DomainExistsError) as exists:
        client.add_domain("new.example")
    assert str(exists.value) == "PurelyMail refused addDomain: Domain already exists"
    assert fake.calls_to("addDomain") == [{"domainName": "new.example"}] * 3


def test_list_domains_with_dns_summary(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.set_dns_summary("example.com", mx=True, spf=True, dkim=False, dmarc=True)
    fake.add_domain_direct("shared.example", shared=True)

    assert client.list_domains() == [
        DomainDetails("example.com", allow_account_reset=True, symbolic_subaddressing=False, is_shared=False,
               passes_mx=True, passes_spf=True, passes_dkim=False, passes_dmarc=True),
    ]
    assert [d.name for d in client.list_domains(include_shared=True)] == ["example.com", "shared.example"]
    assert not client.list_domains()[0].dns_ok
    assert fake.calls_to("listDomains") == [{"includeShared": False}, {"includeShared": True}, {"includeShared": False}]


def test_update_domain_settings_and_recheck(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.set_dns_summary("example.com", mx=False, spf=False, dkim=False, dmarc=False)
    fake.dns_rechecker = lambda name: {"mx": True, "spf": True, "dkim": True, "dmarc": True}

    client.update_domain_settings("example.com", symbolic_subaddressing=True)
    client.update_domain_settings("example.com", recheck_dns=True)
    with pytest.raises(ValueError):
        client.update_domain_settings("example.com", allow_account_reset=False, recheck_dns=True)

    assert fake.calls_to("updateDomainSettings") == [
        {"name": "example.com", "symbolicSubaddressing": True},
        {"name": "example.com", "recheckDns": True},
    ]
    domain = fake.domains["example.com"]
    assert domain.symbolic_subaddressing and domain.allow_account_reset
    assert client.list_domains()[0].dns_ok


def test_delete_domain_takes_its_users_and_rules(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.add_user_direct("alice@example.com")
    fake.add_user_direct("carol@other.example")
    client.create_routing_rule("example.com", prefix=False, match_user="x", target_addresses=["carol@other.example"])

    client.delete_domain("example.com")

    assert fake.calls_to("deleteDomain") == [{"name": "example.com"}]
    assert list(fake.domains) == ["other.example"] and list(fake.users) == ["carol@other.example"]
    assert fake.rules == {}


def test_account_credit_is_an_exact_decimal(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.credit = "19.16079948301373180045878412899744"
    credit = client.check_account_credit()
    assert isinstance(credit, Decimal) and credit == Decimal("19.16079948301373180045878412899744")


def test_every_operation_sends_only_fields_purelymail_reads(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.verified_domains.add("new.example")
    client.add_domain("new.example")
    client.get_ownership_code()
    client.create_user("dan", "new.example", PASSWORD, recovery_email="d@home.example",
                       recovery_email_description="h", recovery_phone="+1555", recovery_phone_description="c")
    client.list_users()
    client.get_user("dan@new.example")
    client.upsert_password_reset("dan@new.example", "phone", "+1666", existing_target="+1555",
                                 description="cell", allow_mfa_reset=False)
    client.list_password_reset("dan@new.example")
    client.delete_password_reset("dan@new.example", "+1666")
    client.modify_user("dan@new.example", new_address="daniel@new.example", new_password="x" * 12,
                       enable_search_indexing=True, enable_password_reset=True,
                       require_two_factor_authentication=True)
    client.delete_app_password("daniel@new.example", client.create_app_password("daniel@new.example"))
    client.create_routing_rule("new.example", prefix=True, match_user="", target_addresses=[], catchall=True)
    client.delete_routing_rule(client.list_routing_rules()[0].id)
    client.update_domain_settings("new.example", allow_account_reset=False, symbolic_subaddressing=True)
    client.list_domains(include_shared=True)
    client.check_account_credit()
    client.delete_user("daniel@new.example")
    client.delete_domain("new.example")

    assert {op for op, _ in fake.calls} == set(SCHEMAS)
    assert fake.ignored_fields == []


# --- Errors ----------------------------------------------------------------------------


def test_wrong_token_is_an_auth_error_without_the_token(fake: FakePurelyMail) -> None:
    secret = "pm-wrong-token-77c1"
    with PurelyMailClient(fake.url, secret, timeout=0.5) as pm, pytest.raises(AuthError) as caught:
        pm.list_domains()
    error = caught.value
    assert str(error) == "PurelyMail rejected the API token (check PURELYMAIL_API_TOKEN)"
    assert error.code == "invalidToken" and error.operation == "listDomains"
    assert secret not in repr(error) and secret not in str(error.args)
    assert len(fake.calls_to("listDomains")) == 1  # a refused token is not retried
    assert secret not in repr(pm)


def test_unknown_user_is_not_found(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    with pytest.raises(NotFound) as caught:
        client.get_user("nobody@example.com")
    assert isinstance(caught.value, RequestRejected)
    assert str(caught.value) == "PurelyMail refused getUser: User does not exist"


def test_mistyped_field_is_a_bad_request(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    with pytest.raises(BadRequest) as caught:
        client.delete_routing_rule("12")  # type: ignore[arg-type]
    assert caught.value.message == "Request could not be parsed"


def test_server_error_on_a_mutation_is_not_retried(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.fail_5xx = {"*": 5}

    with pytest.raises(Unavailable) as caught:
        client.create_user("alice", "example.com", PASSWORD)

    assert str(caught.value) == "PurelyMail is having trouble (HTTP 502)"
    assert len(fake.calls_to("createUser")) == 1


def test_reads_are_retried_after_a_server_error(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.fail_5xx = {"listDomains": 1}
    assert [d.name for d in client.list_domains()] == ["example.com"]
    assert len(fake.calls_to("listDomains")) == 2


def test_reads_give_up_after_read_retries_attempts(fake: FakePurelyMail) -> None:
    fake.fail_5xx = {"*": 10}
    fake.fail_status = 503
    with PurelyMailClient(fake.url, TOKEN, timeout=0.5, read_retries=2) as pm, pytest.raises(Unavailable) as caught:
        pm.check_account_credit()
    assert "HTTP 503" in str(caught.value)
    assert len(fake.calls) == 2


def test_malformed_json_is_retried_for_reads_only(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    fake.malformed_json = {"checkAccountCredit": 1, "createUser": 1}

    assert client.check_account_credit() == Decimal(fake.credit)
    with pytest.raises(ProtocolError) as caught:
        client.create_user("alice", "example.com", PASSWORD)

    assert str(caught.value) == "PurelyMail sent an answer we could not read"
    assert len(fake.calls_to("checkAccountCredit")) == 2 and len(fake.calls_to("createUser")) == 1


def test_a_hanging_server_times_out_quickly(fake: FakePurelyMail) -> None:
    fake.hang = {"*": 5}
    with PurelyMailClient(fake.url, TOKEN, timeout=0.5, read_retries=1) as pm:
        started = time.monotonic()
        with pytest.raises(Timeout) as caught:
            pm.list_domains()
        assert time.monotonic() - started < 1.5
        with pytest.raises(Timeout):
            pm.delete_user("alice@example.com")
    assert str(caught.value) == "PurelyMail did not answer within 0.5 s"
    assert isinstance(caught.value, Unavailable)
    assert len(fake.calls_to("deleteUser")) == 1


def test_connection_refused_is_unavailable() -> None:
    with PurelyMailClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=0.5, read_retries=1) as pm:
        with pytest.raises(Unavailable) as caught:
            pm.list_users()
    assert not isinstance(caught.value, Timeout)
    assert str(caught.value).startswith("PurelyMail could not be reached at 127.0.0.1")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unknown_operation_is_an_html_404(fake: FakePurelyMail, client: PurelyMailClient) -> None:
    with pytest.raises(ProtocolError) as caught:
        client._call("listUsers", {})  # the plural name PurelyMail does not know
    assert str(caught.value) == "PurelyMail does not know the operation 'listUsers' (HTTP 404)"
    assert caught.value.code == "unknownOperation"


@pytest.mark.parametrize("payload", [
    {"type": "success", "result": {"domains": "example.com"}},
    {"type": "success", "result": {"domains": [{"name": "example.com"}]}},
    {"type": "success", "result": []},
    {"result": {"domains": []}},
    ["success"],
])
def test_unexpected_shapes_are_protocol_errors(payload: object) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=payload))
    with PurelyMailClient("https://purelymail.example", TOKEN, transport=transport) as pm:
        with pytest.raises(ProtocolError) as caught:
            pm.list_domains()
    assert str(caught.value).startswith("PurelyMail sent an answer we could not read")


def test_empty_or_null_result_counts_as_empty() -> None:
    answers = iter([{"type": "success"}, {"type": "success", "result": None}])
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=next(answers)))
    with PurelyMailClient("https://purelymail.example", TOKEN, transport=transport) as pm:
        pm.delete_user("a@example.com")
        pm.delete_domain("example.com")


def test_error_without_code_or_message_is_still_readable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"type": "error"}))
    with PurelyMailClient("https://purelymail.example", TOKEN, transport=transport) as pm:
        with pytest.raises(RequestRejected) as caught:
            pm.add_domain("example.com")
    assert str(caught.value) == "PurelyMail refused addDomain: no reason given"
    assert caught.value.code is None


def test_token_and_passwords_never_reach_messages_or_logs(
    fake: FakePurelyMail, client: PurelyMailClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_user_direct("alice@example.com")
    errors: list[PurelyMailError] = []

    client.create_user("bob", "example.com", PASSWORD)
    client.modify_user("alice@example.com", new_password=PASSWORD)
    app_password = client.create_app_password("alice@example.com")
    client.delete_app_password("alice@example.com", app_password)
    for faults in ({"fail_5xx": {"*": 1}}, {"malformed_json": {"*": 1}}, {"hang": {"*": 3}}):
        fake.reset()
        for name, value in faults.items():
            setattr(fake, name, value)
        with pytest.raises(PurelyMailError) as caught:
            client.create_user("carol", "example.com", PASSWORD)
        errors.append(caught.value)
    fake.reset()
    with pytest.raises(PurelyMailError) as caught:
        client.create_user("carol", "example.com", PASSWORD)  # no such domain after reset
    errors.append(caught.value)

    assert [type(e) for e in errors] == [Unavailable, ProtocolError, Timeout, NotFound]
    assert "createUser" in caplog.text and " ms " in caplog.text
    for secret in (TOKEN, PASSWORD, app_password):
        assert secret not in caplog.text
        for error in errors:
            assert secret not in str(error) and secret not in repr(error)


def test_client_waits_for_the_shared_throttle(fake: FakePurelyMail, throttle_key: str) -> None:
    throttle = Throttle(redis.Redis(db=REDIS_DB), throttle_key, rate_per_s=2, burst=2)
    with PurelyMailClient(fake.url, TOKEN, timeout=0.5, throttle=throttle) as pm:
        started = time.monotonic()
        for _ in range(3):
            pm.get_ownership_code()
    assert time.monotonic() - started >= 0.9


# --- Throttle --------------------------------------------------------------------------


@pytest.fixture
def throttle_key() -> Iterator[str]:
    key = f"purelyops-test:throttle:{uuid.uuid4().hex}"
    yield key
    db = redis.Redis(db=REDIS_DB)
    for name in db.scan_iter(f"{key}*"):
        db.delete(name)


def test_two_processes_share_one_rate(throttle_key: str) -> None:
    web = Throttle(redis.Redis(db=REDIS_DB), throttle_key, rate_per_s=4, burst=4)
    worker = Throttle(redis.Redis(db=REDIS_DB), throttle_key, rate_per_s=4, burst=4)
    taken: list[float] = []
    lock = threading.Lock()

    def take(throttle: Throttle) -> None:
        for _ in range(5):
            throttle.acquire(timeout=5)
            with lock:
                taken.append(time.time())

    threads = [threading.Thread(target=take, args=(t,)) for t in (web, worker)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(taken) == 10
    assert 1.9 <= max(taken) - started < 3.5  # 4 at once, 4 a second later, 2 after that
    taken.sort()
    assert all(taken[i + 4] - taken[i] >= 0.95 for i in range(len(taken) - 4))


def test_throttle_times_out_without_waiting_in_vain(throttle_key: str) -> None:
    throttle = Throttle(redis.Redis(db=REDIS_DB), throttle_key, rate_per_s=1, burst=1)
    throttle.acquire()
    started = time.monotonic()
    with pytest.raises(ThrottleTimeout):
        throttle.acquire(timeout=0.2)
    assert time.monotonic() - started < 0.2


def test_throttle_says_where_redis_is_when_it_is_down() -> None:
    port = free_port()
    down = redis.Redis(host="127.0.0.1", port=port, db=3, password="redis-s3cret",
                       socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(ThrottleUnavailable) as caught:
        Throttle(down, "purelyops-test:down").acquire(timeout=1)
    assert f"cannot reach Redis at 127.0.0.1:{port}/3" in str(caught.value)
    assert "redis-s3cret" not in str(caught.value)
