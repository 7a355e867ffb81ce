"""Requests per second and latency for classification: the in-process core against Ray Serve replicas.

Full-size LeViT-128S with random weights, saved once in the layout the app's tiny mode reads (so the
Ray workers load it through the app's own loader, from a local folder). Clients send requests from
threads at a fixed concurrency through the core's seam (`core.classify.classify`); in-process, one
request runs at a time, as the page's queue lets them through to one process (`concurrency_id="models"`,
limit 1); with Ray, requests go to the classify deployment's replicas.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from benchmarks.full_size import save_full_size
from core.registry import get_spec

MODEL = "levit-128S"
ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass
class LoadRow:
    backend: str
    replicas: str
    concurrency: int
    requests: int
    per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    note: str = ""


def markdown(rows: list[LoadRow]) -> str:
    lines = [
        "| backend | replicas | concurrent clients | requests | requests/s | p50 | p90 | p99 | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r.backend} | {r.replicas} | {r.concurrency} | {r.requests} | {r.per_second:.1f} | {r.p50_ms:.0f} ms | "
        f"{r.p90_ms:.0f} ms | {r.p99_ms:.0f} ms | {r.note} |"
        for r in rows
    ]
    return "\n".join(lines)


def tiny_layout(folder: Path) -> Path:
    """The full-size random LeViT saved where tiny mode loads models from (PLAYGROUND_TINY_DIR)."""
    from core.models import _TINY_MARKER, TINY_FORMAT_VERSION

    spec = get_spec(MODEL)
    target = folder / "tiny" / f"v{TINY_FORMAT_VERSION}" / spec.slug
    if not (target / _TINY_MARKER).exists():
        shutil.copytree(save_full_size(MODEL, folder / "full"), target, dirs_exist_ok=True)
        marker = {"key": spec.key, "hub_id": spec.hub_id, "note": "full-size random weights, for a benchmark"}
        (target / _TINY_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return folder / "tiny"


def load(call: Callable[[Image.Image], object], photos: list[Image.Image], concurrency: int, requests: int) -> LoadRow:
    latencies: list[float] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        start = time.perf_counter()
        call(photos[index % len(photos)])
        with lock:
            latencies.append(time.perf_counter() - start)

    with ThreadPoolExecutor(concurrency) as pool:
        # loaded and warm everywhere: requests in flight at once reach every replica (Serve routes each to
        # the less busy of two), so no replica loads its model inside the timed run
        list(pool.map(lambda index: call(photos[index % len(photos)]), range(4 * concurrency)))
        start = time.perf_counter()
        list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles([1000 * t for t in latencies], n=100)
    return LoadRow("", "", concurrency, requests, requests / elapsed, quantiles[49], quantiles[89], quantiles[98])


def serve_config_file(folder: Path, replicas: int) -> Path:
    path = folder / f"serve-{replicas}.yaml"
    path.write_text(
        "defaults: {replicas: {min: 0, max: 1}, cpus: 0.5, gpus: 0, max_ongoing_requests: 4}\n"
        f"deployments: {{classify: {{replicas: {replicas}, max_ongoing_requests: 8}}}}\n",
        encoding="utf-8",
    )
    return path


def run(concurrency: int = 4, requests: int = 48) -> list[LoadRow]:
    from core import backend, classify
    from core.settings import reset_settings

    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    os.environ.update({"PLAYGROUND_TINY": "1", "PLAYGROUND_TINY_DIR": str(tiny_layout(folder))})
    reset_settings()
    photos = [Image.open(ASSETS / name).convert("RGB") for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")]
    one_at_a_time = threading.Lock()

    def in_process(photo: Image.Image) -> object:
        with one_at_a_time:  # the page's queue: one request at a time per process
            return classify.classify(photo, [MODEL], 5)

    rows = []
    row = load(in_process, photos, concurrency, requests)
    row.backend, row.replicas, row.note = "in-process", "-", "one request at a time, as the page's queue"
    rows.append(row)
    from core import ray_backend

    for replicas in (1, 2):
        backend.set_backend(ray_backend.start(serve_config_file(folder, replicas)))
        try:
            row = load(lambda photo: classify.classify(photo, [MODEL], 5), photos, concurrency, requests)
        finally:
            ray_backend.stop()
        row.backend, row.replicas = "Ray Serve", str(replicas)
        row.note = f"{os.cpu_count()} CPU cores shared by the replicas"
        rows.append(row)
    shutil.rmtree(folder, ignore_errors=True)
    return rows
