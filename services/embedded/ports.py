"""Choosing listen ports on loopback."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on now, for tests and benchmarks that start a server on it.
    Another process may take it before the server binds it; `ledgerline up` does not use this, it
    binds its services' sockets itself and hands them over (services.embedded.stack)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def local_address(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
