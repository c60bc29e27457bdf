"""Starting and stopping the child processes of the embedded stack.

Each child runs in its own process group. A Ctrl-C in the terminal then reaches `ledgerline up`
alone, and `up` stops the children in order (services first, so they drain while the broker is
still there; the embedded NATS last) instead of every process racing to exit at once. A SIGTERM
sent to `up` alone takes the same path.

If `up` itself dies without cleaning up (SIGKILL, OOM), the kernel sends SIGTERM to its children
(Linux `PR_SET_PDEATHSIG`), so no orphan keeps running in the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shared.logging import get_logger

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: dlopen between fork and exec is not safe.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn that asks the kernel for SIGTERM when the parent dies (Linux only)."""
    if _libc is None:
        return None
    libc = _libc

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


async def spawn(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, pass_fds: Sequence[int] = ()
) -> asyncio.subprocess.Process:
    """Start `argv` in its own process group, stdout and stderr appended to `log_path`; `pass_fds`
    stay open in the child under the same numbers."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            process_group=0,
            pass_fds=tuple(pass_fds),
            preexec_fn=_die_with_parent(os.getpid()),
        )


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    if proc.returncode is not None:
        return
    # The child leads its own group: signalling the group also reaches anything it started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def terminate(proc: asyncio.subprocess.Process, deadline: float, name: str) -> int:
    """SIGTERM, then SIGKILL if the process still runs after `deadline` seconds; returns its exit code."""
    _signal_group(proc, signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), deadline)
    except TimeoutError:
        log.warning("child_killed", child=name, pid=proc.pid, after_seconds=deadline)
        _signal_group(proc, signal.SIGKILL)
        return await proc.wait()
