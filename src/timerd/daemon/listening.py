"""The daemon's listening sockets, bound before anything else so a taken port costs nothing."""

from __future__ import annotations

import contextlib
import errno
import socket

from timerd.errors import TimerdError

LISTEN_BACKLOG = 2048


class ListenError(TimerdError):
    """The address cannot be listened on (in use, not local, not resolvable)."""

    title = "Cannot listen"
    type_slug = "listen"


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on every address `host` resolves to, as asyncio's create_server would.

    Blocking. With port 0, every address gets the port the first one drew, so the one URL
    printed reaches them all. Raises ListenError with one readable line.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, resolved in dict.fromkeys(infos):
            address = resolved
            if sockets and port == 0:
                address = (resolved[0], sockets[0].getsockname()[1], *resolved[2:])
            sockets.append(_listen(family, kind, proto, address, host, port))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listen(
    family: int, kind: int, proto: int, address: tuple[object, ...], host: str, port: int
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):  # one family per socket, like asyncio
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)  # only a listening socket keeps others off the port
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"port {port} on {host} is already in use (another timerd?); choose one with --port"
            ) from None
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
