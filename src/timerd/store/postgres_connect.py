"""Reaching a PostgreSQL database: its URL, the driver (imported on demand), the pools.

The default install has no driver: nothing here imports asyncpg until a PostgreSQL store
is made. Passwords come from the URL, PGPASSWORD or ~/.pgpass (the driver reads the last
two) and never reach a log line or an error message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from timerd.config import is_postgres_url
from timerd.errors import DatabaseError, Unavailable

if TYPE_CHECKING:
    import asyncpg

CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
"""A statement that takes longer fails (503 for a write) instead of holding its callers."""


class PostgresDriverMissing(DatabaseError):
    """A PostgreSQL URL was given, but the driver is not installed."""


def redact_dsn(url: str) -> str:
    """Return `url` without its password (in the user part or the query), for logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        users, host = netloc.rsplit("@", 1)
        netloc = users.split(":", 1)[0] + "@" + host
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    return dict(parse_qsl(parts.query)).get("password")


def require_driver() -> None:
    """Raise PostgresDriverMissing, one line saying what to install, without asyncpg."""
    try:
        import asyncpg  # noqa: F401, PLC0415  the optional driver: a default install has none
    except ImportError:
        raise PostgresDriverMissing(
            "a PostgreSQL database needs its driver: pip install 'timerd[postgresql]'"
        ) from None


class Connector:
    """Opens connection pools on one database and words their failures safely."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        if not is_postgres_url(url):
            raise DatabaseError(f"not a PostgreSQL URL: {redact_dsn(url)}")
        require_driver()
        import asyncpg  # noqa: PLC0415  the optional driver: a default install has none

        self.url = url
        self.display_url = redact_dsn(url)
        self.read_only = read_only
        self.errors: tuple[type[BaseException], ...] = (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        )
        """What the driver raises when the server or the connection fails us."""
        self._secret = _password(url)

    def reason(self, exc: BaseException) -> str:
        """The error's message without the password, whatever the driver put in it."""
        text = str(exc) or type(exc).__name__
        return text.replace(self._secret, "***") if self._secret else text

    def unavailable(self, exc: BaseException, doing: str) -> Unavailable:
        """A 503 for a failed `doing` ("read", "take writes")."""
        return Unavailable(f"the database cannot {doing} now: {self.reason(exc)}", retry_after_s=2)

    async def pool(self, size: int) -> asyncpg.Pool:
        """Open a pool of up to `size` connections; DatabaseError if the server refuses."""
        import asyncpg  # noqa: PLC0415  the optional driver: a default install has none

        settings = {"application_name": "timerd", "jit": "off"}
        if self.read_only:
            settings["default_transaction_read_only"] = "on"
        try:
            return await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=size,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings=settings,
            )
        except self.errors as exc:
            raise DatabaseError(
                f"cannot connect to {self.display_url}: {self.reason(exc)}"
            ) from None
