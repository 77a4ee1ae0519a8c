"""A process-wide guard that records and refuses any DNS lookup or socket connection outside loopback.

`install(log)` is run at the start of a subprocess (see test_end_to_end.py): every attempt is appended to `log`
and fails with OSError, so a test can assert that the file stays empty however the code handled the failure.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install(log: Path) -> None:
    """Refuse and record non-loopback DNS lookups and connections in this process from now on."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(what: str) -> OSError:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(what + "\n")
        return OSError(f"network access outside loopback refused: {what}")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local(host):
            raise refuse(f"getaddrinfo {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise refuse(f"connect {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
