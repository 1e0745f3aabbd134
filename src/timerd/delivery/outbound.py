"""The outbound (SSRF) policy: which webhook destinations timerd may connect to.

Checked twice. When a timer is created or its URL changes, on what the URL itself says
(host name patterns and literal IP addresses; no DNS, so the create path stays cheap). And
at connect time, on every address a host name resolves to, through `PolicyResolver`, which
wraps aiohttp's resolver: a name that resolved to a public address once and to
169.254.169.254 the next time (DNS rebinding) is caught on the second connection.

Rules for an address, first match wins:

1. The longest prefix among `allow_networks` and `deny_networks` decides (on a tie, deny).
2. Loopback, private, shared (CGNAT) and unique-local addresses are allowed when timerd
   listens on a loopback address (local development), denied otherwise, except for a host
   name that `allow_hosts` names.
3. Every other address is allowed.

An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated,
NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) reaches that IPv4 host through a translator or
relay, so the IPv4 address inside must pass these rules too (a mapped one is judged as IPv4 only).

Host name patterns (`example.com`, `*.example.com`, `*`) are matched before that; the most
specific matching pattern of `allow_hosts` and `deny_hosts` decides (on a tie, deny). Names and
patterns are first put in the form the resolver is asked for (`resolver_name`): UTS 46 mapping and
IDNA 2008 A-labels, so a full-width or circled `localhost`, or `metadata` with ideographic
full stops, meets the pattern it spells. The connect-time check applies `deny_hosts` again
to the name that is actually resolved.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import idna
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from timerd.errors import ConfigError
from timerd.hostnames import is_loopback_host, resolver_name

if TYPE_CHECKING:
    from timerd.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOCAL_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("fc00::/7", "unique-local"),
    )
)
# IPv6 ranges whose last 32 bits are an IPv4 destination (RFC 4291, 6052, 7915)
_CARRIES_LOW_IPV4: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("64:ff9b::/96", "NAT64"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("::/96", "IPv4-compatible"),
    )
)
_LEGACY_IPV4_CHARS = frozenset("0123456789abcdefxABCDEFX.")
_HOST_CACHE_MAX = 4096


class OutboundBlocked(OSError):
    """A webhook destination the outbound policy forbids; `str()` says which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _host_patterns(values: Iterable[str], name: str) -> tuple[str, ...]:
    """Put host name patterns in `resolver_name` form, wildcards kept."""
    patterns = []
    for value in values:
        try:
            labels = [
                label if "*" in label or "?" in label else resolver_name(label)
                for label in idna.uts46_remap(value, std3_rules=False).split(".")
            ]
        except (ValueError, idna.IDNAError, UnicodeError):
            raise ConfigError(f"{name}: {value!r} is not a host name pattern") from None
        if any(not label.isascii() for label in labels):
            raise ConfigError(f"{name}: {value!r}: write a wildcard label in ASCII")
        patterns.append(".".join(labels).lower().rstrip("."))
    return tuple(patterns)


def carried_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """Return (kind, address) of the IPv4 address an IPv6 address leads to, or None."""
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    for net, kind in _CARRIES_LOW_IPV4:
        # :: and ::1 are IPv6's own unspecified and loopback addresses, not IPv4-compatible
        if ip in net and int(ip) > 1:
            return kind, ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _parse_networks(values: Iterable[str], name: str) -> tuple[IPNetwork, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a network like 10.0.0.0/8") from None
    return tuple(networks)


def _specificity(pattern: str) -> int:
    return len(pattern) - pattern.count("*") - pattern.count("?")


def _unmap(ip: IPAddress) -> IPAddress:
    """Check an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Allow and deny rules for webhook destinations; `allow_local` follows the bind address."""

    allow_networks: tuple[IPNetwork, ...] = ()
    deny_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    allow_local: bool = True
    # create-time verdicts per host: the create path is hot and hosts repeat
    _cache: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        """Build the policy of `settings`; raise ConfigError for a malformed network."""
        return cls(
            allow_networks=_parse_networks(settings.allow_networks, "allow_networks"),
            deny_networks=_parse_networks(settings.deny_networks, "deny_networks"),
            allow_hosts=_host_patterns(settings.allow_hosts, "allow_hosts"),
            deny_hosts=_host_patterns(settings.deny_hosts, "deny_hosts"),
            allow_local=is_loopback_host(settings.host),
        )

    def check_url(self, url: str) -> str | None:
        """Return why the URL's destination is blocked, or None; no DNS lookup."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return "is not a valid URL"
        return self.check_host(host or "")

    def check_host(self, host: str) -> str | None:
        """Return why `host` (a name or an IP literal, as in a URL) is blocked, or None."""
        try:
            return self._cache[host]
        except KeyError:
            pass
        if len(self._cache) >= _HOST_CACHE_MAX:
            self._cache.clear()
        reason = self._cache[host] = self._check_host(host)
        return reason

    def _check_host(self, host: str) -> str | None:
        try:
            host = resolver_name(host)
        except ValueError as exc:
            return str(exc)
        verdict = self._host_verdict(host)
        if verdict is not None and not verdict[0]:
            return f"host {host} matches {verdict[1]!r} in deny_hosts"
        host_allowed = verdict is not None  # a deny verdict returned above
        ip = _literal_ip(host)
        if ip is None:
            if host == "localhost" or host.endswith(".localhost"):
                ip = ipaddress.IPv4Address("127.0.0.1")
            else:
                return None  # a name: its addresses are checked when timerd connects
        elif isinstance(ip, str):
            return ip
        return self.check_ip(ip, host_allowed=host_allowed)

    def check_name(self, host: str) -> str | None:
        """Return why resolving `host` is blocked by `deny_hosts`, or None (connect time)."""
        try:
            key = resolver_name(host)
        except ValueError as exc:
            return str(exc)
        verdict = self._host_verdict(key)
        if verdict is not None and not verdict[0]:
            return f"host {key} matches {verdict[1]!r} in deny_hosts"
        return None

    def check_address(self, host: str, address: str) -> str | None:
        """Return why connecting to `address`, which `host` resolved to, is blocked, or None."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"{host} resolved to {address!r}, which is not an IP address"
        try:
            verdict = self._host_verdict(resolver_name(host))
        except ValueError:
            verdict = None
        reason = self.check_ip(ip, host_allowed=verdict is not None and verdict[0])
        return None if reason is None else f"{host} resolved to {reason}"

    def check_ip(self, ip: IPAddress, *, host_allowed: bool = False) -> str | None:
        """Return why `ip` is blocked, or None (the rules of the module docstring)."""
        ip = _unmap(ip)
        if isinstance(ip, ipaddress.IPv6Address) and (carried := carried_ipv4(ip)) is not None:
            kind, inner = carried
            reason = self._check_one_ip(inner, host_allowed)
            if reason is not None:
                return f"{ip} ({kind}) carries {reason}"
        return self._check_one_ip(ip, host_allowed)

    def _check_one_ip(self, ip: IPAddress, host_allowed: bool) -> str | None:
        best: tuple[int, bool, IPNetwork] | None = None
        for allowed, networks in ((True, self.allow_networks), (False, self.deny_networks)):
            for net in networks:
                if ip.version == net.version and ip in net:
                    # longer prefix wins; on a tie, deny (False sorts first)
                    key = (net.prefixlen, not allowed, net)
                    if best is None or key[:2] > best[:2]:
                        best = key
        if best is not None:
            _, denied, net = best
            return f"{ip}, which is in {net} (deny_networks)" if denied else None
        if self.allow_local or host_allowed:
            return None
        for net, kind in LOCAL_NETWORKS:
            if ip.version == net.version and ip in net:
                return (
                    f"{ip}, a {kind} address; timerd listens on a non-loopback address, so "
                    "it sends no webhooks there unless allow_networks or allow_hosts allows it"
                )
        return None

    def _host_verdict(self, host: str) -> tuple[bool, str] | None:
        """Return (allowed, pattern) of the most specific matching host pattern, or None."""
        best: tuple[int, bool, str] | None = None
        for allowed, patterns in ((True, self.allow_hosts), (False, self.deny_hosts)):
            for pattern in patterns:
                if fnmatchcase(host, pattern):
                    key = (_specificity(pattern), not allowed, pattern)
                    if best is None or key[:2] > best[:2]:
                        best = key
        if best is None:
            return None
        return (not best[1], best[2])


def _literal_ip(host: str) -> IPAddress | str | None:
    """Return the IP address a URL host spells, a reason for a legacy form, or None for a name."""
    if not host or not (host[-1].isdigit() or ":" in host or host[-1] in "abcdefx"):
        return None  # the common case, a name ending in a letter: no parsing at all
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if set(host) <= _LEGACY_IPV4_CHARS:
        try:
            packed = socket.inet_aton(host)  # 127.1, 0x7f.1, 2130706433: IPv4 in disguise
        except OSError:
            return None
        address = ipaddress.IPv4Address(packed)
        return f"{host} is a legacy numeric form of {address}; write it as a.b.c.d"
    return None


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that drops resolved addresses the policy forbids.

    Wraps another resolver (default: aiohttp's). If no address is left, `resolve` raises
    OutboundBlocked, an OSError, which aiohttp reports as a connection error wrapping ours.
    """

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve with the inner resolver; keep only the allowed addresses.

        A name `deny_hosts` forbids is refused before any DNS query, in the spelling it is
        resolved in: the one the connection uses, whatever the URL said.
        """
        reason = self.policy.check_name(host)
        if reason is not None:
            raise OutboundBlocked(f"blocked by the outbound policy: {reason}")
        results = await self.inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            reason = self.policy.check_address(host, result["host"])
            if reason is None:
                kept.append(result)
            else:
                reasons.append(reason)
        if not kept and reasons:
            raise OutboundBlocked(f"blocked by the outbound policy: {reasons[0]}")
        return kept

    async def close(self) -> None:
        """Close the inner resolver."""
        await self.inner.close()


def blocked_reason(exc: BaseException) -> str | None:
    """Return the policy's reason if `exc`, or an error it wraps, is an OutboundBlocked."""
    current: BaseException | None = exc
    for _ in range(5):  # aiohttp wraps once or twice; never follow a cycle forever
        if current is None:
            return None
        if isinstance(current, OutboundBlocked):
            return current.reason
        current = getattr(current, "os_error", None) or current.__cause__
    return None
