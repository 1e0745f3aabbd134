"""systemd readiness: the sd_notify datagram protocol over `$NOTIFY_SOCKET`, without libsystemd.

Outside a `Type=notify` unit the variable is unset and every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)

# A datagram to a local socket does not wait on the network; the bound only guards against a
# stuck service manager holding up the caller.
SEND_TIMEOUT_S = 1.0


def notify(message: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send `message` (like `READY=1`) to the service manager; return whether it was sent."""
    path = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not path or not hasattr(socket, "AF_UNIX"):
        return False
    if path.startswith("@"):
        # Linux abstract namespace: systemd writes the leading NUL byte as "@".
        address = "\0" + path[1:]
    elif path.startswith("/"):
        address = path
    else:
        logger.debug("NOTIFY_SOCKET %r is not a unix socket path; not notifying", path)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        logger.warning("cannot notify the service manager at %s: %s", path, exc)
        return False
    return True


def ready() -> bool:
    """Tell systemd the daemon is up: the database is open and the port is bound."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell systemd the daemon has begun its graceful shutdown."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """Set the one-line status that `systemctl status` shows."""
    return notify("STATUS=" + text.replace("\n", " "))
