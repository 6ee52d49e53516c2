"""The public page of a credential link: PUBLIC_URL/gather/<token>, served by the web
process in HTTP and in Socket Mode alike.

A small HTML form (Jinja2 templates, autoescaped, and its own stylesheet at
/gather/style.css; no JavaScript, nothing loaded from elsewhere). The work is
purelyops.gather.submit; this module turns its verdict into a page and a status:

    200 the form, or "Thank you"     404 unknown link      410 "This form has closed"
    409 "already submitted"          413 body over 16 KiB  422 a field is wrong, or "could not log in"
    429 "Too many attempts"          503 the old server could not be reached, a store is down, or "busy"
    400 the client's address is not where FORWARDED_FOR_HOPS says

The form gets at most THREADS of a web process's threads at once, and at most
purelyops.gather.CHECK_SLOTS login checks run at once across every process: beyond, "busy"
(503, nothing counted), so that a flood of posts never holds the threads that answer Slack.

Every answer says Cache-Control: no-store, Referrer-Policy: no-referrer (the token is in the
URL), and a Content-Security-Policy of default-src 'none' plus the stylesheet and the form
itself, with frame-ancestors 'none'. Nothing here logs the path (it holds the token) or
what was typed; an unexpected failure is logged under an error id only.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot import gather_messages
from bot.work import after_ack
from purelyops import gather
from purelyops.failures import failure_reason, is_expected, new_error_id
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)

PREFIX = "/gather/"
STYLESHEET = "style.css"
MAX_BODY = 16 * 1024
THREADS = 4  # requests to the form a web process answers at once (bot.web gives it as many threads of its own)
HERE = Path(__file__).resolve().parent
HEADERS = [
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
]
LABELS = {"full_name": "Full name", "email": "Email address", "password": "Password",
          "new_address": "New address (optional)", "new_password": "New mailbox password (optional)"}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           410: "Gone", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
StartResponse = Callable[..., object]
Page = tuple[int, list[tuple[str, str]], bytes]


def client_ip(environ: dict, hops: int = 0) -> str | None:
    """Who is asking, from one source only: the TCP peer when `hops` is 0 (FORWARDED_FOR_HOPS);
    else the `hops`-th address from the right of X-Forwarded-For, which the admin's own
    proxies append (a client can only add addresses to its left). No other header, and no
    fallback: without that many valid addresses the answer is None (the request is refused).
    An IPv6 address stands for its /64 (one site's whole network), an IPv4-mapped one for
    its IPv4 address."""
    if hops <= 0:
        candidate = str(environ.get("REMOTE_ADDR") or "")
    else:
        hopped = [hop.strip() for hop in str(environ.get("HTTP_X_FORWARDED_FOR") or "").split(",")]
        if len(hopped) < hops:
            return None
        candidate = hopped[-hops]
    try:
        address = ipaddress.ip_address(candidate.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class GatherPage:
    """The WSGI app for everything under /gather/."""

    def __init__(self, rt: Runtime, announce: Callable[[int, int], None] | None = None) -> None:
        self.rt = rt
        self.templates = Environment(loader=FileSystemLoader(str(HERE)), autoescape=True, undefined=StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
        self.stylesheet = (HERE / STYLESHEET).read_bytes()
        self.threads = threading.BoundedSemaphore(THREADS)
        self._busy: Page | None = None
        self.warned = False
        self.announce = announce or (lambda link_id, submission_id: after_ack(
            gather_messages.announce, rt, link_id, submission_id))

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        # At most THREADS of the web process's threads answer the form at once: the others
        # stay Slack's, however many posts arrive (beyond, "busy", before anything is read).
        held = str(environ.get("PATH_INFO") or "") != PREFIX + STYLESHEET
        if held and not self.threads.acquire(blocking=False):
            status, headers, body = self.busy()
            held = False
        else:
            try:
                status, headers, body = self.answer(environ)
            except Exception as error:  # noqa: BLE001 - a person gets a page, never a traceback
                status, headers, body = self.failure(error)
            finally:
                if held:
                    self.threads.release()
        start_response(f"{status} {REASONS.get(status, '')}".rstrip(), HEADERS + headers +
                       [("Content-Length", str(len(body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    # ---- routing ---------------------------------------------------------------------------------

    def answer(self, environ: dict) -> Page:
        method = str(environ.get("REQUEST_METHOD") or "GET")
        rest = str(environ.get("PATH_INFO") or "")[len(PREFIX):]
        if rest == STYLESHEET:
            if method not in ("GET", "HEAD"):
                return self.not_allowed("GET, HEAD")
            return 200, [("Content-Type", "text/css; charset=utf-8")], self.stylesheet
        if method in ("GET", "HEAD"):
            link = gather.find_link(self.rt, rest)
            if link is None:
                return self.unknown()
            if gather.state_of(link) is not gather.LinkState.ACTIVE:
                return self.closed()
            return self.form(200, link)
        if method != "POST":
            return self.not_allowed("GET, HEAD, POST")
        if not gather.TOKEN_SHAPE.match(rest):
            return self.unknown()
        fields = self.read_form(environ)
        if isinstance(fields, tuple):
            return fields
        client = client_ip(environ, self.rt.settings.forwarded_for_hops)
        if client is None:
            if not self.warned:  # once a process: a flood of such posts must not fill the log
                self.warned = True
                log.warning("a credential form post came without the client's address where FORWARDED_FOR_HOPS=%s "
                            "says (the port reached directly, or a proxy that does not append to X-Forwarded-For): "
                            "refused, as every such post is", self.rt.settings.forwarded_for_hops)
            return self.message(400, "The form could not be sent", [
                "Open the link you were sent, exactly as it is, and try again."])
        result = gather.submit(self.rt, rest, fields, client)
        return self.verdict(result, fields)

    def read_form(self, environ: dict) -> dict[str, str] | Page:
        """The posted fields (the first of each name), or the page that refuses the body."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            return self.message(400, "The form could not be read", ["Reload the page and try again."])
        if length > MAX_BODY:
            return self.too_large()
        data = environ["wsgi.input"].read(MAX_BODY + 1 if length < 0 else length)
        if len(data) > MAX_BODY:
            return self.too_large()
        kind = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return self.message(415, "The form could not be read", ["Send it from the page itself: reload it "
                                                                      "and try again."])
        try:
            parsed = parse_qs(data.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=len(gather.LIMITS) + 5)
        except (UnicodeDecodeError, ValueError):
            return self.message(400, "The form could not be read", ["Reload the page and try again."])
        return {name: values[0] for name, values in parsed.items() if name in gather.LIMITS}

    # ---- pages -----------------------------------------------------------------------------------

    def verdict(self, result: gather.Result, fields: dict[str, str]) -> Page:
        v = gather.Verdict
        if result.verdict is v.ACCEPTED:
            assert result.link is not None and result.submission is not None
            self.announce(result.link.id, result.submission.id)
            return self.render(200, "thanks.html", title="Thank you", full_name=result.submission.full_name,
                               email=result.submission.email, asker=_asker(result.link))
        if result.verdict is v.UNKNOWN:
            return self.unknown()
        if result.verdict is v.CLOSED:
            return self.closed()
        assert result.link is not None
        if result.verdict is v.INVALID:
            return self.form(422, result.link, fields, result.problems, "Some answers need a change.")
        if result.verdict is v.LOGIN_FAILED:
            return self.form(422, result.link, fields, {
                "password": "We could not log in to your old mailbox with this email address and password. "
                            "Check both and try again."}, "The login did not succeed. We could not log in with "
                                                          "these details.")
        if result.verdict is v.NEW_LOGIN_FAILED:
            return self.form(422, result.link, fields, {
                "new_password": f"We could not log in to your new mailbox, {result.destination}, with this "
                                "password. Check it, or leave it empty: your administrator then confirms the move "
                                "into that mailbox."}, "The login to your new mailbox did not succeed.")
        if result.verdict is v.BUSY:
            return self.busy()
        if result.verdict is v.DUPLICATE:
            return self.message(409, "Already submitted", [
                "The login of this email address was already submitted with this link, so there is nothing more "
                "to do.", f"If something needs to change, tell {_asker(result.link)}."])
        if result.verdict is v.TOO_MANY:
            minutes = max(1, (result.retry_after + 59) // 60)
            page = self.message(429, "Too many attempts", [
                "There were too many attempts that could not log in, for this address or from your network.",
                f"Wait {minutes} minute(s), then try again."])
            return page[0], page[1] + [("Retry-After", str(result.retry_after))], page[2]
        status, headers, body = self.form(503, result.link, fields, {}, (
            "Your old mail server could not be reached to check the login. Nothing was stored. Try again in a "
            "few minutes."))
        return status, headers + [("Retry-After", "60")], body

    def form(self, status: int, link, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
             alert: str = "") -> Page:
        until = link.expires_at.astimezone(self.rt.settings.zone)
        shown = {name: value for name, value in (values or {}).items() if name not in ("password", "new_password")}
        domains = gather.link_domains(link)
        return self.render(status, "form.html", title=f"Move your mailbox: {_asker(link)}", asker=_asker(link),
                           new_hint=_new_hint(domains),
                           until=_when(until, self.rt.settings.tz), until_iso=until.isoformat(), values=shown,
                           errors=errors or {}, alert=alert, labels=LABELS, limits=gather.LIMITS)

    def busy(self) -> Page:
        """503 "busy", rendered once: under a flood it is most of what the form answers."""
        if self._busy is None:
            status, headers, body = self.message(503, "The form is busy", [
                "Many people are sending it right now. Nothing was stored and nothing was counted: try again in a "
                "minute."])
            self._busy = status, headers + [("Retry-After", "60")], body
        return self._busy

    def unknown(self) -> Page:
        return self.message(404, "This link is not valid", [
            "Check that you opened the whole link you were sent, or ask its sender for it again."])

    def closed(self) -> Page:
        return self.message(410, "This form has closed", [
            "It no longer takes logins. If your mailbox still has to move, ask the person who sent you the link."])

    def too_large(self) -> Page:
        return self.message(413, "The form is too large", ["Some answers are far too long; shorten them and try "
                                                           "again."])

    def not_allowed(self, allow: str) -> Page:
        status, headers, body = self.message(405, "This page only shows the form", ["Open the link in a browser."])
        return status, headers + [("Allow", allow)], body

    def message(self, status: int, title: str, lines: list[str]) -> Page:
        return self.render(status, "message.html", title=title, lines=lines)

    def render(self, status: int, template: str, **context: object) -> Page:
        body = self.templates.get_template(template).render(**context).encode()
        return status, [("Content-Type", "text/html; charset=utf-8")], body

    def failure(self, error: Exception) -> Page:
        """A page in words for what failed; the log line names no path, token or field."""
        if is_expected(error):
            log.warning("the credential form could not answer: %s", failure_reason(error))
        else:
            error_id = new_error_id()
            log.error("the credential form failed [error id %s]", error_id, exc_info=error)
        try:
            return self.message(503, "The form cannot be used right now", [
                "Nothing was stored. Try again in a few minutes."])
        except Exception:  # noqa: BLE001 - even the template failed
            return 503, [("Content-Type", "text/plain; charset=utf-8")], b"The form cannot be used right now."


def _new_hint(domains: list[str]) -> str:
    if not domains:
        return "This link takes no new address: leave this empty."
    return (f"Only if your new address differs from your old name at @{domains[0]}. It ends in "
            f"{' or '.join('@' + d for d in domains)}.")


def _asker(link) -> str:
    return link.name or "Your email administrator"


def _when(at: datetime, zone_name: str) -> str:
    return f"{at.day} {at:%B %Y}, {at:%H:%M} ({zone_name})"
