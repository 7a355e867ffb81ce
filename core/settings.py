"""Configuration from environment variables, read once, with defaults.

Nothing here parses argv or touches the network; `app.py --tiny` sets the environment
variable before the settings are first read.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable holds a value the app cannot use."""


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def _env_number(name: str, default: float, minimum: float, cast: type = int) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number.") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}.")
    return value


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}.")
    return value


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vision-playground"


@dataclass(frozen=True)
class Settings:
    tiny: bool
    tiny_dir: Path
    device: str
    gpu_dtype: str
    memory_budget_mb: int
    max_image_pixels: int
    max_upload_mb: int
    max_text_chars: int
    max_models_per_request: int
    queue_size: int
    default_top_k: int
    segment_max_side: int
    mcp: bool
    flow_tile_batch: int
    flow_max_pixels: int
    flow_video_max_frames: int
    flow_video_max_seconds: float
    flow_video_max_pixels: int
    video_max_seconds: float = 30.0
    video_max_pixels: int = 640 * 480
    video_decode_mb: int = 1024
    """Memory the Video tab's decoder may use per chunk of output points (the chunk size follows)."""
    chat_4bit: bool = False
    chat_cpu_form: str = "auto"
    """ViP-LLaVA on the CPU: "auto", "float32", "bfloat16" or "int8" (core.chat_memory)."""
    chat_max_new_tokens: int = 512
    imagegpt_cuda_graphs: bool = True
    backend: str = "local"
    """Where the model work runs: "local" (this process) or "ray" (Ray Serve deployments, serve.yaml)."""
    serve_config: Path | None = None
    dalle_dir: Path = Path("dall-e")
    """Where OpenAI's DALL-E VAE files (encoder.pkl, decoder.pkl) are, once fetched (Inside tab)."""
    labels_dir: Path = field(default_factory=lambda: _default_cache_dir() / "labels")
    """Name lists that no checkpoint file carries, fetched once (core/label_files.py)."""

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_settings() -> Settings:
    """Read every setting from the environment (no caching)."""
    cache_dir = Path(os.environ.get("PLAYGROUND_CACHE_DIR") or _default_cache_dir())
    return Settings(
        tiny=_env_bool("PLAYGROUND_TINY", False),
        tiny_dir=Path(os.environ.get("PLAYGROUND_TINY_DIR") or cache_dir / "tiny-models"),
        device=_env_choice("PLAYGROUND_DEVICE", "auto", ("auto", "cpu", "cuda")),
        gpu_dtype=_env_choice("PLAYGROUND_GPU_DTYPE", "auto", ("auto", "float16", "bfloat16", "float32")),
        memory_budget_mb=int(_env_number("PLAYGROUND_MEMORY_BUDGET_MB", 6144, 1)),
        max_image_pixels=int(_env_number("PLAYGROUND_MAX_IMAGE_PIXELS", 50_000_000, 1)),
        max_upload_mb=int(_env_number("PLAYGROUND_MAX_UPLOAD_MB", 25, 1)),
        max_text_chars=int(_env_number("PLAYGROUND_MAX_TEXT_CHARS", 2000, 1)),
        max_models_per_request=int(_env_number("PLAYGROUND_MAX_MODELS_PER_REQUEST", 10, 1)),
        queue_size=int(_env_number("PLAYGROUND_QUEUE_SIZE", 64, 1)),
        default_top_k=int(_env_number("PLAYGROUND_TOP_K", 5, 1)),
        segment_max_side=int(_env_number("PLAYGROUND_SEGMENT_MAX_SIDE", 1280, 64)),
        mcp=_env_bool("PLAYGROUND_MCP", False),
        flow_tile_batch=int(_env_number("PLAYGROUND_FLOW_TILE_BATCH", 0, 0)),
        flow_max_pixels=int(_env_number("PLAYGROUND_FLOW_MAX_PIXELS", 4_000_000, 256)),
        flow_video_max_frames=int(_env_number("PLAYGROUND_FLOW_VIDEO_MAX_FRAMES", 120, 2)),
        flow_video_max_seconds=float(_env_number("PLAYGROUND_FLOW_VIDEO_MAX_SECONDS", 10.0, 0.1, float)),
        flow_video_max_pixels=int(_env_number("PLAYGROUND_FLOW_VIDEO_MAX_PIXELS", 640 * 480, 256)),
        video_max_seconds=float(_env_number("PLAYGROUND_VIDEO_MAX_SECONDS", 30.0, 1.0, float)),
        video_max_pixels=int(_env_number("PLAYGROUND_VIDEO_MAX_PIXELS", 640 * 480, 50_176)),
        video_decode_mb=int(_env_number("PLAYGROUND_VIDEO_DECODE_MB", 1024, 16)),
        chat_4bit=_env_bool("PLAYGROUND_CHAT_4BIT", False),
        chat_cpu_form=_env_choice("PLAYGROUND_CHAT_CPU_FORM", "auto", ("auto", "float32", "bfloat16", "int8")),
        chat_max_new_tokens=int(_env_number("PLAYGROUND_CHAT_MAX_NEW_TOKENS", 512, 1)),
        imagegpt_cuda_graphs=_env_bool("PLAYGROUND_IMAGEGPT_CUDA_GRAPHS", True),
        backend=_env_choice("PLAYGROUND_BACKEND", "local", ("local", "ray")),
        serve_config=Path(os.environ["PLAYGROUND_SERVE_CONFIG"]) if os.environ.get("PLAYGROUND_SERVE_CONFIG") else None,
        dalle_dir=Path(os.environ.get("PLAYGROUND_DALLE_DIR") or cache_dir / "dall-e"),
        labels_dir=Path(os.environ.get("PLAYGROUND_LABELS_DIR") or cache_dir / "labels"),
    )


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings()` reads the environment again."""
    get_settings.cache_clear()
