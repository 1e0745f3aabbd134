"""Signed webhooks in the Standard Webhooks format (https://www.standardwebhooks.com/).

Each delivery carries three headers:

- `webhook-id`: the timer id. It is the same on every retry of a timer, as the standard asks
  ("the same when the same webhook is being resent"), so a receiver can deduplicate the
  at-least-once redeliveries; `Timerd-Attempt` tells the attempts apart.
- `webhook-timestamp`: when the attempt was sent, integer epoch seconds.
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`; the body
  is empty, so the signed content is `"{id}.{timestamp}."`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from timerd.errors import ConfigError

SECRET_PREFIX = "whsec_"


def parse_secret(text: str) -> bytes:
    """Return the HMAC key of a `signing_secret`: `whsec_<base64>`, or a raw string's bytes.

    Raises ConfigError for a `whsec_` secret that is not base64 or is empty.
    """
    if not text.startswith(SECRET_PREFIX):
        if not text:
            raise ConfigError("signing_secret: must not be empty")
        return text.encode()
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        # the secret itself stays out of the message
        raise ConfigError("signing_secret: the part after 'whsec_' is not base64") from None
    if not key:
        raise ConfigError("signing_secret: the part after 'whsec_' is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes = b"") -> str:
    """Return the `webhook-signature` value `v1,<base64>` for one message."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(key: bytes, msg_id: str, timestamp: int, body: bytes = b"") -> dict[str, str]:
    """Return the three Standard Webhooks headers of one message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }
