"""Page cursors: one format for the API's `next_cursor`, `timerd list --cursor` and the pages.

A cursor is a position, the exact `fire_at` (Python's float repr), `~`, the id: readable,
URL-safe, and any string of its pattern is a valid position, as the OpenAPI document says.
"""

from __future__ import annotations

import math
import re

from timerd.errors import FieldError, ValidationFailed

Cursor = tuple[float, str]
"""A keyset position: `(time, id)`; listings continue strictly after it."""

CURSOR_PATTERN = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?(e[-+][0-9]{1,2})?~[A-Za-z0-9_-]{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN, re.ASCII)


def encode_cursor(cursor: Cursor) -> str:
    """Return the cursor of a position."""
    return f"{cursor[0]!r}~{cursor[1]}"


def decode_cursor(text: str, field: str = "cursor") -> Cursor:
    """Parse a cursor; raise ValidationFailed (naming `field`) if it is not one."""
    if _CURSOR.fullmatch(text) is None:
        raise ValidationFailed([FieldError(field, "is not a cursor from this API")])
    at, tid = text.split("~")
    if not math.isfinite(float(at)):
        raise ValidationFailed([FieldError(field, "is not a cursor from this API")])
    return float(at), tid
