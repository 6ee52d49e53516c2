"""Credentials encryption: round trip, rotation, tampering, binding to the row."""

from __future__ import annotations

import base64
import os

import pytest

from purelyops.crypto import CredentialsUnreadable, decrypt, encrypt
from purelyops.settings import parse_credential_keys


def keys(*ids: str) -> str:
    return ",".join(f"{i}:{base64.b64encode(os.urandom(32)).decode()}" for i in ids)


def test_round_trip_and_no_plaintext() -> None:
    ring = parse_credential_keys(keys("k1"))
    key_id, blob = encrypt(ring, {"source_password": "canary-Sécret-42"}, "migration:1")
    assert key_id == "k1" and b"canary" not in blob
    assert decrypt(ring, key_id, blob, "migration:1") == {"source_password": "canary-Sécret-42"}


def test_rotation_keeps_old_ciphertexts_readable() -> None:
    old = keys("old")
    key_id, blob = encrypt(parse_credential_keys(old), {"p": "x"}, "migration:1")
    rotated = parse_credential_keys(keys("new") + "," + old)
    assert decrypt(rotated, key_id, blob, "migration:1") == {"p": "x"}
    assert encrypt(rotated, {"p": "x"}, "migration:1")[0] == "new"
    with pytest.raises(CredentialsUnreadable, match="no longer lists"):
        decrypt(parse_credential_keys(keys("new")), key_id, blob, "migration:1")


def test_tampering_or_another_row_is_refused() -> None:
    ring = parse_credential_keys(keys("k1"))
    key_id, blob = encrypt(ring, {"p": "x"}, "migration:1")
    with pytest.raises(CredentialsUnreadable):
        decrypt(ring, key_id, blob[:-1] + bytes([blob[-1] ^ 1]), "migration:1")
    with pytest.raises(CredentialsUnreadable):
        decrypt(ring, key_id, blob, "migration:2")
