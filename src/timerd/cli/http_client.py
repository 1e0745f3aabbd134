"""The HTTP client behind `--addr`: urllib without redirects or loopback proxies, answers checked.

The API token goes only to the address the user gave: a redirect is never followed (another
origin would get the token), and a loopback address never goes through `HTTP_PROXY` (the proxy
would get it too). Anything that does not answer like timerd is one readable error.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

from timerd.config import load_settings, read_token
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
ADDR_HINT = "is `timerd serve` running? (--addr, TIMERD_ADDR)"
_BY_STATUS: dict[int, type[TimerdError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


class BadAddress(ValueError):
    """An `--addr` that is not an http(s) URL or a HOST:PORT."""


class NotTimerd(DaemonUnreachable):
    """Something answered at the address, but not like timerd."""


class ApiError(TimerdError):
    """timerd refused the request; `errors` holds its per-field list, if any."""

    def __init__(self, detail: str, status: int, errors: list[tuple[str, str]]) -> None:
        super().__init__(detail)
        self.status = status
        self.errors = errors


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    headers: Message
    body: bytes


def normalize_addr(addr: str) -> str:
    """Return `addr` as a base URL: `127.0.0.1:8000` means `http://127.0.0.1:8000`."""
    text = addr.strip()
    if "://" not in text:
        text = "http://" + text
    text = text.rstrip("/")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise BadAddress(f"{addr!r} is not an address like http://127.0.0.1:8000") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadAddress(f"{addr!r} is not an address like http://127.0.0.1:8000")
    return text


def is_loopback(host: str) -> bool:
    """Tell whether `host` names this machine (never worth a proxy, never to be proxied)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand every 3xx back as it is: following one would send the token to another origin."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(addr: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(addr).hostname or ""
    # {} turns proxies off; None keeps the environment's (and its no_proxy) for remote daemons
    proxies: dict[str, str] | None = {} if is_loopback(host) else None
    return urllib.request.build_opener(urllib.request.ProxyHandler(proxies), _NoRedirects())


class Client:
    """Talks to a running daemon; every failure raises a TimerdError with a readable line."""

    def __init__(self, addr: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.addr = normalize_addr(addr)
        self._token = token
        self._timeout_s = timeout_s
        self._opener = _opener(self.addr)

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str] | None) -> _Answer:
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
            with self._opener.open(req, timeout=self._timeout_s) as response:
                return _Answer(response.status, response.reason, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _Answer(exc.code, str(exc.reason), exc.headers, exc.read())
        except (http.client.HTTPException, UnicodeError) as exc:
            raise NotTimerd(
                f"{self.addr} did not answer like timerd (not HTTP: {exc!r}); {ADDR_HINT}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DaemonUnreachable(f"cannot reach timerd at {self.addr}: {_why(exc)}") from None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer (NotTimerd if there is none)."""
        answer = self._send(method, path, body, headers)
        if 300 <= answer.status < 400:
            where = answer.headers.get("Location") or "nowhere"
            raise NotTimerd(
                f"{self.addr} did not answer like timerd: it redirects ({answer.status} to "
                f"{where}), which timerd never does; the token was not sent there. {ADDR_HINT}"
            )
        if answer.status >= 400:
            raise self._error(answer)
        if not _is_json(answer.headers):
            kind = answer.headers.get_content_type()
            raise self._not_timerd(answer, f"{answer.status} with {kind}, not JSON")
        try:
            return json.loads(answer.body)
        except ValueError:
            what = "an empty body" if not answer.body.strip() else "a body that is not JSON"
            raise self._not_timerd(answer, f"{answer.status} with {what}") from None

    def _not_timerd(self, answer: _Answer, what: str) -> NotTimerd:
        return NotTimerd(f"{self.addr} did not answer like timerd: it answered {what}")

    def _error(self, answer: _Answer) -> TimerdError:
        """Return the error of a 4xx/5xx: timerd's own problem+json, or NotTimerd."""
        problem: Any = None
        if answer.headers.get_content_type() == "application/problem+json":
            try:
                problem = json.loads(answer.body)
            except ValueError:
                problem = None
        if not isinstance(problem, dict) or "status" not in problem:
            kind = answer.headers.get_content_type()
            return NotTimerd(
                f"{self.addr} did not answer like timerd: it answered {answer.status} "
                f"{answer.reason} with {kind}; {ADDR_HINT}"
            )
        detail = str(problem.get("detail") or problem.get("title") or answer.reason)
        errors: list[tuple[str, str]] = []
        raw_errors = problem.get("errors")
        if isinstance(raw_errors, list):
            for item in raw_errors:
                if isinstance(item, dict):
                    errors.append((str(item.get("field", "")), str(item.get("message", ""))))
        cls = _BY_STATUS.get(answer.status)
        if cls is None or errors:
            return ApiError(detail, answer.status, errors)
        error = cls(detail)
        error.status = answer.status
        return error

    def _object(self, method: str, path: str, body: Any = None, **need: Any) -> dict[str, Any]:
        """Return a JSON object answer that has each field of `need` with its type."""
        result = self.request(method, path, body)
        if not isinstance(result, dict) or any(
            not isinstance(result.get(k), t) for k, t in need.items()
        ):
            raise NotTimerd(
                f"{self.addr} did not answer like timerd: {method} {path.partition('?')[0]} "
                f"answered without {', '.join(need)}"
            )
        return result

    def create(self, body: dict[str, Any], idempotency_key: str | None = None) -> str:
        """Create a timer; return its id."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        result = self.request("POST", "/timers", body, headers)
        if not isinstance(result, dict) or not isinstance(result.get("id"), str):
            raise NotTimerd(f"{self.addr} did not answer like timerd: POST /timers gave no id")
        return str(result["id"])

    def get(self, timer_id: str) -> dict[str, Any]:
        """Return one timer."""
        return self._object("GET", f"/timers/{_quote(timer_id)}", id=str, status=str)

    def cancel(self, timer_id: str) -> dict[str, Any]:
        """Cancel a timer; return it."""
        return self._object("DELETE", f"/timers/{_quote(timer_id)}", id=str, status=str)

    def fire(self, timer_id: str) -> dict[str, Any]:
        """Fire a timer now; return it."""
        return self._object("POST", f"/timers/{_quote(timer_id)}/fire", id=str, status=str)

    def reschedule(self, timer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a timer; return it."""
        path = f"/timers/{_quote(timer_id)}"
        return self._object("PATCH", path, body, id=str, fire_at=float | int)

    def attempts(self, timer_id: str) -> list[dict[str, Any]]:
        """Return a timer's delivery history."""
        result = self._object("GET", f"/timers/{_quote(timer_id)}/attempts", attempts=list)
        return list(result["attempts"])

    def page(self, status: str, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
        """Return one page of GET /timers and the cursor of the next one (None: the last)."""
        query = {"status": status, "limit": str(limit)}
        if cursor:
            query["cursor"] = cursor
        page = self._object("GET", "/timers?" + urllib.parse.urlencode(query), timers=list)
        next_cursor = page.get("next_cursor")
        return list(page["timers"]), next_cursor if isinstance(next_cursor, str) else None

    def iter_timers(
        self, status: str, limit: int | None, cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield timers by due time after `cursor`, page after page, up to `limit` (None: all)."""
        count = 0
        while True:
            page_size = 1000 if limit is None else min(1000, limit - count)
            if page_size <= 0:
                return
            timers, cursor = self.page(status, page_size, cursor)
            for timer in timers:
                count += 1
                yield timer
            if not cursor:
                return

    def stats(self) -> str:
        """Return the raw Prometheus text of `/metrics`."""
        answer = self._send("GET", "/metrics", None, {"Accept": "text/plain"})
        if answer.status >= 300:
            if 300 <= answer.status < 400:
                raise self._not_timerd(answer, f"{answer.status}, a redirect")
            raise self._error(answer)
        return answer.body.decode(errors="replace")


def configured_client(addr: str) -> Client:
    """Return a client for `addr` carrying the API token of the config `serve` reads.

    Raises ConfigError for an unreadable `token_file` or a bad setting, BadAddress for `addr`.
    """
    token = read_token(load_settings())
    return Client(addr, token=token or None)


def _is_json(headers: Message) -> bool:
    kind = headers.get_content_type()
    return kind == "application/json" or kind.endswith("+json")


def _why(exc: BaseException) -> str:
    """Return the reason of a connection failure, with a hint where the daemon may be down."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused; {ADDR_HINT}"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return f"{reason.strerror}; {ADDR_HINT}"
    return str(reason)


def _quote(timer_id: str) -> str:
    return urllib.parse.quote(timer_id, safe="")
