"""The chaos checker: after a run, prove from the database (and the run's own record of what clients
were told and what they received) that nothing was lost, doubled or bent.

    python -m bench.chaos.check --database-url URL [--record run.json] [--json]

Checks, each violation named (which message, which model):
- every 2xx message is in the event store exactly once, by message_id and by (conversation, client_msg_id),
  with the seq the client was told;
- MessageSent seqs are gapless (1..n) per conversation and never repeat;
- rm_messages holds each message exactly once with its seq; rm_conversations.last_seq is the highest seq;
- receipt watermarks (rm_members) equal what the Delivered/Read events and own sends give, never exceed
  last_seq, and the Delivered/Read events of one member only ever move forward;
- each recorded WebSocket receiver got every message of its conversations, live or by resync (counted);
- the hash chain is intact (what `ledgerline audit verify` walks).

Without --record only the store and read-model checks run (no client's view to compare with).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.tables import TABLES, checkpoints
from shared.events.partition import partition_of
from shared.store.engine import create_engine
from shared.store.tables import events
from shared.store.verify import verify_chain


@dataclass
class Violation:
    check: str
    model: str
    detail: str
    conversation_id: str | None = None
    message_id: str | None = None
    seq: int | None = None
    user_id: str | None = None

    def line(self) -> str:
        where = ", ".join(
            f"{k}={v}"
            for k, v in (("conversation", self.conversation_id), ("message", self.message_id), ("seq", self.seq),
                         ("user", self.user_id))
            if v is not None
        )  # fmt: skip
        return f"[{self.model}] {self.check}: {self.detail} ({where})"


@dataclass
class Report:
    accepted: int = 0
    events_messages: int = 0
    conversations: int = 0
    read_model_rows: int = 0
    receivers: int = 0
    expected_deliveries: int = 0
    live: int = 0
    resynced: int = 0
    offline: int = 0
    chain_checked: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, check: str, model: str, detail: str, **where: Any) -> None:
        self.violations.append(Violation(check, model, detail, **where))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["violations"] = [v.line() for v in self.violations]
        return out

    def text(self, limit: int = 50) -> str:
        head = (
            f"accepted={self.accepted} events={self.events_messages} conversations={self.conversations} "
            f"rm_rows={self.read_model_rows} receivers={self.receivers} deliveries={self.expected_deliveries} "
            f"(live={self.live} resynced={self.resynced} offline={self.offline}) chain={self.chain_checked}"
        )
        if self.ok:
            return f"OK: {head}"
        lines = [f"FAILED: {len(self.violations)} violation(s); {head}"]
        lines += [f"  {v.line()}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  … and {len(self.violations) - limit} more")
        return "\n".join(lines)


@dataclass
class RunRecord:
    """What the load's clients saw: every 2xx answer, the members of each conversation, and per
    WebSocket receiver the (conversation, seq) pairs it got live and by resync."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    members: dict[str, list[str]] = field(default_factory=dict)
    live: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    resynced: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    offline: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Messages a receiver that was not connected at the end counts as offline-notified (not checked live)."""

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        raw = json.loads(path.read_text())
        pairs = {
            k: {u: [(c, int(s)) for c, s in v] for u, v in raw.get(k, {}).items()}
            for k in ("live", "resynced", "offline")
        }
        return cls(accepted=raw.get("accepted", []), members=raw.get("members", {}), **pairs)


async def check(engine: AsyncEngine, record: RunRecord | None = None) -> Report:
    report = Report()
    sent, marks = await _read_events(engine)
    _check_store(report, sent, record)
    await _check_read_models(engine, report, sent, marks)
    if record is not None:
        _check_receivers(report, record)
    verified = await verify_chain(engine)
    report.chain_checked = verified.checked
    if not verified.ok:
        report.add("hash_chain", "events", f"broken at position {verified.bad_position}: {verified.problem}")
    return report


async def _read_events(engine: AsyncEngine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stmt = (
        select(events.c.position, events.c.type, events.c.payload)
        .where(events.c.type.in_(("MessageSent", "Delivered", "Read")))
        .order_by(events.c.position)
    )
    sent: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []
    async with engine.connect() as conn:
        for position, type_, payload in await conn.execute(stmt):
            row = dict(payload) | {"position": position, "type": type_}
            (sent if type_ == "MessageSent" else marks).append(row)
    return sent, marks


def _check_store(report: Report, sent: list[dict[str, Any]], record: RunRecord | None) -> None:
    report.events_messages = len(sent)
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_client: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    for e in sent:
        by_id[e["message_id"]].append(e)
        by_client[(e["conversation_id"], e["sender_id"], e["client_msg_id"])].append(e)
        seqs[e["conversation_id"]].append(e["seq"])
    for mid, found in by_id.items():
        if len(found) > 1:
            report.add("doubled", "events", f"message_id in {len(found)} MessageSent events",
                       conversation_id=found[0]["conversation_id"], message_id=mid)  # fmt: skip
    for (conv, sender, cmid), found in by_client.items():
        if len(found) > 1:
            report.add("doubled", "events", f"client_msg_id {cmid!r} of {sender} in {len(found)} MessageSent events",
                       conversation_id=conv)  # fmt: skip
    report.conversations = len(seqs)
    for conv, got in seqs.items():
        for seq, n in Counter(got).items():
            if n > 1:
                report.add("seq_repeated", "events", f"seq in {n} MessageSent events", conversation_id=conv, seq=seq)
        missing = sorted(set(range(1, max(got) + 1)) - set(got))
        for seq in missing[:20]:
            report.add("seq_gap", "events", "no MessageSent with this seq", conversation_id=conv, seq=seq)
    if record is None:
        return
    report.accepted = len(record.accepted)
    for a in record.accepted:
        found = by_id.get(a["message_id"], [])
        where = {"conversation_id": a["conversation_id"], "message_id": a["message_id"], "seq": a["seq"]}
        if not found:
            report.add("lost", "events", "a 2xx message is not in the event store", **where)
            continue
        if found[0]["seq"] != a["seq"] or found[0]["conversation_id"] != a["conversation_id"]:
            report.add("seq_mismatch", "events", f"stored as {found[0]['conversation_id']}#{found[0]['seq']}", **where)
        if not by_client.get((a["conversation_id"], a["sender_id"], a["client_msg_id"])):
            report.add("lost", "events", f"no MessageSent for client_msg_id {a['client_msg_id']!r}", **where)


async def _check_read_models(
    engine: AsyncEngine, report: Report, sent: list[dict[str, Any]], marks: list[dict[str, Any]]
) -> None:
    messages, conversations, members = TABLES.messages, TABLES.conversations, TABLES.members
    async with engine.connect() as conn:
        rows = (await conn.execute(select(messages.c.conversation_id, messages.c.seq, messages.c.message_id))).all()
        convs = {c: s for c, s in await conn.execute(select(conversations.c.conversation_id, conversations.c.last_seq))}
        member_rows = (
            await conn.execute(
                select(members.c.conversation_id, members.c.user_id, members.c.delivered_seq, members.c.read_seq)
            )
        ).all()
    report.read_model_rows = len(rows)
    rm_by_id: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for conv, seq, mid in rows:
        rm_by_id[mid].append((conv, seq))
    last: dict[str, int] = defaultdict(int)
    for e in sent:
        where = {"conversation_id": e["conversation_id"], "message_id": e["message_id"], "seq": e["seq"]}
        last[e["conversation_id"]] = max(last[e["conversation_id"]], e["seq"])
        got = rm_by_id.pop(e["message_id"], [])
        if not got:
            report.add("missing", "rm_messages", "a stored message has no read-model row", **where)
        elif len(got) > 1:
            report.add("doubled", "rm_messages", f"{len(got)} rows for one message", **where)
        elif got[0] != (e["conversation_id"], e["seq"]):
            report.add("seq_mismatch", "rm_messages", f"row says {got[0][0]}#{got[0][1]}", **where)
    for mid, got in rm_by_id.items():
        report.add("phantom", "rm_messages", "a row with no MessageSent event", conversation_id=got[0][0],
                   message_id=mid, seq=got[0][1])  # fmt: skip
    for conv, highest in last.items():
        if conv not in convs:
            report.add("missing", "rm_conversations", "conversation with messages has no row", conversation_id=conv)
        elif convs[conv] != highest:
            report.add("last_seq", "rm_conversations", f"last_seq {convs[conv]} but highest seq {highest}",
                       conversation_id=conv)  # fmt: skip
    _check_watermarks(report, sent, marks, convs, member_rows)


def _check_watermarks(
    report: Report,
    sent: list[dict[str, Any]],
    marks: list[dict[str, Any]],
    convs: dict[str, int],
    member_rows: list[Any],
) -> None:
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in sent:
        w = expected[(e["conversation_id"], e["sender_id"])]
        w[0], w[1] = max(w[0], e["seq"]), max(w[1], e["seq"])
    previous: dict[tuple[str, str, str], int] = {}
    for m in marks:
        key = (m["conversation_id"], m["user_id"])
        slot = 0 if m["type"] == "Delivered" else 1
        before = previous.get((*key, m["type"]), -1)
        if m["up_to_seq"] <= before:
            report.add("backwards", "events", f"{m['type']} up_to_seq {m['up_to_seq']} after {before}",
                       conversation_id=key[0], user_id=key[1])  # fmt: skip
        previous[(*key, m["type"])] = max(before, m["up_to_seq"])
        expected[key][slot] = max(expected[key][slot], m["up_to_seq"])
        if slot == 1:  # read implies delivered (as the projection folds it)
            expected[key][0] = max(expected[key][0], m["up_to_seq"])
    for conv, user, delivered, read in member_rows:
        last = convs.get(conv, 0)
        for name, value, want in (("delivered_seq", delivered, expected[(conv, user)][0]),
                                  ("read_seq", read, expected[(conv, user)][1])):  # fmt: skip
            if value > last:
                report.add("watermark_beyond_last", "rm_members", f"{name} {value} > last_seq {last}",
                           conversation_id=conv, user_id=user)  # fmt: skip
            if value != want:
                report.add("watermark", "rm_members", f"{name} {value}, events say {want}",
                           conversation_id=conv, user_id=user)  # fmt: skip


def _check_receivers(report: Report, record: RunRecord) -> None:
    by_conv: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in record.accepted:
        by_conv[a["conversation_id"]].append(a)
    users = set(record.live) | set(record.resynced) | set(record.offline)
    report.receivers = len(users)
    for user in sorted(users):
        live = set(map(tuple, record.live.get(user, [])))
        resynced = set(map(tuple, record.resynced.get(user, []))) - live
        offline = set(map(tuple, record.offline.get(user, []))) - live - resynced
        for conv, members in record.members.items():
            if user not in members:
                continue
            for a in by_conv.get(conv, []):
                key = (conv, a["seq"])
                report.expected_deliveries += 1
                if key in live:
                    report.live += 1
                elif key in resynced:
                    report.resynced += 1
                elif key in offline:
                    report.offline += 1
                else:
                    where = {"conversation_id": conv, "message_id": a["message_id"], "seq": a["seq"], "user_id": user}
                    report.add("not_delivered", "websocket", "never got it, live nor by resync", **where)


async def lagging(engine: AsyncEngine, partitions: int, projection: str = "chat") -> int:
    """How many streams the projection has not applied to their last event yet (0: settled)."""
    async with engine.connect() as conn:
        heads = (
            await conn.execute(
                select(events.c.stream_id, func.max(events.c.position))
                .where(events.c.stream_id.like("conversation-%"))
                .group_by(events.c.stream_id)
            )
        ).all()
        done = dict(
            (await conn.execute(
                select(checkpoints.c.partition, checkpoints.c.position).where(checkpoints.c.projection == projection)
            )).all()
        )  # fmt: skip
    return sum(1 for stream, head in heads if done.get(partition_of(stream, partitions), 0) < head)


async def settle(engine: AsyncEngine, partitions: int, timeout: float) -> int:
    """Wait (bounded) until the chat projection has applied every stored conversation event; the streams
    still lagging at the end (0: settled)."""
    deadline = time.monotonic() + timeout
    while (n := await lagging(engine, partitions)) and time.monotonic() < deadline:  # noqa: ASYNC110  # polls the database
        await asyncio.sleep(0.2)
    return n


async def run_check(database_url: str, record: RunRecord | None) -> Report:
    engine = create_engine(database_url)
    try:
        return await check(engine, record)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--record", type=Path, help="the run's record (accepted 2xx answers, receivers' frames)")
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    args = parser.parse_args(argv)
    record = RunRecord.load(args.record) if args.record else None
    report = asyncio.run(run_check(args.database_url, record))
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
