"""Chat over HTTP against a real gateway process (`ledgerline gateway`, with its relay) and a real
projections worker process (`ledgerline projections`), on SQLite and on PostgreSQL, each run with an
embedded NATS of its own (so no production stream on a shared server is touched):

- accepted: messages/s accepted by POST /v1/conversations/{id}/messages from many concurrent clients
  (each in a direct conversation of its own), with request latency p50/p99;
- visible: while that load runs, a probe sends a message every 100 ms and times until it shows in the
  recipient's GET /v1/conversations (p50/p99): relay + broker + projection + query;
- busy group: one group, 64 concurrent senders;
- unread: GET /v1/unread latency for a member of a 10-member and of a 1,000-member group.

    .venv/bin/python -m bench.chat_bench [--messages N] [--only sqlite|postgres]

The load generator runs on the same machine (2 cores in CI): its own CPU use lowers the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg

from bench.service_procs import spawn, stop_all, until_ready
from services.embedded.nats_server import EmbeddedNats
from services.embedded.ports import free_port

SECRET = "chat-bench-secret-0123456789abcdef0123"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}
CLIENTS = 64
BUSY_SENDERS = 64


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] chat_bench: {message}", file=sys.stderr, flush=True)


def auth(user: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user, "name": f"Bench {user}", "roles": ["user"], "iat": now, "exp": now + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


@asynccontextmanager
async def services(database_url: str, tmp: Path, delivery: bool = False) -> AsyncIterator[str]:
    """The gateway and the projections worker (and the delivery worker) as child processes; yields
    the gateway's URL."""
    async with EmbeddedNats(tmp / "nats") as nats:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
        env |= {
            "LEDGERLINE_DATABASE_URL": database_url,
            "LEDGERLINE_BROKER_URL": nats.url,
            "LEDGERLINE_JWT_SECRET": SECRET,
            "LEDGERLINE_DATA_DIR": str(tmp / "data"),
            "LEDGERLINE_GATEWAY_PORT": str(port),
            "LEDGERLINE_WORKER_PORT": str(free_port()),
            "LEDGERLINE_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGERLINE_LOG_LEVEL": "warning",
        }
        url = f"http://127.0.0.1:{port}"
        procs = [spawn("gateway", env, tmp)]
        try:
            await until_ready(f"{url}/readyz", procs[0])
            procs.append(spawn("projections", env, tmp))  # after the gateway migrated the database
            await until_ready(f"http://127.0.0.1:{env['LEDGERLINE_WORKER_PORT']}/readyz", procs[1])
            if delivery:
                procs.append(spawn("delivery", env | {"LEDGERLINE_WORKER_PORT": str(free_port())}, tmp))
            yield url
        finally:
            stop_all(procs)


async def start(http: httpx.AsyncClient, creator: str, kind: str, members: list[str]) -> str:
    r = await http.post("/v1/conversations", headers=auth(creator), json={"kind": kind, "members": members})
    r.raise_for_status()
    return str(r.json()["conversation_id"])


async def send_all(http: httpx.AsyncClient, user: str, conversation_id: str, count: int, lat: list[float]) -> None:
    """One sender on a connection of its own. A pool shared by all senders was the bottleneck: for
    every request httpcore's pool walks all its connections and polls each socket, so one pool of 72
    connections let this client send ~50 messages/s to a gateway that took ~220/s from wrk (2026-12-02)."""
    headers, path = auth(user), f"/v1/conversations/{conversation_id}/messages"
    async with httpx.AsyncClient(base_url=http.base_url, timeout=http.timeout) as own:
        for n in range(count):
            body = {"client_msg_id": f"{user}-{n}", "text": f"message {n} from {user}"}
            while True:
                began = time.perf_counter()
                r = await own.post(path, headers=headers, json=body)
                if r.status_code not in (409, 503):  # retried with the same client_msg_id, as a client does
                    break
            r.raise_for_status()
            lat.append(time.perf_counter() - began)


async def probe(http: httpx.AsyncClient, stop: asyncio.Event, seen: list[float]) -> None:
    """Every 100 ms: send, then poll the recipient's conversation list until the message shows."""
    conversation_id = await start(http, "probe-sender", "direct", ["probe-reader"])
    reader, n = auth("probe-reader"), 0
    while not stop.is_set():
        n += 1
        body = {"client_msg_id": f"p{n}", "text": f"probe {n}"}
        began = time.perf_counter()
        sent = await http.post(f"/v1/conversations/{conversation_id}/messages", headers=auth("probe-sender"), json=body)
        seq = sent.json()["seq"]
        while time.perf_counter() - began < 10:
            listed = (await http.get("/v1/conversations", headers=reader)).json()
            if listed and listed[0]["last_seq"] >= seq:
                seen.append(time.perf_counter() - began)
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.1)


async def accepted(http: httpx.AsyncClient, messages: int) -> dict[str, Any]:
    pairs = await asyncio.gather(*(start(http, f"c{i}", "direct", [f"r{i}"]) for i in range(CLIENTS)))
    lat: list[float] = []
    seen: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(http, stop, seen))
    began = time.perf_counter()
    per = max(1, messages // CLIENTS)
    try:
        await asyncio.gather(*(send_all(http, f"c{i}", c, per, lat) for i, c in enumerate(pairs)))
    finally:
        seconds = time.perf_counter() - began
        stop.set()
        await prober
    return {
        "msgs_per_s": round(len(lat) / seconds),
        "send_p50_ms": pct(lat, 0.5),
        "send_p99_ms": pct(lat, 0.99),
        "visible_p50_ms": pct(seen, 0.5),
        "visible_p99_ms": pct(seen, 0.99),
        "probes": len(seen),
    }


async def busy_group(http: httpx.AsyncClient, messages: int) -> dict[str, Any]:
    senders = [f"g{i}" for i in range(BUSY_SENDERS)]
    group = await start(http, senders[0], "group", senders[1:])
    lat: list[float] = []
    per = max(1, messages // BUSY_SENDERS)
    began = time.perf_counter()
    await asyncio.gather(*(send_all(http, user, group, per, lat) for user in senders))
    seconds = time.perf_counter() - began
    return {"msgs_per_s": round(len(lat) / seconds), "send_p50_ms": pct(lat, 0.5), "send_p99_ms": pct(lat, 0.99)}


async def unread(http: httpx.AsyncClient, size: int) -> dict[str, Any]:
    members = [f"m{size}-{i}" for i in range(1, size)]
    group = await start(http, f"m{size}-0", "group", members)
    await send_all(http, f"m{size}-0", group, 20, [])
    reader = auth(members[-1])
    await http.get("/v1/unread", headers=reader)
    lat = []
    for _ in range(200):
        began = time.perf_counter()
        (await http.get("/v1/unread", headers=reader)).raise_for_status()
        lat.append(time.perf_counter() - began)
    return {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


async def backend(name: str, database_url: str, messages: int, tmp: Path) -> dict[str, Any]:
    progress(f"{name}: starting gateway and projections")
    async with services(database_url, tmp) as url:
        limits = httpx.Limits(max_connections=CLIENTS + 8, max_keepalive_connections=CLIENTS + 8)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            progress(f"{name}: {CLIENTS} clients x {messages // CLIENTS} messages")
            result: dict[str, Any] = {"accepted": await accepted(http, messages)}
            progress(f"{name}: busy group, {BUSY_SENDERS} senders")
            result["busy_group"] = await busy_group(http, messages)
            progress(f"{name}: unread in groups of 10 and 1,000")
            result["unread_10"] = await unread(http, 10)
            result["unread_1000"] = await unread(http, 1000)
    progress(f"{name}: {result}")
    return result


async def run(messages: int = 6400, only: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        if only in (None, "sqlite"):
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'sqlite' / 'bench.db'}"
            (Path(tmp) / "sqlite").mkdir()
            results["sqlite"] = await backend("sqlite", url, messages, Path(tmp) / "sqlite")
        if only in (None, "postgres"):
            name = f"ledgerline_chatbench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                (Path(tmp) / "pg").mkdir()
                results["postgres"] = await backend("postgres", url, messages, Path(tmp) / "pg")
            finally:
                with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def table(results: dict[str, Any]) -> str:
    rows = [f"{'backend':<10} {'measure':<12} {'figures'}"]
    for backend_name, parts in results.items():
        for part, figures in parts.items():
            text = "  ".join(f"{k}={v}" for k, v in figures.items())
            rows.append(f"{backend_name:<10} {part:<12} {text}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=6400)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    print(table(asyncio.run(run(args.messages, args.only))))


if __name__ == "__main__":
    main()
