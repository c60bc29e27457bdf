"""LEDGERLINE_NATS_REPLICAS: the streams are created with that many copies; a value the server cannot
honour (more than one copy on a single, non-clustered nats-server) stops the service at start with a
configuration error naming the setting and the server's answer, exit code 2 — never a running service
on an unreplicated stream the operator believes replicated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import unique_suffix
from helpers.service_procs import ROOT, drop_namespace

from services.common.broker import connect_configured_broker
from services.embedded.ports import free_port
from shared.broker.nats import NatsBroker
from shared.config import load_settings
from shared.errors import ConfigError

START_TIMEOUT = 60.0


async def test_one_replica_works_on_the_single_server(nats_url: str, tmp_path: Path) -> None:
    namespace = f"ops-{unique_suffix()}"
    settings = load_settings({}, data_dir=tmp_path, broker_url=nats_url, broker_namespace=namespace, nats_replicas=1)
    broker = await connect_configured_broker(settings, "gateway")
    assert isinstance(broker, NatsBroker)
    try:
        js = broker._nc.jetstream()
        for stream in (broker.names.stream, broker.names.dead_stream):
            assert (await js.stream_info(stream)).config.num_replicas == 1
        assert await broker.healthy()
    finally:
        await broker.close()
        await drop_namespace(nats_url, namespace)


async def test_more_replicas_than_the_single_server_can_keep_is_a_clear_configuration_error(
    nats_url: str, tmp_path: Path
) -> None:
    namespace = f"ops-{unique_suffix()}"
    settings = load_settings({}, data_dir=tmp_path, broker_url=nats_url, broker_namespace=namespace, nats_replicas=3)
    try:
        with pytest.raises(ConfigError) as caught:
            await connect_configured_broker(settings, "gateway")
        [problem] = caught.value.problems
        assert problem.startswith("LEDGERLINE_NATS_REPLICAS: ")
        # nats-server's own words, so that the operator sees why.
        assert "not supported in non-clustered mode" in problem
        assert "3 copies" in problem
    finally:
        await drop_namespace(nats_url, namespace)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["gateway", "projections"])
def test_a_service_with_too_many_replicas_exits_2_naming_the_setting(
    nats_url: str, tmp_path: Path, command: str
) -> None:
    namespace = f"ops-{unique_suffix()}"
    env = {
        "PATH": "/usr/bin:/bin",
        "LEDGERLINE_DATA_DIR": str(tmp_path / "data"),
        "LEDGERLINE_BROKER_URL": nats_url,
        "LEDGERLINE_BROKER_NAMESPACE": namespace,
        "LEDGERLINE_NATS_REPLICAS": "3",
        "LEDGERLINE_JWT_SECRET": "ops-replicas-secret-0123456789abcdef",
        "LEDGERLINE_GATEWAY_PORT": str(free_port()),
        "LEDGERLINE_WORKER_PORT": str(free_port()),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", command],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert done.returncode == 2, done.stderr[-3000:]
        assert "ledgerline: configuration error:" in done.stderr
        assert "LEDGERLINE_NATS_REPLICAS: the NATS server cannot keep 3 copies" in done.stderr
    finally:
        import asyncio

        asyncio.run(drop_namespace(nats_url, namespace))
