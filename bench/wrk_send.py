"""Messages accepted over HTTP, driven by wrk (C, nearly free) instead of a Python client.

`chat_bench` measures with httpx, whose own CPU caps it at ~500 messages/s on 2 cores. This
starts the same stack (`ledgerline gateway` with its relay, `ledgerline projections`, an embedded
NATS; delivery too with --delivery) on a fresh database, opens 64 direct conversations, and runs
`wrk -t2 -c64` POSTing a fresh `client_msg_id` each time, round-robin over the conversations. It
prints the accepted rate, the latency percentiles wrk measured, and any non-2xx answers, and
afterwards how long the chat projection took to catch up with what was accepted. With --group, one
busy group instead: 64 members, each request from the next of them in turn, all into the one
conversation (the issue's "one busy group, 64 concurrent senders").

    .venv/bin/python -m bench.wrk_send [--seconds 20] [--connections 64] [--db postgres|sqlite] [--delivery] [--group]

Needs `wrk` on the PATH (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg

from bench.chat_bench import PG_ADMIN, SECRET, progress, services
from shared.store.sql import SqlEventStore

CONVERSATIONS = 64

LUA = """
local convs = {%(convs)s}
local counter = 0
setup = function(thread) thread:set("tid", #threads_seen + 1); table.insert(threads_seen, thread) end
threads_seen = {}
request = function()
  counter = counter + 1
  local c = convs[((counter + tid * 7) %% #convs) + 1]
  local body = '{"client_msg_id":"w' .. tid .. '-' .. counter .. '","text":"wrk message ' .. counter .. '"}'
  return wrk.format("POST", c[1], {["Authorization"] = "Bearer " .. c[2], ["Content-Type"] = "application/json"}, body)
end
"""


def token(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "name": f"Bench {user}", "roles": ["user"], "iat": now, "exp": now + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def open_conversations(url: str) -> list[tuple[str, str]]:
    """(path, sender's token) per direct conversation."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def one(i: int) -> tuple[str, str]:
            sender = token(f"w{i}")
            r = await http.post(
                "/v1/conversations",
                headers={"Authorization": f"Bearer {sender}"},
                json={"kind": "direct", "members": [f"r{i}"]},
            )
            r.raise_for_status()
            return f"/v1/conversations/{r.json()['conversation_id']}/messages", sender

        return list(await asyncio.gather(*(one(i) for i in range(CONVERSATIONS))))


async def open_busy_group(url: str) -> list[tuple[str, str]]:
    """(path, sender's token) per member of one group of CONVERSATIONS members: one path, many senders."""
    members = [f"g{i}" for i in range(CONVERSATIONS)]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post(
            "/v1/conversations",
            headers={"Authorization": f"Bearer {token(members[0])}"},
            json={"kind": "group", "title": "busy group", "members": members[1:]},
        )
        r.raise_for_status()
    path = f"/v1/conversations/{r.json()['conversation_id']}/messages"
    return [(path, token(m)) for m in members]


async def warm_up(url: str, conversations: list[tuple[str, str]]) -> None:
    """One message from each sender before the clock starts, so that the figures are those of
    conversations in use (as in store_bench): a sender's first message in a conversation also creates
    their key there, and their first request enters them in the user directory."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def one(i: int, path: str, sender: str) -> None:
            r = await http.post(
                path,
                headers={"Authorization": f"Bearer {sender}"},
                json={"client_msg_id": f"warm-{i}", "text": "warming up"},
            )
            r.raise_for_status()

        await asyncio.gather(*(one(i, path, sender) for i, (path, sender) in enumerate(conversations)))


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures: dict[str, Any] = {"wrk": " ".join(out.split())}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        figures["requests_per_s"] = round(float(m.group(1)))
    for q in ("50%", "90%", "99%"):
        if m := re.search(rf"^\s+{q}\s+([\d.]+)(us|ms|s)\b", out, re.M):
            value, unit = float(m.group(1)), m.group(2)
            figures[f"p{q[:-1]}_ms"] = round(value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 1)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    figures["non_2xx"] = int(m.group(1)) if m else 0
    if m := re.search(r"(\d+) requests in", out):
        figures["requests"] = int(m.group(1))
    return figures


async def caught_up(url: str, database_url: str, conversations: list[tuple[str, str]], timeout: float = 120.0) -> float:
    """Seconds from the end of the load until the first conversation's last_seq in its sender's list
    equals the seq the store gave its last message (the projection has caught up)."""
    began = time.monotonic()
    path, sender = conversations[0]
    conversation_id = path.split("/")[3]
    store = await SqlEventStore.open(database_url)
    try:
        events = await store.read_stream(f"conversation-{conversation_id}")
    finally:
        await store.close()
    target = max((int(e.payload["seq"]) for e in events if e.type == "MessageSent"), default=0)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {sender}"}
        while time.monotonic() - began < timeout:
            listed = (await http.get("/v1/conversations", headers=headers)).json()
            if listed and listed[0]["last_seq"] >= target:
                break
            await asyncio.sleep(0.1)
    return round(time.monotonic() - began, 1)


async def run(seconds: int, connections: int, db: str, delivery: bool, group: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wrk-send-") as tmp_name:
        tmp = Path(tmp_name)
        name = f"ledgerline_wrk_{uuid.uuid4().hex[:8]}"
        if db == "postgres":
            with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                conn.execute(f'CREATE DATABASE "{name}"')
            database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        else:
            database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        try:
            progress(f"wrk_send: starting the stack on {db}")
            async with services(database_url, tmp, delivery) as url:
                conversations = await (open_busy_group(url) if group else open_conversations(url))
                await warm_up(url, conversations)
                script = tmp / "send.lua"
                convs = ", ".join(f'{{"{path}", "{tok}"}}' for path, tok in conversations)
                script.write_text(LUA % {"convs": convs})
                progress(f"wrk_send: wrk -t2 -c{connections} for {seconds} s")
                figures = await asyncio.to_thread(run_wrk, url, script, seconds, connections)
                figures["projection_caught_up_s"] = await caught_up(url, database_url, conversations)
                return figures
        finally:
            if db == "postgres":
                with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--delivery", action="store_true", help="run the delivery worker too")
    parser.add_argument("--group", action="store_true", help="one busy group of 64 senders")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk_send: wrk is not on the PATH (Debian: apt-get install wrk)")
    figures = asyncio.run(run(args.seconds, args.connections, args.db, args.delivery, args.group))
    wrk_text = figures.pop("wrk")
    print("  ".join(f"{k}={v}" for k, v in figures.items()))
    print(f"wrk: {wrk_text}", file=sys.stderr)


if __name__ == "__main__":
    main()
