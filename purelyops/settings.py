"""Configuration for every purelyops process, read from the environment and `.env`.

Every process (web, worker, scheduler, release) calls `load_settings()` first. A missing
or invalid value stops start-up with one message that lists every problem and says
where each value comes from; `SettingsError` carries that message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from purelyops.dns_query import parse_resolver_spec

CommaList = Annotated[list[str], NoDecode]
HTTPS_BASE = r"^https://[A-Za-z0-9.:\[\]_-]+(/[^\s?#]*)?$"  # an https:// URL without query or fragment


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


@dataclass(frozen=True)
class CredentialKey:
    """One AES-256-GCM key for stored credentials, named so that keys can be rotated."""

    key_id: str
    key: bytes


def parse_credential_keys(raw: str) -> list[CredentialKey]:
    """Parse CREDENTIALS_KEY: `id:base64key[,id:base64key…]`, the first one encrypts.

    A bare base64 key (no id) gets the id `k1`.
    """
    keys: list[CredentialKey] = []
    for item in [part.strip() for part in raw.split(",") if part.strip()]:
        key_id, sep, encoded = item.rpartition(":")
        if not sep:
            key_id, encoded = "k1", item
        if not key_id.isalnum() or len(key_id) > 16:
            raise ValueError(f"key id {key_id!r} must be 1-16 letters or digits")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {key_id!r} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"key {key_id!r} must be 32 bytes (it has {len(key)})")
        if any(k.key_id == key_id for k in keys):
            raise ValueError(f"key id {key_id!r} appears twice")
        keys.append(CredentialKey(key_id, key))
    if not keys:
        raise ValueError("no key given")
    return keys


GENERATE_KEY = "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"

# Where each value comes from, shown next to any problem with it.
SOURCES: dict[str, str] = {
    "SLACK_BOT_TOKEN": "Slack app → OAuth & Permissions → Bot User OAuth Token (xoxb-…)",
    "SLACK_SIGNING_SECRET": "Slack app → Basic Information → App Credentials → Signing Secret",
    "SLACK_APP_TOKEN": "Slack app → Basic Information → App-Level Tokens, scope connections:write (xapp-…)",
    "SLACK_API_URL": "leave unset for Slack itself; tests point it at a local fake",
    "SLACK_COMMAND": "the slash command in manifest.yml, e.g. /pm",
    "PORT": "the public HTTP port: /slack/events (HTTP mode), the credential form and /healthz",
    "WEB_WORKERS": "HTTP mode: processes answering Slack; one per core acks bursts fastest",
    "METRICS_PORT": "the web process serves /metrics (and a /healthz that names the failing store) on this "
                    "port of METRICS_HOST; unset: no such port",
    "METRICS_HOST": "the address METRICS_PORT and WORKER_METRICS_PORT listen on: loopback (127.0.0.1) unless your "
                    "Prometheus is on another machine and that address is not reachable from the internet",
    "METRICS_TOKEN": "a random secret of at least 24 characters without spaces; a scrape of /metrics on the "
                     "public PORT must send it as Authorization: Bearer …; unset: /metrics is not on PORT at all",
    "WORKER_METRICS_PORT": "a worker on a machine without the web process serves that machine's counts on this "
                           "port of METRICS_HOST; unset: none",
    "PURELYMAIL_API_TOKEN": "PurelyMail → Account → API → Create API token",
    "PURELYMAIL_API_URL": "leave unset for PurelyMail itself; tests point it at a local fake",
    "PURELYMAIL_RATE": "requests per second to PurelyMail, shared by every process",
    "PURELYMAIL_BURST": "requests PurelyMail may receive at once before the rate applies",
    "DATABASE_URL": "your PostgreSQL server, e.g. postgresql+psycopg://user@host:5432/purelyops",
    "REDIS_URL": "your Redis server, with its password: redis://:PASSWORD@127.0.0.1:6379/0",
    "CREDENTIALS_KEY": f"generate one with: {GENERATE_KEY}",
    "ADMIN_USER_IDS": "Slack member IDs (Profile → ⋮ → Copy member ID), comma-separated",
    "ADMIN_USERGROUP_ID": "a Slack user group ID (S…) whose members are admins",
    "VIEWER_USER_IDS": "Slack member IDs who may run read-only commands, comma-separated",
    "VIEWER_USERGROUP_ID": "a Slack user group ID (S…) whose members may run read-only commands",
    "ALERT_CHANNEL": "the channel ID (C…) for alerts: right-click the channel → Copy link",
    "DNS_RESOLVER": "host[:port],… of DNS servers to ask; empty asks each zone's own nameservers",
    "DNS_TIMEOUT": "seconds one domain's DNS check may take in all",
    "DNS_RECHECK_FAILING_MINUTES": "the DNS monitor re-checks a failing domain after this many minutes",
    "DNS_RECHECK_HEALTHY_HOURS": "the DNS monitor re-checks a healthy domain after this many hours",
    "DNS_MONITOR_BATCH": "at most this many domains are checked per DNS monitor run (every 5 minutes)",
    "USER_SYNC_CRON": "when the nightly mailbox sync runs, a cron expression in TZ (default 0 2 * * *)",
    "IMAPSYNC_BIN": "the imapsync program, a name on PATH or an absolute path",
    "MAX_CONCURRENT_MIGRATIONS": "migrations running at once, across every worker machine",
    "MAX_PER_SOURCE_HOST": "migrations running at once from one old IMAP host, to spare it",
    "MIGRATION_HEARTBEAT": "seconds without a sign of life after which a running migration counts as interrupted",
    "MIGRATION_PROGRESS_INTERVAL": "seconds between progress updates of a migration's thread message",
    "MIGRATION_KILL_GRACE": "seconds a cancelled imapsync gets after SIGTERM before SIGKILL",
    "CREDENTIAL_RETENTION_DAYS": "days the encrypted credentials of an unsuccessful migration are kept",
    "PURELYMAIL_IMAP_HOST": "PurelyMail's IMAP server, where migrated mail goes",
    "PURELYMAIL_IMAP_PORT": "PurelyMail's IMAP port (TLS)",
    "PURELYMAIL_IMAP_TLS": "leave true; only tests against a local IMAP server turn TLS to PurelyMail's IMAP off",
    "IMAP_CA_FILE": "a PEM file of extra CA certificates trusted for IMAP (server test and imapsync), "
                    "on top of the system's; for an old server with a private CA",
    "MIGRATION_RETRY_DELAYS": "seconds before each automatic re-run of a migration that could not reach a server, "
                              "comma-separated (default 60,300,900; empty: never)",
    "SOURCE_HOSTS_ALLOW": "hosts or CIDRs (comma-separated) of loopback source servers to allow anyway; "
                          "link-local and cloud metadata addresses are always refused",
    "MICROSOFT_LOGIN_URL": "the Microsoft identity platform, for source servers that sign in with a Microsoft 365 app; "
                           "leave unset (https://login.microsoftonline.com); tests point it at a local fake",
    "MICROSOFT_GRAPH_URL": "Microsoft Graph, for listing a tenant's mailboxes (migrate bulk); leave unset "
                           "(https://graph.microsoft.com)",
    "GOOGLE_TOKEN_URL": "Google's OAuth 2.0 token endpoint, for source servers that sign in with a Google Workspace "
                        "service account; leave unset (https://oauth2.googleapis.com/token)",
    "GOOGLE_DIRECTORY_URL": "Google's Admin SDK, for listing a Workspace domain's users (migrate bulk); leave unset "
                            "(https://admin.googleapis.com)",
    "LOW_CREDIT_THRESHOLD": "warn when the PurelyMail credit falls below this many dollars",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
    "PUBLIC_URL": "the base URL at which people reach this bot's web process (behind your TLS proxy), like "
                  "https://purelyops.example.com; credential links are PUBLIC_URL/gather/…",
    "FORWARDED_FOR_HOPS": "0: the credential form counts attempts per TCP peer; N: per the Nth address from the right "
                          "of X-Forwarded-For (1 behind one proxy of yours that appends the client's address)",
    "TZ": "an IANA time zone such as Europe/Berlin, for schedules and times shown in Slack",
}


class DatabaseSettings(BaseSettings):
    """Just the database URL: what Alembic needs, without the rest of the app's settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(min_length=1)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError("must be a PostgreSQL URL (postgresql://…)")
        return value


class Settings(DatabaseSettings):
    """Everything a purelyops process needs to run."""

    slack_bot_token: str = Field(pattern=r"^xoxb-\S+$")
    slack_signing_secret: str = Field(min_length=8)
    slack_app_token: str = Field(default="", pattern=r"^(xapp-\S+)?$")
    slack_api_url: str = "https://slack.com/api/"
    slack_command: str = Field(default="/pm", pattern=r"^/[a-z0-9_-]{1,31}$")
    port: int = Field(default=3000, gt=0, lt=65536)
    web_workers: int = Field(default=1, ge=1, le=64)
    metrics_port: int | None = Field(default=None, gt=0, lt=65536)
    metrics_host: str = Field(default="127.0.0.1", min_length=1)
    metrics_token: str = Field(default="", pattern=r"^(\S{24,})?$")
    worker_metrics_port: int | None = Field(default=None, gt=0, lt=65536)

    purelymail_api_token: str = Field(min_length=1)
    purelymail_api_url: str = "https://purelymail.com"
    purelymail_rate: float = Field(default=1.0, gt=0)
    purelymail_burst: int = Field(default=5, ge=1)

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    credentials_key: str

    admin_user_ids: CommaList = []
    admin_usergroup_id: str = Field(default="", pattern=r"^(S[A-Z0-9]+)?$")
    viewer_user_ids: CommaList = []
    viewer_usergroup_id: str = Field(default="", pattern=r"^(S[A-Z0-9]+)?$")
    alert_channel: str = Field(pattern=r"^[CG][A-Z0-9]+$")

    dns_resolver: str = ""
    user_sync_cron: str = "0 2 * * *"
    dns_timeout: float = Field(default=5.0, gt=0, le=60)
    dns_recheck_failing_minutes: int = Field(default=30, ge=1)
    dns_recheck_healthy_hours: int = Field(default=24, ge=1)
    dns_monitor_batch: int = Field(default=20, ge=1, le=500)
    imapsync_bin: str = "imapsync"
    max_concurrent_migrations: int = Field(default=4, ge=1, le=1000)
    max_per_source_host: int = Field(default=2, ge=1, le=1000)
    migration_heartbeat: float = Field(default=30.0, ge=1, le=3600)
    migration_progress_interval: float = Field(default=5.0, ge=0.1, le=300)
    migration_kill_grace: float = Field(default=10.0, ge=0.1, le=600)
    migration_check_timeout: float = Field(default=3600.0, ge=1, le=86400)
    credential_retention_days: int = Field(default=7, ge=0, le=365)
    purelymail_imap_host: str = "imap.purelymail.com"
    purelymail_imap_port: int = 993
    purelymail_imap_tls: bool = True
    imap_ca_file: str = ""
    source_hosts_allow: CommaList = []
    migration_retry_delays: CommaList = ["60", "300", "900"]
    microsoft_login_url: str = Field(default="https://login.microsoftonline.com", pattern=HTTPS_BASE)
    microsoft_graph_url: str = Field(default="https://graph.microsoft.com", pattern=HTTPS_BASE)
    google_token_url: str = Field(default="https://oauth2.googleapis.com/token", pattern=HTTPS_BASE)
    google_directory_url: str = Field(default="https://admin.googleapis.com", pattern=HTTPS_BASE)
    low_credit_threshold: Decimal = Field(default=Decimal("2.00"), ge=0)
    tz: str = "UTC"
    public_url: str = ""
    forwarded_for_hops: int = Field(default=0, ge=0, le=10)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    _split = field_validator("admin_user_ids", "viewer_user_ids", "source_hosts_allow", "migration_retry_delays",
                             mode="before")(_split_commas)

    @field_validator("migration_retry_delays")
    @classmethod
    def _retry_delays(cls, value: list[str]) -> list[str]:
        if len(value) > 10 or not all(v.isdigit() and 1 <= int(v) <= 86400 for v in value):
            raise ValueError("must be at most 10 whole numbers of seconds from 1 to 86400, comma-separated, "
                             "like 60,300,900")
        return value

    @field_validator("imap_ca_file")
    @classmethod
    def _ca_file(cls, value: str) -> str:
        if not value:
            return value
        try:
            with open(value, encoding="ascii", errors="replace") as handle:
                pem = handle.read(4 * 2**20)
        except OSError as error:
            raise ValueError(f"cannot read {value}: {error.strerror}") from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError(f"{value} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value

    @field_validator("source_hosts_allow")
    @classmethod
    def _hosts_allow(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            if "/" in item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not a CIDR like 127.0.0.0/8") from None
            elif not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", item):
                raise ValueError(f"{item!r} is not a host name or address")
        return value

    @field_validator("purelymail_imap_host", mode="before")
    @classmethod
    def _imap_host(cls, value: object) -> object:
        import ipaddress

        if not isinstance(value, str):
            return value
        host = value.strip()
        if not host:
            raise ValueError("is empty: leave it unset for imap.purelymail.com, or give a host name")
        if re.search(r"[/@\s]", host) or ("://" in host) or (host.count(":") == 1):
            raise ValueError("give just the host name, like imap.purelymail.com, without imaps:// or a port "
                             "(the port goes in PURELYMAIL_IMAP_PORT)")
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        if len(host) > 253 or not re.fullmatch(rf"{label}(?:\.{label})*\.?", host):
            raise ValueError("is not a host name or IP address, like imap.purelymail.com")
        return host

    @field_validator("purelymail_imap_port", mode="before")
    @classmethod
    def _imap_port(cls, value: object) -> object:
        text = str(value).strip()
        if not text:
            raise ValueError("is empty: leave it unset for 993, or give a port number from 1 to 65535")
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
            raise ValueError("is not a port: give a number from 1 to 65535, like 993")
        return int(text)

    @field_validator("purelymail_imap_tls", mode="before")
    @classmethod
    def _imap_tls(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if not text:
            raise ValueError("is empty: leave it unset (true), or set true or false")
        if text not in {"true", "false", "t", "f", "1", "0", "yes", "no", "y", "n", "on", "off"}:
            raise ValueError("must be true or false")
        return text in {"true", "t", "1", "yes", "y", "on"}

    @field_validator("imapsync_bin")
    @classmethod
    def _imapsync_bin(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty: leave it unset for imapsync on PATH, or give the program's path")
        return value

    @field_validator("user_sync_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import CroniterBadDateError, croniter

        if not croniter.is_valid(value):
            raise ValueError("is not a cron expression like 0 2 * * * (minute hour day month weekday)")
        try:
            croniter(value).get_next()
        except CroniterBadDateError:
            raise ValueError("names no date that exists (like 31 February), so it would never run") from None
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("purelymail_api_url")
    @classmethod
    def _pm_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip()
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("is not a URL like https://purelyops.example.com") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL like https://purelyops.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("give just the base URL, like https://purelyops.example.com, without ?, # or a login")
        return value.rstrip("/")

    @field_validator("admin_user_ids", "viewer_user_ids")
    @classmethod
    def _member_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not (v[:1] in "UW" and v[1:].isalnum() and v.isupper())]
        if bad:
            raise ValueError(f"not Slack member IDs (U…/W…): {', '.join(bad)}")
        return value

    @field_validator("credentials_key")
    @classmethod
    def _credentials_key(cls, value: str) -> str:
        parse_credential_keys(value)
        return value

    @field_validator("dns_resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        parse_resolver_spec(value)
        return value

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _someone_is_admin(self) -> Settings:
        if not self.admin_user_ids and not self.admin_usergroup_id:
            raise ValueError(
                "ADMIN_USER_IDS / ADMIN_USERGROUP_ID: no admin is configured, and purelyops "
                "has no open mode; set at least one"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_is_not_public(self) -> Settings:
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("METRICS_PORT: it is PORT, the public port; give the metrics a port of their own")
        return self

    @cached_property
    def credential_keys(self) -> list[CredentialKey]:
        return parse_credential_keys(self.credentials_key)

    @property
    def dns_servers(self) -> list[tuple[str, int]]:
        return parse_resolver_spec(self.dns_resolver)

    @property
    def retry_delays(self) -> list[int]:
        return [int(v) for v in self.migration_retry_delays]

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


class SettingsError(Exception):
    """Start-up cannot go on: the message lists every problem, one per line."""


def describe_errors(error: ValidationError) -> str:
    """Turn pydantic's errors into one message an operator can act on."""
    lines = ["purelyops cannot start: the configuration has problems."]
    for item in error.errors():
        loc = item.get("loc") or ()
        name = str(loc[0]).upper() if loc else ""
        if item["type"] == "missing":
            problem = "not set"
        else:
            problem = str(item["msg"]).removeprefix("Value error, ")
            if item["type"] == "string_pattern_mismatch":
                problem = "has the wrong format"
        if name:
            source = SOURCES.get(name)
            lines.append(f"  • {name}: {problem}" + (f" ({source})" if source else ""))
        else:
            lines.append(f"  • {problem}")
    lines.append("Set these in the environment or in .env (see .env.example).")
    return "\n".join(lines)


def load_settings(cls: type[DatabaseSettings] = Settings, **overrides: object):
    """Read the settings, or raise SettingsError with every problem listed."""
    try:
        return cls(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None
