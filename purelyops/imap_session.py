"""One IMAP session for purelyops itself (not imapsync): to the address that was checked,
with the TLS verification every other connection uses, logged in with a password or an
OAuth access token.

`connect(rt, endpoint, auth, timeout)` gives a logged-in imapclient.IMAPClient:
- it connects to `endpoint.host` (for a source, the address resolve_source allowed) while
  TLS checks the certificate for `endpoint.tls_name` (servers.imap_tls_context: the system's
  CAs plus IMAP_CA_FILE), on connect ("tls") or after STARTTLS ("starttls");
- `ImapAuth` with a password logs in with LOGIN (AUTHENTICATE PLAIN when it is not ASCII);
  with an access_token, with XOAUTH2.
Failures are `ImapUnreachable` (could not connect, TLS, a broken connection) or
`ImapLoginRefused`, with words for an admin that never carry the secret.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from purelyops import servers
from purelyops.imapsync import Endpoint
from purelyops.runtime import Runtime

TIMEOUT = 30.0
# imapclient traces every IMAP line at DEBUG: every header the check fetches (people's mail)
# and megabytes a run. Our logs keep its warnings only, whatever LOG_LEVEL says.
logging.getLogger("imapclient").setLevel(logging.WARNING)


@dataclass(frozen=True)
class ImapAuth:
    user: str
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)


class ImapSessionError(Exception):
    """An IMAP session could not be had or broke; the message is for an admin."""


class ImapUnreachable(ImapSessionError):
    """Could not connect, the TLS handshake failed, or the connection broke."""


class ImapLoginRefused(ImapSessionError):
    """The server refused the login."""


class _PinnedClient(IMAPClient):
    """IMAPClient over servers._Pinned: the socket goes to the checked address, TLS to the name."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext, timeout: float) -> None:
        self._endpoint = endpoint
        super().__init__(endpoint.tls_name, endpoint.port, ssl=endpoint.security == "tls", ssl_context=context,
                         timeout=timeout)

    def _create_IMAP4(self):  # noqa: ANN202, N802 - imapclient's hook
        end = self._endpoint
        return servers._Pinned(end.tls_name, end.host, end.port, self._timeout.connect,
                               self.ssl_context if self.ssl else None)


def where(endpoint: Endpoint) -> str:
    return f"{endpoint.tls_name}:{endpoint.port}"


def connect(rt: Runtime, endpoint: Endpoint, auth: ImapAuth, timeout: float = TIMEOUT) -> IMAPClient:
    """A logged-in session (see the module's docstring); the caller logs out."""
    context = servers.imap_tls_context(rt)
    try:
        client = _PinnedClient(endpoint, context, timeout)
    except ssl.SSLCertVerificationError as error:
        raise ImapUnreachable(f"the certificate of {where(endpoint)} is not trusted: "
                              f"{servers.certificate_problem(error, endpoint.tls_name)}") from None
    except (OSError, IMAPClientError) as error:
        raise ImapUnreachable(f"could not connect to {where(endpoint)}: {_words(error)}") from None
    client._imap.debug = 0  # imapclient turns imaplib's trace on (a log call per line), and we keep none of it
    try:
        if endpoint.security == "starttls":
            client.starttls(context)
        login(client, auth)
    except ImapLoginRefused:
        drop(client)
        raise
    except ssl.SSLCertVerificationError as error:
        drop(client)
        raise ImapUnreachable(f"the certificate of {where(endpoint)} is not trusted: "
                              f"{servers.certificate_problem(error, endpoint.tls_name)}") from None
    except (OSError, IMAPClientError) as error:
        drop(client)
        raise ImapUnreachable(f"the session with {where(endpoint)} broke: {_words(error)}") from None
    return client


def login(client: IMAPClient, auth: ImapAuth) -> None:
    try:
        if auth.access_token is not None:
            client.oauth2_login(auth.user, auth.access_token)
        elif (auth.user + (auth.password or "")).isascii():
            client.login(auth.user, auth.password or "")
        else:  # LOGIN takes ASCII only; AUTHENTICATE PLAIN carries UTF-8
            client.plain_login(auth.user, auth.password or "")
    except LoginError as error:
        text = str(error)
        for secret in (auth.password, auth.access_token):
            if secret:
                text = text.replace(secret, "•••")
        raise ImapLoginRefused(f"the server refused the login for {auth.user}: {text[:200]}") from None


_UID = re.compile(rb"(?:^|[ (])UID (\d+)")
_SIZE = re.compile(rb"(?:^|[ (])RFC822\.SIZE (\d+)")


def fetch_range(client: IMAPClient, first: int, last: int, data: list[bytes]) -> dict[int, dict]:
    """UID FETCH first:last: imapclient's own fetch, with a UID range rather than a list of
    every UID (its public fetch keeps only the UIDs it was given one by one). The
    responses for UIDs outside the range (unsolicited ones) are dropped as it drops them."""
    imap = client._imap
    tag = imap._command("UID", "FETCH", f"{first}:{last}", seq_to_parenstr_upper(data))
    typ, lines = imap._command_complete("FETCH", tag)
    client._checkok("fetch", typ, lines)
    typ, lines = imap._untagged_response(typ, lines, "FETCH")
    response = _header_fields_fast(lines, data) if len(data) == 2 else None
    if response is None:
        response = parse_fetch_response(lines, client.normalise_times, True)
    return {uid: item for uid, item in response.items() if isinstance(uid, int) and first <= uid <= last}


def _header_fields_fast(lines: list, data: list[bytes]) -> dict[int, dict] | None:
    """The one shape the check asks for, `(UID n RFC822.SIZE n BODY[HEADER.FIELDS (…)] {n}`
    + literal, read from imaplib's framing without imapclient's token-by-token parser (most
    of the check's time). Anything else, in any message of the batch: None, and imapclient
    parses the batch."""
    body_key = data[0].replace(b".PEEK", b"")
    if not body_key.startswith(b"BODY[HEADER.FIELDS") or data[1] != b"RFC822.SIZE":
        return None
    found: dict[int, dict] = {}
    for n, line in enumerate(lines):
        if not isinstance(line, tuple):
            if line in (b")", b"") or (n and isinstance(lines[n - 1], tuple)):
                continue  # the end of a message after its literal
            return None
        head, literal = line
        tail = lines[n + 1] if n + 1 < len(lines) and isinstance(lines[n + 1], bytes) else b""
        if body_key not in head.upper():
            return None
        text = head + b" " + tail
        uid, size = _UID.search(text), _SIZE.search(text)
        if uid is None or size is None:
            return None
        found[int(uid.group(1))] = {body_key: literal, b"RFC822.SIZE": int(size.group(1))}
    return found


def logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - best effort
        drop(client)


def drop(client: IMAPClient) -> None:
    """Close the connection without a word to the server (its answer may never come); from
    any thread, a read blocked on it ends."""
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001 - best effort
        pass


def _words(error: BaseException) -> str:
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "no answer in time"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error)[:200] or type(error).__name__
