"""The supervisor of `ledgerline up`, with small Python children standing in for the services."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from services.embedded.supervisor import Backoff, ChildSpec, Supervisor

SLEEPER = "import time; print('child up', flush=True); time.sleep(60)"
# Ignores SIGTERM, so only the SIGKILL after the deadline ends it.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('child up', flush=True); time.sleep(60)"
)
FAST = Backoff(initial=0.05, factor=2.0, maximum=0.2, reset_after=30.0)


def spec(tmp_path: Path, name: str, code: str) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", code], dict(os.environ), tmp_path / "logs" / f"{name}.log")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


async def until(condition: object, within: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_backoff_doubles_from_the_initial_delay_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, maximum=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_a_child_killed_with_sigkill_is_restarted_with_a_new_pid(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST)
    await supervisor.start(spec(tmp_path, "svc", SLEEPER))
    try:
        first = supervisor.pid("svc")
        assert first is not None
        os.kill(first, 9)
        await until(lambda: supervisor.pid("svc") not in (None, first))
        assert supervisor.restarts("svc") == 1
        assert gone(first)
    finally:
        await supervisor.stop(deadline=2.0)


async def test_each_child_leads_its_own_process_group(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST)
    await supervisor.start(spec(tmp_path, "svc", SLEEPER))
    try:
        pid = supervisor.pid("svc")
        assert pid is not None
        assert os.getpgid(pid) == pid != os.getpgid(0)
    finally:
        await supervisor.stop(deadline=2.0)


async def test_stop_sends_sigkill_to_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST)
    child = spec(tmp_path, "stubborn", STUBBORN)
    await supervisor.start(child)
    await until(lambda: "child up" in child.log_path.read_text())
    pid = supervisor.pid("stubborn")
    assert pid is not None
    started = time.monotonic()
    await supervisor.stop(deadline=0.5)
    assert 0.4 < time.monotonic() - started < 3.0
    assert gone(pid)


async def test_stop_ends_every_child_and_restarts_none(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST)
    for name in ("a", "b", "c"):
        await supervisor.start(spec(tmp_path, name, SLEEPER))
    pids = [supervisor.pid(name) for name in ("a", "b", "c")]
    await supervisor.stop(deadline=2.0)
    await asyncio.sleep(0.3)  # longer than the back-off: a restart would have happened by now
    assert all(pid is not None and gone(pid) for pid in pids)
    assert [supervisor.pid(name) for name in ("a", "b", "c")] == [None, None, None]


async def test_a_child_that_keeps_failing_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    supervisor = Supervisor(Backoff(initial=0.1, factor=2.0, maximum=10.0))
    await supervisor.start(spec(tmp_path, "crashy", "raise SystemExit(3)"))
    started = time.monotonic()
    await until(lambda: supervisor.restarts("crashy") >= 3)
    # 0.1 + 0.2 + 0.4 s of back-off at least (plus three interpreter start-ups)
    assert time.monotonic() - started >= 0.7
    await supervisor.stop(deadline=2.0)


async def test_child_output_is_appended_to_its_log_file_with_a_header_per_run(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST)
    child = spec(tmp_path, "talker", "print('hello from the child', flush=True)")
    await supervisor.start(child)
    await until(lambda: supervisor.restarts("talker") >= 2)  # the second run has finished by then
    await supervisor.stop(deadline=2.0)
    text = child.log_path.read_text()
    assert text.count("hello from the child") >= 2
    assert text.count("=== ledgerline up: starting talker") >= 2


async def test_a_second_child_with_the_same_name_is_refused(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST)
    await supervisor.start(spec(tmp_path, "svc", SLEEPER))
    try:
        with pytest.raises(ValueError, match="svc"):
            await supervisor.start(spec(tmp_path, "svc", SLEEPER))
    finally:
        await supervisor.stop(deadline=2.0)
