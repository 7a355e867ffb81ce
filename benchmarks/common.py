"""Timing, memory and table helpers shared by the benchmarks."""

from __future__ import annotations

import gc
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import torch


@dataclass
class Row:
    task: str
    model: str
    device: str
    batch: str
    ours_s: float
    reference_s: float
    reference: str
    ours_peak_mb: float | None = None
    reference_peak_mb: float | None = None
    note: str = ""
    runs: int = 1

    @property
    def ratio(self) -> float:
        return self.reference_s / self.ours_s


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fn: Callable[[], Any], repeat: int, device: torch.device, warmup: int = 1) -> tuple[float, float | None]:
    """Median wall time of `repeat` calls after `warmup` calls, and peak memory in MB (CUDA: peak
    allocated by torch; CPU: peak resident set growth of this process during the timed calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    gc.collect()
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    peak_rss = rss_before
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        peak_rss = max(peak_rss, process.memory_info().rss)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (peak_rss - rss_before) / 2**20
    return statistics.median(times), peak


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {psutil.cpu_count(logical=True)} logical cores, torch {torch.__version__}"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| task | model | device | batch | runs | ours (median) | reference | reference (median) | ratio "
        "| peak MB ours / ref | note |",
        "| --- | --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        peak = "–" if r.ours_peak_mb is None else f"{r.ours_peak_mb:.0f} / {r.reference_peak_mb:.0f}"
        lines.append(
            f"| {r.task} | {r.model} | {r.device} | {r.batch} | {r.runs} | {r.ours_s * 1000:.1f} ms | {r.reference} | "
            f"{r.reference_s * 1000:.1f} ms | {r.ratio:.2f}x | {peak} | {r.note} |"
        )
    return "\n".join(lines)
