"""Signing: the HMAC is right at every size, and computing it keeps the GIL."""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mailhooks.channels.signing import GIL_KEPT_BELOW, hmac_sha256, keyed

KEY = b"k" * 24


@pytest.mark.parametrize("size", [0, 1, GIL_KEPT_BELOW - 2, GIL_KEPT_BELOW - 1, GIL_KEPT_BELOW,
                                  2 * GIL_KEPT_BELOW - 1, 100_003])
def test_hmac_sha256_equals_the_one_shot_digest(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    prefix = b"msg_1.1700000000."
    key = keyed(KEY)
    assert hmac_sha256(key, prefix, body) == hmac.digest(KEY, prefix + body, "sha256")
    # The keyed HMAC is copied, not used up: the same key signs the next message alike.
    assert hmac_sha256(key, prefix, body) == hmac.digest(KEY, prefix + body, "sha256")


class GilProbe:
    """A thread that counts each time it gets the GIL. With a long switch interval the
    main thread never hands the GIL over on its own, so the count moves only while the
    main thread is inside a call that releases it."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.count += 1
            time.sleep(0)  # give the GIL back at once, then queue for it again

    def moved_during(self, call: Callable[[], object]) -> bool:
        before = self.count
        call()
        return self.count != before

    @classmethod
    def running(cls) -> Iterator[GilProbe]:
        probe = cls()
        interval = sys.getswitchinterval()
        probe._thread.start()
        sys.setswitchinterval(30)
        try:
            yield probe
        finally:
            sys.setswitchinterval(interval)
            probe._stop.set()
            probe._thread.join()


@pytest.fixture
def probe() -> Iterator[GilProbe]:
    yield from GilProbe.running()


def test_signing_a_large_body_keeps_the_gil(probe: GilProbe) -> None:
    body = bytes(16 * 1024 * 1024)
    # The probe can see a release: OpenSSL's one-shot digest of the same body makes one.
    assert any(probe.moved_during(lambda: hashlib.sha256(body).digest()) for _ in range(20))
    assert not any(probe.moved_during(lambda: hmac_sha256(keyed(KEY), b"id.1.", body)) for _ in range(3))
