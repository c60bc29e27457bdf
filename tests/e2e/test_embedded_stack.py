"""`ledgerline up` as a user runs it: a real subprocess, real ports, real signals.

Every wait is bounded; whatever a failed test leaves running is killed by pid at teardown.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.embedded.ports import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT = 90.0  # four Python services on a busy 2-core machine
STOP_LIMIT = 10.0  # the contract


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    urls: dict[str, str] = field(default_factory=dict)

    def log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.err.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
        return found

    def child_pids(self) -> dict[str, list[int]]:
        """Every pid `up` started, by child name (a restarted child has several)."""
        pids: dict[str, list[int]] = {}
        for record in self.log_events("child_started"):
            pids.setdefault(record["child"], []).append(record["pid"])
        pids["nats"] = [record["pid"] for record in self.log_events("nats_started")]
        return pids

    def all_pids(self) -> list[int]:
        return [self.proc.pid, *(pid for pids in self.child_pids().values() for pid in pids)]

    def diagnostics(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()[-4000:]}"


def clean_env() -> dict[str, str]:
    """The developer's own LEDGERLINE_* settings must not leak into the stack under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
    env["LEDGERLINE_LOG_FORMAT"] = "json"
    return env


def start_up(tmp_path: Path, *args: str) -> Stack:
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--data-dir", str(tmp_path / "data"), *args],
            stdout=stdout,
            stderr=stderr,
            env=clean_env(),
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
    return Stack(proc, out, err)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = start_up(tmp_path, "--port", str(free_port()))
    try:
        summary = wait_for(
            lambda: "Ledgerline is up." in running.out.read_text() or running.proc.poll() is not None,
            START_TIMEOUT,
            "the stack to print its summary",
        )
        assert summary and running.proc.poll() is None, running.diagnostics()
        for line in running.out.read_text().splitlines():
            if m := re.match(r"\s+(gateway|delivery health|projections health|tickets health):\s+(\S+)", line):
                running.urls[m.group(1).split()[0]] = m.group(2)
        yield running
    finally:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait(timeout=10)
        for pid in running.all_pids():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def assert_stops_within_the_limit(stack: Stack, send: Callable[[], None]) -> None:
    pids = stack.all_pids()
    assert len(pids) >= 6, stack.diagnostics()  # up, nats, four services
    started = time.monotonic()
    send()
    code = stack.proc.wait(timeout=STOP_LIMIT + 5)
    elapsed = time.monotonic() - started
    assert elapsed < STOP_LIMIT, f"stopped in {elapsed:.1f} s\n{stack.diagnostics()}"
    assert code == 0, stack.diagnostics()
    wait_for(lambda: all(gone(pid) for pid in pids), 2.0, "every process of the stack to be gone")


def test_up_prints_where_everything_is_and_every_service_is_healthy_and_ready(stack: Stack) -> None:
    text = stack.out.read_text()
    data_dir = stack.err.parent / "data"
    assert f"data dir:            {data_dir}" in text
    assert str(data_dir / "logs") in text
    assert re.search(r"broker:\s+nats://127\.0\.0\.1:\d+", text) and "nats://127.0.0.1:4222" not in text
    assert set(stack.urls) == {"gateway", "delivery", "projections", "tickets"}
    with httpx.Client(timeout=5) as http:
        for name, url in stack.urls.items():
            assert http.get(f"{url}/healthz").status_code == 200, name
            ready = http.get(f"{url}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            expected = {"database": "ok", "broker": "ok"} | ({"relay": "ok"} if name == "gateway" else {"worker": "ok"})
            assert ready.json()["checks"] == expected
            assert "process_start_time_seconds" in http.get(f"{url}/metrics").text
    secret = data_dir / "jwt_secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_a_service_killed_with_sigkill_is_restarted_and_ctrl_c_stops_everything(stack: Stack) -> None:
    killed = stack.child_pids()["delivery"][-1]
    os.kill(killed, signal.SIGKILL)
    # `up` holds every service's socket: while delivery is down, no other process can take its port.
    port = int(stack.urls["delivery"].rsplit(":", 1)[1])
    with pytest.raises(OSError) as taken, socket.create_server(("127.0.0.1", port)):
        pass
    assert taken.value.errno == errno.EADDRINUSE
    exited = wait_for(
        lambda: [r for r in stack.log_events("child_exited") if r["pid"] == killed],
        10,
        "the exit to be logged",
    )
    assert exited[0]["child"] == "delivery" and exited[0]["exit_code"] == -signal.SIGKILL
    new_pid = wait_for(
        lambda: [p for p in stack.child_pids()["delivery"] if p != killed], 10, "delivery to be restarted"
    )[0]
    assert not gone(new_pid)
    with httpx.Client(timeout=5) as http:
        wait_for(
            lambda: _status(http, stack.urls["delivery"] + "/readyz") == 200,
            60,
            "the new delivery to be ready",
        )
    # Ctrl-C: SIGINT to the whole foreground process group.
    assert_stops_within_the_limit(stack, lambda: os.killpg(stack.proc.pid, signal.SIGINT))


def test_sigterm_to_up_alone_stops_everything(stack: Stack) -> None:
    assert_stops_within_the_limit(stack, lambda: os.kill(stack.proc.pid, signal.SIGTERM))


def test_a_busy_gateway_port_is_refused_with_a_message_naming_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        running = start_up(tmp_path, "--port", str(port))
        code = running.proc.wait(timeout=30)
    assert code == 1
    message = running.err.read_text()
    assert f"port {port}" in message and "--port" in message
    assert "Ledgerline is up." not in running.out.read_text()


def _status(http: httpx.Client, url: str) -> int:
    try:
        return http.get(url).status_code
    except httpx.HTTPError:
        return 0


def test_demo_seeds_people_conversations_and_a_ticket_and_prints_their_tokens(tmp_path: Path) -> None:
    running = start_up(tmp_path, "--port", str(free_port()), "--demo")
    try:
        wait_for(
            lambda: "Demo data" in running.out.read_text() or running.proc.poll() is not None,
            START_TIMEOUT + 60,
            "the demo tokens to be printed",
        )
        text = running.out.read_text()
        assert running.proc.poll() is None, running.diagnostics()
        gateway = re.search(r"\s+gateway:\s+(\S+)", text)
        assert gateway, running.diagnostics()
        tokens = dict(re.findall(r"^\s+(alice|bob|dmitry|olga)\s+.*\s(\S+\.\S+\.\S+)$", text, re.M))
        assert set(tokens) == {"alice", "bob", "dmitry", "olga"}, text

        def as_(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[user]}"}

        with httpx.Client(base_url=gateway.group(1), timeout=10) as http:
            kinds = wait_for(
                lambda: sorted(c["kind"] for c in http.get("/v1/conversations", headers=as_("alice")).json()),
                60,
                "alice's three conversations",
            )
            assert kinds == ["direct", "group", "support"]
            tickets = wait_for(
                lambda: http.get("/v1/tickets", headers=as_("dmitry")).json() or None,
                60,
                "alice's ticket in the line-1 customer queue",
            )
            assert [t["requester_id"] for t in tickets] == ["alice"]
            assert http.get("/v1/tickets", headers=as_("bob")).status_code in (403, 404)  # not an agent
            assert http.get("/v1/audit/events?limit=5", headers=as_("olga")).status_code == 200
    finally:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait(timeout=10)
        for pid in running.all_pids():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
