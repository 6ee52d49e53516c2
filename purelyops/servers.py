"""Source servers: the old IMAP hosts mailboxes move from. Connection details only; a
password typed for `server test` is used for one login and kept nowhere."""

from __future__ import annotations

import imaplib
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from db.models import SourceServer
from db.session import session_scope
from purelyops import audit
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.fields import FieldProblems
from purelyops.runtime import Runtime

SECURITY = {"tls": "TLS on connect", "starttls": "STARTTLS", "none": "none (unencrypted)"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LOGIN_TIMEOUT = 10.0


class ServerError(Exception):
    """A bad server request; the message is for the admin."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    host: str
    port: int
    security: str


def check_spec(name: str, host: str, port: str, security: str) -> ServerSpec:
    """Validate every field at once; FieldProblems maps field → message."""
    problems: dict[str, str] = {}
    name = name.strip().lower()
    if not _NAME.match(name):
        problems["name"] = "a short name: letters, digits, - and _ (at most 32), starting with a letter or digit"
    host = host.strip().lower().rstrip(".")
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


def add_server(rt: Runtime, spec: ServerSpec, *, actor_id: str, actor_name: str = "") -> SourceServer:
    try:
        with session_scope(rt.database_url) as session:
            server = SourceServer(name=spec.name, host=spec.host, port=spec.port, security=spec.security,
                                  created_by=actor_id)
            session.add(server)
            session.flush()
            audit.record(session, actor_id=actor_id, actor_name=actor_name, action="server.add", target=spec.name,
                         params={"host": spec.host, "port": spec.port, "security": spec.security})
            session.expunge(server)
            return server
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
    server = get_server(rt, name)
    with session_scope(rt.database_url) as session:
        session.delete(session.get(SourceServer, server.id))
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="server.remove", target=server.name)


def test_login(host: str, port: int, security: str, address: str, password: str,
               timeout: float = LOGIN_TIMEOUT) -> tuple[bool, str]:
    """A real IMAP login: (True, "…") or (False, what went wrong in words)."""
    try:
        if security == "tls":
            client = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(), timeout=timeout)
        else:
            client = imaplib.IMAP4(host, port, timeout=timeout)
            if security == "starttls":
                client.starttls(ssl.create_default_context())
    except (socket.timeout, TimeoutError):
        return False, f"{host}:{port} did not answer within {timeout:g} s"
    except ssl.SSLError as error:
        return False, f"the TLS handshake with {host}:{port} failed ({error.reason or error}); check the security setting"
    except (OSError, imaplib.IMAP4.error) as error:
        return False, f"could not connect to {host}:{port}: {getattr(error, 'strerror', None) or error}"
    try:
        client.login(address, password)
    except imaplib.IMAP4.error as error:
        text = str(error).replace(password, "•••") if password else str(error)
        return False, f"the server refused the login for {address}: {text}"
    except OSError as error:
        return False, f"the connection broke during login: {error}"
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - best effort
            pass
    return True, f"{address} logged in to {host}:{port}"
