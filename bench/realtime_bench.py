"""Realtime over WebSocket against real processes (`ledgerline gateway`, `delivery`, `projections`) on
SQLite (or PostgreSQL with --postgres) and an embedded NATS of the bench's own:

- idle memory: the gateway's RSS growth per idle WebSocket with 5,000 connections (5,000 users), the
  clients held by a child process (`--hold`) so that their memory is not counted;
- send-to-receive latency: messages POSTed at a fixed offered rate (open loop: each at its scheduled
  time, at most IN_FLIGHT outstanding) into PAIRS direct conversations whose recipients are connected
  over WebSocket (each resyncs after connecting, as clients do); from the start of the POST to the
  `message` frame at the recipient (p50, p95, p99, max; p99 also from the scheduled time, which adds
  the client-side wait), with the messages offered, not sent (could not start within LATE_SECONDS
  after the window), accepted and delivered; and from the POST's 201 to the frame (the realtime hop
  alone: the gateway's hand-over, or relay, broker, delivery, broker, gateway for a frame it left to
  delivery; both counts from the gateway's /metrics), with delivery's own mean from an event's record
  time to its frames' publication (from its /metrics).

    .venv/bin/python -m bench.realtime_bench [--connections 5000] [--seconds 10] [--rates 500 2000] [--postgres]

The load generator and the clients run on the same machine (2 cores): their CPU use lowers the figures,
and so does anything else running (the load average is printed with each phase).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import websockets

from bench.lean_http import SEND_ERRORS, lean_pool
from bench.service_procs import spawn, stop_all, until_ready
from bench.wrk_send import warm_up
from services.embedded.nats_server import EmbeddedNats
from services.embedded.ports import free_port

SECRET = "realtime-bench-secret-0123456789abcdef01"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}
PAIRS = 100
IN_FLIGHT = 64
WARMUP_CONNECTIONS = 100
CONNECT_BATCH = 100
DRAIN_SECONDS = 15.0
# A message whose POST cannot start within this long after the phase's window is not sent (counted):
# it keeps a phase bounded when the stack takes far less than the offered rate.
LATE_SECONDS = 2.0
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] realtime_bench: {message}", file=sys.stderr, flush=True)


def token(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "name": f"Bench {user}", "roles": ["user"], "iat": now, "exp": now + 7200}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def raise_fd_limit(needed: int) -> str:
    """Each connection is a file descriptor in the gateway and in the holder (children inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"{soft} (unchanged)"
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return f"{soft} -> {target}"


@dataclass
class Stack:
    url: str
    ws_url: str
    gateway_pid: int
    pids: dict[str, int] = field(default_factory=dict)
    delivery_metrics: str = ""

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each service process and of this (the client) process."""
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()} | {"client": time.process_time()}


@asynccontextmanager
async def stack(database_url: str, tmp: Path) -> AsyncIterator[Stack]:
    async with EmbeddedNats(tmp / "nats") as nats:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
        env |= {
            "LEDGERLINE_DATABASE_URL": database_url,
            "LEDGERLINE_BROKER_URL": nats.url,
            "LEDGERLINE_JWT_SECRET": SECRET,
            "LEDGERLINE_DATA_DIR": str(tmp / "data"),
            "LEDGERLINE_GATEWAY_PORT": str(port),
            "LEDGERLINE_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGERLINE_LOG_LEVEL": "warning",
        }
        url = f"http://127.0.0.1:{port}"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            procs.append(spawn("gateway", env, tmp))
            await until_ready(f"{url}/readyz", procs[0])
            health = []
            for service in ("delivery", "projections"):  # after the gateway migrated the database
                worker_port = free_port()
                health.append(f"http://127.0.0.1:{worker_port}")
                procs.append(spawn(service, env | {"LEDGERLINE_WORKER_PORT": str(worker_port)}, tmp))
                await until_ready(f"{health[-1]}/readyz", procs[-1])
            pids = {"gateway": procs[0].pid, "delivery": procs[1].pid, "projections": procs[2].pid}
            yield Stack(url, f"ws://127.0.0.1:{port}/v1/ws", procs[0].pid, pids, f"{health[0]}/metrics")
        finally:
            stop_all(procs)


# --- idle memory -----------------------------------------------------------------------------------


async def open_many(ws_url: str, users: list[str]) -> list[websockets.ClientConnection]:
    sockets: list[websockets.ClientConnection] = []
    for first in range(0, len(users), CONNECT_BATCH):
        batch = users[first : first + CONNECT_BATCH]
        sockets += await asyncio.gather(
            *(websockets.connect(f"{ws_url}?access_token={token(u)}", open_timeout=60) for u in batch)
        )
    return sockets


async def hold(ws_url: str, count: int, prefix: str) -> None:
    """The holder process: open `count` sockets, print `open`, keep them until stdin closes."""
    sockets = await open_many(ws_url, [f"{prefix}{i}" for i in range(count)])
    print(f"open {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def idle_memory(s: Stack, connections: int) -> dict[str, Any]:
    warm = await open_many(s.ws_url, [f"warm{i}" for i in range(WARMUP_CONNECTIONS)])  # imports, pools, caches
    await asyncio.gather(*(w.close() for w in warm))
    await asyncio.sleep(2)
    before = rss_bytes(s.gateway_pid)
    progress(f"idle: gateway RSS {before / 2**20:.1f} MiB; opening {connections:,} connections (load {load()})")
    began = time.perf_counter()
    holder = subprocess.Popen(  # noqa: ASYNC220  # started once; its output is read in an executor
        [sys.executable, "-m", "bench.realtime_bench", "--hold", s.ws_url, "--connections", str(connections)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        line = await asyncio.get_running_loop().run_in_executor(None, holder.stdout.readline)
        if not line.startswith(b"open"):
            raise RuntimeError(f"the holder process failed (exit {holder.wait()})")
        opened = time.perf_counter() - began
        await asyncio.sleep(5)  # idle: heartbeats and pings only
        after = rss_bytes(s.gateway_pid)
        holder_rss = rss_bytes(holder.pid)
        holder.stdin.close()
        holder.wait(timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
    settled = await settle(s.gateway_pid)
    result = {
        "connections": connections,
        "open_seconds": round(opened, 1),
        "gateway_rss_before_mib": round(before / 2**20, 1),
        "gateway_rss_after_mib": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / connections / 1024, 1),
        "client_process_kib_per_connection": round(holder_rss / connections / 1024, 1),
        "load_avg": load(),
        "close_all_seconds": round(settled, 1),
    }
    progress(f"idle: {result}")
    return result


async def settle(pid: int, idle_share: float = 0.05, limit: float = 300.0) -> float:
    """Wait until the process uses under `idle_share` of a core over a second (it has handled every
    close); the seconds it took."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < idle_share:
            break
    return time.perf_counter() - began


# --- send-to-receive latency --------------------------------------------------------------------------

# The histograms along the hop, by key: (metric, its label selector or "").
HOP_HISTOGRAMS = {
    # The gateway's own time for a send, request to response start (the client's figure adds the wire).
    "server": (
        "ledgerline_http_request_seconds",
        '{method="POST",route="/v1/conversations/{conversation_id}/messages"}',
    ),
    "append": ("ledgerline_append_batch_seconds", ""),  # one group-commit batch of the gateway's store
    "relay": ("ledgerline_relay_batch_seconds", ""),  # the relay's publish of one page, sent to confirmed
    "receipt": ("ledgerline_worker_event_age_seconds", '{kind="delivery"}'),  # record time to delivery's receipt
    "publish": ("ledgerline_delivery_commit_to_publish_seconds", ""),  # record time to the frames' publication
}
# The exposition lines' starts: e.g. 'ledgerline_relay_batch_seconds_sum ' -> "relay_sum".
_HOP_PREFIXES = [
    (f"{metric}{suffix}{labels or ' '}", key + suffix)
    for key, (metric, labels) in HOP_HISTOGRAMS.items()
    for suffix in ("_sum", "_count")
] + [
    # The gateway's hand-over: message frames it gave its sockets itself, and those it left to delivery.
    ('ledgerline_realtime_handed_over_frames_total{outcome="sent"} ', "handed_sent"),
    ('ledgerline_realtime_handed_over_frames_total{outcome="left_to_delivery"} ', "handed_left"),
    # The store's batches by path (shared/store/batch_io.py): fast (planned from the writer's view) or checked.
    *((f'ledgerline_append_batches_total{{path="{path}"}} ', f"path_{path}") for path in ("fast", "checked")),
]


async def delivery_timings(http: httpx.AsyncClient, s: Stack) -> dict[str, float]:
    """Sums and counts of the histograms along the hop: the relay's publish of a page (gateway),
    record time to delivery's receipt of the event (relay, JetStream, fetch), record time to its
    frames' publication."""
    text = (await http.get(s.delivery_metrics)).text + "\n" + (await http.get(s.url + "/metrics")).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        for prefix, key in _HOP_PREFIXES:
            if line.startswith(prefix):
                values[key] = float(line.split()[-1])
    return values


def mean_ms(before: dict[str, float], after: dict[str, float], key: str) -> float:
    count = after.get(key + "_count", 0.0) - before.get(key + "_count", 0.0)
    total = after.get(key + "_sum", 0.0) - before.get(key + "_sum", 0.0)
    return round(total / count * 1000, 1) if count else float("nan")


async def resync(ws: websockets.ClientConnection, conversation_id: str, last_seq: int) -> None:
    await ws.send(json.dumps({"type": "resync", "conversations": {conversation_id: last_seq}}))
    async with asyncio.timeout(30):
        while json.loads(await ws.recv()).get("type") != "resync":
            pass


async def latency(s: Stack, http: httpx.AsyncClient, rate: int, seconds: float, tag: str) -> dict[str, Any]:
    pairs = [(f"{tag}s{i}", f"{tag}r{i}") for i in range(PAIRS)]
    conversations = []
    for sender, recipient in pairs:
        r = await http.post(
            "/v1/conversations",
            headers={"Authorization": f"Bearer {token(sender)}"},
            json={"kind": "direct", "members": [recipient]},
        )
        r.raise_for_status()
        conversations.append(str(r.json()["conversation_id"]))
    # One message per conversation before the clock: the figures are those of conversations in use.
    paths = [f"/v1/conversations/{c}/messages" for c in conversations]
    await warm_up(s.url, [(path, token(sender)) for path, (sender, _) in zip(paths, pairs, strict=True)])
    sockets = await open_many(s.ws_url, [recipient for _, recipient in pairs])
    # As a client does on connecting: it holds the warm-up message (seq 1), and says so.
    await asyncio.gather(*(resync(ws, c, 1) for ws, c in zip(sockets, conversations, strict=True)))
    arrived: dict[int, float] = {}

    async def read(ws: websockets.ClientConnection) -> None:
        async for data in ws:
            frame = json.loads(data)
            if frame["type"] == "message" and frame["text"].startswith(tag):
                arrived.setdefault(int(frame["text"][len(tag) + 1 :]), time.perf_counter())

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    headers = [{"Authorization": f"Bearer {token(sender)}", "Content-Type": "application/json"} for sender, _ in pairs]
    started: dict[int, float] = {}
    accepted_at: dict[int, float] = {}
    errors = shed = 0
    gate = asyncio.Semaphore(IN_FLIGHT)
    total = int(rate * seconds)
    t0 = time.perf_counter()
    too_late = t0 + seconds + LATE_SECONDS

    async def send(n: int) -> None:
        nonlocal errors, shed
        i = n % PAIRS
        body = json.dumps({"client_msg_id": f"{tag}-{n}", "text": f"{tag} {n}"}).encode()
        request = pool.request_bytes("POST", f"/v1/conversations/{conversations[i]}/messages", body, headers[i])
        async with gate:
            began = time.perf_counter()
            if began > too_late:  # the stack cannot take the offered rate: not sent, counted
                shed += 1
                return
            try:
                status, _ = await pool.send(request)  # bench/lean_http.py: the client must not be the limit
            except SEND_ERRORS:
                errors += 1
                return
        if status == 201:
            started[n] = began
            accepted_at[n] = time.perf_counter()
        else:
            errors += 1

    cpu_before, load_before = s.cpu(), load()
    timings_before = await delivery_timings(http, s)
    progress(f"{tag}: {rate}/s offered for {seconds:.0f} s ({total:,} messages, load {load_before})")
    async with lean_pool(s.url, IN_FLIGHT) as pool:
        tasks = []
        for n in range(total):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(n)))
        await asyncio.gather(*tasks)
    sending = time.perf_counter() - t0
    deadline = time.perf_counter() + DRAIN_SECONDS
    while len(arrived.keys() & started.keys()) < len(started) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - t0
    cpu_after = s.cpu()
    timings_after = await delivery_timings(http, s)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    delays = [arrived[n] - began for n, began in started.items() if n in arrived]
    after_accept = [max(0.0, arrived[n] - accepted_at[n]) for n in started if n in arrived]  # the realtime hop
    http_times = [accepted_at[n] - began for n, began in started.items()]
    from_schedule = [arrived[n] - (t0 + n / rate) for n in started if n in arrived]  # with client queueing

    def grew(key: str) -> int:  # a counter's growth over the phase
        return round(timings_after.get(key, 0) - timings_before.get(key, 0))

    result = {
        "offered_per_s": rate,
        "offered": total,
        "not_sent_late": shed,
        "accepted": len(started),
        "accepted_per_s": round(len(started) / sending),
        "delivered": len(delays),
        "http_errors": errors,
        "p99_from_schedule_ms": pct(from_schedule, 0.99),
        "p50_ms": pct(delays, 0.5),
        "p95_ms": pct(delays, 0.95),
        "p99_ms": pct(delays, 0.99),
        "max_ms": round(max(delays) * 1000, 1) if delays else float("nan"),
        "http_p50_ms": pct(http_times, 0.5),  # the POST alone, start to 201
        "http_p99_ms": pct(http_times, 0.99),
        "after_201_p50_ms": pct(after_accept, 0.5),
        "after_201_p99_ms": pct(after_accept, 0.99),
        "http_server_mean_ms": mean_ms(timings_before, timings_after, "server"),
        "append_batch_mean_ms": mean_ms(timings_before, timings_after, "append"),
        "append_batches": grew("append_count"),
        "relay_page_publish_mean_ms": mean_ms(timings_before, timings_after, "relay"),
        "relay_pages": grew("relay_count"),
        "delivery_record_to_receipt_mean_ms": mean_ms(timings_before, timings_after, "receipt"),
        "delivery_record_to_publish_mean_ms": mean_ms(timings_before, timings_after, "publish"),
        "append_paths": {key: grew(key) for key in ("path_fast", "path_checked")},
        "handed_over": {key: grew(key) for key in ("handed_sent", "handed_left")},
        "cpu_pct": {name: round((cpu_after[name] - cpu_before[name]) / wall * 100) for name in cpu_after},
        "load_avg": load(),
    }
    progress(f"{tag}: {result}")
    return result


async def backend(name: str, database_url: str, tmp: Path, connections: int, seconds: float, rates: list[int]) -> Any:
    progress(f"{name}: starting gateway, delivery and projections")
    async with stack(database_url, tmp) as s:
        result: dict[str, Any] = {f"idle_{connections}": await idle_memory(s, connections)}
        gc.collect()
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(base_url=s.url, timeout=60, limits=limits) as http:
            for rate in rates:
                result[f"rate_{rate}"] = await latency(s, http, rate, seconds, f"r{rate}")
    return result


async def run(
    connections: int = 5000, seconds: float = 10.0, rates: tuple[int, ...] = (500, 2000), postgres: bool = False
) -> Any:
    machine = {
        "cores": os.cpu_count(),
        "fd_soft_limit": raise_fd_limit(2 * connections + 1024),
        "load_avg_at_start": load(),
    }
    progress(f"machine: {machine}")
    results: dict[str, Any] = {"machine": machine}
    with tempfile.TemporaryDirectory(prefix="realtime-bench-") as tmp:
        if not postgres:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            results["sqlite"] = await backend("sqlite", url, Path(tmp), connections, seconds, list(rates))
            return results
        name = f"ledgerline_rtbench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            results["postgres"] = await backend("postgres", url, Path(tmp), connections, seconds, list(rates))
        finally:
            with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL on 127.0.0.1:5432 instead of SQLite")
    parser.add_argument("--hold", metavar="WS_URL", help=argparse.SUPPRESS)  # the idle clients' process
    args = parser.parse_args()
    if args.hold:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        asyncio.run(hold(args.hold, args.connections, "idle"))
        return
    results = asyncio.run(run(args.connections, args.seconds, tuple(args.rates), args.postgres))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
