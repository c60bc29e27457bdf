"""A load run's figures: JSON (everything), a Markdown table (the headline figures), and a PNG plot
of send-to-receive and send-to-read-model latency over the run (matplotlib, headless)."""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol


class _Usage(Protocol):
    load: list[tuple[float, float]]

    def summary(self) -> dict[str, dict[str, Any]]: ...


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def latency(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": pct(values, 0.5),
        "p95_ms": pct(values, 0.95),
        "p99_ms": pct(values, 0.99),
        "max_ms": round(max(values) * 1000, 1) if values else None,
        "count": len(values),
    }


def summarise(
    outcomes: list[dict[str, Any]],
    probes: list[tuple[float, float]],
    usage: _Usage,
    start_at: float,
    run: dict[str, Any],
) -> dict[str, Any]:
    accepted = sum(o["accepted"] for o in outcomes)
    ends = [o["last_accept"] for o in outcomes if o["accepted"]]
    window = (max(ends) - start_at) if ends else 0.0
    errors: dict[str, int] = defaultdict(int)
    retries: dict[str, int] = defaultdict(int)
    by_kind: dict[str, int] = defaultdict(int)
    for o in outcomes:
        for kind, count in o["errors"].items():
            errors[kind] += count
        for kind, count in o.get("retries", {}).items():
            retries[kind] += count
        for kind, count in o["accepted_by_kind"].items():
            by_kind[kind] += count
    loads = [value for _, value in usage.load]
    return {
        "run": run,
        "offered": sum(o["offered"] for o in outcomes),
        "not_sent_late": sum(o["not_sent_late"] for o in outcomes),
        "accepted": accepted,
        "accepted_by_kind": dict(by_kind),
        "accepted_per_s": round(accepted / window, 1) if window else 0.0,
        "errors": dict(errors),
        "error_total": sum(errors.values()),
        "retried": dict(retries),
        "delivery": {
            "expected_frames": sum(o["expected_frames"] for o in outcomes),
            "received_once": sum(o["received_once"] for o in outcomes),
            "missing": sum(o["missing"] for o in outcomes),
            "duplicated": sum(o["duplicated"] for o in outcomes),
        },
        "send_to_receive": latency([s[1] for o in outcomes for s in o["samples"]]),
        "send_request": latency([x for o in outcomes for x in o["http_latency"]]),
        "send_to_read_model": latency([s[1] for s in probes]),
        "resources": usage.summary(),
        "load_average": {
            "mean_1min": round(sum(loads) / len(loads), 2) if loads else None,
            "max_1min": round(max(loads), 2) if loads else None,
            "at_end": load_avg(),
        },
    }


def headline(result: dict[str, Any]) -> str:
    r = result["send_to_receive"]
    return (
        f"{result['accepted_per_s']}/s accepted of {result['run']['offered_per_s']:g}/s offered, "
        f"send-to-receive p50 {r['p50_ms']} p99 {r['p99_ms']} max {r['max_ms']} ms, "
        f"read model p99 {result['send_to_read_model']['p99_ms']} ms, errors {result['error_total']}"
    )


def markdown(results: list[dict[str, Any]]) -> str:
    """One row per run, then resource use per service and run."""
    head = (
        "| profile | offered/s | accepted/s | accepted | errors | receive p50 / p95 / p99 / max (ms) "
        "| read model p50 / p99 (ms) | POST p99 (ms) | load avg (mean) |\n"
        "| --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |"
    )
    rows = [head]
    for r in results:
        s, m = r["send_to_receive"], r["send_to_read_model"]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "0"
        if r.get("retried"):  # retried with the same client_msg_id and then answered: not errors
            errors += " (retried: " + ", ".join(f"{k} {v}" for k, v in sorted(r["retried"].items())) + ")"
        rows.append(
            f"| {r['run']['profile']} | {r['run']['offered_per_s']:g} | {r['accepted_per_s']:g} | {r['accepted']} "
            f"| {errors} | {s['p50_ms']} / {s['p95_ms']} / {s['p99_ms']} / {s['max_ms']} "
            f"| {m['p50_ms']} / {m['p99_ms']} | {r['send_request']['p99_ms']} | {r['load_average']['mean_1min']} |"
        )
    rows += [
        "",
        "| profile | offered/s | process | CPU mean % | CPU peak % | waiting for a CPU % | RSS peak (MiB) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for name, u in sorted(r["resources"].items()):
            rows.append(
                f"| {r['run']['profile']} | {r['run']['offered_per_s']:g} | {name} | {u['cpu_mean_pct']} "
                f"| {u['cpu_peak_pct']} | {u.get('runqueue_wait_pct', '')} | {u['rss_peak_mib']} |"
            )
    return "\n".join(rows) + "\n"


def plot(
    outcomes: list[dict[str, Any]], probes: list[tuple[float, float]], start_at: float, title: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    samples = sorted((t - start_at, lat * 1000) for o in outcomes for t, lat in o["samples"])
    per_second: dict[int, list[float]] = defaultdict(list)
    for t, lat in samples:
        per_second[int(t)].append(lat)
    seconds = sorted(per_second)
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    step = max(1, len(samples) // 20000)  # a readable scatter however long the run
    ax.scatter([t for t, _ in samples[::step]], [v for _, v in samples[::step]], s=2, alpha=0.25, label="send→receive")
    for q, style in ((0.5, "-"), (0.99, "--")):
        ax.plot(
            seconds,
            [sorted(per_second[s])[min(len(per_second[s]) - 1, int(q * len(per_second[s])))] for s in seconds],
            style,
            label=f"send→receive p{int(q * 100)} per second",
        )
    if probes:
        ax.plot([t - start_at for t, _ in probes], [v * 1000 for _, v in probes], ".", label="send→read model")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(
    result: dict[str, Any],
    outcomes: list[dict[str, Any]],
    probes: list[tuple[float, float]],
    start_at: float,
    out: Path,
) -> list[Path]:
    run = result["run"]
    stem = out / f"load-{run['profile']}-{run['offered_per_s']:g}"
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md"), stem.with_suffix(".png")]
    paths[0].write_text(json.dumps(result, indent=2) + "\n")
    paths[1].write_text(markdown([result]))
    plot(
        outcomes,
        probes,
        start_at,
        f"{run['profile']}: {run['offered_per_s']:g} msg/s offered ({run['date']})",
        paths[2],
    )
    return paths
