"""Tokens from the fakes of the Microsoft identity platform and Google's token service, with
msal and google-auth as deployed, and the tenant listings (Graph, Directory)."""

from __future__ import annotations

import json
import time

import pytest

from db.models import SourceServer
from purelyops import oauth_tokens
from purelyops.fields import FieldProblems
from purelyops.oauth_tokens import TokenRefused
from purelyops.runtime import Runtime
from tests.conftest import make_settings
from tests.fakes.oauth_fake import DIRECTORY, GMAIL
from tests.oauth_steps import Identity, app_certificate, identity  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def rt(database_url, redis_url, slack_fake, purelymail_fake, identity: Identity) -> Runtime:  # noqa: F811
    return Runtime(make_settings(database_url, redis_url, slack_fake, purelymail_fake, **identity.settings()))


def server(rt: Runtime, method: str, **fields: str) -> SourceServer:
    secrets = oauth_tokens.check_sign_in(method, fields)
    row = SourceServer(id=7, name="m365", host="127.0.0.1", port=993, security="tls", auth=method, created_by="U1")
    row.auth_key_id, row.auth_ciphertext = oauth_tokens.seal(rt, 7, secrets)
    return row


def test_a_microsoft_app_gets_a_token_with_its_secret(rt: Runtime, identity: Identity) -> None:  # noqa: F811
    tenant = identity.fake.add_tenant("old.example")
    app = identity.fake.add_app(tenant)
    token = oauth_tokens.token_for(rt, server(rt, "microsoft365_app", tenant_id=tenant.tenant_id,
                                              client_id=app.client_id, client_secret=app.secret), "alice@old.example")
    assert identity.fake.live(token.value) is not None
    assert 3500 < token.lifetime <= 3600
    paths = [p for _, p in identity.fake.requests]
    assert f"/{tenant.tenant_id}/v2.0/.well-known/openid-configuration" in paths
    assert ("POST", f"/{tenant.tenant_id}/oauth2/v2.0/token") in identity.fake.requests


@pytest.mark.parametrize(("case", "words"), [
    ("wrong secret", "client secret is wrong (AADSTS7000215)"),
    ("expired secret", "client secret has expired (AADSTS7000222)"),
    ("not consented", "or was never consented there (AADSTS700016)"),
    ("unknown tenant", "there is no Microsoft 365 tenant"),
])
def test_microsoft_refusals_are_said_in_words(rt: Runtime, identity: Identity, case: str,  # noqa: F811
                                              words: str) -> None:
    tenant = identity.fake.add_tenant("old.example")
    app = identity.fake.add_app(tenant, secret_expired=case == "expired secret", consented=case != "not consented")
    fields = dict(tenant_id="0a0a0a0a-1111-2222-3333-444444444444" if case == "unknown tenant" else tenant.tenant_id,
                  client_id=app.client_id, client_secret="wrong-secret" if case == "wrong secret" else app.secret)
    with pytest.raises(TokenRefused) as refused:
        oauth_tokens.token_for(rt, server(rt, "microsoft365_app", **fields), "alice@old.example")
    assert words in str(refused.value)
    assert refused.value.permanent
    assert app.secret not in str(refused.value)


def test_a_certificate_signs_the_client_assertion(rt: Runtime, identity: Identity, tmp_path) -> None:  # noqa: F811
    cert_pem, key_pem, key = app_certificate()
    tenant = identity.fake.add_tenant("old.example")
    app = identity.fake.add_app(tenant, certificate_pem=cert_pem)
    row = server(rt, "microsoft365_app", tenant_id=tenant.tenant_id, client_id=app.client_id,
                 certificate=(cert_pem + key_pem).decode())
    assert identity.fake.live(oauth_tokens.token_for(rt, row, "alice@old.example").value)
    other = identity.fake.add_app(tenant, certificate_pem=b"")
    row = server(rt, "microsoft365_app", tenant_id=tenant.tenant_id, client_id=other.client_id,
                 certificate=(cert_pem + key_pem).decode())
    with pytest.raises(TokenRefused, match="refused the certificate"):
        oauth_tokens.token_for(rt, row, "alice@old.example")
    # A certificate re-issued for the same key but not uploaded: Entra ID finds no key by its thumbprint.
    reissued = app_certificate(2, key)[0]
    row = server(rt, "microsoft365_app", tenant_id=tenant.tenant_id, client_id=app.client_id,
                 certificate=(reissued + key_pem).decode())
    with pytest.raises(TokenRefused, match="refused the certificate"):
        oauth_tokens.token_for(rt, row, "alice@old.example")


def test_the_form_checks_the_sign_in_fields() -> None:
    with pytest.raises(FieldProblems) as problems:
        oauth_tokens.check_sign_in("microsoft365_app", {"tenant_id": "nope", "client_id": "x"})
    assert set(problems.value.problems) == {"tenant_id", "client_id", "client_secret"}
    with pytest.raises(FieldProblems) as problems:
        oauth_tokens.check_sign_in("google_workspace", {"service_account_key": '{"type": "user"}'})
    assert set(problems.value.problems) == {"service_account_key"}


def google_server(rt: Runtime, info: dict) -> SourceServer:
    return server(rt, "google_workspace", service_account_key=json.dumps(info))


def test_a_google_workspace_signs_a_jwt_for_the_mailbox(rt: Runtime, identity: Identity) -> None:  # noqa: F811
    info = identity.fake.add_service_account()
    identity.fake.add_workspace_user("alice@old.example")
    token = oauth_tokens.token_for(rt, google_server(rt, info), "alice@old.example")
    issued = identity.fake.live(token.value)
    assert issued is not None and (issued.subject, issued.scope) == ("alice@old.example", GMAIL)
    assert token.lifetime > 3500


@pytest.mark.parametrize(("case", "words"), [
    ("no delegation", "domain-wide delegation is not granted"),
    ("unknown user", "there is no user nobody@old.example in this Google Workspace"),
    ("replaced key", "Google does not accept the service account's key"),
])
def test_google_refusals_are_said_in_words(rt: Runtime, identity: Identity, case: str,  # noqa: F811
                                           words: str) -> None:
    info = identity.fake.add_service_account(delegated=() if case == "no delegation" else (GMAIL,))
    identity.fake.add_workspace_user("alice@old.example")
    if case == "replaced key":  # the key was deleted in Google Cloud and a new one made
        fresh = identity.fake.add_service_account()
        identity.fake.service_accounts[info["client_email"]] = identity.fake.service_accounts[fresh["client_email"]]
    mailbox = "nobody@old.example" if case == "unknown user" else "alice@old.example"
    with pytest.raises(TokenRefused) as refused:
        oauth_tokens.token_for(rt, google_server(rt, info), mailbox)
    assert words in str(refused.value)


def test_graph_lists_a_tenant_page_by_page_through_throttling(rt: Runtime, identity: Identity) -> None:  # noqa: F811
    tenant = identity.fake.add_tenant("new.example")
    app = identity.fake.add_app(tenant)
    for n in range(250):
        tenant.users.append({"id": f"id-{n}", "displayName": f"User {n}", "mail": f"user{n:03}@new.example",
                             "userPrincipalName": f"user{n:03}@new.example", "accountEnabled": n != 7})
    tenant.users.append({"id": "x", "displayName": "Other", "mail": "x@other.example",
                         "userPrincipalName": "x@other.example", "accountEnabled": True})
    identity.fake.throttle = 1
    started = time.monotonic()
    found = oauth_tokens.list_mailboxes(rt, server(rt, "microsoft365_app", tenant_id=tenant.tenant_id,
                                                   client_id=app.client_id, client_secret=app.secret), "new.example")
    assert time.monotonic() - started >= 1  # Retry-After was waited out
    assert len(found) == 250 and [u.address for u in found if not u.enabled] == ["user007@new.example"]
    pages = [p for m, p in identity.fake.requests if p.startswith("/v1.0/users")]
    assert len(pages) == 4 and all("%24select=" in p or "$select=" in p for p in pages)  # 1 throttled + 3


def tenant_of(rt: Runtime, identity: Identity, users: int) -> SourceServer:  # noqa: F811
    tenant = identity.fake.add_tenant("new.example")
    app = identity.fake.add_app(tenant)
    tenant.users += [{"id": f"id-{n}", "displayName": f"User {n}", "mail": f"user{n:03}@new.example",
                      "userPrincipalName": f"user{n:03}@new.example", "accountEnabled": True} for n in range(users)]
    return server(rt, "microsoft365_app", tenant_id=tenant.tenant_id, client_id=app.client_id,
                  client_secret=app.secret)


def test_a_tenant_longer_than_the_pages_listed_is_not_taken_for_all_of_it(
        rt: Runtime, identity: Identity, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Past MAX_PAGES pages the listing ends in words: a plan of the first pages would be
    shown as every mailbox of the domain."""
    row = tenant_of(rt, identity, 250)  # three pages of 100
    monkeypatch.setattr(oauth_tokens, "MAX_PAGES", 3)
    assert len(oauth_tokens.list_mailboxes(rt, row, "new.example")) == 250
    monkeypatch.setattr(oauth_tokens, "MAX_PAGES", 2)
    with pytest.raises(TokenRefused, match="more than 2 pages of users"):
        oauth_tokens.list_mailboxes(rt, row, "new.example")


@pytest.mark.parametrize("base", ["https://graph.example.net", "{url}.example.net", "http://{host}"])
def test_a_next_page_elsewhere_is_not_followed_with_the_token(rt: Runtime, identity: Identity,  # noqa: F811
                                                              base: str) -> None:
    """A nextLink to another host (or one that only begins like Graph's, or plain HTTP) would
    carry the Graph token there: the listing ends instead."""
    row = tenant_of(rt, identity, 250)
    identity.fake.next_link_base = base.format(url=identity.fake.url, host=identity.fake.url.split("//")[1])
    with pytest.raises(TokenRefused, match="sent a next page elsewhere"):
        oauth_tokens.list_mailboxes(rt, row, "new.example")
    assert len([p for _, p in identity.fake.requests if p.startswith("/v1.0/users")]) == 1


@pytest.mark.parametrize("retry_after", ["1", "nan"])
def test_throttling_without_end_ends_the_listing_in_time(rt: Runtime, identity: Identity,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch, retry_after: str) -> None:
    """Graph throttles again and again, each time for less than MAX_THROTTLE_WAIT: the waits of
    one listing add up to at most MAX_THROTTLE_TOTAL, then the admin is told to try later (a
    Retry-After that is no number is waited as 5 s)."""
    row = tenant_of(rt, identity, 10)
    monkeypatch.setattr(oauth_tokens, "MAX_THROTTLE_TOTAL", 2.5 if retry_after == "1" else 4.0)
    identity.fake.throttle, identity.fake.retry_after = 1000, retry_after
    started = time.monotonic()
    with pytest.raises(TokenRefused, match="before listing more") as refused:
        oauth_tokens.list_mailboxes(rt, row, "new.example")
    assert time.monotonic() - started < 4 and not refused.value.permanent


def test_the_directory_lists_a_workspace_domain(rt: Runtime, identity: Identity) -> None:  # noqa: F811
    info = identity.fake.add_service_account(delegated=(GMAIL, DIRECTORY))
    identity.fake.directory_page_size = 100
    identity.fake.add_workspace_user("admin@new.example", admin=True)
    for n in range(120):
        identity.fake.add_workspace_user(f"user{n:03}@new.example", suspended=n == 3)
    row = google_server(rt, info)
    found = oauth_tokens.list_mailboxes(rt, row, "new.example", admin="admin@new.example")
    assert len(found) == 121 and [u.address for u in found if not u.enabled] == ["user003@new.example"]
    with pytest.raises(TokenRefused, match="refused to list users"):
        oauth_tokens.list_mailboxes(rt, row, "new.example", admin="user001@new.example")


def sign_in(rt: Runtime, identity: Identity, method: str) -> SourceServer:  # noqa: F811
    """A token server of `method` whose sign-in the fake takes, with alice@old.example."""
    if method == "google_workspace":
        identity.fake.add_workspace_user("alice@old.example")
        return google_server(rt, identity.fake.add_service_account())
    tenant = identity.fake.add_tenant("old.example")
    app = identity.fake.add_app(tenant)
    return server(rt, method, tenant_id=tenant.tenant_id, client_id=app.client_id, client_secret=app.secret)


@pytest.mark.parametrize("method", ["microsoft365_app", "google_workspace"])
def test_a_token_service_that_hangs_is_given_up_on_in_time(rt: Runtime, identity: Identity,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """A token endpoint that accepts the connection and never answers: the sign-in ends after
    HTTP_TIMEOUT (google-auth would wait its own 120 s), as a refusal a later try may mend."""
    row = sign_in(rt, identity, method)
    monkeypatch.setattr(oauth_tokens, "HTTP_TIMEOUT", 1.0)
    identity.fake.hang = 6
    started = time.monotonic()
    with pytest.raises(TokenRefused) as refused:
        oauth_tokens.token_for(rt, row, "alice@old.example")
    assert time.monotonic() - started < 4
    assert "could not be reached (no answer in time)" in str(refused.value)
    assert not refused.value.permanent


@pytest.mark.parametrize("method", ["microsoft365_app", "google_workspace"])
def test_a_token_service_whose_certificate_is_not_trusted_gets_nothing(
        rt: Runtime, identity: Identity, monkeypatch: pytest.MonkeyPatch, tmp_path,  # noqa: F811
        method: str) -> None:
    """The fake's certificate is from a CA this deployment does not trust: no request (no
    secret, no signed grant) reaches it, and the admin is told why."""
    from tests.imap_servers import make_certificates

    row = sign_in(rt, identity, method)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(make_certificates(tmp_path / "other").ca_file))
    with pytest.raises(TokenRefused) as refused:
        oauth_tokens.token_for(rt, row, "alice@old.example")
    assert "its certificate is not trusted" in str(refused.value)
    assert identity.fake.requests == [] and identity.fake.secrets_seen == []
