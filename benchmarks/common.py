"""Timing, memory and table helpers shared by the benchmarks."""

from __future__ import annotations

import gc
import platform
import statistics
import threading
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


def device_label(device: torch.device, dtype: torch.dtype) -> str:
    return f"{device.type} {str(dtype).removeprefix('torch.')}"


def measure(fn: Callable[[], Any], repeat: int, device: torch.device, warmup: int = 1) -> tuple[float, float]:
    """Median wall time of `repeat` calls after `warmup` calls, and their peak memory in MB (PeakMemory)."""
    for _ in range(warmup):
        fn()
    sync(device)
    gc.collect()
    times = []
    with PeakMemory(device) as peak:
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times), peak.mb


class PeakMemory:
    """Peak memory in MB above the level at entry while the block runs: CUDA, torch's peak allocation;
    CPU, the process's resident set sampled every millisecond by a thread (so transient buffers freed
    before the block ends are still seen)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb = 0.0
        self.anon_mb = 0.0
        """CPU: the peak of the resident set less its file-backed pages (memory-mapped weight files, which
        the system can drop and read again), above the level at entry: the memory a load really needs."""
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        process = psutil.Process()
        info = process.memory_info()
        self._base, self._anon_base = info.rss, info.rss - info.shared
        self._peak, self._anon_peak = self._base, self._anon_base

        def sample() -> None:
            while not self._stop.wait(0.001):
                info = process.memory_info()
                self._peak = max(self._peak, info.rss)
                self._anon_peak = max(self._anon_peak, info.rss - info.shared)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return
        self._stop.set()
        self._thread.join()
        info = psutil.Process().memory_info()
        self._peak = max(self._peak, info.rss)
        self._anon_peak = max(self._anon_peak, info.rss - info.shared)
        self.mb = (self._peak - self._base) / 2**20
        self.anon_mb = (self._anon_peak - self._anon_base) / 2**20


def measure_pair(
    ours: Callable[[], Any], reference: Callable[[], Any], repeat: int, device: torch.device, warmup: int = 1
) -> tuple[float, float, float, float]:
    """Median times and largest peak memory (MB) of `ours` and `reference`, run alternately after
    `warmup` calls of each, so that slow drifts of the machine (heat, other load) hit both alike."""
    for _ in range(warmup):
        ours()
        reference()
    times: dict[int, list[float]] = {0: [], 1: []}
    peaks = {0: 0.0, 1: 0.0}
    for run in range(repeat):
        order = (0, 1) if run % 2 == 0 else (1, 0)
        for which in order:
            fn = (ours, reference)[which]
            gc.collect()
            sync(device)
            with PeakMemory(device) as peak:
                start = time.perf_counter()
                fn()
                sync(device)
                times[which].append(time.perf_counter() - start)
            peaks[which] = max(peaks[which], peak.mb)
    return statistics.median(times[0]), statistics.median(times[1]), peaks[0], peaks[1]


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
