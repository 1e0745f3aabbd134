"""The checks `timerd serve` makes before it opens anything: settings that would expose the
daemon or that do not parse are one clear line, not a half-started server."""

from __future__ import annotations

from timerd.api.origin_guard import HostRule
from timerd.config import Settings, read_token
from timerd.delivery.outbound import OutboundPolicy
from timerd.delivery.signing import parse_secret
from timerd.errors import ConfigError
from timerd.hostnames import is_loopback_host


def check_serve_settings(settings: Settings) -> None:
    """Refuse settings that would expose the daemon; raise ConfigError with one line.

    A non-loopback `host` needs a token unless `insecure` is set. The token file, the
    signing secret, the outbound rules and `allowed_hosts` must also parse.
    """
    token = read_token(settings)
    if not token and not settings.insecure and not is_loopback_host(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host} without an API token: set token "
            "(TIMERD_TOKEN) or token_file, or pass --insecure to accept anyone on the network"
        )
    if settings.signing_secret:
        parse_secret(settings.signing_secret)
    OutboundPolicy.from_settings(settings)
    HostRule.from_settings(settings)
