"""The load run: start a profile's stack, spawn the generator processes (each with its share of the
users and of the target rate), start them together, probe the read model and sample the services'
resources meanwhile, then collect every process's samples over its pipe and write the report."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from bench.load import profiles, report
from bench.load.resources import Sampler
from bench.load.users import generate, token

READY_TIMEOUT = 300.0
PROBE_POLL = 0.02  # the read-model probe polls GET /v1/conversations at most this often
PROBE_PAUSE = 0.2
PROBE_GIVE_UP = 10.0


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] load: {message}", file=sys.stderr, flush=True)


def _child(conn: Connection, url: str, secret: str, prefix: str, users: int, rate: float, duration: float) -> None:
    """A generator process: set up its users, say `ready`, wait for the start time, run, send the outcome."""

    async def main() -> dict[str, Any]:
        async def wait_start() -> float:
            conn.send("ready")
            start_at: float = await asyncio.to_thread(conn.recv)
            return start_at

        return await generate(url, secret, prefix, users, rate, duration, wait_start)

    try:
        conn.send(asyncio.run(main()))
    except Exception as e:  # reported by the driver, which fails the run
        conn.send({"failed": f"{type(e).__name__}: {e}"})
    finally:
        conn.close()


async def probe(url: str, secret: str, stop: asyncio.Event) -> list[tuple[float, float]]:
    """Send-to-read-model latency, sampled: send into a probe conversation, then poll the reader's
    GET /v1/conversations until its last_seq reaches the message's seq. (sent at, seconds) pairs."""
    sender, reader = "probe-sender", "probe-reader"
    samples: list[tuple[float, float]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post(
            "/v1/conversations",
            headers={"Authorization": f"Bearer {token(secret, sender)}"},
            json={"kind": "direct", "members": [reader]},
        )
        r.raise_for_status()
        conversation = r.json()["conversation_id"]
        n = 0
        while not stop.is_set():
            n += 1
            began = time.monotonic()
            sent = await http.post(
                f"/v1/conversations/{conversation}/messages",
                headers={"Authorization": f"Bearer {token(secret, sender)}"},
                json={"client_msg_id": f"probe-{n}", "text": f"probe {n}"},
            )
            if sent.status_code != 201:
                await asyncio.sleep(PROBE_PAUSE)
                continue
            seq = sent.json()["seq"]
            while time.monotonic() - began < PROBE_GIVE_UP:
                listed = (
                    await http.get("/v1/conversations", headers={"Authorization": f"Bearer {token(secret, reader)}"})
                ).json()
                if any(c["conversation_id"] == conversation and c["last_seq"] >= seq for c in listed):
                    samples.append((began, time.monotonic() - began))
                    break
                await asyncio.sleep(PROBE_POLL)
            await asyncio.sleep(PROBE_PAUSE)
    return samples


async def run(
    profile: str, rate: float, duration: float, users: int, processes: int, out: Path, tag: str | None = None
) -> dict[str, Any]:
    """One run; writes <out>/load-<profile>-<rate>.{json,md,png} and returns the result."""
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  # once, before the run
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: the driver runs threads and a loop
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        progress(f"{profile}: starting the stack (load {report.load_avg()})")
        async with profiles.start(profile, Path(tmp)) as stack:
            progress(f"{profile}: up at {stack.url}; services {stack.services}")
            per_users = max(2, users // processes)
            pipes: list[Connection] = []
            procs = []
            for i in range(processes):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_child,
                    args=(child, stack.url, stack.secret, f"g{i}x", per_users, rate / processes, duration),
                    daemon=True,
                )
                proc.start()
                child.close()
                pipes.append(parent)
                procs.append(proc)
            try:
                for conn in pipes:  # every process set up (conversations created, sockets open)
                    if not await asyncio.to_thread(conn.poll, READY_TIMEOUT):
                        raise RuntimeError("a generator process did not get ready")
                    message = conn.recv()
                    if message != "ready":
                        raise RuntimeError(f"a generator process failed: {message}")
                start_at = time.monotonic() + 0.5
                progress(
                    f"{profile}: {rate:g}/s offered for {duration:g} s by {processes} processes, "
                    f"{per_users * processes} users (load {report.load_avg()})"
                )
                for conn in pipes:
                    conn.send(start_at)
                stop = asyncio.Event()
                # the generators' own CPU too: on a shared 2-core machine they compete with the services
                generators = {f"generator-{i}": proc.pid for i, proc in enumerate(procs) if proc.pid is not None}
                with Sampler(stack.services | generators) as sampler:
                    prober = asyncio.create_task(probe(stack.url, stack.secret, stop))
                    outcomes = [await asyncio.to_thread(conn.recv) for conn in pipes]
                    stop.set()
                    probes = await prober
            finally:
                for proc in procs:
                    proc.join(timeout=30)
                    if proc.is_alive():
                        proc.kill()
        failed = [o["failed"] for o in outcomes if "failed" in o]
        if failed:
            raise RuntimeError(f"generator processes failed: {failed}")
    result = report.summarise(
        outcomes,
        probes,
        sampler,
        start_at,
        {
            "profile": profile,
            "offered_per_s": rate,
            "duration_s": duration,
            "users": per_users * processes,
            "processes": processes,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": report.machine(),
            **({"tag": tag} if tag else {}),
        },
    )
    paths = report.write(result, outcomes, probes, start_at, out)
    progress(f"{profile}: {report.headline(result)}; wrote {', '.join(str(p) for p in paths)}")
    return result
