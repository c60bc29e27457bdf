"""The delivery service as a real process (`ledgerline delivery`) beside a real gateway process: it
consumes and publishes realtime frames on ONE broker connection (the worker service's), and a
message reaches a WebSocket client through it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from chat_support import SECRET, token

from services.embedded.nats_server import EmbeddedNats
from services.embedded.ports import free_port

pytestmark = pytest.mark.asyncio(loop_scope="function")
START_TIMEOUT = 60.0


class Services:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, service: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{service}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", service], env=self.env, stdout=log, stderr=log
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()  # by pid: only the processes this test started
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def tail(self, service: str) -> str:
        return (self.log_dir / f"{service}.log").read_text()[-3000:]


async def _ready(
    http: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes], services: Services, name: str
) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            assert proc.poll() is None, services.tail(name)
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "logs"
    path.mkdir()
    yield path


async def test_the_delivery_process_publishes_frames_on_its_single_broker_connection(
    tmp_path: Path, log_dir: Path
) -> None:
    async with EmbeddedNats(tmp_path / "nats") as nats, httpx.AsyncClient(timeout=5) as http:
        gateway_port, worker_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
        env |= {
            "LEDGERLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}",
            "LEDGERLINE_BROKER_URL": nats.url,
            "LEDGERLINE_JWT_SECRET": SECRET,
            "LEDGERLINE_DATA_DIR": str(tmp_path / "data"),
            "LEDGERLINE_GATEWAY_PORT": str(gateway_port),
            "LEDGERLINE_WORKER_PORT": str(worker_port),
            "LEDGERLINE_PARTITIONS": "4",
        }
        services = Services(env, log_dir)
        try:
            gateway = services.start("gateway")
            await _ready(http, f"http://127.0.0.1:{gateway_port}/readyz", gateway, services, "gateway")
            before = (await http.get(f"{nats.monitor_url}/connz")).json()["num_connections"]
            delivery = services.start("delivery")
            await _ready(http, f"http://127.0.0.1:{worker_port}/readyz", delivery, services, "delivery")
            after = (await http.get(f"{nats.monitor_url}/connz")).json()["num_connections"]
            assert after - before == 1  # durable consumers and the ephemeral path on one connection

            api = f"http://127.0.0.1:{gateway_port}/v1"
            alice = {"Authorization": f"Bearer {token('alice')}"}
            r = await http.post(f"{api}/conversations", headers=alice, json={"kind": "direct", "members": ["bob"]})
            assert r.status_code == 201, r.text
            c = r.json()["conversation_id"]
            url = f"ws://127.0.0.1:{gateway_port}/v1/ws?access_token={token('bob')}"
            async with websockets.connect(url, open_timeout=10) as bob:
                body = {"client_msg_id": "m1", "text": "through the delivery process"}
                r = await http.post(f"{api}/conversations/{c}/messages", headers=alice, json=body)
                assert r.status_code == 201, r.text
                async with asyncio.timeout(30):
                    while (frame := json.loads(await bob.recv()))["type"] != "message":
                        pass
            assert (frame["conversation_id"], frame["seq"], frame["text"]) == (c, 1, "through the delivery process")
        finally:
            services.stop()
