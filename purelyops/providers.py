"""Mail providers a source server can be: their IMAP host (always port 993 with TLS on
connect) and what kind of password their IMAP login takes. "other" is any other server,
whose host, port and security the admin gives.

What imapsync is told for a provider's mailboxes is imapsync's business
(purelyops.imapsync.PROVIDER_OPTIONS); the host goes through the same checks as any
other (purelyops.servers.resolve_source).
"""

from __future__ import annotations

from dataclasses import dataclass

OTHER = "other"
PORT = 993
SECURITY = "tls"


@dataclass(frozen=True)
class Provider:
    key: str  # stored with the server and each of its jobs (at most 16 characters)
    label: str
    host: str  # "" for Other
    password: str  # what password works, in words, for the admin


PROVIDERS: dict[str, Provider] = {p.key: p for p in (
    Provider("gmail", "Gmail", "imap.gmail.com",
             "an app password, which needs 2-Step Verification on the account: make one at "
             "myaccount.google.com/apppasswords (the account's own password is refused); or none with Sign-in: Google "
             "Workspace service account"),
    Provider("microsoft365", "Microsoft 365", "outlook.office365.com",
             "no password at all with Sign-in: Microsoft 365 app (Microsoft has turned basic authentication for "
             "IMAP off in every tenant, so a mailbox's password no longer works)"),
    Provider("yahoo", "Yahoo", "imap.mail.yahoo.com",
             "an app password, which needs 2-step verification: Yahoo account → Account security → "
             "Generate app password"),
    Provider("icloud", "iCloud", "imap.mail.me.com",
             "an app-specific password, which needs two-factor authentication: make one at account.apple.com → "
             "Sign-In and Security → App-Specific Passwords"),
    Provider("fastmail", "Fastmail", "imap.fastmail.com",
             "an app password with IMAP access: Settings → Privacy & Security → App passwords"),
    Provider("zoho", "Zoho", "imap.zoho.com",
             "an application-specific password when two-factor authentication is on (accounts.zoho.com → Security "
             "→ App Passwords), with IMAP access on in Zoho Mail's settings. Accounts in another Zoho region: "
             "choose Other and give its host (imap.zoho.eu, imap.zoho.in…)"),
    Provider(OTHER, "Other", "", "the mailbox's password"),
)}


def label(key: str) -> str:
    """The provider's name, for messages; an unknown key as it is."""
    provider = PROVIDERS.get(key)
    return provider.label if provider else key
