"""CPU and RSS of each service process, read from /proc (Linux): the services are found as the
children of the `ledgerline up` supervisor by their command line (`services.cli <name>`, `nats-server`)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()  # fields from the 3rd on (the name may hold spaces)


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process was runnable but waiting for a CPU (/proc/<pid>/schedstat, 2nd field, ns):
    on a shared machine, what separates "slow" from "not given a core"."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def service_name(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv if a]
    if "services.cli" in words:
        after = words[words.index("services.cli") + 1 :]
        return after[0] if after else None
    if words and os.path.basename(words[0]).startswith("nats-server"):
        return "nats-server"
    return None


def children(parent: int) -> dict[str, int]:
    """{service name: pid} of the direct children of `parent` that are services."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and (name := service_name(int(entry.name))):
            found[name] = int(entry.name)
    return found


@dataclass
class Usage:
    cpu: list[float] = field(default_factory=list)  # share of one core per interval
    rss: list[int] = field(default_factory=list)


class Sampler:
    """Samples every `interval` seconds in a thread (the driver's loop is busy with the probe)."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0) -> None:
        self.pids = pids
        self.interval = interval
        self.usage = {name: Usage() for name in pids}
        self.load: list[tuple[float, float]] = []  # (time, 1-minute load average)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resources", daemon=True)
        self._started = 0.0
        self._cpu_at_start: dict[str, float] = {}

    def _read_cpu(self) -> dict[str, float]:
        values = {}
        for name, pid in self.pids.items():
            try:
                values[name] = cpu_seconds(pid)
            except OSError:  # the process is gone (a crash): its last figures stay
                continue
        return values

    def _run(self) -> None:
        last, last_t = self._read_cpu(), time.monotonic()
        while not self._stop.wait(self.interval):
            now, now_t = self._read_cpu(), time.monotonic()
            for name, seconds in now.items():
                if name in last:
                    self.usage[name].cpu.append((seconds - last[name]) / (now_t - last_t))
                try:
                    self.usage[name].rss.append(rss_bytes(self.pids[name]))
                except OSError:
                    continue
            self.load.append((now_t, os.getloadavg()[0]))
            last, last_t = now, now_t

    def _read_wait(self) -> dict[str, float]:
        values = {}
        for name, pid in self.pids.items():
            try:
                values[name] = runqueue_wait_seconds(pid)
            except (OSError, IndexError, ValueError):  # gone, or a kernel without schedstats
                continue
        return values

    def __enter__(self) -> Sampler:
        self._started = time.monotonic()
        self._cpu_at_start = self._read_cpu()
        self._wait_at_start = self._read_wait()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._elapsed = time.monotonic() - self._started
        self._cpu_at_end = self._read_cpu()
        self._wait_at_end = self._read_wait()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per service: mean and peak CPU (% of one core), time runnable but waiting for a CPU (% of the
        run), peak and last RSS (MiB)."""
        result = {}
        for name, usage in self.usage.items():
            spent = self._cpu_at_end.get(name, 0.0) - self._cpu_at_start.get(name, 0.0)
            result[name] = {
                "cpu_mean_pct": round(100 * spent / self._elapsed, 1) if self._elapsed else 0.0,
                "cpu_peak_pct": round(100 * max(usage.cpu), 1) if usage.cpu else 0.0,
                "runqueue_wait_pct": round(
                    100 * (self._wait_at_end.get(name, 0.0) - self._wait_at_start.get(name, 0.0)) / self._elapsed, 1
                )
                if self._elapsed
                else 0.0,
                "rss_peak_mib": round(max(usage.rss) / 2**20, 1) if usage.rss else 0.0,
                "rss_end_mib": round(usage.rss[-1] / 2**20, 1) if usage.rss else 0.0,
            }
        return result
