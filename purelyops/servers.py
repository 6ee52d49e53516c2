"""Source servers: the old IMAP hosts mailboxes move from. Connection details only; a
password typed for `server test` is used for one login and kept nowhere.

`resolve_source` is the one gate before any connection to a source host (`server add`,
`server test`, each migration run): it resolves the name and refuses loopback addresses
(unless SOURCE_HOSTS_ALLOW lists them), and link-local, cloud metadata, unspecified,
broadcast and multicast addresses always. Private ranges are allowed: old mail servers
live there.
"""

from __future__ import annotations

import imaplib
import ipaddress
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from db.models import SourceServer
from db.session import session_scope
from purelyops import audit, oauth_tokens
from purelyops.dns_query import Budget, DnsLookupError, ServerPlan, resolve
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.errors import Refused
from purelyops.fields import FieldProblems
from purelyops.providers import OTHER, PROVIDERS
from purelyops.providers import PORT as PRESET_PORT
from purelyops.providers import SECURITY as PRESET_SECURITY
from purelyops.runtime import Runtime

SECURITY = {"tls": "TLS on connect", "starttls": "STARTTLS", "none": "none (unencrypted)"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
LOGIN_TIMEOUT = 10.0
ADD_RESOLVE_TIMEOUT = 1.5  # `server add` looks the host up before Slack's 3 s are over
LOGIN_REFUSED = "the server refused the login"  # how test_login's words begin when the password was wrong
# …and when the login was sent but never answered (a timeout, or the connection dropped):
# servers delay wrong passwords (Dovecot doubles its penalty per failure), so this is a failed login too.
LOGIN_UNANSWERED = "the server did not answer the login"
TOKEN_REFUSED = "AUTHENTICATE failed"  # test_login's answer when a token was refused


class ServerError(Refused):
    """A bad server request; the message is for the admin."""


class SourceRefused(ServerError):
    """The host is, or resolves to, an address purelyops does not connect to."""


class SourceUnresolved(ServerError):
    """The host name does not resolve (now), so nothing can be checked or connected to."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    host: str
    port: int
    security: str
    provider: str = OTHER  # a key of purelyops.providers.PROVIDERS
    auth: str = oauth_tokens.PASSWORD  # a key of purelyops.oauth_tokens.METHODS
    sign_in: dict[str, str] = field(default_factory=dict, repr=False)  # its secrets, stored encrypted


def check_spec(name: str, host: str, port: str, security: str, provider: str = OTHER,
               auth: str = oauth_tokens.PASSWORD, sign_in_fields: dict[str, str] | None = None) -> ServerSpec:
    """Validate every field at once; FieldProblems maps field → message. A token sign-in
    (`auth`, its fields as in oauth_tokens.check_sign_in) is checked with them.

    A provider other than Other brings its own host, port 993 and TLS: the host and port
    may be left empty (or be just those), and anything else is refused on its field
    rather than ignored, so that nobody thinks they reach a host they typed."""
    problems: dict[str, str] = {}
    sign_in: dict[str, str] = {}
    auth = auth or oauth_tokens.PASSWORD
    try:
        sign_in = oauth_tokens.check_sign_in(auth, sign_in_fields or {})
    except FieldProblems as error:
        problems.update(error.problems)
    try:
        spec = _check_connection(name, host, port, security, provider)
    except FieldProblems as error:
        raise FieldProblems({**error.problems, **problems}) from None
    if problems:
        raise FieldProblems(problems)
    return ServerSpec(spec.name, spec.host, spec.port, spec.security, spec.provider, auth, sign_in)


def _check_connection(name: str, host: str, port: str, security: str, provider: str) -> ServerSpec:
    problems: dict[str, str] = {}
    name = name.strip().lower()
    if not _NAME.match(name):
        problems["name"] = "a short name: letters, digits, - and _ (at most 32), starting with a letter or digit"
    preset = PROVIDERS.get(provider or OTHER)
    if preset is None:
        problems["provider"] = "choose a provider, or Other"
    elif preset.key != OTHER:
        typed = host.strip().lower().rstrip(".")
        if typed and typed != preset.host:
            problems["host"] = (f"leave the host empty: {preset.label} is {preset.host}. To reach another host, "
                                "choose the provider Other")
        if port.strip() and port.strip() != str(PRESET_PORT):
            problems["port"] = f"{preset.label} is reached on port {PRESET_PORT}: leave {PRESET_PORT} or nothing here"
        if security not in ("", PRESET_SECURITY):
            problems["security"] = (f"{preset.label} is reached with {SECURITY[PRESET_SECURITY]}: keep it, or choose "
                                    "the provider Other")
        if problems:
            raise FieldProblems(problems)
        return ServerSpec(name, preset.host, PRESET_PORT, PRESET_SECURITY, preset.key)
    host = host.strip().lower().rstrip(".")
    if not host:
        problems["host"] = "give the IMAP host, like imap.oldhost.example (or choose a provider)"
    else:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            try:
                host = normalize_domain(host).ascii
            except InvalidDomain as error:
                problems["host"] = f"not a host name or IP address: {error.message}"
    value = 0
    if not (port.strip().isascii() and port.strip().isdigit()):
        problems["port"] = "a port is a number from 1 to 65535, like 993"
    else:
        value = int(port.strip())
        if not 1 <= value <= 65535:
            problems["port"] = f"{value} is not a port: use 1 to 65535, like 993"
    if security not in SECURITY:
        problems["security"] = "choose TLS, STARTTLS or none"
    if problems:
        raise FieldProblems(problems)
    return ServerSpec(name, host, value, security)


# ---- which hosts may be connected to ------------------------------------------------------

# Cloud metadata services, by name and by address: never connected to, whatever
# SOURCE_HOSTS_ALLOW says. (169.254.0.0/16 and fe80::/10 are refused as link-local anyway.)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle…
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd20:ce::254",  # GCP metadata over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud (legacy)
    "168.63.129.16",  # Azure WireServer
))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.ip_address("255.255.255.255")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _literal(host: str) -> Address | None:
    """The address `host` is written as, in any form a connecting program would accept
    (inet_aton takes "127.1" and "0x7f.1" too), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _effective(address: Address) -> Address:
    """The IPv4 address behind an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::/96)
    IPv6 address, which reach that IPv4 address; the address itself otherwise."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _never(address: Address) -> str | None:
    """What `address` is, when purelyops never connects to it; None otherwise."""
    plain = _effective(address)
    if plain in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if plain.is_link_local:
        return "a link-local address"
    if plain.is_unspecified or plain in _THIS_NETWORK:
        return "an unspecified address (this machine)"
    if plain == _BROADCAST:
        return "the broadcast address"
    if plain.is_multicast:
        return "a multicast address"
    return None


def _allowed(rt: Runtime, name: str, address: Address) -> bool:
    """SOURCE_HOSTS_ALLOW lists this host by name, or a CIDR (or address) containing it."""
    plain = _effective(address)
    for item in rt.settings.source_hosts_allow:
        entry = item.strip().lower().rstrip(".")
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if entry and entry == name:
                return True
            continue
        if any(a.version == network.version and a in network for a in {address, plain}):
            return True
    return False


def _lookup_with(plan: ServerPlan, name: str, timeout: float) -> list[Address]:
    clock = Budget(timeout)
    qname = dns.name.from_text(name + ".")
    found: list[Address] = []
    statuses = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        answer = resolve(plan, qname, rdtype, clock)
        statuses.append(answer.status)
        found += [ipaddress.ip_address(r.address) for r in answer.records]  # type: ignore[attr-defined]
    if "nxdomain" in statuses:
        raise SourceUnresolved(f"{name} does not exist in DNS (NXDOMAIN)")
    return found


def _lookup_system(name: str, port: int, timeout: float) -> list[Address]:
    """getaddrinfo, as imapsync and every other program on this machine resolve names
    (/etc/hosts included), under a time limit of our own."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except OSError as error:
            outcome.append(error)

    thread = threading.Thread(target=run, name="resolve-source", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise SourceUnresolved(f"looking up {name} took longer than {timeout:g} s")
    if isinstance(outcome[0], OSError):
        error = outcome[0]
        raise SourceUnresolved(f"{name} does not resolve ({getattr(error, 'strerror', None) or error})")
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in outcome[0]]  # type: ignore[union-attr]


def resolve_source(rt: Runtime, host: str, port: int, *, timeout: float | None = None) -> list[str]:
    """The addresses of source host `host` that purelyops may connect to: every address the
    name resolves to (DNS_RESOLVER's servers when it is set, else the system's resolver), or
    the address it is. Connect to these, not to the name again, so what was checked is what
    is reached.

    Raises SourceRefused (a ServerError, in words) when any of the addresses is loopback and
    SOURCE_HOSTS_ALLOW does not list it (by name, or a CIDR containing it), or is link-local,
    a cloud metadata address or name, unspecified, broadcast or multicast: those are refused
    even when listed. Raises SourceUnresolved (a ServerError) when the name does not resolve
    within `timeout` seconds (default DNS_TIMEOUT)."""
    name = host.strip().lower().rstrip(".")
    seconds = rt.settings.dns_timeout if timeout is None else timeout
    if name in METADATA_NAMES:
        raise SourceRefused(f"{name} is a cloud metadata service: never allowed, even in SOURCE_HOSTS_ALLOW.")
    literal = _literal(name)
    if literal is not None:
        addresses = [literal]
    else:
        if len(name) > 253 or not _HOST_NAME.match(name):
            raise SourceRefused(f"{name[:80]} is not a host name")
        if rt.settings.dns_resolver.strip():
            try:
                addresses = _lookup_with(ServerPlan.from_spec(rt.settings.dns_resolver), name, seconds)
            except DnsLookupError as error:
                raise SourceUnresolved(f"could not look up {name}: {error.message}") from None
        else:
            addresses = _lookup_system(name, port, seconds)
        if not addresses:
            raise SourceUnresolved(f"{name} has no address in DNS (no A or AAAA record)")
    unique = list(dict.fromkeys(addresses))

    def subject(address: Address) -> str:
        return f"{address} is" if literal is not None else f"{name} resolves to {address},"

    for address in unique:
        what = _never(address)
        if what:
            raise SourceRefused(f"{subject(address)} {what}: never allowed, even in SOURCE_HOSTS_ALLOW.")
    for address in unique:
        if _effective(address).is_loopback and not _allowed(rt, name, address):
            raise SourceRefused(f"{subject(address)} a loopback address (this machine): allowed only if "
                                "SOURCE_HOSTS_ALLOW lists it.")
    return [str(a) for a in unique]


def add_server(rt: Runtime, spec: ServerSpec, *, actor_id: str, actor_name: str = "",
               resolve_timeout: float = ADD_RESOLVE_TIMEOUT) -> tuple[SourceServer, str]:
    """Check the host with `resolve_source` and save the server, with its audit entry.

    A refused host raises FieldProblems on "host", and nothing is saved. A name that does
    not resolve (yet) is saved: the second value says so, for the answer ("" otherwise)."""
    warning = ""
    try:
        resolve_source(rt, spec.host, spec.port, timeout=resolve_timeout)
    except SourceRefused as error:
        raise FieldProblems({"host": str(error)}) from None
    except SourceUnresolved as error:
        warning = f"{error}. It is checked again at every connection."
    try:
        with session_scope(rt.database_url) as session:
            server = SourceServer(name=spec.name, host=spec.host, port=spec.port, security=spec.security,
                                  provider=spec.provider, auth=spec.auth, created_by=actor_id)
            session.add(server)
            session.flush()
            if spec.auth != oauth_tokens.PASSWORD:
                server.auth_key_id, server.auth_ciphertext = oauth_tokens.seal(rt, server.id, spec.sign_in)
                session.flush()
            audit.record(session, actor_id=actor_id, actor_name=actor_name, action="server.add", target=spec.name,
                         params={"host": spec.host, "port": spec.port, "security": spec.security,
                                 "provider": spec.provider,
                                 **({"auth": spec.auth, "client_id": spec.sign_in.get("client_id", "")}
                                    if spec.sign_in else {})})
            session.expunge(server)
            return server, warning
    except IntegrityError:
        raise FieldProblems({"name": f"there is already a server called {spec.name}"}) from None


def list_servers(rt: Runtime) -> list[SourceServer]:
    with session_scope(rt.database_url) as session:
        servers = list(session.scalars(select(SourceServer).order_by(SourceServer.name)))
        session.expunge_all()
        return servers


def get_server(rt: Runtime, name_or_id: str | int) -> SourceServer:
    with session_scope(rt.database_url) as session:
        query = select(SourceServer)
        query = query.where(SourceServer.id == name_or_id) if isinstance(name_or_id, int) else \
            query.where(SourceServer.name == str(name_or_id).strip().lower())
        server = session.scalars(query).one_or_none()
        if server is None:
            raise ServerError(f"There is no source server called {str(name_or_id)[:40]}; see `server list`.")
        session.expunge(server)
        return server


def remove_server(rt: Runtime, name: str, *, actor_id: str, actor_name: str = "") -> None:
    """Forget the server, and with it its sign-in's secrets (its jobs keep its connection
    details; a job of a token server cannot get a token any more, and says so)."""
    server = get_server(rt, name)
    with session_scope(rt.database_url) as session:
        session.delete(session.get(SourceServer, server.id))
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="server.remove", target=server.name)


def imap_tls_context(rt: Runtime) -> ssl.SSLContext:
    """The TLS context for IMAP connections to source servers: certificates verified against
    the system's store plus IMAP_CA_FILE, host names checked."""
    context = ssl.create_default_context()
    if rt.settings.imap_ca_file:
        context.load_verify_locations(cafile=rt.settings.imap_ca_file)
    return context


_VERIFY_WORDS = {
    9: "it is not valid yet",
    10: "it has expired",
    18: "it is self-signed",
    19: "it was issued by a CA that is not trusted (a private CA?)",
    20: "it was issued by a CA that is not trusted (a private CA?)",
    21: "it was issued by a CA that is not trusted (a private CA?)",
    23: "it has been revoked",
    62: "it is for another host name",
    64: "it is for another IP address",
}


def certificate_problem(error: ssl.SSLCertVerificationError, host: str) -> str:
    """Why a certificate was not trusted, in words."""
    words = _VERIFY_WORDS.get(error.verify_code or 0) or (error.verify_message or str(error.reason or error))
    if error.verify_code in (62, 64):
        words += f", not {host}"
    return words


class _Pinned(imaplib.IMAP4):
    """IMAP to the address resolve_source allowed (not to whatever the name resolves to by
    now); `host` stays the name, for TLS's server name and certificate check."""

    def __init__(self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext | None) -> None:
        self._address, self._context = address, context
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout):  # noqa: ANN001, ANN202 - imaplib's hook
        sock = socket.create_connection((self._address, self.port), timeout)
        if self._context is None:
            return sock
        try:
            return self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def test_login(rt: Runtime, host: str, port: int, security: str, address: str, password: str,
               timeout: float = LOGIN_TIMEOUT, *, token: str | None = None) -> tuple[bool, str]:
    """A real IMAP login: (True, "…") or (False, what went wrong in words). The host goes
    through `resolve_source` first; TLS and STARTTLS verify the certificate (the system's
    CAs and IMAP_CA_FILE) for `host`. Whatever answers that is not IMAP is not echoed."""
    try:
        addresses = resolve_source(rt, host, port)
    except ServerError as error:
        return False, str(error)
    context = imap_tls_context(rt)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    client: imaplib.IMAP4 | None = None
    failure = ""
    for ip in addresses:
        try:
            client = _Pinned(host, ip, port, timeout, context if security == "tls" else None)
            break
        except (socket.timeout, TimeoutError):
            failure = f"{where} did not answer within {timeout:g} s"
        except ssl.SSLCertVerificationError as error:
            return False, (f"the certificate of {where} is not trusted: {certificate_problem(error, host)}. "
                           "If it is your own CA's, put that CA in IMAP_CA_FILE.")
        except ssl.SSLError as error:
            return False, (f"the TLS handshake with {where} failed ({error.reason or 'no reason given'}); "
                           "check the security setting")
        except imaplib.IMAP4.error:
            return False, (f"{where} answered, but it is not an IMAP server; "
                           "check the host, the port and the security setting")
        except OSError as error:
            failure = f"could not connect to {where}: {error.strerror or type(error).__name__}"
    if client is None:
        return False, failure
    logged_in = False
    try:
        if security == "starttls":
            try:
                client.starttls(context)
            except ssl.SSLCertVerificationError as error:
                return False, (f"the certificate of {where} is not trusted: {certificate_problem(error, host)}. "
                               "If it is your own CA's, put that CA in IMAP_CA_FILE.")
            except ssl.SSLError as error:
                return False, f"the TLS handshake with {where} failed ({error.reason or 'no reason given'})"
            except imaplib.IMAP4.error:
                return False, f"{where} does not offer STARTTLS; choose TLS on connect (usually port 993) or none"
        try:
            if token is not None:
                sent: list[bool] = []

                def xoauth2(_challenge: bytes) -> bytes:  # a failure's JSON challenge is answered empty (Google)
                    if sent:
                        return b""
                    sent.append(True)
                    return oauth_tokens.xoauth2(address, token)

                client.authenticate("XOAUTH2", xoauth2)
            elif (address + password).isascii():
                client.login(address, password)
            else:  # LOGIN takes ASCII only; AUTHENTICATE PLAIN carries UTF-8
                client.authenticate("PLAIN", lambda _: f"\0{address}\0{password}".encode())
        except imaplib.IMAP4.abort as error:  # the connection dropped once the login was sent
            return False, (f"{LOGIN_UNANSWERED} for {address}: the connection was closed "
                           f"({type(error).__name__}); a server that hangs up on a login refused it")
        except (socket.timeout, TimeoutError):
            return False, (f"{LOGIN_UNANSWERED} for {address} within {timeout:g} s; servers delay their answer "
                           "to a wrong password")
        except OSError as error:
            return False, (f"{LOGIN_UNANSWERED} for {address}: the connection broke "
                           f"({error.strerror or type(error).__name__})")
        except imaplib.IMAP4.error as error:
            text = str(error).replace(password, "•••") if password else str(error)
            if token is not None:
                return False, TOKEN_REFUSED
            return False, f"{LOGIN_REFUSED} for {address}: {text[:200]}"
        logged_in = True
    except OSError as error:
        return False, f"the connection to {where} broke: {error.strerror or type(error).__name__}"
    finally:
        try:
            client.logout() if logged_in else client.shutdown()
        except Exception:  # noqa: BLE001 - best effort
            pass
    return True, f"{address} logged in to {where}"


def test_token_login(rt: Runtime, server: SourceServer, mailbox: str) -> tuple[bool, str]:
    """`server test <name> <mailbox>` for a token server: a token for the mailbox, then a real
    IMAP login with it (XOAUTH2). (False, what is wrong in words) when either is refused."""
    try:
        token = oauth_tokens.token_for(rt, server, mailbox)
    except oauth_tokens.TokenRefused as error:
        return False, f"no token for {mailbox}: {error}"
    ok, words = test_login(rt, server.host, server.port, server.security, mailbox, "", token=token.value)
    if ok:
        return True, f"{words} with a token from the {oauth_tokens.METHODS[server.auth]}"
    if words == TOKEN_REFUSED:
        return False, oauth_tokens.imap_refusal_words(server, mailbox)
    return False, words


def untrusted_certificate(rt: Runtime, host: str, address: str, port: int, security: str,
                          timeout: float = LOGIN_TIMEOUT) -> str | None:
    """Before a migration copies anything: why the certificate that `host` (reached at
    `address`) shows is not trusted, in words; None when it is trusted, when the
    connection is not TLS, or when it cannot be reached now (imapsync then says so, and
    a server that is down is for a retry, not a refusal)."""
    if security not in ("tls", "starttls"):
        return None
    context = imap_tls_context(rt)
    client: imaplib.IMAP4 | None = None
    try:
        client = _Pinned(host, address, port, timeout, context if security == "tls" else None)
        if security == "starttls":
            client.starttls(context)
    except ssl.SSLCertVerificationError as error:
        return certificate_problem(error, host)
    except (OSError, imaplib.IMAP4.error):
        return None
    finally:
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - best effort
                pass
    return None
