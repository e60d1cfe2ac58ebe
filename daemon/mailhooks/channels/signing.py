"""Standard Webhooks signatures (https://www.standardwebhooks.com/): made by the web
channel, checked by `mailhooks listen`.

`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one `v1,…` per
secret while keys rotate. A `whsec_` secret is base64 after the prefix, any other secret
is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

WHSEC_PREFIX: Final = "whsec_"
# Standard Webhooks' libraries generate 24 to 64 random bytes; fewer than 16 is a key a
# brute force could find.
MIN_KEY_BYTES: Final = 16


class SigningKeyError(ValueError):
    """A secret that cannot sign. The message never shows the secret."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after a `whsec_` prefix, else the UTF-8 bytes."""
    if secret.startswith(WHSEC_PREFIX):
        encoded = secret[len(WHSEC_PREFIX):]
        try:
            # Strict: a typo must not silently become another key. Padding may be left
            # out, as the standardwebhooks libraries allow.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SigningKeyError(
                "a secret starting with whsec_ must be base64 after the prefix"
            ) from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise SigningKeyError("a signing secret cannot be empty")
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"a signing secret must be at least {MIN_KEY_BYTES} bytes (this one has {len(key)})"
        )
    return key


def keyed(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 set up with `key`, to be copied per message: between two requests
    OpenSSL's setup of a new HMAC takes the event loop about 12 µs more than a copy."""
    return hmac.new(key, digestmod=hashlib.sha256)


# OpenSSL's hashing in CPython releases the GIL for inputs of 2 KiB and more (and
# hmac.digest() for any input). Each release lets a spool thread take the GIL, and the
# event loop then waits for it: 0.37 ms for a 2 KiB body beside a busy thread, against
# 0.01 ms in chunks that stay under the limit.
GIL_KEPT_BELOW: Final = 2048


def hmac_sha256(key: hmac.HMAC, *parts: bytes) -> bytes:
    """HMAC-SHA256 of the concatenated parts with a `keyed` HMAC (left as it was),
    computed without releasing the GIL."""
    mac = key.copy()
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), GIL_KEPT_BELOW - 1):
            mac.update(view[start:start + GIL_KEPT_BELOW - 1])
    return mac.digest()


def signatures(keys: list[hmac.HMAC], message_id: str, timestamp: int, body: bytes) -> list[str]:
    """`v1,<sig>` for each key."""
    prefix = f"{message_id}.{timestamp}.".encode()
    return ["v1," + base64.b64encode(hmac_sha256(key, prefix, body)).decode("ascii") for key in keys]


def sign(keys: list[hmac.HMAC], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,<sig>` per key, space-separated."""
    return " ".join(signatures(keys, message_id, timestamp, body))
