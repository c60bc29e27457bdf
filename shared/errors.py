"""Errors that carry data. The edges (HTTP, WebSocket, CLI) map them to problem+json, close codes or exit codes."""

from __future__ import annotations


class LedgerlineError(Exception):
    """Base of every error Ledgerline raises on purpose."""


class ConfigError(LedgerlineError):
    """Settings are missing, unknown or invalid; `problems` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))
