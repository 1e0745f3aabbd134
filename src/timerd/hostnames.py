"""Host names as a resolver sees them: one spelling for every policy that judges a host.

The Host/Origin rule of the API and the outbound policy of delivery both decide on host
names; they must read a full-width spelling, `LOCALHOST.` and `localhost` as the one name
the resolver will be asked for. A core module: both stages use it, neither owns it.
"""

from __future__ import annotations

import ipaddress

import idna

_LOOPBACK_NAMES = ("localhost", "localhost.")


def is_loopback_host(host: str) -> bool:
    """Return True if listening on `host` is reachable from this machine only."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolver_name(host: str) -> str:
    """Return `host` as a resolver is asked for it: ASCII, lower case, no trailing dot.

    A name with non-ASCII characters gets the UTS 46 mapping (full-width and circled letters,
    ideographic dots, case) and IDNA 2008 A-labels, as browsers and yarl do; ASCII labels stay
    as they are (an underscore is no IDNA label, yet resolvers take it). Raises ValueError
    for a name that has no such form.
    """
    if not host.isascii() and ":" not in host:
        try:
            mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
            host = ".".join(
                label if label.isascii() else idna.alabel(label).decode("ascii")
                for label in mapped.split(".")
            )
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError(f"{host!r} is not a valid international domain name ({exc})") from None
    return host.lower().rstrip(".")
