"""A stateful fake PurelyMail API over real HTTP, for tests.

It follows the project's PurelyMail reference (purelymail-api.md), quirks included:
errors come as HTTP 200 `{"type": "error"}` envelopes, unknown fields are ignored
(and recorded in `ignored_fields` so tests can catch them), an unknown operation is
an HTML 404, `createUser` takes the local part while every other user operation takes
the full address, and `listUser` stops at 1,000 addresses.

    fake = FakePurelyMail(token="pm-test-token")
    fake.start()          # listens on 127.0.0.1, a free port; fake.url is the base URL
    ...                   # fake.calls, fake.users, fake.domains, fake.rules
    fake.reset()          # empty state, default switches; same token and ownership code
    fake.stop()

Fault switches: `latency`, `fail_5xx`, `hang`, `malformed_json` (see `reset`).
Error messages the reference does not record are guesses, marked "guess" below.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.http_server import LoopbackHTTPServer

STR, BOOL, INT, STRS = "str", "bool", "int", "list[str]"

# operation -> field -> (type, required), per the reference.
SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {
    "createUser": {
        "userName": (STR, True), "domainName": (STR, True), "password": (STR, True),
        "enablePasswordReset": (BOOL, False), "enableSearchIndexing": (BOOL, False),
        "sendWelcomeEmail": (BOOL, False), "recoveryEmail": (STR, False),
        "recoveryEmailDescription": (STR, False), "recoveryPhone": (STR, False),
        "recoveryPhoneDescription": (STR, False),
    },
    "deleteUser": {"userName": (STR, True)},
    "listUser": {},
    "getUser": {"userName": (STR, True)},
    "modifyUser": {
        "userName": (STR, True), "newUserName": (STR, False), "newPassword": (STR, False),
        "enableSearchIndexing": (BOOL, False), "enablePasswordReset": (BOOL, False),
        "requireTwoFactorAuthentication": (BOOL, False),
    },
    "upsertPasswordReset": {
        "userName": (STR, True), "type": (STR, True), "target": (STR, True),
        "existingTarget": (STR, False), "description": (STR, False), "allowMfaReset": (BOOL, False),
    },
    "deletePasswordReset": {"userName": (STR, True), "target": (STR, False)},
    "listPasswordReset": {"userName": (STR, True)},
    "createAppPassword": {"userHandle": (STR, True), "name": (STR, False)},
    "deleteAppPassword": {"userName": (STR, True), "appPassword": (STR, True)},
    "createRoutingRule": {
        "domainName": (STR, True), "prefix": (BOOL, True), "matchUser": (STR, True),
        "targetAddresses": (STRS, True), "catchall": (BOOL, False),
    },
    "listRoutingRules": {},
    "deleteRoutingRule": {"routingRuleId": (INT, True)},
    "getOwnershipCode": {},
    "addDomain": {"domainName": (STR, True)},
    "listDomains": {"includeShared": (BOOL, False)},
    "updateDomainSettings": {
        "name": (STR, True), "allowAccountReset": (BOOL, False),
        "symbolicSubaddressing": (BOOL, False), "recheckDns": (BOOL, False),
    },
    "deleteDomain": {"name": (STR, True)},
    "checkAccountCredit": {},
}

PARSE_ERROR = "Request could not be parsed"
NO_TOKEN = "Token must be supplied in Purelymail-Api-Token header"
BAD_TOKEN = "Token not valid."
NO_SUCH_USER = "User does not exist"  # guess
NO_SUCH_DOMAIN = "Domain does not exist"  # guess
DEFAULT_CREDIT = "19.16079948301373180045878412899744"

HTML_404 = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
HTML_5XX = b"<!DOCTYPE html><html><head><title>Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
MALFORMED = b'{"type": "success", "result": {"'


@dataclass
class DnsSummary:
    """PurelyMail's DNS verdicts for a domain, as listDomains shows them."""

    mx: bool = False
    spf: bool = False
    dkim: bool = False
    dmarc: bool = False

    def wire(self) -> dict[str, bool]:
        return {"passesMx": self.mx, "passesSpf": self.spf, "passesDkim": self.dkim, "passesDmarc": self.dmarc}


@dataclass
class FakeDomain:
    """A domain on the fake account (or one of PurelyMail's shared domains)."""

    name: str
    allow_account_reset: bool = True  # guess: the default for a new domain
    symbolic_subaddressing: bool = False  # guess
    is_shared: bool = False
    dns: DnsSummary = field(default_factory=DnsSummary)

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name, "allowAccountReset": self.allow_account_reset,
            "symbolicSubaddressing": self.symbolic_subaddressing, "isShared": self.is_shared,
            "dnsSummary": self.dns.wire(),
        }


@dataclass
class FakeUser:
    """A mailbox on the fake account."""

    address: str
    password: str
    enable_search_indexing: bool = True
    enable_password_reset: bool = True
    require_two_factor_authentication: bool = False
    enable_spam_filtering: bool = True
    welcome_email_sent: bool = False
    reset_methods: list[dict[str, Any]] = field(default_factory=list)
    app_passwords: dict[str, str | None] = field(default_factory=dict)  # value -> name


@dataclass
class FakeRule:
    """A routing rule; its id is only visible through listRoutingRules."""

    id: int
    domain_name: str
    prefix: bool
    match_user: str
    target_addresses: list[str]
    catchall: bool

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "domainName": self.domain_name, "prefix": self.prefix,
            "matchUser": self.match_user, "targetAddresses": list(self.target_addresses),
            "catchall": self.catchall,
        }


class Rejected(Exception):
    """An operation fails: answered as HTTP 200 with an error envelope."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


Verifier = Callable[[str, str], bool]
Rechecker = Callable[[str], "DnsSummary | Mapping[str, bool] | None"]


class FakePurelyMail:
    """PurelyMail's API for one account, in memory, served on 127.0.0.1.

    State: `domains` (name -> FakeDomain), `users` (address -> FakeUser), `rules`
    (id -> FakeRule), `calls` ((operation, body) in arrival order, passwords included),
    `ignored_fields` ((operation, field) PurelyMail would silently ignore).
    Hooks: `ownership_verifier(domain, code) -> bool` decides addDomain (default:
    domain in `verified_domains`); `dns_rechecker(name)` answers a recheckDns with a
    DnsSummary or a mapping of mx/spf/dkim/dmarc (None keeps the old summary). Hooks
    run under the fake's lock.
    """

    def __init__(self, token: str = "pm-test-token") -> None:
        self.initial_token = token
        self.ownership_code = "purelymail_ownership_proof=" + secrets.token_hex(20)
        self._lock = threading.RLock()
        self._generation = 0
        self._wake = threading.Event()  # set to wake waiting requests (on reset and stop)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # Lifecycle

    def reset(self) -> None:
        """Forget all state and calls, and set every switch back to its default.

        Requests still waiting (latency, hang) are woken and dropped unanswered, so a
        request left hanging by one test never acts on the next test's state.
        """
        with self._lock:
            self._generation += 1
            self._wake.set()
            self._wake = threading.Event()
            self.token = self.initial_token
            self.domains: dict[str, FakeDomain] = {}
            self.users: dict[str, FakeUser] = {}
            self.rules: dict[int, FakeRule] = {}
            self.calls: list[tuple[str, dict[str, Any]]] = []
            self.ignored_fields: list[tuple[str, str]] = []
            self.credit = DEFAULT_CREDIT
            self.verified_domains: set[str] = set()
            self.ownership_verifier: Verifier = lambda domain, code: domain in self.verified_domains
            self.dns_rechecker: Rechecker | None = None
            self.list_user_cap: int | None = 1000
            self.require_reset_method_for_2fa = True
            # Fault switches. Keys are an operation name or "*" (any operation);
            # the operation's own entry is used before "*".
            self.latency = 0.0  # seconds to wait before every answer
            self.fail_5xx: dict[str, int] = {}  # answer HTTP `fail_status` with HTML, N times
            self.fail_status = 502
            self.hang: dict[str, float] = {}  # wait this long, then do the work (client gone)
            self.malformed_json: dict[str, int] = {}  # do the work, answer truncated JSON, N times
            self._next_rule_id = 5_000_000_000  # above 2**32, to catch int32 handling

    def start(self) -> FakePurelyMail:
        """Serve on a free port of 127.0.0.1 in a daemon thread."""
        fake = self

        class Handler(_Handler):
            owner = fake

        with self._lock:
            if self._wake.is_set():
                self._wake = threading.Event()
        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="fake-purelymail", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still hanging are woken and dropped."""
        with self._lock:
            self._wake.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakePurelyMail:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give a client (`{url}/api/v0/<operation>` is served)."""
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # State helpers for tests

    def add_domain_direct(self, name: str, *, shared: bool = False, dns_ok: bool = True) -> FakeDomain:
        """Put a domain on the account without addDomain's ownership check."""
        ok = dns_ok
        domain = FakeDomain(name.lower(), is_shared=shared, dns=DnsSummary(ok, ok, ok, ok))
        with self._lock:
            self.domains[domain.name] = domain
        return domain

    def add_user_direct(self, address: str, password: str = "correct horse battery", **flags: Any) -> FakeUser:
        """Put a mailbox on the account (and its domain, if missing). `flags` are FakeUser fields."""
        address = address.lower()
        with self._lock:
            domain = address.rpartition("@")[2]
            if domain not in self.domains:
                self.add_domain_direct(domain)
            user = FakeUser(address, password, **flags)
            self.users[address] = user
        return user

    def set_dns_summary(self, name: str, *, mx: bool, spf: bool, dkim: bool, dmarc: bool) -> None:
        """Set what listDomains reports about a domain's DNS."""
        with self._lock:
            self.domains[name.lower()].dns = DnsSummary(mx, spf, dkim, dmarc)

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        """The bodies sent to one operation, in order."""
        with self._lock:
            return [body for op, body in self.calls if op == operation]

    # Request handling (called by the HTTP handler)

    def handle(self, path: str, token: str | None, raw: bytes) -> tuple[int, str, bytes] | None:
        """Answer one POST: (status, content type, body), or None to drop the connection."""
        match = re.fullmatch(r"/api/v0/([A-Za-z0-9_]+)", path)
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        if match:
            with self._lock:
                self.calls.append((match.group(1), dict(parsed) if isinstance(parsed, dict) else {}))
        if not match or match.group(1) not in SCHEMAS:
            return 404, "text/html", HTML_404
        op = match.group(1)

        with self._lock:
            generation, wake = self._generation, self._wake
            latency = self.latency
            hang = self.hang.get(op, self.hang.get("*", 0.0))
            fail = _take(self.fail_5xx, op)
            status = self.fail_status
        if latency:
            wake.wait(latency)
        if fail:
            return status, "text/html", HTML_5XX
        if hang:
            wake.wait(hang)

        with self._lock:
            if generation != self._generation or wake.is_set():
                return None  # reset or stopped while waiting
            answer = self._envelope(op, token, parsed)
            garble = _take(self.malformed_json, op)
        return 200, "application/json", MALFORMED if garble else json.dumps(answer).encode()

    def _envelope(self, op: str, token: str | None, body: Any) -> dict[str, Any]:
        try:
            if not token:
                raise Rejected(NO_TOKEN, "invalidToken")
            if not secrets.compare_digest(token.encode(), self.token.encode()):
                raise Rejected(BAD_TOKEN, "invalidToken")
            fields = self._parse(op, body)
            result = getattr(self, f"_op_{op}")(fields)
        except Rejected as error:
            envelope: dict[str, Any] = {"type": "error", "message": error.message}
            if error.code:
                envelope["code"] = error.code
            return envelope
        return {"type": "success", "result": result}

    def _parse(self, op: str, body: Any) -> dict[str, Any]:
        """The known, non-null fields of a body; unknown ones are recorded and dropped."""
        if not isinstance(body, dict):
            raise Rejected(PARSE_ERROR)
        schema = SCHEMAS[op]
        fields: dict[str, Any] = {}
        for name, value in body.items():
            if name not in schema:
                with self._lock:
                    self.ignored_fields.append((op, name))
            elif value is not None:
                if not _is_type(schema[name][0], value):
                    raise Rejected(PARSE_ERROR)
                fields[name] = value
        if any(required and name not in fields for name, (_, required) in schema.items()):
            raise Rejected(PARSE_ERROR)
        return fields

    def _user(self, address: str) -> FakeUser:
        user = self.users.get(address.lower())
        if user is None:
            raise Rejected(NO_SUCH_USER)
        return user

    def _own_domain(self, name: str) -> FakeDomain:
        domain = self.domains.get(name.lower())
        if domain is None or domain.is_shared:
            raise Rejected(NO_SUCH_DOMAIN)
        return domain

    # Operations: each takes the parsed fields and returns the result object.

    def _op_createUser(self, f: dict[str, Any]) -> dict[str, Any]:
        local, domain = f["userName"].lower(), f["domainName"].lower()
        if "@" in local or not local:
            raise Rejected("Invalid user name")  # guess
        if domain not in self.domains:
            raise Rejected(NO_SUCH_DOMAIN)
        address = f"{local}@{domain}"
        if address in self.users:
            raise Rejected("User already exists")  # guess
        user = FakeUser(
            address, f["password"],
            enable_search_indexing=f.get("enableSearchIndexing", True),
            enable_password_reset=f.get("enablePasswordReset", True),
            welcome_email_sent=f.get("sendWelcomeEmail", True),
        )
        for kind, target, description in (
            ("email", f.get("recoveryEmail"), f.get("recoveryEmailDescription")),
            ("phone", f.get("recoveryPhone"), f.get("recoveryPhoneDescription")),
        ):
            if target:
                user.reset_methods.append(_reset_method(kind, target, description, False))
        self.users[address] = user
        return {}

    def _op_deleteUser(self, f: dict[str, Any]) -> dict[str, Any]:
        del self.users[self._user(f["userName"]).address]
        return {}

    def _op_listUser(self, f: dict[str, Any]) -> dict[str, Any]:
        users = list(self.users)
        return {"users": users if self.list_user_cap is None else users[: self.list_user_cap]}

    def _op_getUser(self, f: dict[str, Any]) -> dict[str, Any]:
        user = self._user(f["userName"])
        return {
            "enableSearchIndexing": user.enable_search_indexing,
            "recoveryEnabled": user.enable_password_reset,
            "requireTwoFactorAuthentication": user.require_two_factor_authentication,
            "enableSpamFiltering": user.enable_spam_filtering,
            "resetMethods": [dict(method) for method in user.reset_methods],
        }

    def _op_modifyUser(self, f: dict[str, Any]) -> dict[str, Any]:
        user = self._user(f["userName"])
        new_address = f.get("newUserName", "").lower()
        if new_address and new_address != user.address:
            local, _, domain = new_address.rpartition("@")
            if not local:
                raise Rejected("Invalid user name")  # guess
            if domain not in self.domains:
                raise Rejected(NO_SUCH_DOMAIN)
            if new_address in self.users:
                raise Rejected("User already exists")  # guess
        if (
            f.get("requireTwoFactorAuthentication")
            and self.require_reset_method_for_2fa
            and not user.reset_methods
        ):
            raise Rejected("A password reset method is required before enabling two-factor authentication")  # guess
        if new_address and new_address != user.address:
            del self.users[user.address]
            user.address = new_address
            self.users[new_address] = user
        if "newPassword" in f:
            user.password = f["newPassword"]
        if "enableSearchIndexing" in f:
            user.enable_search_indexing = f["enableSearchIndexing"]
        if "enablePasswordReset" in f:
            user.enable_password_reset = f["enablePasswordReset"]
        if "requireTwoFactorAuthentication" in f:
            user.require_two_factor_authentication = f["requireTwoFactorAuthentication"]
        return {}

    def _op_upsertPasswordReset(self, f: dict[str, Any]) -> dict[str, Any]:
        user = self._user(f["userName"])
        if f["type"] not in ("email", "phone"):
            raise Rejected(PARSE_ERROR)  # an enum that does not deserialize
        method = _reset_method(f["type"], f["target"], f.get("description"), f.get("allowMfaReset", False))
        key = f.get("existingTarget", f["target"])
        for index, existing in enumerate(user.reset_methods):
            if existing["target"] == key:
                user.reset_methods[index] = method
                return {}
        if "existingTarget" in f:
            raise Rejected("Password reset method does not exist")  # guess
        user.reset_methods.append(method)
        return {}

    def _op_deletePasswordReset(self, f: dict[str, Any]) -> dict[str, Any]:
        user = self._user(f["userName"])
        kept = [method for method in user.reset_methods if method["target"] != f.get("target")]
        if len(kept) == len(user.reset_methods):
            raise Rejected("Password reset method does not exist")  # guess
        user.reset_methods = kept
        return {}

    def _op_listPasswordReset(self, f: dict[str, Any]) -> dict[str, Any]:
        return {"users": [dict(method) for method in self._user(f["userName"]).reset_methods]}

    def _op_createAppPassword(self, f: dict[str, Any]) -> dict[str, Any]:
        user = self._user(f["userHandle"])
        value = "-".join(secrets.token_hex(2) for _ in range(4))
        user.app_passwords[value] = f.get("name")
        return {"appPassword": value}

    def _op_deleteAppPassword(self, f: dict[str, Any]) -> dict[str, Any]:
        user = self._user(f["userName"])
        if user.app_passwords.pop(f["appPassword"], False) is False:
            raise Rejected("App password does not exist")  # guess
        return {}

    def _op_createRoutingRule(self, f: dict[str, Any]) -> dict[str, Any]:
        domain = self._own_domain(f["domainName"])
        rule = FakeRule(
            self._next_rule_id, domain.name, f["prefix"], f["matchUser"],
            list(f["targetAddresses"]), f.get("catchall", False),
        )
        self._next_rule_id += 1
        self.rules[rule.id] = rule
        return {}

    def _op_listRoutingRules(self, f: dict[str, Any]) -> dict[str, Any]:
        return {"rules": [rule.wire() for rule in self.rules.values()]}

    def _op_deleteRoutingRule(self, f: dict[str, Any]) -> dict[str, Any]:
        if self.rules.pop(f["routingRuleId"], None) is None:
            raise Rejected("Routing rule does not exist")  # guess
        return {}

    def _op_getOwnershipCode(self, f: dict[str, Any]) -> dict[str, Any]:
        return {"code": self.ownership_code}

    def _op_addDomain(self, f: dict[str, Any]) -> dict[str, Any]:
        name = f["domainName"].lower()
        if name in self.domains:
            raise Rejected("Domain already exists")
        if not self.ownership_verifier(name, self.ownership_code):
            raise Rejected(
                f"DNS ownership checks did not pass. Add a TXT record to {name} "
                f"with the value {self.ownership_code} and try again."  # wording is a guess
            )
        self.domains[name] = FakeDomain(name)
        return {}

    def _op_listDomains(self, f: dict[str, Any]) -> dict[str, Any]:
        shared = f.get("includeShared", False)
        return {"domains": [d.wire() for d in self.domains.values() if shared or not d.is_shared]}

    def _op_updateDomainSettings(self, f: dict[str, Any]) -> dict[str, Any]:
        domain = self._own_domain(f["name"])
        if "allowAccountReset" in f:
            domain.allow_account_reset = f["allowAccountReset"]
        if "symbolicSubaddressing" in f:
            domain.symbolic_subaddressing = f["symbolicSubaddressing"]
        if f.get("recheckDns") and self.dns_rechecker is not None:
            summary = self.dns_rechecker(domain.name)
            if isinstance(summary, Mapping):
                summary = DnsSummary(**summary)
            if summary is not None:
                domain.dns = summary
        return {}

    def _op_deleteDomain(self, f: dict[str, Any]) -> dict[str, Any]:
        domain = self._own_domain(f["name"])
        del self.domains[domain.name]
        self.users = {a: u for a, u in self.users.items() if a.rpartition("@")[2] != domain.name}
        self.rules = {i: r for i, r in self.rules.items() if r.domain_name != domain.name}
        return {}

    def _op_checkAccountCredit(self, f: dict[str, Any]) -> dict[str, Any]:
        return {"credit": self.credit}


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the owning FakePurelyMail."""

    owner: FakePurelyMail
    server_version = "fake-purelymail"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            answer = self.owner.handle(self.path, self.headers.get("Purelymail-Api-Token"), raw)
        except Exception:  # a bug in a hook or in the fake: make it loud, as a 500
            answer = 500, "text/html", b"<html><body>500 fake error</body></html>"
        if answer is None:
            self.close_connection = True
            return
        self._answer(*answer)

    def do_GET(self) -> None:
        self._answer(405, "text/html", b"<html><body>405 Method Not Allowed</body></html>")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. after its timeout)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _take(faults: dict[str, int], op: str) -> bool:
    """Use up one count of a fault for `op` (its own entry first, then "*")."""
    for key in (op, "*"):
        if faults.get(key, 0) > 0:
            faults[key] -= 1
            return True
    return False


def _is_type(kind: str, value: Any) -> bool:
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == STRS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, str)


def _reset_method(kind: str, target: str, description: str | None, allow_mfa_reset: bool) -> dict[str, Any]:
    return {"type": kind, "target": target, "description": description, "allowMfaReset": allow_mfa_reset}
