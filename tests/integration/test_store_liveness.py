"""Every PostgreSQL connection the store opens carries libpq's liveness settings, so that a server
gone silent (a partition) fails the call within about a minute instead of hanging it for as long as
the kernel retries: checked on the sockets themselves, as `ss -tno` would show an operator: the group-commit writer's
and a pooled engine connection's (the LISTEN connection is opened from the writer's conninfo). A
setting in the database URL wins over the default."""

from __future__ import annotations

import socket
from typing import Any

import psycopg
from helpers.store_support import message, migrated_store, stream_of

from shared.store.engine import LIBPQ_LIVENESS

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)  # Linux's value; Python names it from 3.12 on


def socket_settings(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> dict[str, int]:
    sock = socket.socket(fileno=conn.fileno())
    try:
        return {
            "keepalives": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "keepalives_idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            "keepalives_interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            "keepalives_count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            "tcp_user_timeout": sock.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT),
        }
    finally:
        sock.detach()  # the descriptor stays libpq's


EXPECTED = {k: v for k, v in LIBPQ_LIVENESS.items() if k != "connect_timeout"}


async def test_the_writer_the_listener_and_the_pool_detect_a_silent_server(pg_url: str) -> None:
    async with migrated_store(pg_url) as store:
        await store.append(stream_of("live"), [message("live", 1)])
        await store.wait_for_events(0, timeout=0.1)  # starts the LISTEN connection
        listener_conninfo = psycopg.conninfo.conninfo_to_dict(store._listener._conninfo)  # type: ignore[union-attr]
        assert {k: int(v) for k, v in listener_conninfo.items() if k in LIBPQ_LIVENESS} == LIBPQ_LIVENESS
        writer = store._writer._io._conn  # type: ignore[attr-defined]
        assert writer is not None
        assert socket_settings(writer) == EXPECTED
        assert writer.info.get_parameters()["connect_timeout"] == "10"
        async with store.engine.connect() as conn:
            pooled = (await conn.get_raw_connection()).driver_connection
            assert socket_settings(pooled) == EXPECTED


async def test_a_setting_in_the_database_url_wins(pg_url: str) -> None:
    url = f"{pg_url}?keepalives_idle=7&tcp_user_timeout=5000"
    async with migrated_store(url) as store:
        await store.append(stream_of("live"), [message("live", 1)])
        writer = store._writer._io._conn  # type: ignore[attr-defined]
        async with store.engine.connect() as conn:
            pooled = (await conn.get_raw_connection()).driver_connection
            for settings in (socket_settings(writer), socket_settings(pooled)):
                assert settings == EXPECTED | {"keepalives_idle": 7, "tcp_user_timeout": 5000}
