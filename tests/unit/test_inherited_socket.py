"""LEDGERLINE_LISTEN_FD: a service serves on the socket its parent bound, and a wrong descriptor is a
configuration error naming it, not a crash."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.common.lifecycle import listen
from shared.errors import ConfigError


def test_the_inherited_listening_socket_is_served_as_it_is() -> None:
    with socket.create_server(("127.0.0.1", 0)) as parent:
        sock = listen("127.0.0.1", 9100, inherited_fd=parent.fileno())
        try:
            assert sock.getsockname() == parent.getsockname()  # not 9100: the parent's port
            with socket.create_connection(parent.getsockname(), timeout=5):
                accepted, _ = sock.accept()
                accepted.close()
        finally:
            sock.detach()  # the parent's descriptor; closed once, by `parent`


def test_a_descriptor_that_is_no_socket_is_named(tmp_path: Path) -> None:
    with (tmp_path / "file").open("w") as file:
        with pytest.raises(ConfigError) as error:
            listen("127.0.0.1", 9100, inherited_fd=file.fileno())
        assert f"LEDGERLINE_LISTEN_FD={file.fileno()}: not an open socket" in str(error.value)


def test_a_socket_that_does_not_listen_is_refused_and_left_open() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        with pytest.raises(ConfigError, match="not a listening TCP socket"):
            listen("127.0.0.1", 9100, inherited_fd=bound.fileno())
        assert bound.fileno() != -1 and bound.getsockname()[1] > 0  # still usable: not closed behind our back
