"""The OpenAPI 3.1 `webhooks` entry: the request timerd sends, so a receiver can be built from it.

Written by hand after `delivery/deliverer.py`, `delivery/webhook_client.py` and
`delivery/signing.py` (the API layer does not import delivery); a test sends a real signed
webhook and compares its headers with this entry.
"""

from __future__ import annotations

from typing import Any

from timerd import __version__

WEBHOOK_NAME = "timerFired"
_ID = "P88mRWNe9I-aQmECsl3bc9Z"
_SIGNATURE = "v1,gEm12P2trGGGThiME4z3jllvtP6Mn17DSf2Y/E0u0TM="
"""The real signature of `_ID` at 1800000000 under `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`."""
_SIGNED = (
    " Sent only when the daemon has a `signing_secret` (Standard Webhooks, "
    "https://www.standardwebhooks.com/)."
)


def _header(
    name: str, description: str, example: str, *, required: bool = True, **schema: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
        "example": example,
    }


_HEADERS = [
    _header(
        "User-Agent",
        "`timerd/<version>` of the daemon that sent it.",
        f"timerd/{__version__}",
        pattern="^timerd/.+$",
    ),
    _header(
        "Content-Length",
        "Always `0`: the body is empty. Everything a receiver needs is the URL (the timer "
        "id is its last path segment) and these headers.",
        "0",
        const="0",
    ),
    _header(
        "Timerd-Fire-At",
        "The due instant, epoch seconds with at most 3 decimals: the same on every retry, so "
        "arrival minus this is the lateness. For a manual fire (`POST /timers/{id}/fire`, "
        "or fire again on the status page) it is the moment the fire was asked for; after "
        "a reschedule, the new due instant.",
        "1800000000.25",
        pattern="^-?[0-9]+(\\.[0-9]{1,3})?$",
    ),
    _header(
        "Timerd-Attempt",
        "Which attempt this is: `1` for the first try, one more on each retry. A reschedule "
        "or a manual fire starts the count over.",
        "1",
        pattern="^[1-9][0-9]*$",
    ),
    _header(
        "Timerd-Node",
        "The id of the node that sent it (setting `node_id`, default `<hostname>-<pid>`): "
        "tells apart the nodes of a set sharing one PostgreSQL database.",
        "web-1-4242",
    ),
    _header(
        "webhook-id",
        "The timer id, the same on every retry of the timer: the key to drop the duplicates "
        "that at-least-once delivery allows (`Timerd-Attempt` tells the attempts apart)." + _SIGNED,
        _ID,
        required=False,
        pattern="^[A-Za-z0-9_-]{1,64}$",
    ),
    _header(
        "webhook-timestamp",
        "When this attempt was sent, integer epoch seconds. Refuse one far from your clock "
        "(Standard Webhooks suggests 5 minutes) to stop replays." + _SIGNED,
        "1800000000",
        required=False,
        pattern="^[0-9]+$",
    ),
    _header(
        "webhook-signature",
        "`v1,` then the base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.` (the body "
        "is empty, so the signed content ends with the dot). The key is the base64-decoded "
        "part after `whsec_` of `signing_secret`, or the secret's own bytes without that "
        "prefix. Compare in constant time; any Standard Webhooks library verifies it." + _SIGNED,
        _SIGNATURE,
        required=False,
        pattern="^v1,[A-Za-z0-9+/]{43}=$",
    ),
]

_DESCRIPTION = """\
When a timer is due, timerd sends `POST <url>/<id>` with an **empty body**.

**URL rule.** The timer id is appended to the timer's `url` as a new last path segment, and a
query string stays at the end:

| `url` | request |
|---|---|
| `https://a.example/hook` | `POST https://a.example/hook/<id>` |
| `https://a.example/hook/` | `POST https://a.example/hook/<id>` |
| `https://a.example/hook?k=v` | `POST https://a.example/hook/<id>?k=v` |

A URL with `user:password@` sends them as HTTP Basic `Authorization`.

**Answers.** Any `2xx` means delivered, whatever the body. Anything else (redirects are not
followed), a timeout (`attempt_timeout_s`) or a connection error is retried with exponential
backoff and jitter (`backoff_base_s` doubling up to `backoff_max_s`), up to `max_attempts`
attempts; a `Retry-After` on the answer can lengthen the wait (up to `retry_after_max_s`).
After the last attempt the timer is `failed`, and a person can fire it again.

**At least once.** A timer is delivered once in normal operation and across a clean restart;
a duplicate is possible only for a delivery in flight when the daemon (or its node) died.
Deduplicate on the id (the last path segment, or `webhook-id`).
"""


def webhooks() -> dict[str, Any]:
    """Return the document's `webhooks` entry: the one request timerd sends."""
    return {
        WEBHOOK_NAME: {
            "post": {
                "summary": "A timer is due: timerd calls your URL",
                "description": _DESCRIPTION,
                "parameters": _HEADERS,
                # timerd sends it: the API token has nothing to do with it
                "security": [],
                "responses": {
                    "2XX": {
                        "description": "Delivered: the timer becomes `fired`. Any body is ignored.",
                    },
                    "default": {
                        "description": "Not delivered (any other status; also a timeout or "
                        "a connection error): retried as described above, then `failed`.",
                        "headers": {
                            "Retry-After": {
                                "description": "Optional: seconds or an HTTP date to wait "
                                "before the next attempt (it only lengthens the backoff).",
                                "schema": {"type": "string", "examples": ["120"]},
                            }
                        },
                    },
                },
            }
        }
    }
