"""The Host and Origin rules: what keeps a web page the user visits from using the API.

DNS rebinding lets a page on `attacker.example` point its own name at 127.0.0.1 and then
call timerd as a same-origin page: the browser still sends `Host: attacker.example`. So,
without a token, timerd answers only a `Host` that is a loopback name or address, the address
it listens on (the one the connection came in on), or a name in `allowed_hosts`; any other is
`421`. A token cannot be had by such a page, so with one the Host rule is off.

A request with an `Origin` header comes from a web page. It is `403` unless that page is one
of timerd's own: an `http`/`https` origin with the request's own host and port (the status
and docs pages), or whose host `allowed_hosts` names (a reverse proxy that rewrites `Host`).
`Origin: null` never passes. This rule holds with or without a token.

`/healthz` is exempt from both, so probes work with any `Host`. Names compare in
`resolver_name` form (IDNA, lower case, no trailing dot); `allowed_hosts` matches any port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from timerd.errors import ConfigError, TimerdError
from timerd.hostnames import resolver_name

if TYPE_CHECKING:
    from timerd.config import Settings

EXEMPT_PATHS = frozenset({"/healthz"})
"""Paths that answer whatever the Host and Origin."""

_LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_UNSPECIFIED = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CACHE_MAX = 1024
_SHOWN_MAX = 100


class MisdirectedRequest(TimerdError):
    """The `Host` names neither this machine's loopback, its listen address nor allowed_hosts."""

    status = 421
    title = "Misdirected request"
    type_slug = "misdirected-request"


class ForbiddenOrigin(TimerdError):
    """A web page of another origin sent the request; timerd grants no CORS."""

    status = 403
    title = "Forbidden origin"
    type_slug = "forbidden-origin"


def split_authority(authority: str) -> tuple[str, int | None]:
    """Split `host[:port]` (IPv6 in brackets) into a `resolver_name` host and a port.

    Raises ValueError for anything else.
    """
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("unbalanced brackets")
        ipaddress.IPv6Address(host)
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = authority.rpartition(":")
        if not colon:
            host, port_text = authority, None
        else:
            port_text = port_text_or_empty
        if ":" in host:
            raise ValueError("an IPv6 address needs brackets")
    if not host:
        raise ValueError("no host")
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
            raise ValueError("bad port")
        port = int(port_text)
    return resolver_name(host), port


def _allowed_patterns(values: Iterable[str]) -> tuple[str, ...]:
    patterns = []
    for value in values:
        try:
            if value.startswith("[") or value.count(":") > 1:  # an IPv6 address
                host, port = split_authority(value if value.startswith("[") else f"[{value}]")
            else:
                host, port = split_authority(value)
        except ValueError:
            raise ConfigError(f"allowed_hosts: {value!r} is not a host name") from None
        if port is not None:
            raise ConfigError(
                f"allowed_hosts: {value!r} has a port; list host names only (any port matches)"
            )
        patterns.append(host)
    return tuple(patterns)


@dataclass(frozen=True, slots=True)
class HostRule:
    """The Host names timerd answers without a token: loopback, its own address, allowed_hosts."""

    listen_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    # verdicts per Host header value: a client sends the same one on every request
    _cache: dict[str, bool | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> HostRule:
        """Build the rule of `settings`; raise ConfigError for a malformed allowed_hosts entry."""
        return cls(settings.host, settings.allowed_hosts)

    def __post_init__(self) -> None:
        # a frozen dataclass: normalise the patterns once, here
        object.__setattr__(self, "allowed_hosts", _allowed_patterns(self.allowed_hosts))

    def is_allowed_name(self, host: str) -> bool:
        """Tell whether `host` (in `resolver_name` form) matches an `allowed_hosts` entry."""
        return any(fnmatchcase(host, pattern) for pattern in self.allowed_hosts)

    def passes_header(self, raw: str) -> bool | None:
        """Tell whether a `Host` header value names this daemon by configuration.

        None: it is not `host[:port]` at all.
        """
        try:
            return self._cache[raw]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        try:
            host, _ = split_authority(raw)
        except ValueError:
            verdict = None
        else:
            verdict = self.passes(host)
        self._cache[raw] = verdict
        return verdict

    def passes(self, host: str) -> bool:
        """Tell whether `host` (in `resolver_name` form) names this daemon by configuration."""
        if host == "localhost" or self.is_allowed_name(host):
            return True
        listen = self.listen_host.strip("[]")
        if listen not in _UNSPECIFIED and host == resolver_name(listen):
            return True
        ip = _ip_or_none(host)
        return ip is not None and any(
            ip.version == net.version and ip in net for net in _LOOPBACK_NETWORKS
        )


def _ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _arrived_on(request: web.Request, host: str) -> bool:
    """Tell whether `host` is the IP address this request's connection was accepted on."""
    ip = _ip_or_none(host)
    if ip is None or request.transport is None:
        return False
    sockname = request.transport.get_extra_info("sockname")
    if not isinstance(sockname, tuple) or not sockname:
        return False
    return _ip_or_none(str(sockname[0]).partition("%")[0]) == ip


def _shown(text: str) -> str:
    return repr(text[:_SHOWN_MAX])


def _check_host(request: web.Request, rule: HostRule, raw: str | None) -> None:
    if raw is None:
        raise MisdirectedRequest("The request has no Host header.")
    verdict = rule.passes_header(raw)
    if verdict is None:
        raise MisdirectedRequest(f"Host {_shown(raw)} is not a host name.")
    if verdict or _arrived_on(request, split_authority(raw)[0]):
        return
    raise MisdirectedRequest(
        f"timerd does not answer for Host {_shown(raw)}: without an API token it answers "
        "only loopback names, its own address and the names in allowed_hosts."
    )


def _check_origin(rule: HostRule, origin: str, raw_host: str | None) -> None:
    refused = ForbiddenOrigin(
        f"Requests from web pages of another origin ({_shown(origin)}) are refused; "
        "timerd grants no CORS."
    )
    try:
        parts = urlsplit(origin)
        if (
            parts.scheme not in _DEFAULT_PORTS
            or parts.path
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise refused
        host, port = split_authority(parts.netloc)
    except ValueError:
        raise refused from None
    if rule.is_allowed_name(host):
        return
    if raw_host is None:
        raise refused
    try:
        request_host, request_port = split_authority(raw_host)
    except ValueError:
        raise refused from None
    default = _DEFAULT_PORTS[parts.scheme]
    if host != request_host or (port or default) != (request_port or default):
        raise refused


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def host_origin_check(rule: HostRule, *, check_host: bool) -> Callable[[web.Request], None]:
    """Return the check of the Origin rule, and of the Host rule if `check_host`.

    Refusals raise `ForbiddenOrigin` (403) or `MisdirectedRequest` (421), which the API's
    front door answers as problem+json.
    """

    def check(request: web.Request) -> None:
        if request.path in EXEMPT_PATHS:
            return
        headers = request.headers
        raw_host = headers.get("Host")
        if check_host:
            _check_host(request, rule, raw_host)
        origin = headers.get("Origin")
        if origin is not None:
            _check_origin(rule, origin, raw_host)

    return check
