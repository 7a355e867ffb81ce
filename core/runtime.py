"""A one-line description of where models run, for the page header and the benchmarks."""

from __future__ import annotations

import platform

from core.lazy import torch
from core.models import select_device, select_dtype
from core.settings import Settings, get_settings


def describe_runtime(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    device = select_device(settings)
    dtype = str(select_dtype(device, settings)).removeprefix("torch.")
    if device.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        where = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{where}, {dtype}, torch {torch.__version__}"
