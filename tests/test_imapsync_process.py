"""ImapsyncProcess's secrets (each in a memfd only the child holds): none is left open in the
worker, whatever failed on the way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from purelyops import imapsync


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("fails_at", [1, 2, 3])
def test_a_secret_that_cannot_be_handed_over_leaves_none_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              fails_at: int) -> None:
    """The first, second or third memfd (the token's) cannot be made: no password stays open
    in the worker (one of hundreds of runs would end up out of descriptors, each a password)."""
    made = {"count": 0}
    real = os.memfd_create

    def memfd_create(name: str, flags: int = 0) -> int:
        made["count"] += 1
        if made["count"] == fails_at:
            raise OSError(24, "Too many open files")
        return real(name, flags)

    monkeypatch.setattr(os, "memfd_create", memfd_create)
    before = open_fds()
    with pytest.raises(OSError):
        imapsync.ImapsyncProcess(lambda p1, p2: ["true", p1, p2], ("pw-1", "pw-2"), str(tmp_path),
                                 access_token="token-3")
    assert open_fds() == before

