"""Start-up configuration: every problem in one message, no traceback, non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from purelyops.settings import Settings, SettingsError, load_settings, parse_credential_keys

ROOT = Path(__file__).resolve().parent.parent
KEY = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
GOOD = dict(
    SLACK_BOT_TOKEN="xoxb-1-2-abc",
    SLACK_SIGNING_SECRET="0123456789abcdef",
    PURELYMAIL_API_TOKEN="pm-token",
    DATABASE_URL="postgresql://postgres@127.0.0.1:5432/x",
    CREDENTIALS_KEY=KEY,
    ADMIN_USER_IDS="U0ADMIN01, U0ADMIN02",
    ALERT_CHANNEL="C0ALERTS1",
)


def start(process: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run one Procfile process with exactly this environment, from an empty directory."""
    return subprocess.run(
        [sys.executable, "-m", process],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("process", ["bot", "workers.worker", "workers.scheduler", "purelyops.release"])
def test_every_process_refuses_to_start_without_configuration(process: str, tmp_path: Path) -> None:
    result = start(process, {}, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "purelyops cannot start" in result.stderr
    assert "DATABASE_URL: not set" in result.stderr
    if process != "purelyops.release":
        assert ("SLACK_SIGNING_SECRET: not set (Slack app → Basic Information → App Credentials → Signing Secret)"
                in result.stderr)
        assert "PURELYMAIL_API_TOKEN: not set" in result.stderr


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    env = {**GOOD, "SLACK_BOT_TOKEN": "xoxp-user-token", "PORT": "99999", "TZ": "Mars/Olympus",
           "CREDENTIALS_KEY": "c2hvcnQ=", "DNS_RESOLVER": "1.1.1.1:0", "ADMIN_USER_IDS": "alice"}
    result = start("bot", env, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for line in [
        "SLACK_BOT_TOKEN: has the wrong format",
        "PORT: Input should be less than 65536",
        "TZ: unknown time zone 'Mars/Olympus'",
        "CREDENTIALS_KEY: key 'k1' must be 32 bytes (it has 5)",
        "DNS_RESOLVER: '1.1.1.1:0' is not host[:port]",
        "ADMIN_USER_IDS: not Slack member IDs (U…/W…): alice",
    ]:
        assert line in result.stderr
    # A wrong value is described, never echoed back: it may be a secret.
    assert "xoxp-user-token" not in result.stderr


def test_no_admin_means_no_start() -> None:
    values = {k.lower(): v for k, v in GOOD.items() if k != "ADMIN_USER_IDS"}
    with pytest.raises(SettingsError, match="no admin is configured"):
        load_settings(_env_file=None, **values)


def test_good_configuration_parses() -> None:
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in GOOD.items()},
                             dns_resolver="127.0.0.1:5353, [::1]")
    assert isinstance(settings, Settings)
    assert settings.admin_user_ids == ["U0ADMIN01", "U0ADMIN02"]
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.dns_servers == [("127.0.0.1", 5353), ("::1", 53)]
    assert settings.slack_api_url == "https://slack.com/api/"
    assert not settings.socket_mode
    assert settings.purelymail_imap_host == "imap.purelymail.com" and settings.purelymail_imap_port == 993


def test_metrics_settings_keep_metrics_off_the_public_port() -> None:
    values = {k.lower(): v for k, v in GOOD.items()}
    settings = load_settings(_env_file=None, **values)
    assert (settings.metrics_port, settings.metrics_host, settings.metrics_token) == (None, "127.0.0.1", "")
    with pytest.raises(SettingsError, match="METRICS_PORT: it is PORT"):
        load_settings(_env_file=None, **values, port=9000, metrics_port=9000)
    with pytest.raises(SettingsError, match="METRICS_TOKEN: has the wrong format"):
        load_settings(_env_file=None, **values, metrics_token="short")
    assert load_settings(_env_file=None, **values, metrics_token="t" * 24).metrics_token == "t" * 24


def test_credential_keys_rotate_by_id() -> None:
    first, second = parse_credential_keys("k2:" + KEY[3:] + ",k1:" + KEY[3:])
    assert (first.key_id, second.key_id) == ("k2", "k1")
    with pytest.raises(ValueError, match="appears twice"):
        parse_credential_keys(KEY + "," + KEY)


def test_bad_imap_settings_stop_start_up_in_words(tmp_path: Path) -> None:
    # Left empty in .env, as when a line is kept but its value deleted.
    (tmp_path / ".env").write_text("PURELYMAIL_IMAP_HOST=\nPURELYMAIL_IMAP_PORT=\nIMAPSYNC_BIN=\n")
    for process in ("bot", "workers.worker"):
        result = start(process, GOOD, tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert ("PURELYMAIL_IMAP_HOST: is empty: leave it unset for imap.purelymail.com, or give a host name "
                "(PurelyMail's IMAP server, where migrated mail goes)") in result.stderr
        assert ("PURELYMAIL_IMAP_PORT: is empty: leave it unset for 993, or give a port number from 1 to 65535"
                in result.stderr)
        assert "IMAPSYNC_BIN: is empty" in result.stderr

    (tmp_path / ".env").unlink()
    env = {**GOOD, "PURELYMAIL_IMAP_HOST": "imaps://imap.purelymail.com:993", "PURELYMAIL_IMAP_PORT": "99x",
           "PURELYMAIL_IMAP_TLS": "maybe"}
    result = start("bot", env, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for line in [
        "PURELYMAIL_IMAP_HOST: give just the host name, like imap.purelymail.com, without imaps:// or a port",
        "PURELYMAIL_IMAP_PORT: is not a port: give a number from 1 to 65535, like 993",
        "PURELYMAIL_IMAP_TLS: must be true or false",
    ]:
        assert line in result.stderr


@pytest.mark.parametrize("host", ["imap.purelymail.com", "127.0.0.1", "::1", "localhost", "mail-1.example.org."])
def test_good_imap_hosts_load(host: str) -> None:
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in GOOD.items()},
                             purelymail_imap_host=host, purelymail_imap_port="8993", purelymail_imap_tls="false")
    assert settings.purelymail_imap_host == host
    assert settings.purelymail_imap_port == 8993 and settings.purelymail_imap_tls is False
