"""Where the VAE comes from: the tiny random VAE (tiny mode), the folder OpenAI's files are fetched to,
the model cache that holds it, and the download."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.dalle_vae.network import DalleVAE, classes
from core.dalle_vae.weights import TINY_FILES, URLS, files_present, load_vae, read_weights
from core.lazy import torch
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from core.models import ModelCache

CACHE_KEY = "dall-e-dvae"
"""The tokenizer's key in the model cache (not a registry key: it is not a Hub checkpoint)."""
TINY_FORMAT_VERSION = 2
TINY = {"n_hid": 8, "n_init": 8, "n_blk_per_group": 1, "vocab_size": 8192}
"""The tiny random VAE: the real vocabulary and geometry, a tiny network (real: n_hid 256, n_init 128,
two blocks per group)."""


def tiny_vae_dir(settings: Settings) -> Path:
    return settings.tiny_dir / f"dall-e-v{TINY_FORMAT_VERSION}"


def ensure_tiny_vae(settings: Settings) -> Path:
    """Build and save the tiny random VAE once (seeded: every build is the same); later calls reuse it."""
    from safetensors.torch import save_file

    target = tiny_vae_dir(settings)
    if files_present(target) == "safetensors":
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dall-e-", dir=target.parent))
    try:
        made = classes()
        with torch.random.fork_rng():  # the initialisers draw from the global generator: seed it for this build only
            torch.manual_seed(zlib.crc32(CACHE_KEY.encode()))
            encoder = made["Encoder"](TINY["n_hid"], TINY["n_blk_per_group"], TINY["vocab_size"])
            decoder = made["Decoder"](TINY["n_init"], TINY["n_hid"], TINY["n_blk_per_group"], TINY["vocab_size"])
            # the decoder reads one-hot tokens: columns of unit scale keep each token's signal (the usual
            # 1/sqrt(fan-in) would shrink it ninety-fold and every token would decode to the same grey)
            torch.nn.init.normal_(decoder.blocks.input.w, std=1.0)
            for module in (encoder, decoder):
                for name, param in module.named_parameters():
                    if name.endswith(".b"):
                        torch.nn.init.normal_(param, std=0.1)
        for module, name in ((encoder, TINY_FILES[0]), (decoder, TINY_FILES[1])):
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, staging / name)
        (staging / "tiny-model.json").write_text(
            json.dumps({"note": "tiny random DALL-E VAE, not OpenAI's weights", **TINY}), encoding="utf-8"
        )
        try:
            staging.replace(target)
        except OSError:
            if files_present(target) != "safetensors":
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def vae_dir(settings: Settings | None = None) -> Path:
    """Where the VAE is loaded from: the tiny VAE in tiny mode, else PLAYGROUND_DALLE_DIR."""
    settings = settings or get_settings()
    return ensure_tiny_vae(settings) if settings.tiny else settings.dalle_dir


def get_vae(cache: ModelCache | None = None, settings: Settings | None = None) -> tuple[DalleVAE | None, float | None]:
    """The VAE through the model cache (it shares the memory budget), and its load time in ms when
    this call loaded it; (None, None) when its files are not there."""
    from core.models import get_cache, ms, select_device

    settings = settings or get_settings()
    folder = vae_dir(settings)
    if files_present(folder) is None:
        return None, None

    def load() -> DalleVAE:
        start = time.perf_counter()
        vae = load_vae(folder, select_device(settings))
        vae.load_seconds = time.perf_counter() - start  # type: ignore[attr-defined]
        return vae

    vae, loaded = (cache or get_cache()).get_other(CACHE_KEY, load)
    return vae, ms(vae.load_seconds) if loaded else None


# --- download ------------------------------------------------------------------------------------


def download(folder: Path, fetch: Any = None) -> Path:
    """Fetch OpenAI's encoder.pkl and decoder.pkl into `folder` (each written to a temporary name and
    renamed when complete), then check that both read safely. `fetch(url)` returns a readable binary
    stream (default: urllib)."""
    if fetch is None:
        import urllib.request

        def fetch(url: str) -> Any:
            return urllib.request.urlopen(url, timeout=60)

    folder.mkdir(parents=True, exist_ok=True)
    for name, url in URLS.items():
        if (folder / name).is_file():
            continue
        partial = folder / f".{name}.part"
        try:
            with fetch(url) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
            partial.replace(folder / name)
        finally:
            partial.unlink(missing_ok=True)
    read_weights(folder)  # refuse (and say so) now rather than in the app
    return folder
