"""`ledgerline up --demo`: a few people, conversations and a support ticket, seeded through the
public HTTP API once the stack is ready, and a token for each person printed.

Seeding goes through the API on purpose: the demo data are ordinary events, made by the same code
paths as a host application's calls. It runs once per data directory (a marker file records it);
later starts only print fresh tokens. Every write is idempotent anyway (client_msg_id, the unique
direct conversation, the one support conversation), so a seeding cut short is completed next time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

MARKER = "demo-seeded"
TOKEN_TTL = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class DemoUser:
    user_id: str
    name: str
    roles: tuple[str, ...] = ("user",)
    segment: str | None = "customers"
    lines: tuple[int, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)


PEOPLE = (
    DemoUser("alice", "Alice Ivanova"),
    DemoUser("bob", "Bob Petrov"),
    DemoUser("carol", "Carol Sidorova", segment="suppliers"),
    DemoUser("dmitry", "Dmitry Agentov", roles=("agent",), segment="customers", lines=(1,)),
    DemoUser("sveta", "Sveta Supervisor", roles=("supervisor", "agent"), segment="customers", lines=(1, 2)),
    DemoUser("olga", "Olga Auditor", roles=("auditor",), segment=None),
)


def token(user: DemoUser, secret: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"sub": user.user_id, "name": user.name, "roles": list(user.roles)}
    claims |= {"iat": issued, "exp": issued + TOKEN_TTL}
    if user.segment:
        claims["segment"] = user.segment
    if user.lines:
        claims["lines"] = list(user.lines)
    return jwt.encode(claims, secret, algorithm="HS256")


class DemoError(Exception):
    """A seeding call was refused: names the call and the answer."""


async def seed(gateway_url: str, secret: str, data_dir: Path) -> dict[str, str]:
    """Seed once per data directory; returns user id -> token (always)."""
    tokens = {u.user_id: token(u, secret) for u in PEOPLE}
    marker = data_dir / MARKER
    if marker.exists():
        return tokens
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30.0) as http:

        async def call(user: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            response = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {tokens[user]}"})
            if response.status_code >= 300:
                raise DemoError(f"{method} {path} as {user}: {response.status_code} {response.text[:300]}")
            return response.json() if response.content else None

        for person in PEOPLE:  # each person is seen once, so the directory knows every name
            await call(person.user_id, "GET", "/v1/conversations")
        direct = await call("alice", "POST", "/v1/conversations", {"kind": "direct", "members": ["bob"]})
        await _say(call, "alice", direct, "d1", "Bob, have you seen the new tender notice?")
        await _say(call, "bob", direct, "d2", "Yes — I linked it in the deal group.")
        group = await call(
            "bob",
            "POST",
            "/v1/conversations",
            {
                "kind": "group",
                "members": ["alice", "carol"],
                "title": "Deal #42: office chairs",
                "description": "Negotiation with the supplier",
                "avatar_color": "#3A7BD5",
            },
        )
        await _say(
            call,
            "bob",
            group,
            "g1",
            "Tender notice for the chairs",
            links=[{"kind": "tender", "id": "TN-2027-0042", "title": "Office chairs, 120 pcs"}],
        )
        await _say(call, "carol", group, "g2", "We can deliver in two weeks.")
        support = await call("alice", "POST", "/v1/support/conversation")
        await _say(call, "alice", support, "s1", "I cannot upload the signed contract: the file is rejected.")
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return tokens


async def _say(call: Any, user: str, conversation: dict[str, Any], client_msg_id: str, text: str, **extra: Any) -> None:
    path = f"/v1/conversations/{conversation['conversation_id']}/messages"
    await call(user, "POST", path, {"client_msg_id": client_msg_id, "text": text, **extra})


def describe(tokens: dict[str, str], gateway_url: str) -> str:
    lines = ["Demo data: people and their tokens (valid 7 days):"]
    for person in PEOPLE:
        roles = ",".join(person.roles)
        lines.append(f"  {person.user_id:<8} {person.name:<18} roles={roles:<17} {tokens[person.user_id]}")
    lines.append(
        f"Try: curl -H 'Authorization: Bearer <alice's token>' {gateway_url}/v1/conversations "
        "(alice has a direct chat, the deal group and a support ticket)"
    )
    return "\n".join(lines)
