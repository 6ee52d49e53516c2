"""Logging for every purelyops process, with secrets masked before anything is written.

The configured tokens are masked always; code that handles a one-off secret (a
generated password, an IMAP password) registers it with `redact()` for as long as the
process lives, so that even a stray log line cannot carry it.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

from purelyops.settings import Settings

MASK = "•••"
_TOKEN_PATTERN = re.compile(r"\b(xox[abprs]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")
_secrets: set[str] = set()
_lock = threading.Lock()


def redact(*secrets: str | None) -> None:
    """Mask these values in every log line from now on (values shorter than 4 are ignored)."""
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= 4)


def scrub(text: str) -> str:
    text = _TOKEN_PATTERN.sub(MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


# Libraries that write whole request and response bodies at DEBUG: message texts, modal
# values, passwords on their way to the one admin meant to see them. They never log below INFO.
PAYLOAD_LOGGERS = ("slack_sdk", "slack_bolt", "bot.bolt", "httpx", "httpcore", "urllib3")
# Bolt's request verification writes the whole body of every request it refuses at INFO
# (a wrong signature, a timestamp over 5 minutes old): during a signing-secret rotation or
# with clock skew, every modal's passwords. It logs nothing at WARNING or above.
VERIFICATION_LOGGER = "slack_bolt.RequestVerification"


def quiet_payload_loggers() -> None:
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
    quiet_verification_logger()


def quiet_verification_logger() -> None:
    """Bolt copies its base logger's level to this logger whenever an App is made
    (bot.app calls this after): at WARNING it writes no refused body."""
    logger = logging.getLogger(VERIFICATION_LOGGER)
    if logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def setup_logging(settings: Settings) -> None:
    redact(
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.purelymail_api_token,
        settings.metrics_token,
        _url_password(settings.database_url),
        _url_password(settings.redis_url),
        *(base64.b64encode(k.key).decode() for k in settings.credential_keys),
    )
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    quiet_payload_loggers()
    for noisy in ("urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
