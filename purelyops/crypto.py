"""Credentials at rest: AES-256-GCM under CREDENTIALS_KEY, with key ids for rotation.

The first configured key encrypts; every configured key can decrypt, so a new key is
put first and the old one kept until the old ciphertexts are gone (they are deleted
after CREDENTIAL_RETENTION_DAYS anyway). The associated data binds a ciphertext to its
row (for example "migration:42"), so it cannot be copied onto another row.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from purelyops.settings import CredentialKey

NONCE_BYTES = 12


class CredentialsUnreadable(Exception):
    """The stored credentials cannot be decrypted: wrong or missing key, or tampering."""


def encrypt(keys: list[CredentialKey], secrets: dict[str, str], aad: str) -> tuple[str, bytes]:
    """(key id, nonce + ciphertext) of the JSON of `secrets`."""
    key = keys[0]
    nonce = os.urandom(NONCE_BYTES)
    blob = AESGCM(key.key).encrypt(nonce, json.dumps(secrets).encode(), aad.encode())
    return key.key_id, nonce + blob


def decrypt(keys: list[CredentialKey], key_id: str, blob: bytes, aad: str) -> dict[str, str]:
    key = next((k for k in keys if k.key_id == key_id), None)
    if key is None:
        raise CredentialsUnreadable(f"the credentials were encrypted with key {key_id!r}, which CREDENTIALS_KEY "
                                    "no longer lists; enter them again (Edit credentials)")
    try:
        plain = AESGCM(key.key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
    except InvalidTag:
        raise CredentialsUnreadable("the stored credentials do not decrypt (altered, or a different key with the "
                                    "same id); enter them again (Edit credentials)") from None
    return json.loads(plain)
