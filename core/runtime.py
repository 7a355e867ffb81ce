"""A one-line description of where models run, for the page header and the benchmarks."""

from __future__ import annotations

import functools
import math
import os
import platform
from pathlib import Path

from core.backend import current_backend
from core.lazy import torch
from core.models import select_device, select_dtype
from core.settings import Settings, get_settings


def cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs this container may use by its cgroup quota (a Space's hardware tier), None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # cgroup v2: "200000 100000" or "max ..."
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cores() -> tuple[int, str]:
    """The cores this process may use, and why: the cores it may run on, capped by the CPU quota (a
    Space's host has many more cores than its quota gives; torch would start a thread for each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota()
    if quota is not None and math.ceil(quota) < cores:
        return max(1, math.ceil(quota)), f"the CPU quota of {quota:g}"
    return cores, f"{cores} core{'s' if cores > 1 else ''}"


@functools.cache
def configure_threads() -> int:
    """Give torch as many threads as usable cores (once, before the first model runs)."""
    cores, _ = usable_cores()
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return cores


def describe_runtime(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if current_backend() is not None:
        return f"Ray Serve deployments ({settings.serve_config or 'serve.yaml'}); this process only serves the page"
    device = select_device(settings)
    dtype = str(select_dtype(device, settings)).removeprefix("torch.")
    if device.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        _, why = usable_cores()
        where = f"CPU ({platform.machine()}, {configure_threads()} threads: {why})"
    return f"{where}, {dtype}, torch {torch.__version__}"
