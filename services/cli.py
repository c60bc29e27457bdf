"""The `ledgerline` command: dispatches to the services and the admin commands.

Each sub-command's work lives in its own module, imported only when that command runs, so that
`ledgerline --help` and `ledgerline token` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from shared import heap
from shared.errors import ConfigError

# command path -> "module:function"; the function takes the parsed argparse.Namespace, returns an exit code.
COMMANDS: dict[str, str] = {
    "up": "services.up:main",
    "gateway": "services.gateway.main:main",
    "delivery": "services.delivery.main:main",
    "projections": "services.projections.main:main",
    "tickets": "services.tickets.main:main",
    "relay": "shared.broker.relay_cli:main",
    "migrate": "services.admin.migrate:main",
    "token": "services.admin.token:main",
    "audit verify": "services.admin.audit:verify_main",
    "audit checkpoint": "services.admin.audit:checkpoint_main",
    "audit export": "services.admin.audit_history:export_main",
    "audit replay": "services.admin.audit_history:replay_main",
    "audit erase": "services.admin.audit_history:erase_main",
    "audit retention": "services.admin.audit_history:retention_main",
    "events tail": "services.admin.events:tail_main",
    "projections status": "services.admin.projections:status_main",
    "projections rebuild": "services.admin.projections:rebuild_main",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerline",
        description="Ledgerline: event-sourced on-premise messaging backend (chat, support desk, audit).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = sub.add_parser("up", help="start the whole stack on the embedded default (SQLite + embedded NATS)")
    up.add_argument("--data-dir", default=None, help="data directory (default ./.ledgerline)")
    up.add_argument("--port", type=int, default=None, help="gateway port (default 8080)")
    up.add_argument("--demo", action="store_true", help="seed demo users and conversations, print tokens")

    for name, text in [
        ("gateway", "run the HTTP + WebSocket gateway (and the relay)"),
        ("delivery", "run the delivery worker"),
        ("tickets", "run the tickets worker"),
        ("relay", "run the relay alone (events table -> broker)"),
    ]:
        sub.add_parser(name, help=text, description=text + "; configured by LEDGERLINE_* variables")

    projections = sub.add_parser(
        "projections",
        help="run the projections worker (read models); or `status` / `rebuild [NAME]`",
        description="run the projections worker (read models); configured by LEDGERLINE_* variables",
    ).add_subparsers(dest="projections_command", metavar="PROJECTIONS_COMMAND")
    projections.add_parser("status", help="checkpoint and lag per read model and partition")
    rebuild = projections.add_parser("rebuild", help="replay the event store into fresh tables and swap them in")
    rebuild.add_argument(
        "name", nargs="?", choices=["chat", "directory", "support", "audit"], help="one read model (default: all)"
    )
    rebuild.add_argument("--quiet", action="store_true", help="no progress on stderr")

    sub.add_parser("migrate", help="apply database migrations (also done on start)")

    token = sub.add_parser("token", help="print a signed development JWT")
    token.add_argument("user", help="user id (the `sub` claim)")
    token.add_argument("--name", default=None)
    token.add_argument("--role", action="append", default=None, dest="roles")
    token.add_argument("--segment", default=None)
    token.add_argument("--line", action="append", type=int, default=None, dest="lines")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default 24 h)")
    token.add_argument("--data-dir", default=None)

    audit = sub.add_parser("audit", help="audit commands").add_subparsers(
        dest="audit_command", metavar="AUDIT_COMMAND", required=True
    )
    verify = audit.add_parser("verify", help="walk the hash chain; exit 1 naming the first bad position")
    verify.add_argument("--page-size", type=int, default=5000)
    verify.add_argument("--quiet", action="store_true", help="no progress on stderr")
    verify.add_argument("--checkpoint", metavar="FILE", help="also prove the history up to this signed checkpoint")
    _audit_commands(audit)

    events = sub.add_parser("events", help="event stream commands").add_subparsers(
        dest="events_command", metavar="EVENTS_COMMAND", required=True
    )
    tail = events.add_parser("tail", help="print events as CloudEvents JSON lines")
    tail.add_argument("--from-position", type=int, default=0, help="first position to print (default: all)")
    tail.add_argument("--follow", action="store_true", help="keep printing new events as they are appended")
    return parser


def _audit_commands(audit: Any) -> None:
    """`audit checkpoint`, `audit export`, `audit replay` (docs/audit.md)."""
    from services.audit.times import moment

    checkpoint = audit.add_parser("checkpoint", help="verify, then write the head signed with the audit key")
    checkpoint.add_argument("--output", metavar="FILE", help="write the checkpoint here (default: stdout)")
    checkpoint.add_argument("--quiet", action="store_true", help="no progress on stderr")
    export = audit.add_parser("export", help="export the audit trail as JSON Lines or CSV")
    export.add_argument("--conversation", metavar="ID", help="events of this conversation")
    export.add_argument("--user", metavar="ID", help="events by or about this user")
    export.add_argument("--type", metavar="TYPE", help="events of this type (e.g. MessageSent)")
    export.add_argument("--from", dest="from_", type=moment, metavar="T", help="recorded at or after T (ISO-8601)")
    export.add_argument("--to", type=moment, metavar="T", help="recorded before T (ISO-8601)")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", metavar="FILE", help="write here (default: stdout)")
    replay = audit.add_parser("replay", help="print a conversation as it stood at a moment (from the event store)")
    replay.add_argument("--conversation", metavar="ID", required=True)
    replay.add_argument("--as-of", type=moment, metavar="T", help="the moment, ISO-8601 (default: now)")
    for command in (export, replay):
        command.add_argument("--auditor", metavar="ID", help="who is asking (recorded; default os:<login>)")
        command.add_argument("--quiet", action="store_true", help="no progress on stderr")
    erase = audit.add_parser("erase", help="erase one person's personal data (crypto-shredding; 152-FZ)")
    erase.add_argument("--user", metavar="ID", required=True, help="the person (user id)")
    erase.add_argument(
        "--reason",
        required=True,
        choices=["data_subject_request", "retention_expired", "account_deleted", "legal_order"],
    )
    erase.add_argument("--by", metavar="ID", help="who erases (recorded; default os:<login>)")
    erase.add_argument("--reference", metavar="REF", help="the request's number, for the record")
    audit.add_parser("retention", help="expire conversations past LEDGERLINE_RETENTION_DAYS_<KIND> (run daily)")


def resolve(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    key = args.command
    for nested in ("audit_command", "events_command", "projections_command"):
        if getattr(args, nested, None):
            key = f"{key} {getattr(args, nested)}"
    module_name, func_name = COMMANDS[key].split(":")
    func: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module_name), func_name)
    return func


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        command = resolve(args)
        heap.settle()  # the command's modules are imported: what exists now lives as long as the process
        return command(args)
    except ConfigError as e:
        print("ledgerline: configuration error:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
