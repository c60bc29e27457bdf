"""The gateway's own metrics on the real app: HTTP requests by route template, and the hash-chain
verification (GET /v1/audit/verify) as a counter of failures and a gauge of the last intact head."""

from __future__ import annotations

import asyncio

import chat_support
import pytest
from chat_support import ChatStack, token
from prometheus_client.parser import text_string_to_metric_families
from test_cli_audit import behind_the_stores_back

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures
AUDITOR = {"Authorization": f"Bearer {token('audrey', roles=['auditor'])}"}


async def samples(s: ChatStack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = (await s.http.get("/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def tamper(database_url: str) -> None:
    with behind_the_stores_back(database_url) as run:
        run("UPDATE events SET actor = 'mallory' WHERE position = 2")


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def test_http_requests_are_counted_by_route_template(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "group", ["bob"], title="Metrics")
    await stack.send("alice", c, "one")
    await stack.send("alice", c, "two")
    assert (await stack.call("GET", f"/v1/conversations/{c}/no-such-thing", "alice")).status_code == 404

    found = await samples(stack)
    route = "/v1/conversations/{conversation_id}/messages"
    assert value(found, "ledgerline_http_requests_total", method="POST", route=route, status="201") == 2
    assert value(found, "ledgerline_http_requests_total", method="POST", route="/v1/conversations", status="201") == 1
    assert value(found, "ledgerline_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(found, "ledgerline_http_request_seconds_count", method="POST", route=route) == 2
    assert not any(c in dict(labels).get("route", "") for _, labels in found)  # never a raw path


async def test_chain_verification_sets_the_gauge_and_counts_a_broken_chain(stack: ChatStack) -> None:
    found = await samples(stack)
    assert value(found, "ledgerline_audit_chain_verify_failures_total") == 0  # there before any verification
    c = await stack.conversation("alice", "group", ["bob"], title="Chain")
    for text in ("a", "b", "c"):
        await stack.send("alice", c, text)

    intact = (await stack.http.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert intact["ok"] is True
    found = await samples(stack)
    assert value(found, "ledgerline_audit_chain_last_verified_position") == intact["head_position"]
    assert value(found, "ledgerline_audit_chain_verify_failures_total") == 0

    # In a thread: the app and its worker share this event loop, and may hold SQLite's write lock meanwhile.
    await asyncio.to_thread(tamper, stack.settings.resolved_database_url)
    broken = (await stack.http.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert broken["ok"] is False and broken["bad_position"] == 2
    found = await samples(stack)
    assert value(found, "ledgerline_audit_chain_verify_failures_total") == 1
    # The gauge keeps the last position found intact.
    assert value(found, "ledgerline_audit_chain_last_verified_position") == intact["head_position"]
