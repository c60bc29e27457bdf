"""Choosing listen ports on loopback."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on now. Another process may take it before the caller binds it;
    the supervisor then restarts the child, which is why callers pick ports just before starting."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on host:port now.

    SO_REUSEADDR as uvicorn sets it: a port left in TIME_WAIT by a previous run counts as free,
    a port some process listens on (on this address or on 0.0.0.0) does not.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def local_address(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
