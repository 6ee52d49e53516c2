"""The PurelyMail API client: one typed method per operation, one exception hierarchy.

PurelyMail answers every operation at `POST {base}/api/v0/<operation>` with a JSON
body and the `Purelymail-Api-Token` header. Failures also come back as HTTP 200 with
`{"type": "error", ...}`, and unknown fields are silently ignored, so this module
checks `type` on every answer and refuses to send a field an operation does not
know. Nothing from httpx leaves this module: callers see `PurelyMailError`
subclasses whose `str()` an admin can read in Slack.

Read operations are retried with exponential backoff when PurelyMail is unavailable
or sends garbled JSON; mutations are sent exactly once.

Inside `deadline(seconds)` (what an admin's click or command runs in), every call shares
one deadline: the throttle wait, each request's timeouts and the retries all fit in it,
and when it passes the call raises `SlowToAnswer`. Jobs run without one and keep the
full retry policy.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from purelyops import metrics
from purelyops.throttle import ThrottleTimeout

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from purelyops.throttle import Throttle

logger = logging.getLogger(__name__)

LIST_USER_CAP = 1000
"""`listUser` returns at most this many addresses and has no paging."""

CONNECT_TIMEOUT_S = 5.0
RETRY_BASE_S = 0.2
MIN_ATTEMPT_S = 0.5
"""Under a deadline, a retry is not started with less time than this left."""

# Every operation and the fields PurelyMail reads from its body. A field that is not
# listed here would be ignored by PurelyMail without an error, so we never send one.
OPERATION_FIELDS: dict[str, frozenset[str]] = {
    "createUser": frozenset({
        "userName", "domainName", "password", "enablePasswordReset", "enableSearchIndexing",
        "sendWelcomeEmail", "recoveryEmail", "recoveryEmailDescription", "recoveryPhone",
        "recoveryPhoneDescription",
    }),
    "deleteUser": frozenset({"userName"}),
    "listUser": frozenset(),
    "getUser": frozenset({"userName"}),
    "modifyUser": frozenset({
        "userName", "newUserName", "newPassword", "enableSearchIndexing",
        "enablePasswordReset", "requireTwoFactorAuthentication",
    }),
    "upsertPasswordReset": frozenset({
        "userName", "type", "target", "existingTarget", "description", "allowMfaReset",
    }),
    "deletePasswordReset": frozenset({"userName", "target"}),
    "listPasswordReset": frozenset({"userName"}),
    "createAppPassword": frozenset({"userHandle", "name"}),
    "deleteAppPassword": frozenset({"userName", "appPassword"}),
    "createRoutingRule": frozenset({
        "domainName", "prefix", "matchUser", "targetAddresses", "catchall",
    }),
    "listRoutingRules": frozenset(),
    "deleteRoutingRule": frozenset({"routingRuleId"}),
    "getOwnershipCode": frozenset(),
    "addDomain": frozenset({"domainName"}),
    "listDomains": frozenset({"includeShared"}),
    "updateDomainSettings": frozenset({
        "name", "allowAccountReset", "symbolicSubaddressing", "recheckDns",
    }),
    "deleteDomain": frozenset({"name"}),
    "checkAccountCredit": frozenset(),
}

READ_OPERATIONS = frozenset({
    "listUser", "getUser", "listPasswordReset", "listRoutingRules", "getOwnershipCode",
    "listDomains", "checkAccountCredit",
})
"""Operations that change nothing, and so are safe to retry."""

SECRET_FIELDS = frozenset({"password", "newPassword", "appPassword"})
"""Body fields masked in logs."""


# --- Errors -------------------------------------------------------------------------


class PurelyMailError(Exception):
    """Any failure of a PurelyMail call; `str()` is a sentence for an admin.

    `operation` is the PurelyMail operation (e.g. "addDomain"). `code` is PurelyMail's
    error code when it sent one, otherwise a code of ours: "timeout", "unreachable",
    "serverError", "malformedJson", "unknownOperation", "unexpectedShape", or None
    for an error envelope without a code.
    """

    def __init__(self, message: str, *, operation: str, code: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, operation={self.operation!r}, code={self.code!r})"


class AuthError(PurelyMailError):
    """The API token is missing or not valid (code `invalidToken`)."""


class RequestRejected(PurelyMailError):
    """PurelyMail answered with an error envelope; `message` is PurelyMail's own text."""

    def __init__(self, message: str, *, operation: str, code: str | None = None) -> None:
        super().__init__(f"PurelyMail refused {operation}: {message}", operation=operation, code=code)
        self.message = message


class DomainExistsError(RequestRejected):
    """addDomain: the domain is already on this (or another) account."""


class OwnershipNotVerified(RequestRejected):
    """addDomain: the ownership TXT record is not visible at the domain's apex yet."""


class NotFound(RequestRejected):
    """The user, domain or other object named in the request does not exist."""


class BadRequest(RequestRejected):
    """PurelyMail could not parse the request: a required field missing or mistyped."""


class Unavailable(PurelyMailError):
    """PurelyMail could not be reached, or answered with a server error (5xx, 429)."""


class Timeout(Unavailable):
    """PurelyMail did not answer in time.

    `sent` is False when the request never reached PurelyMail (no connection, or no
    request slot in time), so a mutation was certainly not done; when True, a mutation
    may or may not have been done. `target` names what the call was about (an address,
    a domain, a rule id) for words on how to check."""

    def __init__(self, message: str, *, operation: str, code: str | None = "timeout", sent: bool = True,
                 target: str | None = None) -> None:
        super().__init__(message, operation=operation, code=code)
        self.sent = sent
        self.target = target

    @property
    def mutation(self) -> bool:
        return self.operation not in READ_OPERATIONS


class SlowToAnswer(Timeout):
    """The deadline of an interactive request passed before PurelyMail answered."""


class ProtocolError(PurelyMailError):
    """PurelyMail's answer was not what the API promises (bad JSON, HTML, wrong shape)."""


_NOT_FOUND_MESSAGE = re.compile(r"does not exist|doesn't exist|not found|no such|unknown (user|domain)", re.I)
_NOT_FOUND_CODE = re.compile(r"nosuch|notfound|doesnotexist", re.I)


def _rejection(operation: str, code: str | None, message: str) -> PurelyMailError:
    """The exception for an error envelope, picked by code and (mostly) message.

    PurelyMail records few codes, so the specific classes are recognised by message.
    """
    if code == "invalidToken":
        return AuthError(
            "PurelyMail rejected the API token (check PURELYMAIL_API_TOKEN)",
            operation=operation, code=code,
        )
    lowered = message.lower()
    kind: type[RequestRejected] = RequestRejected
    if "request could not be parsed" in lowered:
        kind = BadRequest
    elif "domain already exists" in lowered:
        kind = DomainExistsError
    elif "dns ownership checks did not pass" in lowered:
        kind = OwnershipNotVerified
    elif _NOT_FOUND_MESSAGE.search(message) or (code and _NOT_FOUND_CODE.search(code)):
        kind = NotFound
    return kind(message or "no reason given", operation=operation, code=code)


def _retryable(error: BaseException) -> bool:
    return (isinstance(error, Unavailable) and not isinstance(error, SlowToAnswer)) or (
        isinstance(error, ProtocolError) and error.code == "malformedJson"
    )


# --- Deadline -----------------------------------------------------------------------

_deadline: ContextVar[tuple[float, float] | None] = ContextVar("purelymail_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every PurelyMail call made inside (in this thread or context) shares one deadline,
    `seconds` from now: the throttle wait, the requests and their retries included. When
    it passes, the call raises `SlowToAnswer`. Nested deadlines keep the sooner one."""
    mine = (time.monotonic() + seconds, seconds)
    outer = _deadline.get()
    token = _deadline.set(mine if outer is None or mine[0] < outer[0] else outer)
    try:
        yield
    finally:
        _deadline.reset(token)


def _left() -> tuple[float, float] | None:
    """(seconds left, the whole budget) under a deadline, else None."""
    current = _deadline.get()
    return None if current is None else (current[0] - time.monotonic(), current[1])


def _out_of_time(retry_state: RetryCallState) -> bool:
    """A tenacity stop: under a deadline, no retry that could not get MIN_ATTEMPT_S after its wait."""
    left = _left()
    return left is not None and left[0] - retry_state.upcoming_sleep < MIN_ATTEMPT_S


def _target(operation: str, body: dict[str, Any]) -> str | None:
    """What a call is about, for words on how to check its outcome."""
    if operation == "createUser":
        return f"{body.get('userName')}@{body.get('domainName')}"
    for key in ("userName", "userHandle", "name", "domainName", "routingRuleId"):
        if key in body:
            return str(body[key])
    return None


# --- Results ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetMethod:
    """A way for a user to reset their password: an email address or a phone number."""

    type: str
    target: str
    description: str | None
    allow_mfa_reset: bool


@dataclass(frozen=True)
class UserDetails:
    """What getUser tells about one mailbox (`address` is the one asked for)."""

    address: str
    enable_search_indexing: bool
    recovery_enabled: bool
    require_two_factor_authentication: bool
    enable_spam_filtering: bool
    reset_methods: tuple[ResetMethod, ...]


@dataclass(frozen=True)
class RoutingRule:
    """A forwarding rule: mail for matching addresses on a domain goes to the targets."""

    id: int
    domain_name: str
    prefix: bool
    match_user: str
    target_addresses: tuple[str, ...]
    catchall: bool


@dataclass(frozen=True)
class DomainDetails:
    """A domain on the account, with its settings and PurelyMail's DNS verdicts."""

    name: str
    allow_account_reset: bool
    symbolic_subaddressing: bool
    is_shared: bool
    passes_mx: bool
    passes_spf: bool
    passes_dkim: bool
    passes_dmarc: bool

    @property
    def dns_ok(self) -> bool:
        """True when PurelyMail sees MX, SPF, DKIM and DMARC all in place."""
        return self.passes_mx and self.passes_spf and self.passes_dkim and self.passes_dmarc


# --- Client -------------------------------------------------------------------------


class PurelyMailClient:
    """A synchronous client for PurelyMail's API, one method per operation.

    `throttle`, when given, is acquired before every HTTP request (retries included)
    so all processes share one request rate; its own errors (`ThrottleUnavailable`,
    `ThrottleTimeout`) pass through unchanged. `read_retries` is the most attempts a
    read operation gets. `timeout` applies to each phase of a request (connecting at
    most 5 s). `transport` replaces httpx's network transport in tests.

    Methods raise `ValueError` for a call that is wrong before anything is sent
    (a local part where a full address belongs, an empty change, an unknown field).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        throttle: Throttle | None = None,
        read_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an http(s) URL")
        self._base_url = base_url.rstrip("/")
        self._host = url.host
        self._timeout = timeout
        self._connect_timeout = min(CONNECT_TIMEOUT_S, timeout)
        self._throttle = throttle
        self._read_attempts = max(1, read_retries)
        self._http = httpx.Client(
            headers={"Purelymail-Api-Token": token, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=self._connect_timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"PurelyMailClient({self._base_url!r})"

    def close(self) -> None:
        """Close the underlying connections."""
        self._http.close()

    def __enter__(self) -> PurelyMailClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Users

    def create_user(
        self,
        local_part: str,
        domain: str,
        password: str,
        *,
        enable_password_reset: bool = False,
        enable_search_indexing: bool = True,
        send_welcome_email: bool = False,
        recovery_email: str | None = None,
        recovery_email_description: str | None = None,
        recovery_phone: str | None = None,
        recovery_phone_description: str | None = None,
    ) -> None:
        """Create the mailbox `local_part@domain` (PurelyMail wants the two apart)."""
        if "@" in local_part:
            raise ValueError("create_user takes the local part and the domain separately")
        body: dict[str, Any] = {
            "userName": local_part,
            "domainName": domain,
            "password": password,
            "enablePasswordReset": enable_password_reset,
            "enableSearchIndexing": enable_search_indexing,
            "sendWelcomeEmail": send_welcome_email,
        }
        _put_given(body, {
            "recoveryEmail": recovery_email,
            "recoveryEmailDescription": recovery_email_description,
            "recoveryPhone": recovery_phone,
            "recoveryPhoneDescription": recovery_phone_description,
        })
        self._call("createUser", body)

    def delete_user(self, address: str) -> None:
        """Delete a mailbox and its mail."""
        self._call("deleteUser", {"userName": _full(address)})

    def list_users(self) -> list[str]:
        """Every mailbox address on the account, at most LIST_USER_CAP of them.

        PurelyMail has no paging: a list of exactly LIST_USER_CAP may be incomplete.
        """
        result = self._call("listUser", {})
        users = _field(result, "users", list, "listUser")
        if not all(isinstance(user, str) for user in users):
            raise _shape("listUser", "users is not a list of addresses")
        if len(users) >= LIST_USER_CAP:
            logger.warning("purelymail listUser returned %d addresses: the list may be cut short", len(users))
        return users

    def get_user(self, address: str) -> UserDetails:
        """Settings and reset methods of one mailbox."""
        result = self._call("getUser", {"userName": _full(address)})
        op = "getUser"
        return UserDetails(
            address=address,
            enable_search_indexing=_field(result, "enableSearchIndexing", bool, op),
            recovery_enabled=_field(result, "recoveryEnabled", bool, op),
            require_two_factor_authentication=_field(result, "requireTwoFactorAuthentication", bool, op),
            enable_spam_filtering=_field(result, "enableSpamFiltering", bool, op),
            reset_methods=tuple(_reset_method(item, op) for item in _field(result, "resetMethods", list, op)),
        )

    def modify_user(
        self,
        address: str,
        *,
        new_address: str | None = None,
        new_password: str | None = None,
        enable_search_indexing: bool | None = None,
        enable_password_reset: bool | None = None,
        require_two_factor_authentication: bool | None = None,
    ) -> None:
        """Change a mailbox: rename it, set its password or flags. Only given fields are sent."""
        body: dict[str, Any] = {"userName": _full(address)}
        _put_given(body, {
            "newUserName": _full(new_address) if new_address is not None else None,
            "newPassword": new_password,
            "enableSearchIndexing": enable_search_indexing,
            "enablePasswordReset": enable_password_reset,
            "requireTwoFactorAuthentication": require_two_factor_authentication,
        })
        if len(body) == 1:
            raise ValueError("modify_user needs at least one change")
        self._call("modifyUser", body)

    # Password-reset methods

    def upsert_password_reset(
        self,
        address: str,
        type: Literal["email", "phone"],
        target: str,
        *,
        existing_target: str | None = None,
        description: str | None = None,
        allow_mfa_reset: bool | None = None,
    ) -> None:
        """Add a reset method, or replace the one at `existing_target`."""
        if type not in ("email", "phone"):
            raise ValueError("type must be 'email' or 'phone'")
        body: dict[str, Any] = {"userName": _full(address), "type": type, "target": target}
        _put_given(body, {
            "existingTarget": existing_target,
            "description": description,
            "allowMfaReset": allow_mfa_reset,
        })
        self._call("upsertPasswordReset", body)

    def delete_password_reset(self, address: str, target: str) -> None:
        """Remove the reset method that sends to `target`."""
        self._call("deletePasswordReset", {"userName": _full(address), "target": target})

    def list_password_reset(self, address: str) -> list[ResetMethod]:
        """The reset methods of a mailbox (PurelyMail calls the list `users`)."""
        op = "listPasswordReset"
        result = self._call(op, {"userName": _full(address)})
        return [_reset_method(item, op) for item in _field(result, "users", list, op)]

    # App passwords

    def create_app_password(self, address: str, name: str | None = None) -> str:
        """Create an app password and return it; PurelyMail never shows it again."""
        body: dict[str, Any] = {"userHandle": _full(address)}
        _put_given(body, {"name": name})
        result = self._call("createAppPassword", body)
        return _field(result, "appPassword", str, "createAppPassword")

    def delete_app_password(self, address: str, app_password: str) -> None:
        """Revoke an app password, given its value."""
        self._call("deleteAppPassword", {"userName": _full(address), "appPassword": app_password})

    # Routing rules

    def create_routing_rule(
        self,
        domain: str,
        *,
        prefix: bool,
        match_user: str,
        target_addresses: list[str],
        catchall: bool = False,
    ) -> None:
        """Forward mail for `match_user` (a prefix when `prefix`) on `domain`.

        No id comes back: list the rules afterwards to find it.
        """
        self._call("createRoutingRule", {
            "domainName": domain,
            "prefix": prefix,
            "matchUser": match_user,
            "targetAddresses": list(target_addresses),
            "catchall": catchall,
        })

    def list_routing_rules(self) -> list[RoutingRule]:
        """Every routing rule on the account."""
        op = "listRoutingRules"
        result = self._call(op, {})
        rules = []
        for item in _field(result, "rules", list, op):
            if not isinstance(item, dict):
                raise _shape(op, "a rule is not an object")
            rule_id = _field(item, "id", int, op)
            targets = _field(item, "targetAddresses", list, op)
            rules.append(RoutingRule(
                id=rule_id,
                domain_name=_field(item, "domainName", str, op),
                prefix=_field(item, "prefix", bool, op),
                match_user=_field(item, "matchUser", str, op),
                target_addresses=tuple(str(target) for target in targets),
                catchall=_field(item, "catchall", bool, op),
            ))
        return rules

    def delete_routing_rule(self, rule_id: int) -> None:
        """Delete a routing rule by the id listRoutingRules shows."""
        self._call("deleteRoutingRule", {"routingRuleId": rule_id})

    # Domains

    def get_ownership_code(self) -> str:
        """The account's ownership TXT value, `purelymail_ownership_proof=…`, for every domain."""
        return _field(self._call("getOwnershipCode", {}), "code", str, "getOwnershipCode")

    def add_domain(self, domain: str) -> None:
        """Add a domain; its ownership TXT record must already be visible."""
        self._call("addDomain", {"domainName": domain})

    def list_domains(self, include_shared: bool = False) -> list[DomainDetails]:
        """The account's domains (and PurelyMail's shared ones when asked)."""
        op = "listDomains"
        result = self._call(op, {"includeShared": include_shared})
        domains = []
        for item in _field(result, "domains", list, op):
            if not isinstance(item, dict):
                raise _shape(op, "a domain is not an object")
            dns = _field(item, "dnsSummary", dict, op)
            domains.append(DomainDetails(
                name=_field(item, "name", str, op),
                allow_account_reset=_field(item, "allowAccountReset", bool, op),
                symbolic_subaddressing=_field(item, "symbolicSubaddressing", bool, op),
                is_shared=_field(item, "isShared", bool, op),
                passes_mx=_field(dns, "passesMx", bool, op),
                passes_spf=_field(dns, "passesSpf", bool, op),
                passes_dkim=_field(dns, "passesDkim", bool, op),
                passes_dmarc=_field(dns, "passesDmarc", bool, op),
            ))
        return domains

    def update_domain_settings(
        self,
        name: str,
        *,
        allow_account_reset: bool | None = None,
        symbolic_subaddressing: bool | None = None,
        recheck_dns: bool = False,
    ) -> None:
        """Change a domain's flags, or (alone) ask PurelyMail to re-check its DNS.

        A recheck is sent as exactly `{name, recheckDns: true}`, as other flags in the
        same call would be overwritten; so the two cannot be combined.
        """
        body: dict[str, Any] = {"name": name}
        flags = {"allowAccountReset": allow_account_reset, "symbolicSubaddressing": symbolic_subaddressing}
        if recheck_dns:
            if any(value is not None for value in flags.values()):
                raise ValueError("recheck DNS in a call of its own: other flags would be overwritten")
            body["recheckDns"] = True
        else:
            _put_given(body, flags)
            if len(body) == 1:
                raise ValueError("update_domain_settings needs a flag or recheck_dns=True")
        self._call("updateDomainSettings", body)

    def delete_domain(self, name: str) -> None:
        """Delete a domain AND every mailbox and setting on it."""
        self._call("deleteDomain", {"name": name})

    # Billing

    def check_account_credit(self) -> Decimal:
        """The account's prepaid credit in dollars, exactly."""
        raw = _field(self._call("checkAccountCredit", {}), "credit", str, "checkAccountCredit")
        try:
            credit = Decimal(raw)
        except InvalidOperation:
            raise _shape("checkAccountCredit", "credit is not a number") from None
        if not credit.is_finite():
            raise _shape("checkAccountCredit", "credit is not a number")
        return credit

    # Transport

    def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one operation (retrying reads) and return its `result` object."""
        allowed = OPERATION_FIELDS.get(operation)
        if allowed is not None and not body.keys() <= allowed:
            raise ValueError(f"{operation} has no field {sorted(body.keys() - allowed)}")
        if operation not in READ_OPERATIONS:
            return self._send(operation, body)
        retrying = Retrying(
            stop=stop_after_attempt(self._read_attempts) | _out_of_time,
            wait=wait_exponential(multiplier=RETRY_BASE_S, max=5),
            retry=retry_if_exception(_retryable),
            before_sleep=lambda state: logger.debug(  # the caller logs the failure, once
                "purelymail %s failed (%s), trying again", operation,
                state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        return retrying(self._send, operation, body)

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request; every failure becomes a PurelyMailError."""
        left = _left()
        if self._throttle is not None:
            try:
                self._throttle.acquire() if left is None else self._throttle.acquire(timeout=max(0.0, left[0]))
            except ThrottleTimeout:
                if left is None:
                    raise
                raise SlowToAnswer(
                    f"PurelyMail is slow to answer: requests to it were queued behind others for {left[1]:g} s, "
                    f"so {operation} was not sent",
                    operation=operation, sent=False, target=_target(operation, body),
                ) from None
            left = _left()
        if left is not None and left[0] <= 0:
            raise SlowToAnswer(
                f"PurelyMail is slow to answer: no answer within {left[1]:g} s, so {operation} was not sent",
                operation=operation, sent=False, target=_target(operation, body),
            )
        started = time.monotonic()
        outcome = "failed"
        failure: Exception | None = None
        try:
            result = self._exchange(operation, body, None if left is None else left[0])
            outcome = "ok"
            return result
        except Timeout as error:
            outcome = f"{type(error).__name__} {error.code or ''}".strip()
            failure = error
            error.target = _target(operation, body)
            if left is None or isinstance(error, SlowToAnswer):
                raise
            budget = left[1]
            sent = error.sent
            raise SlowToAnswer(
                f"PurelyMail is slow to answer: no answer to {operation} within {budget:g} s" if sent else
                f"PurelyMail is slow to answer: it could not be reached within {budget:g} s, "
                f"so {operation} was not sent",
                operation=operation, sent=sent, target=error.target,
            ) from None
        except PurelyMailError as error:
            outcome = f"{type(error).__name__} {error.code or ''}".strip()
            failure = error
            raise
        finally:
            metrics.observe_purelymail(operation, time.monotonic() - started, failure)
            logger.debug(
                "purelymail %s %s in %d ms body=%s", operation, outcome,
                (time.monotonic() - started) * 1000, _masked(body),
            )

    def _exchange(self, operation: str, body: dict[str, Any], left: float | None = None) -> dict[str, Any]:
        """`left`: seconds this request may take in each phase (under a deadline)."""
        timeout, connect = self._timeout, self._connect_timeout
        if left is not None:
            timeout, connect = min(timeout, left), min(connect, left)
        try:
            response = self._http.post(f"{self._base_url}/api/v0/{operation}", json=body,
                                       timeout=httpx.Timeout(timeout, connect=connect))
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise Timeout(
                f"PurelyMail could not be reached within {connect:g} s",
                operation=operation, code="timeout", sent=False,
            ) from None
        except httpx.TimeoutException:
            raise Timeout(
                f"PurelyMail did not answer within {timeout:g} s",
                operation=operation, code="timeout",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise Unavailable(
                f"PurelyMail could not be reached at {self._host} ({type(error).__name__})",
                operation=operation, code="unreachable",
            ) from None

        status = response.status_code
        if status == 404:
            raise ProtocolError(
                f"PurelyMail does not know the operation {operation!r} (HTTP 404)",
                operation=operation, code="unknownOperation",
            )
        if status >= 500 or status == 429:
            raise Unavailable(
                f"PurelyMail is having trouble (HTTP {status})", operation=operation, code="serverError",
            )
        if status != 200:
            raise ProtocolError(
                f"PurelyMail answered with HTTP {status}", operation=operation, code="unexpectedShape",
            )
        try:
            payload = response.json()
        except ValueError:
            raise ProtocolError(
                "PurelyMail sent an answer we could not read", operation=operation, code="malformedJson",
            ) from None
        if not isinstance(payload, dict):
            raise _shape(operation, "the answer is not an object")
        kind = payload.get("type")
        if kind == "error":
            code = payload.get("code")
            message = payload.get("message")
            raise _rejection(
                operation,
                code if isinstance(code, str) and code else None,
                message if isinstance(message, str) else "",
            )
        if kind != "success":
            raise _shape(operation, "the answer has no type")
        result = payload.get("result")
        if result is None:
            return {}
        if not isinstance(result, dict):
            raise _shape(operation, "result is not an object")
        return result


# --- Wire helpers -------------------------------------------------------------------


def _full(address: str) -> str:
    """Check that a user is named by full address (all user ops but createUser want one)."""
    if "@" not in address:
        raise ValueError(f"{address!r} is not a full address (local@domain)")
    return address


def _put_given(body: dict[str, Any], optional: dict[str, Any]) -> None:
    """Add the optional fields that were given (not None) to a request body."""
    body.update({key: value for key, value in optional.items() if value is not None})


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    return {key: "***" if key in SECRET_FIELDS else value for key, value in body.items()}


def _shape(operation: str, detail: str) -> ProtocolError:
    return ProtocolError(
        f"PurelyMail sent an answer we could not read ({operation}: {detail})",
        operation=operation, code="unexpectedShape",
    )


def _field(data: dict[str, Any], name: str, kind: type, operation: str) -> Any:
    """`data[name]`, checked to be of `kind` (bool is not accepted as int)."""
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _shape(operation, f"{name} is missing or not a {kind.__name__}")
    return value


def _reset_method(item: Any, operation: str) -> ResetMethod:
    if not isinstance(item, dict):
        raise _shape(operation, "a reset method is not an object")
    description = item.get("description")
    allow = item.get("allowMfaReset")
    return ResetMethod(
        type=_field(item, "type", str, operation),
        target=_field(item, "target", str, operation),
        description=description if isinstance(description, str) else None,
        allow_mfa_reset=bool(allow) if isinstance(allow, bool) else False,
    )
