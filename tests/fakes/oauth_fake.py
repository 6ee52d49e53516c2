"""Fakes of the token services a source server's sign-in talks to, as strict as the real ones
(../shared/reference/oauth.md), on one HTTPS port (a private CA made in the test) plus a
plain-HTTP introspection port for Dovecot's oauth2 passdb:

- the Microsoft identity platform: instance discovery (/common/discovery/instance), the
  tenant's OpenID configuration, and the v2.0 token endpoint for client credentials (client
  secret, or a certificate's signed client assertion), with AADSTS errors in their JSON shape;
- Microsoft Graph: GET /v1.0/users with $select, $top (a page is at most `graph_page_size`),
  @odata.nextLink, and 429 with Retry-After when told to throttle;
- Google's token endpoint (/token): a JWT bearer grant whose RS256 signature is checked
  against the service account's public key, and its iss, sub, aud, scope, iat and exp;
- Google's Directory API: users.list with domain=, maxResults and pageToken;
- introspection (POST token=…): {"active": true, "username": …} for a live token it issued.

Tokens expire after `token_lifetime` seconds; a revoked app's tokens stop working at once.
`stated_lifetime` (when set) is the `expires_in` said instead: a token that stops working
before its stated expiry (revoked early, say). `down` (an HTTP status, when set): every
HTTPS request gets it, as from a token service that is away (introspection stays up);
`hang` (seconds, when set): every HTTPS request waits that long before any answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.http_server import LoopbackHTTPServer

OUTLOOK = "https://outlook.office365.com"
GRAPH = "https://graph.microsoft.com"
GMAIL = "https://mail.google.com/"
DIRECTORY = "https://www.googleapis.com/auth/admin.directory.user.readonly"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
GRAPH_SELECTABLE = ("id", "displayName", "mail", "userPrincipalName", "accountEnabled", "givenName", "surname")


@dataclass
class App:
    """An app registration in a tenant, with its enterprise app (service principal)."""

    client_id: str
    secret: str = ""
    secret_expired: bool = False
    certificate_pem: bytes = b""  # the public certificate uploaded to the app
    consented: bool = True  # admin consent granted (an enterprise app exists in the tenant)
    imap: bool = True  # IMAP.AccessAsApp granted
    user_read_all: bool = True  # Graph User.Read.All granted
    exchange_principal: bool = True  # New-ServicePrincipal was run in Exchange Online
    mailboxes: set[str] = field(default_factory=set)  # Add-MailboxPermission … FullAccess


@dataclass
class Tenant:
    tenant_id: str
    domain: str
    apps: dict[str, App] = field(default_factory=dict)
    users: list[dict] = field(default_factory=list)  # Graph user objects


@dataclass
class ServiceAccount:
    info: dict  # the JSON key
    private_key: rsa.RSAPrivateKey
    delegated: set[str] = field(default_factory=set)  # domain-wide delegation scopes
    disabled: bool = False


@dataclass
class Issued:
    kind: str  # "microsoft" or "google"
    scope: str
    expires_at: float
    tenant: str = ""
    client_id: str = ""
    subject: str = ""  # Google: the user it acts as


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIdentity:
    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.tenants: dict[str, Tenant] = {}
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.workspace_users: dict[str, dict] = {}  # Google Directory users by primaryEmail
        self.workspace_admins: set[str] = set()
        self.issued: dict[str, Issued] = {}
        self.token_lifetime = 3599
        self.stated_lifetime: int | None = None  # the expires_in said, if not token_lifetime
        self.down = 0  # an HTTP status every HTTPS request gets (the service is away)
        self.hang = 0.0  # seconds every HTTPS request waits before any answer (a service that hangs)
        self.graph_page_size = 100
        self.directory_page_size = 500
        self.throttle = 0  # the next N Graph/Directory requests get 429
        self.retry_after = "1"  # …with this Retry-After
        self.next_link_base = ""  # when set, Graph's @odata.nextLink names this base instead of its own
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.secrets_seen: list[str] = []  # client secrets and assertions received, for the canary
        self._lock = threading.Lock()
        self.https = LoopbackHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_file), str(key_file))
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        self.http = LoopbackHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"https://localhost:{self.https.server_port}"
        self.introspection_url = f"http://127.0.0.1:{self.http.server_port}/introspect"

    # ---- set-up -------------------------------------------------------------------------

    def add_tenant(self, domain: str, tenant_id: str | None = None) -> Tenant:
        tenant = Tenant(tenant_id or str(uuid.uuid4()), domain)
        self.tenants[tenant.tenant_id] = tenant
        return tenant

    def add_app(self, tenant: Tenant, **values) -> App:
        app = App(str(uuid.uuid4()), secret=values.pop("secret", f"Sx8Q~{secrets.token_urlsafe(30)}"), **values)
        tenant.apps[app.client_id] = app
        return app

    def add_service_account(self, project: str = "mail-move", delegated: tuple[str, ...] = (GMAIL,)) -> dict:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        email = f"purelyops@{project}.iam.gserviceaccount.com"
        info = {"type": "service_account", "project_id": project, "private_key_id": secrets.token_hex(20),
                "private_key": pem, "client_email": email, "client_id": str(10**20 + secrets.randbelow(10**20)),
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": "https://oauth2.googleapis.com/token",
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
                "universe_domain": "googleapis.com"}
        self.service_accounts[email] = ServiceAccount(info, key, set(delegated))
        return info

    def add_workspace_user(self, email: str, *, suspended: bool = False, archived: bool = False,
                           admin: bool = False) -> None:
        local = email.split("@")[0]
        self.workspace_users[email.lower()] = {
            "kind": "admin#directory#user", "id": str(10**20 + len(self.workspace_users)), "primaryEmail": email,
            "name": {"givenName": local.title(), "familyName": "Example", "fullName": f"{local.title()} Example"},
            "isAdmin": admin, "suspended": suspended, "archived": archived}
        if admin:
            self.workspace_admins.add(email.lower())

    def revoke_all(self) -> None:
        with self._lock:
            self.issued.clear()

    def start(self) -> FakeIdentity:
        for server in (self.https, self.http):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()

    # ---- tokens -------------------------------------------------------------------------

    def _issue(self, issued: Issued, claims: dict) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "fake"}).encode())
        body = _b64(json.dumps({**claims, "exp": int(issued.expires_at), "iat": int(time.time()),
                                "uti": secrets.token_urlsafe(16)}).encode())
        token = f"{header}.{body}.{_b64(secrets.token_bytes(64))}" if issued.kind == "microsoft" else \
            f"ya29.{secrets.token_urlsafe(120)}"
        with self._lock:
            self.issued[token] = issued
        return token

    def live(self, token: str) -> Issued | None:
        with self._lock:
            issued = self.issued.get(token)
        if issued is None or issued.expires_at <= time.time():
            return None
        if issued.kind == "microsoft":
            tenant = self.tenants.get(issued.tenant)
            app = tenant.apps.get(issued.client_id) if tenant else None
            if app is None or not app.consented:
                return None
        return issued

    # ---- HTTP ---------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    return {}
                return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

            def _away(self) -> bool:
                if self.server is not fake.https:
                    return False
                if fake.hang:
                    time.sleep(fake.hang)
                if not fake.down:
                    return False
                data = b"Service Unavailable"
                self.send_response(fake.down)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(("GET", self.path))
                if self._away():
                    return
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                segments = [s for s in parts.path.split("/") if s]
                if parts.path == "/common/discovery/instance":
                    return self._instance_discovery(query)
                if len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                    return self._openid(segments[0])
                if parts.path == "/v1.0/users":
                    return self._graph_users(query)
                if parts.path == "/admin/directory/v1/users":
                    return self._directory_users(query)
                self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                fake.requests.append(("POST", self.path))
                path = urlsplit(self.path).path
                form = self._form()
                if self._away():
                    return
                segments = [s for s in path.split("/") if s]
                if path == "/introspect":
                    return self._introspect(form)
                if path == "/token":
                    return self._google_token(form)
                if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
                    return self._microsoft_token(segments[0], form)
                self._send(404, {"error": "not_found"})

            # -- Microsoft --

            def _aadsts(self, status: int, error: str, code: int, text: str) -> None:
                now = datetime.now(timezone.utc)
                trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
                self._send(status, {
                    "error": error,
                    "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} "
                                         f"Timestamp: {now:%Y-%m-%d %H:%M:%SZ}",
                    "error_codes": [code], "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}", "trace_id": trace,
                    "correlation_id": correlation, "error_uri": f"{fake.url}/error?code={code}"})

            def _instance_discovery(self, query: dict[str, str]) -> None:
                endpoint = urlsplit(query.get("authorization_endpoint", ""))
                host = urlsplit(fake.url).netloc
                segments = [s for s in endpoint.path.split("/") if s]
                # msal names the authority by its host alone (no port), as Microsoft's instance discovery expects
                if endpoint.scheme != "https" or endpoint.hostname != urlsplit(fake.url).hostname or not segments:
                    return self._send(400, {"error": "invalid_instance", "error_description":
                                            "AADSTS50049: Unknown or invalid instance."})
                self._send(200, {"tenant_discovery_endpoint":
                                 f"{fake.url}/{segments[0]}/v2.0/.well-known/openid-configuration",
                                 "api-version": "1.1",
                                 "metadata": [{"preferred_network": host, "preferred_cache": host,
                                               "aliases": [host]}]})

            def _tenant(self, name: str) -> Tenant | None:
                name = name.lower()
                return fake.tenants.get(name) or next(
                    (t for t in fake.tenants.values() if name in (t.domain, f"{t.domain.split('.')[0]}"
                                                                  ".onmicrosoft.com")), None)

            def _openid(self, name: str) -> None:
                tenant = self._tenant(name)
                if tenant is None:
                    return self._aadsts(400, "invalid_tenant", 90002,
                                        f"Tenant '{name}' not found. Check to make sure you have the correct tenant "
                                        "ID and are signing into the correct cloud.")
                base = f"{fake.url}/{tenant.tenant_id}"
                self._send(200, {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                              "client_secret_basic"],
                    "jwks_uri": f"{fake.url}/{tenant.tenant_id}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
                    "issuer": f"{fake.url}/{tenant.tenant_id}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "end_session_endpoint": f"{base}/oauth2/v2.0/logout", "tenant_region_scope": "EU",
                    "cloud_instance_name": "microsoftonline.com"})

            def _microsoft_token(self, name: str, form: dict[str, str]) -> None:
                tenant = self._tenant(name)
                if tenant is None:
                    return self._aadsts(400, "invalid_request", 90002, f"Tenant '{name}' not found.")
                if form.get("grant_type") != "client_credentials":
                    return self._aadsts(400, "unsupported_grant_type", 70003,
                                        "The app requested an unsupported grant type.")
                client_id = form.get("client_id", "")
                app = tenant.apps.get(client_id)
                if app is None or not app.consented:
                    return self._aadsts(400, "unauthorized_client", 700016,
                                        f"Application with identifier '{client_id}' was not found in the directory "
                                        f"'{tenant.domain}'. This can happen if the application has not been "
                                        "installed by the administrator of the tenant or consented to by any user "
                                        "in the tenant. You may have sent your authentication request to the wrong "
                                        "tenant.")
                scope = form.get("scope", "")
                if scope not in (f"{OUTLOOK}/.default", f"{GRAPH}/.default"):
                    return self._aadsts(400, "invalid_scope", 1002012,
                                        f"The provided value for scope {scope} is not valid. Client credential flows "
                                        "must have a scope value with /.default suffixed to the resource identifier "
                                        "(application ID URI).")
                endpoint = f"{fake.url}/{tenant.tenant_id}/oauth2/v2.0/token"
                if form.get("client_assertion"):
                    fake.secrets_seen.append(form["client_assertion"])
                    if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" \
                            or not app.certificate_pem:
                        return self._aadsts(401, "invalid_client", 700027, "Client assertion failed signature "
                                            "validation.")
                    from cryptography import x509
                    from cryptography.hazmat.primitives import hashes

                    cert = x509.load_pem_x509_certificate(app.certificate_pem)
                    # Entra ID finds the key by the assertion's x5t (SHA-1) or x5t#S256 thumbprint header
                    try:
                        header = jwt.get_unverified_header(form["client_assertion"])
                    except jwt.PyJWTError:
                        header = {}
                    said = {k: str(header.get(k) or "").rstrip("=") for k in ("x5t", "x5t#S256")}  # msal pads them
                    if said["x5t"] != _b64(cert.fingerprint(hashes.SHA1())) and \
                            said["x5t#S256"] != _b64(cert.fingerprint(hashes.SHA256())):  # noqa: S303
                        return self._aadsts(401, "invalid_client", 700027, "Client assertion contains an invalid "
                                            "signature. [Reason - The key was not found., Thumbprint of key used "
                                            f"by client: '{header.get('x5t', '')}']")
                    try:
                        claims = jwt.decode(form["client_assertion"], cert.public_key(), algorithms=["RS256", "PS256"],
                                            audience=[endpoint, f"{fake.url}/{name}/oauth2/v2.0/token"],
                                            options={"require": ["exp", "iss", "sub", "aud"]})
                    except jwt.PyJWTError as error:
                        return self._aadsts(401, "invalid_client", 700027,
                                            f"Client assertion failed signature validation. ({error})")
                    if claims["iss"] != client_id or claims["sub"] != client_id:
                        return self._aadsts(401, "invalid_client", 700024, "Client assertion is not within its "
                                            "valid time range or has a wrong issuer.")
                else:
                    secret = form.get("client_secret", "")
                    if not secret:
                        auth = self.headers.get("Authorization", "")
                        if auth.startswith("Basic "):
                            user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    fake.secrets_seen.append(secret)
                    if not secret:
                        return self._aadsts(401, "invalid_client", 7000218, "The request body must contain the "
                                            "following parameter: 'client_assertion' or 'client_secret'.")
                    if secret != app.secret:
                        return self._aadsts(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure "
                                            "the secret being sent in the request is the client secret value, not "
                                            "the client secret ID, for a secret added to app "
                                            f"'{client_id}'.")
                    if app.secret_expired:
                        return self._aadsts(401, "invalid_client", 7000222, "The provided client secret keys for "
                                            f"app '{client_id}' are expired.")
                resource = scope.rsplit("/.default", 1)[0]
                roles = (["IMAP.AccessAsApp"] if app.imap and resource == OUTLOOK else []) + \
                    (["User.Read.All"] if app.user_read_all and resource == GRAPH else [])
                issued = Issued("microsoft", scope, time.time() + fake.token_lifetime, tenant.tenant_id, client_id)
                token = self._issue_ms(issued, tenant, app, resource, roles)
                said = fake.stated_lifetime or fake.token_lifetime
                self._send(200, {"token_type": "Bearer", "expires_in": said, "ext_expires_in": said,
                                 "access_token": token})

            def _issue_ms(self, issued: Issued, tenant: Tenant, app: App, resource: str, roles: list[str]) -> str:
                return fake._issue(issued, {"aud": resource, "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
                                            "tid": tenant.tenant_id, "appid": app.client_id, "roles": roles})

            def _bearer(self) -> Issued | None:
                auth = self.headers.get("Authorization", "")
                return fake.live(auth[7:]) if auth.startswith("Bearer ") else None

            def _throttled(self) -> bool:
                with fake._lock:
                    if fake.throttle <= 0:
                        return False
                    fake.throttle -= 1
                self._send(429, {"error": {"code": "TooManyRequests", "message": "Too many requests."}},
                           {"Retry-After": fake.retry_after})
                return True

            def _graph_users(self, query: dict[str, str]) -> None:
                if self._throttled():
                    return
                issued = self._bearer()
                if issued is None or issued.kind != "microsoft" or issued.scope != f"{GRAPH}/.default":
                    return self._send(401, {"error": {"code": "InvalidAuthenticationToken",
                                                      "message": "Access token has expired or is not yet valid."}})
                tenant = fake.tenants[issued.tenant]
                app = tenant.apps[issued.client_id]
                if not app.user_read_all:
                    return self._send(403, {"error": {"code": "Authorization_RequestDenied",
                                                      "message": "Insufficient privileges to complete the operation."}})
                select = [s for s in query.get("$select", "").split(",") if s]
                unknown = [s for s in select if s not in GRAPH_SELECTABLE]
                if unknown:
                    return self._send(400, {"error": {"code": "Request_BadRequest", "message":
                                                      f"Could not find a property named '{unknown[0]}' on type "
                                                      "'microsoft.graph.user'."}})
                top = query.get("$top", "100")
                if not top.isdigit() or not 1 <= int(top) <= 999:
                    return self._send(400, {"error": {"code": "Request_BadRequest",
                                                      "message": "Invalid page size specified: '" + top + "'. Must "
                                                                 "be between 1 and 999 inclusive."}})
                start = 0
                if "$skiptoken" in query:
                    try:
                        start = int(base64.urlsafe_b64decode(query["$skiptoken"] + "==").decode().split(":")[1])
                    except (ValueError, IndexError):
                        return self._send(400, {"error": {"code": "Directory_ExpiredPageToken",
                                                          "message": "The specified page token value has expired."}})
                size = min(int(top), fake.graph_page_size)
                page = tenant.users[start:start + size]
                fields = select or ["businessPhones", "displayName", "givenName", "jobTitle", "mail",
                                    "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                                    "userPrincipalName", "id"]
                body: dict = {"@odata.context": f"{GRAPH}/v1.0/$metadata#users({','.join(select)})",
                              "value": [{k: u.get(k) for k in fields} for u in page]}
                if start + size < len(tenant.users):
                    skip = _b64(f"RFNwdAIAAQAAAB:{start + size}".encode())
                    rest = {"$select": ",".join(select)} if select else {}
                    body["@odata.nextLink"] = (f"{fake.next_link_base or fake.url}/v1.0/users?"
                                               + urlencode({**rest, "$top": top})
                                               + f"&$skiptoken={skip}")
                self._send(200, body)

            # -- Google --

            def _google_error(self, status: int, error: str, description: str) -> None:
                self._send(status, {"error": error, "error_description": description})

            def _google_token(self, form: dict[str, str]) -> None:
                if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    return self._google_error(400, "unsupported_grant_type", "Invalid grant_type: "
                                              + form.get("grant_type", ""))
                assertion = form.get("assertion", "")
                fake.secrets_seen.append(assertion)
                try:
                    header = jwt.get_unverified_header(assertion)
                    unverified = jwt.decode(assertion, options={"verify_signature": False})
                except jwt.PyJWTError:
                    return self._google_error(400, "invalid_grant", "Invalid JWT Signature.")
                account = fake.service_accounts.get(str(unverified.get("iss", "")))
                if account is None:
                    return self._google_error(400, "invalid_grant", "Invalid grant: account not found")
                if header.get("alg") != "RS256" or header.get("kid") != account.info["private_key_id"]:
                    return self._google_error(400, "invalid_grant", "Invalid JWT Signature.")
                try:
                    claims = jwt.decode(assertion, account.private_key.public_key(), algorithms=["RS256"],
                                        options={"verify_aud": False, "verify_exp": False, "verify_iat": False})
                except jwt.PyJWTError:
                    return self._google_error(400, "invalid_grant", "Invalid JWT Signature.")
                if account.disabled:
                    return self._google_error(400, "invalid_grant", "Invalid grant: account disabled")
                if claims.get("aud") != GOOGLE_AUDIENCE:  # what Google's endpoint wants, wherever it is reached
                    return self._google_error(400, "invalid_grant", "Invalid JWT: Failed audience check. The "
                                              f"expected audience is {GOOGLE_AUDIENCE}.")
                now = time.time()
                iat, exp = claims.get("iat"), claims.get("exp")
                if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp < now \
                        or iat > now + 300:
                    return self._google_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token "
                                              "(60 minutes) and in a reasonable timeframe. Check your iat and exp "
                                              "values in the JWT claim.")
                scopes = str(claims.get("scope", "")).split()
                if not scopes:
                    return self._google_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience "
                                              "provided.")
                subject = str(claims.get("sub") or "")
                if subject:
                    if not set(scopes) <= account.delegated:
                        return self._google_error(401, "unauthorized_client", "Client is unauthorized to retrieve "
                                                  "access tokens using this method, or client not authorized for "
                                                  "any of the scopes requested.")
                    if subject.lower() not in fake.workspace_users:
                        return self._google_error(400, "invalid_grant", "Invalid email or User ID")
                issued = Issued("google", " ".join(scopes), time.time() + fake.token_lifetime,
                                client_id=account.info["client_id"], subject=subject.lower())
                token = fake._issue(issued, {})
                self._send(200, {"access_token": token, "expires_in": fake.stated_lifetime or fake.token_lifetime,
                                 "token_type": "Bearer"})

            def _directory_users(self, query: dict[str, str]) -> None:
                if self._throttled():
                    return
                issued = self._bearer()
                if issued is None or issued.kind != "google":
                    return self._send(401, {"error": {"code": 401, "message": "Request had invalid authentication "
                                                      "credentials.", "status": "UNAUTHENTICATED"}})
                if DIRECTORY not in issued.scope.split() or issued.subject not in fake.workspace_admins:
                    return self._send(403, {"error": {"code": 403, "message": "Not Authorized to access this "
                                                      "resource/api", "errors": [{"reason": "forbidden"}]}})
                domain = query.get("domain", "").lower()
                if not domain and not query.get("customer"):
                    return self._send(400, {"error": {"code": 400, "message": "Bad Request",
                                                      "errors": [{"reason": "badRequest"}]}})
                size = query.get("maxResults", "100")
                if not size.isdigit() or not 1 <= int(size) <= 500:
                    return self._send(400, {"error": {"code": 400, "message": "Invalid value for maxResults"}})
                users = sorted((u for e, u in fake.workspace_users.items() if not domain or e.endswith("@" + domain)),
                               key=lambda u: u["primaryEmail"])
                start = 0
                if query.get("pageToken"):
                    try:
                        start = int(base64.urlsafe_b64decode(query["pageToken"] + "==").decode())
                    except ValueError:
                        return self._send(400, {"error": {"code": 400, "message": "Invalid page token"}})
                count = min(int(size), fake.directory_page_size)
                body: dict = {"kind": "admin#directory#users", "etag": f'"{hashlib.md5(b"x").hexdigest()}"',
                              "users": users[start:start + count]}
                if start + count < len(users):
                    body["nextPageToken"] = _b64(str(start + count).encode())
                self._send(200, body)

            # -- Dovecot's oauth2 passdb --

            def _introspect(self, form: dict[str, str]) -> None:
                issued = fake.live(form.get("token", ""))
                if issued is None:
                    return self._send(200, {"active": False})
                if issued.kind == "google":
                    if GMAIL not in issued.scope.split():
                        return self._send(200, {"active": False})
                    return self._send(200, {"active": True, "username": issued.subject, "scope": issued.scope})
                tenant = fake.tenants[issued.tenant]
                app = tenant.apps[issued.client_id]
                if issued.scope != f"{OUTLOOK}/.default" or not app.imap or not app.exchange_principal:
                    return self._send(200, {"active": False})
                # An app-only token names no user: Dovecot checks the domain, then the granted list.
                self._send(200, {"active": True, "username": f"app-{app.client_id[:8]}@{tenant.domain}"})

        return Handler

    def granted_lines(self, tenant: Tenant) -> str:
        """The passwd-file of mailboxes some app of `tenant` may open (Dovecot's granted list)."""
        users = sorted({m for app in tenant.apps.values() if app.exchange_principal for m in app.mailboxes})
        return "".join(f"{u}::::::nopassword=y\n" for u in users)
