"""The HTTP client behind `--addr`: plain urllib, answers mapped back to timerd errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from timerd.errors import (
    BadRequest,
    Conflict,
    DaemonUnreachable,
    NotFound,
    TimerdError,
    Unauthorized,
    Unavailable,
)

DEFAULT_ADDR = "http://127.0.0.1:8000"
_BY_STATUS: dict[int, type[TimerdError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


class Client:
    """Talks to a running daemon; every failure raises a TimerdError with a readable line."""

    def __init__(self, addr: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.addr = addr.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if self._token:
            all_headers["Authorization"] = f"Bearer {self._token}"
        req = urllib.request.Request(
            self.addr + path, data=data, headers=all_headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _error_from(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnreachable(f"cannot reach timerd at {self.addr}: {reason}") from None
        except ValueError as exc:
            raise DaemonUnreachable(f"{self.addr} did not answer like timerd: {exc}") from None

    def create(self, body: dict[str, Any], idempotency_key: str | None = None) -> str:
        """Create a timer; return its id."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return str(self.request("POST", "/timers", body, headers)["id"])

    def get(self, timer_id: str) -> dict[str, Any]:
        """Return one timer."""
        result: dict[str, Any] = self.request("GET", f"/timers/{_quote(timer_id)}")
        return result

    def cancel(self, timer_id: str) -> dict[str, Any]:
        """Cancel a timer; return it."""
        result: dict[str, Any] = self.request("DELETE", f"/timers/{_quote(timer_id)}")
        return result

    def fire(self, timer_id: str) -> dict[str, Any]:
        """Fire a timer now; return it."""
        result: dict[str, Any] = self.request("POST", f"/timers/{_quote(timer_id)}/fire")
        return result

    def reschedule(self, timer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a timer; return it."""
        result: dict[str, Any] = self.request("PATCH", f"/timers/{_quote(timer_id)}", body)
        return result

    def attempts(self, timer_id: str) -> list[dict[str, Any]]:
        """Return a timer's delivery history."""
        result = self.request("GET", f"/timers/{_quote(timer_id)}/attempts")
        return list(result["attempts"])

    def iter_timers(self, status: str, limit: int | None) -> Iterator[dict[str, Any]]:
        """Yield timers by due time, page after page, up to `limit` (None: all)."""
        cursor: str | None = None
        count = 0
        while True:
            page_size = 1000 if limit is None else min(1000, limit - count)
            if page_size <= 0:
                return
            query = {"status": status, "limit": str(page_size)}
            if cursor:
                query["cursor"] = cursor
            page = self.request("GET", "/timers?" + urllib.parse.urlencode(query))
            for timer in page["timers"]:
                count += 1
                yield timer
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def stats(self) -> str:
        """Return the raw Prometheus text of `/metrics`."""
        req = urllib.request.Request(self.addr + "/metrics")
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            raise _error_from(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnreachable(f"cannot reach timerd at {self.addr}: {reason}") from None


def configured_client(addr: str) -> Client:
    """Return a client for `addr` carrying the API token of the config `serve` reads.

    Raises ConfigError for an unreadable `token_file` or a bad setting.
    """
    from timerd.auth import read_token
    from timerd.config import load_settings

    token = read_token(load_settings())
    return Client(addr, token=token or None)


def _quote(timer_id: str) -> str:
    return urllib.parse.quote(timer_id, safe="")


def _error_from(exc: urllib.error.HTTPError) -> TimerdError:
    try:
        problem = json.loads(exc.read() or b"{}")
        detail = str(problem.get("detail") or problem.get("title") or exc.reason)
    except ValueError:
        detail = str(exc.reason)
    cls = _BY_STATUS.get(exc.code, TimerdError)
    error = cls(detail)
    error.status = exc.code
    return error
