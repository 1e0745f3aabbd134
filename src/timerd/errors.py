"""The exception hierarchy: each error knows its HTTP status and a short title.

The API turns these into RFC 9457 problem+json bodies; the CLI turns them into one
stderr line and an exit code. Nothing here imports aiohttp or click.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule of a request body, named by the field that broke it."""

    field: str
    message: str


class TimerdError(Exception):
    """Base class of every error timerd reports to a user."""

    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class BadRequest(TimerdError):
    """The request body is not JSON, or not a JSON object."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"


class Unauthorized(TimerdError):
    """The request lacks a valid API token."""

    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class NotFound(TimerdError):
    """No timer (or route) by that name."""

    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(TimerdError):
    """The timer's state forbids the operation (already fired, in flight...)."""

    status = 409
    title = "Conflict"
    type_slug = "conflict"


class PayloadTooLarge(TimerdError):
    """The request body is larger than the configured cap."""

    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class UnsupportedMediaType(TimerdError):
    """The request does not say `Content-Type: application/json`."""

    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class ValidationFailed(TimerdError):
    """A JSON object that breaks one or more body rules; one entry per field."""

    status = 422
    title = "Validation failed"
    type_slug = "validation"

    def __init__(self, errors: list[FieldError]) -> None:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        super().__init__(detail)
        self.errors = errors


class TooManyTimers(TimerdError):
    """The configured maximum of live timers is reached."""

    status = 429
    title = "Too many timers"
    type_slug = "too-many-timers"


class Unavailable(TimerdError):
    """The daemon cannot take the write now (disk full, queue full, shutting down)."""

    status = 503
    title = "Service unavailable"
    type_slug = "unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class ConfigError(TimerdError):
    """A setting has a bad value or the config file cannot be read."""

    status = 2
    title = "Configuration error"
    type_slug = "config"


class DatabaseLocked(TimerdError):
    """Another `timerd serve` owns this database."""

    title = "Database locked"
    type_slug = "locked"


class DatabaseError(TimerdError):
    """The database file cannot be opened or is not a timerd database."""

    title = "Database error"
    type_slug = "database"


class DaemonUnreachable(TimerdError):
    """The CLI could not reach the daemon at `--addr`."""

    title = "Daemon unreachable"
    type_slug = "unreachable"
