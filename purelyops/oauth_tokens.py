"""Token sign-in to source servers: OAuth 2.0 access tokens for IMAP (SASL XOAUTH2) and for
listing a tenant's mailboxes, with the ecosystem's own libraries.

- A **Microsoft 365 app** (Entra ID): client credentials with msal, scope
  https://outlook.office365.com/.default, IMAP user = the mailbox. Its secrets: the tenant ID,
  the application (client) ID, and a client secret or a certificate (PEM private key and
  certificate; msal signs the client assertion with it).
- A **Google Workspace service account** with domain-wide delegation: google-auth signs a JWT
  bearer grant whose `sub` is the mailbox, scope https://mail.google.com/. Its secret: the
  JSON key.

The endpoints are settings (MICROSOFT_LOGIN_URL, MICROSOFT_GRAPH_URL, GOOGLE_TOKEN_URL,
GOOGLE_DIRECTORY_URL); HTTPS to them trusts REQUESTS_CA_BUNDLE or SSL_CERT_FILE when set,
else the system's CAs. Nothing here checks them against SOURCE_HOSTS_ALLOW: they are fixed
settings, not hosts an admin types.

Every refusal is a `TokenRefused` in words an admin can act on; `permanent` says whether a
retry can help. Tokens and keys are registered with purelyops.logs.redact the moment they
exist, and are never returned in an error message.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import timezone
from urllib.parse import urlencode, urlsplit

from purelyops import crypto
from purelyops.errors import Refused
from purelyops.fields import FieldProblems
from purelyops.logs import redact
from purelyops.runtime import Runtime

PASSWORD = "password"
MICROSOFT = "microsoft365_app"
GOOGLE = "google_workspace"
METHODS = {PASSWORD: "Password (each mailbox's own)", MICROSOFT: "Microsoft 365 app (Entra ID)",
           GOOGLE: "Google Workspace service account"}
IMAP_SCOPE = {MICROSOFT: "https://outlook.office365.com/.default", GOOGLE: "https://mail.google.com/"}
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
HTTP_TIMEOUT = 20.0
MAX_THROTTLE_WAIT = 60.0  # one Retry-After longer than this ends the listing, in words
MAX_THROTTLE_TOTAL = 120.0  # …and so do Retry-Afters adding up to more than this in one listing
MAX_PAGES = 200  # a tenant with more pages of users is not listed (never a part of it as the whole)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}(\.[a-z0-9][a-z0-9-]{0,62})+$")
_AADSTS = re.compile(r"AADSTS(\d+)")
_HTTP_STATUS = re.compile(r"HTTP Error: (\d{3})")


class TokenRefused(Refused):
    """No token: the words say why. `permanent`: the set-up must change first (wrong secret,
    no consent, no delegation…); otherwise the service could not be reached, and a later
    try may work."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float  # time.time() when it stops working

    @property
    def lifetime(self) -> float:
        return self.expires_at - time.time()


# ---- the secrets a server keeps -----------------------------------------------------------


def check_sign_in(method: str, values: dict[str, str]) -> dict[str, str]:
    """The secrets to store for sign-in `method`, from a form's fields (tenant_id,
    client_id, client_secret, certificate, service_account_key); FieldProblems names each
    field that is wrong. {} for a password server."""
    if method in ("", PASSWORD):
        return {}
    problems: dict[str, str] = {}
    if method == MICROSOFT:
        tenant = values.get("tenant_id", "").strip().lower()
        client = values.get("client_id", "").strip().lower()
        secret = values.get("client_secret", "").strip()
        certificate = values.get("certificate", "").strip()
        if not (_GUID.match(tenant) or _TENANT_NAME.match(tenant)):
            problems["tenant_id"] = ("the Directory (tenant) ID, a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47 "
                                     "(Entra ID → Overview), or the tenant's domain, like contoso.onmicrosoft.com")
        if not _GUID.match(client):
            problems["client_id"] = ("the Application (client) ID of the app, a GUID (Entra ID → App registrations "
                                     "→ your app → Overview)")
        if bool(secret) == bool(certificate):
            problems["client_secret"] = ("give the client secret's Value (Certificates & secrets), or a certificate "
                                         "below: one of the two")
        elif secret and (len(secret) > 512 or any(c in secret for c in "\r\n\x00 ")):
            problems["client_secret"] = "a client secret is one line without spaces: copy its Value again"
        thumbprint = ""
        if certificate:
            try:
                thumbprint = _certificate_thumbprint(certificate)
            except ValueError as error:
                problems["certificate"] = str(error)
        if problems:
            raise FieldProblems(problems)
        secrets = {"method": MICROSOFT, "tenant_id": tenant, "client_id": client}
        if secret:
            secrets["client_secret"] = secret
        else:
            secrets.update(certificate=certificate, thumbprint=thumbprint)
        redact(secret, certificate)
        return secrets
    if method == GOOGLE:
        raw = values.get("service_account_key", "").strip()
        try:
            info = json.loads(raw)
            if not isinstance(info, dict) or info.get("type") != "service_account":
                raise ValueError
            _google_credentials(info, "https://oauth2.googleapis.com/token", [IMAP_SCOPE[GOOGLE]], None)
        except (ValueError, KeyError, TypeError):
            raise FieldProblems({"service_account_key": (
                "paste the whole JSON key of the service account (Google Cloud → IAM & Admin → Service accounts "
                "→ Keys → Add key → JSON): it starts with {\"type\": \"service_account\"")}) from None
        redact(raw, str(info.get("private_key", "")))
        return {"method": GOOGLE, "key": json.dumps(info), "client_email": str(info.get("client_email", "")),
                "client_id": str(info.get("client_id", ""))}
    raise FieldProblems({"auth": "choose how mailboxes are signed in to: Password, Microsoft 365 app or Google "
                                 "Workspace service account"})


def _certificate_thumbprint(pem: str) -> str:
    """The SHA-1 thumbprint (hex) of the certificate in `pem`, which also holds its private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    data = pem.encode()
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError("paste the certificate and its private key, both in PEM (-----BEGIN CERTIFICATE----- and "
                         "-----BEGIN PRIVATE KEY-----)") from None
    start = data.find(b"-----BEGIN")
    while start != -1 and b"PRIVATE KEY-----" not in data[start:start + 40]:
        start = data.find(b"-----BEGIN", start + 1)
    try:
        if start == -1:
            raise ValueError
        serialization.load_pem_private_key(data[start:], password=None)
    except (ValueError, TypeError):
        raise ValueError("the private key of the certificate is missing or protected by a passphrase: paste it "
                         "unencrypted (-----BEGIN PRIVATE KEY-----) after the certificate") from None
    return certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S324 - what Entra ID calls a thumbprint


def _aad(server_id: int) -> str:
    return f"source-server:{server_id}"


def seal(rt: Runtime, server_id: int, secrets: dict[str, str]) -> tuple[str, bytes]:
    return crypto.encrypt(rt.settings.credential_keys, secrets, _aad(server_id))


def sign_in_of(rt: Runtime, server) -> dict[str, str]:  # noqa: ANN001 - a SourceServer
    """The stored sign-in of a token server (decrypted), or TokenRefused in words."""
    if server.auth_ciphertext is None or server.auth_key_id is None:
        raise TokenRefused(f"source server {server.name} keeps no sign-in any more: add it again with `server add`")
    try:
        secrets = crypto.decrypt(rt.settings.credential_keys, server.auth_key_id, server.auth_ciphertext,
                                 _aad(server.id))
    except crypto.CredentialsUnreadable as error:
        raise TokenRefused(f"the sign-in of source server {server.name} cannot be read ({error}); remove the server "
                           "and add it again") from None
    redact(*(v for k, v in secrets.items() if k in ("client_secret", "certificate", "key")))
    if secrets.get("method") == GOOGLE:
        redact(str(json.loads(secrets["key"]).get("private_key", "")))
    return secrets


# ---- HTTPS ----------------------------------------------------------------------------------


def _trusted() -> str | bool:
    """What HTTPS to the token services trusts: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, else the
    system's CA bundle."""
    from purelyops.imapsync import system_ca_bundle

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or system_ca_bundle() or True


def http_session():  # noqa: ANN201 - a requests.Session
    import requests

    class Session(requests.Session):
        def request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            # Always ours: google-auth passes its own timeout=120 with every request.
            kwargs["timeout"] = HTTP_TIMEOUT
            return super().request(*args, **kwargs)

    session = Session()
    session.verify = _trusted()
    return session


def _unreachable(what: str, error: Exception) -> TokenRefused:
    reason = type(error).__name__
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return TokenRefused(f"{what}: its certificate is not trusted (set REQUESTS_CA_BUNDLE for a private CA)")
    if "timed out" in text.lower():
        reason = "no answer in time"
    elif "Connection refused" in text:
        reason = "connection refused"
    return TokenRefused(f"{what} could not be reached ({reason}); it is tried again later", permanent=False)


# ---- Microsoft ------------------------------------------------------------------------------


def _microsoft_words(code: str, error: str, description: str, secrets: dict[str, str]) -> str:
    tenant, client = secrets.get("tenant_id", ""), secrets.get("client_id", "")
    if code == "7000215":
        return ("Microsoft says the client secret is wrong (AADSTS7000215): copy the secret's Value, not its Secret "
                "ID, from Entra ID → App registrations → the app → Certificates & secrets, and add the server again")
    if code == "7000222":
        return ("the app's client secret has expired (AADSTS7000222): add a new one under Certificates & secrets, "
                "then remove and add the server again")
    if code == "700016":
        return (f"the app {client} is not in tenant {tenant}, or was never consented there (AADSTS700016): check the "
                "tenant ID and client ID, and that an admin granted consent (Entra ID → Enterprise applications)")
    if code == "90002":
        return f"there is no Microsoft 365 tenant {tenant} (AADSTS90002): check the Directory (tenant) ID"
    if code in ("700027", "700024", "7000274"):
        return (f"Microsoft refused the certificate (AADSTS{code}): upload the certificate to the app's "
                "Certificates & secrets, or use a client secret")
    if code == "7000112":
        return f"the app {client} is disabled in tenant {tenant} (AADSTS7000112): enable it in Enterprise applications"
    if code in ("500011", "65001"):
        return (f"the app is not consented for Office 365 Exchange Online in tenant {tenant} (AADSTS{code}): grant "
                "admin consent for IMAP.AccessAsApp (API permissions → Grant admin consent)")
    first = description.split("\r\n")[0].split(". Trace ID")[0][:200]
    return f"Microsoft refused the sign-in ({error}{f', AADSTS{code}' if code else ''}): {first}"


def _microsoft_token(rt: Runtime, secrets: dict[str, str], scope: str) -> AccessToken:
    import msal
    import msal.exceptions
    import requests

    login = rt.settings.microsoft_login_url.rstrip("/")
    credential: object = secrets.get("client_secret") or {"private_key": secrets["certificate"],
                                                          "thumbprint": secrets["thumbprint"]}
    host = urlsplit(login).hostname or ""
    # Microsoft's own hosts are known to msal; another (a fake, a proxy) is taken as given: msal would
    # otherwise ask login.microsoftonline.com's instance discovery about it.
    known = host in ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn")
    what = f"the Microsoft identity platform ({urlsplit(login).netloc})"
    try:
        app = msal.ConfidentialClientApplication(
            secrets["client_id"], client_credential=credential, authority=f"{login}/{secrets['tenant_id']}",
            http_client=http_session(), instance_discovery=None if known else False,
            token_cache=msal.TokenCache())
        result = app.acquire_token_for_client(scopes=[scope])
    except requests.RequestException as error:
        raise _unreachable(what, error) from None
    except msal.exceptions.MsalServiceError as error:  # msal's own raise_for_status: an HTTP error status (5xx…)
        status = _HTTP_STATUS.search(str(error))
        code = int(status.group(1)) if status else 0
        permanent = 400 <= code < 500 and code != 429
        raise TokenRefused(f"{what} answered HTTP {code or 'an error'} and gave no token"
                           + ("" if permanent else "; it is tried again later"), permanent=permanent) from None
    except ValueError as error:  # discovery refused: the tenant is unknown, or the answer was not JSON
        found = _AADSTS.search(str(error))
        if found or str(error).startswith("Unable to get authority configuration"):  # its discovery said 4xx
            code = found.group(1) if found else "90002"
            raise TokenRefused(_microsoft_words(code, "invalid_tenant", str(error), secrets)) from None
        raise TokenRefused(f"{what} did not answer as expected while looking up tenant {secrets['tenant_id']}",
                           permanent=False) from None
    if "access_token" not in result:
        codes = result.get("error_codes") or []
        code = str(codes[0]) if codes else (_AADSTS.search(str(result.get("error_description", ""))) or [None, ""])[1]
        raise TokenRefused(_microsoft_words(code, str(result.get("error", "")),
                                            str(result.get("error_description", "")), secrets),
                           permanent=str(result.get("error")) not in ("temporarily_unavailable", "server_error"))
    token = str(result["access_token"])
    redact(token)
    return AccessToken(token, time.time() + float(result.get("expires_in") or 3599))


# ---- Google ---------------------------------------------------------------------------------


def _google_credentials(info: dict, token_uri: str, scopes: list[str], subject: str | None):  # noqa: ANN202
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_info(dict(info, token_uri=token_uri), scopes=scopes,
                                                                 subject=subject)


def _google_words(error: str, description: str, secrets: dict[str, str], subject: str, scope: str) -> str:
    if error == "unauthorized_client":
        return (f"domain-wide delegation is not granted to the service account's client ID {secrets.get('client_id')} "
                f"for the scope {scope} (unauthorized_client): add it in the Admin console → Security → API "
                "controls → Domain-wide delegation")
    if error == "invalid_grant" and "email" in description.lower():
        return f"there is no user {subject} in this Google Workspace (invalid_grant: {description})"
    if error == "invalid_grant" and "signature" in description.lower():
        return ("Google does not accept the service account's key (Invalid JWT Signature): the key was deleted or "
                "replaced; make a new JSON key and add the server again")
    if error == "invalid_grant" and "short-lived" in description.lower():
        return "Google refused the sign-in because this machine's clock is off (Invalid JWT: not short-lived)"
    if error in ("invalid_client", "disabled_client"):
        return (f"Google does not know this service account any more, or it is disabled ({error}): check it in "
                "Google Cloud → IAM & Admin → Service accounts")
    return f"Google refused the sign-in ({error}: {description[:200]})"


def _google_token(rt: Runtime, secrets: dict[str, str], subject: str, scope: str) -> AccessToken:
    import google.auth.exceptions
    from google.auth.transport.requests import Request

    info = json.loads(secrets["key"])
    credentials = _google_credentials(info, rt.settings.google_token_url, [scope], subject)
    what = f"Google's token service ({urlsplit(rt.settings.google_token_url).netloc})"
    try:
        credentials.refresh(Request(http_session()))
    except google.auth.exceptions.RefreshError as error:
        data = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
        if not data:
            said = str(error.args[0] if error.args else error)[:200]
            if getattr(error, "retryable", False):  # a 5xx (google-auth retried it already)
                raise TokenRefused(f"{what} gave no token ({said}); it is tried again later", permanent=False) from None
            raise TokenRefused(f"{what} refused the sign-in: {said}") from None
        raise TokenRefused(_google_words(str(data.get("error", "")), str(data.get("error_description", "")),
                                         secrets, subject, scope)) from None
    except google.auth.exceptions.TransportError as error:
        raise _unreachable(what, error) from None
    token = str(credentials.token)
    redact(token)
    expiry = credentials.expiry  # google-auth's is naive UTC
    expires_at = (expiry if expiry.tzinfo else expiry.replace(tzinfo=timezone.utc)).timestamp()
    return AccessToken(token, expires_at)


# ---- what callers use -----------------------------------------------------------------------


def token_for(rt: Runtime, server, mailbox: str) -> AccessToken:  # noqa: ANN001 - a SourceServer
    """A fresh access token for IMAP to `mailbox` on token server `server` (TokenRefused in words)."""
    secrets = sign_in_of(rt, server)
    if secrets.get("method") == MICROSOFT:
        return _microsoft_token(rt, secrets, IMAP_SCOPE[MICROSOFT])
    if secrets.get("method") == GOOGLE:
        return _google_token(rt, secrets, mailbox, IMAP_SCOPE[GOOGLE])
    raise TokenRefused(f"source server {server.name} signs in with passwords, not tokens")


def server_of_job(rt: Runtime, job):  # noqa: ANN001, ANN201 - a MigrationJob → its SourceServer
    from db.models import SourceServer
    from db.session import session_scope

    with session_scope(rt.database_url) as session:
        server = session.get(SourceServer, job.source_server_id) if job.source_server_id else None
        if server is not None:
            session.expunge(server)
    if server is None or server.auth != job.source_auth:
        raise TokenRefused("the source server of this migration was removed, with its sign-in: add it again with "
                           "`server add` and start the migration again")
    return server


def xoauth2(user: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial response (before base64)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def imap_refusal_words(server, mailbox: str) -> str:  # noqa: ANN001 - a SourceServer or its method
    """Why an IMAP server refuses a good token (AUTHENTICATE failed), in words."""
    method = getattr(server, "auth", server)
    if method == MICROSOFT:
        return (f"the token was issued, but IMAP refused it for {mailbox} (AUTHENTICATE failed): the mailbox does "
                "not exist, or the app has no access to it. In Exchange Online PowerShell, make the app's service "
                "principal (New-ServicePrincipal) and give it FullAccess to the mailbox (Add-MailboxPermission), "
                "and check that IMAP is on for the mailbox")
    return (f"the token was issued, but IMAP refused it for {mailbox} (AUTHENTICATE failed): check that IMAP is on "
            "for the user (Admin console → Apps → Google Workspace → Gmail → End user access)")


# ---- listing a tenant's mailboxes -----------------------------------------------------------


@dataclass(frozen=True)
class TenantUser:
    address: str
    name: str
    enabled: bool  # False: a disabled account or (Microsoft) a shared mailbox
    has_mailbox: bool = True


def _get_json(session, url: str, token: str, what: str, until: float) -> dict:  # noqa: ANN001
    """One page; a throttled one is asked again after its Retry-After, while the listing's
    waits stay within `until` (a time.monotonic())."""
    import math

    import requests

    for _ in range(10):
        try:
            response = session.get(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        except requests.RequestException as error:
            raise _unreachable(what, error) from None
        if response.status_code == 429 or response.status_code == 503:
            try:
                wait = float(response.headers.get("Retry-After", "5"))
            except ValueError:
                wait = 5.0
            wait = max(wait, 0.0) if math.isfinite(wait) else 5.0
            if wait > MAX_THROTTLE_WAIT or time.monotonic() + wait > until:
                raise TokenRefused(f"{what} asks to wait {wait:g} s before listing more (throttled); try again later",
                                   permanent=False)
            time.sleep(wait)
            continue
        if response.status_code in (401, 403):
            raise TokenRefused(f"{what} refused to list users ({response.status_code}): "
                               + ("grant the app the application permission User.Read.All (Microsoft Graph) with "
                                  "admin consent" if "graph" in what.lower() or "Microsoft" in what else
                                  f"add the scope {DIRECTORY_SCOPE} to the domain-wide delegation, and name a "
                                  "Workspace admin"))
        if response.status_code != 200:
            raise TokenRefused(f"{what} answered {response.status_code} while listing users", permanent=False)
        try:
            return response.json()
        except ValueError:
            raise TokenRefused(f"{what} did not answer with JSON", permanent=False) from None
    raise TokenRefused(f"{what} kept throttling the listing; try again later", permanent=False)


def list_mailboxes(rt: Runtime, server, domain: str, admin: str = "") -> list[TenantUser]:  # noqa: ANN001
    """Every user of `domain` in the server's tenant (Microsoft Graph users, following
    @odata.nextLink; Google Directory users.list with domain= and pageToken, as `admin`)."""
    secrets = sign_in_of(rt, server)
    domain = domain.strip().lower()
    session = http_session()
    until = time.monotonic() + MAX_THROTTLE_TOTAL
    found: list[TenantUser] = []
    too_many = TokenRefused(f"the tenant has more than {MAX_PAGES} pages of users: it is not listed here; make the "
                            "batch from a CSV instead")
    if secrets.get("method") == MICROSOFT:
        token = _microsoft_token(rt, secrets, GRAPH_SCOPE)
        graph = rt.settings.microsoft_graph_url.rstrip("/")
        what = f"Microsoft Graph ({urlsplit(graph).netloc})"
        url: str | None = f"{graph}/v1.0/users?$select=id,displayName,mail,userPrincipalName,accountEnabled&$top=999"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page = _get_json(session, url, token.value, what, until)
            for user in page.get("value") or []:
                mail = str(user.get("mail") or "").lower()
                principal = str(user.get("userPrincipalName") or "").lower()
                address = mail or principal
                if not address.endswith("@" + domain):
                    continue
                found.append(TenantUser(address, str(user.get("displayName") or ""),
                                        bool(user.get("accountEnabled", True)), has_mailbox=bool(mail)))
            url = page.get("@odata.nextLink")
            if url and not url.startswith(graph + "/"):
                raise TokenRefused(f"{what} sent a next page elsewhere ({urlsplit(url).netloc}); not followed")
        if url is not None:
            raise too_many
        return found
    if secrets.get("method") == GOOGLE:
        if not admin:
            raise TokenRefused("name a Workspace admin to list the users as (domain-wide delegation acts as a user)")
        token = _google_token(rt, secrets, admin, DIRECTORY_SCOPE)
        base = rt.settings.google_directory_url.rstrip("/")
        what = f"Google's Directory API ({urlsplit(base).netloc})"
        page_token = ""
        for _ in range(MAX_PAGES):
            query = {"domain": domain, "maxResults": "500", **({"pageToken": page_token} if page_token else {})}
            page = _get_json(session, f"{base}/admin/directory/v1/users?{urlencode(query)}", token.value, what,
                             until)
            for user in page.get("users") or []:
                address = str(user.get("primaryEmail") or "").lower()
                if not address.endswith("@" + domain):
                    continue
                name = str((user.get("name") or {}).get("fullName") or "")
                found.append(TenantUser(address, name, not (user.get("suspended") or user.get("archived"))))
            page_token = str(page.get("nextPageToken") or "")
            if not page_token:
                return found
        raise too_many
    raise TokenRefused(f"source server {server.name} signs in with passwords: it has no tenant to list")


# ---- a batch's plan from a tenant -------------------------------------------------------------


@dataclass(frozen=True)
class TenantPlan:
    """Every mailbox of `domain` in a tenant, mapped to the same name at `dest_domain`:
    `moves` (source, destination) are what the batch would run; `apart` are the disabled
    accounts and shared mailboxes, and `no_mailbox` the accounts without one, listed apart."""

    domain: str
    dest_domain: str
    moves: list[tuple[str, str]]
    apart: list[str]
    no_mailbox: list[str]

    @property
    def digest(self) -> str:
        """What the admin confirms: the same plan listed again has the same digest."""
        import hashlib

        text = "\n".join([self.domain, self.dest_domain, *(f"{a}>{b}" for a, b in self.moves)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def tenant_plan(rt: Runtime, server, domain: str, dest_domain: str, admin: str = "") -> TenantPlan:  # noqa: ANN001
    users = list_mailboxes(rt, server, domain, admin)
    moves, apart, none = [], [], []
    for user in sorted(users, key=lambda u: u.address):
        if not user.has_mailbox:
            none.append(user.address)
        elif not user.enabled:
            apart.append(user.address)
        else:
            moves.append((user.address, f"{user.address.rsplit('@', 1)[0]}@{dest_domain}"))
    return TenantPlan(domain, dest_domain, moves, apart, none)
