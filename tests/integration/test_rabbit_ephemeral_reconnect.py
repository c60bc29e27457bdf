"""RabbitMQ ephemeral subscriptions after a connection loss: the robust connection restores the shared
channel, queue, bindings and consumer, and the in-process handlers carry on.

The broker talks to the machine's RabbitMQ through a TCP proxy (tests/helpers/tcp_proxy.py) that the
test cuts and restores; the server itself is never touched.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable

from conftest import unique_suffix
from helpers.tcp_proxy import TcpProxy

from shared.broker.rabbit import RabbitBroker

WITHIN = 30.0


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_ephemeral_subscriptions_survive_a_connection_loss(rabbit_url: str) -> None:
    got: dict[str, list[bytes]] = defaultdict(list)

    def handler(name: str) -> Callable[[str, bytes], Awaitable[None]]:
        async def on_message(subject: str, data: bytes) -> None:
            got[name].append(data)

        return on_message

    prefix = "ledgerline.rt"
    async with TcpProxy("127.0.0.1", 5672) as proxy:
        url = rabbit_url.replace("127.0.0.1:5672", proxy.address) + "?reconnect_interval=0.2"
        broker = await RabbitBroker.connect(url, namespace=f"t{unique_suffix()}")
        try:
            user = await broker.subscribe_ephemeral(f"{prefix}.user.amy", handler("amy"))
            presence = await broker.subscribe_ephemeral(f"{prefix}.presence.*", handler("presence"))
            gone = await broker.subscribe_ephemeral(f"{prefix}.user.gus", handler("gus"))
            await broker.publish_ephemeral(f"{prefix}.user.amy", b"before")
            await eventually(lambda: got["amy"] == [b"before"], "the first message")
            await gone.unsubscribe()  # unbound before the loss: must not come back with the restore

            await proxy.cut()
            await proxy.restore()

            async def after() -> bool:
                try:
                    await asyncio.wait_for(broker.publish_ephemeral(f"{prefix}.user.amy", b"after"), 5)
                except Exception:  # the publishing channel is being restored too
                    return False
                return True

            deadline = asyncio.get_running_loop().time() + WITHIN
            while b"after" not in got["amy"]:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("no message after the reconnect")
                await after()
                await asyncio.sleep(0.1)

            assert proxy.accepted == 2  # it did reconnect
            late = await broker.subscribe_ephemeral(f"{prefix}.user.liv", handler("liv"))
            await broker.publish_ephemeral(f"{prefix}.user.gus", b"to nobody")
            await broker.publish_ephemeral(f"{prefix}.presence.amy", b"online")
            await broker.publish_ephemeral(f"{prefix}.user.liv", b"hello liv")
            await eventually(lambda: bool(got["presence"]) and bool(got["liv"]), "the wildcard and the new one")
            assert got["presence"] == [b"online"]
            assert got["liv"] == [b"hello liv"]
            assert got["gus"] == []
            assert broker.ephemeral.dropped == 0  # the unbound pattern was not restored
            for sub in (user, presence, late):
                await sub.unsubscribe()
        finally:
            await broker.delete_topology(())
            await broker.close()
