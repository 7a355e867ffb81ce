"""Clips for the Video tab's tests, made with the FFmpeg binary that imageio-ffmpeg ships."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from core.video import write_mp4


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args], check=True)


def lavfi_clip(
    path: Path,
    *,
    seconds: float = 1.0,
    fps: float = 25,
    size: str = "96x64",
    tone: float | None = 1000.0,
    rate: int = 44100,
    video: str = "testsrc2",
    extra: tuple[str, ...] = (),
) -> Path:
    """A generated clip: FFmpeg's `video` source (testsrc2, color=...) and, unless `tone` is None, a stereo
    sine of `tone` Hz at `rate` Hz (amplitude 1/8 per channel, FFmpeg's sine source), H.264 + AAC."""
    options = f"size={size}:rate={fps}:duration={seconds}"
    args = ["-f", "lavfi", "-i", f"{video}:{options}" if "=" in video else f"{video}={options}"]
    if tone is not None:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate={rate}:duration={seconds}"]
        args += ["-ac", "2", "-c:a", "aac", "-b:a", "128k"]
    ffmpeg(*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", *extra, str(path))
    return path


def numbered_clip(path: Path, *, frames: int = 50, fps: float = 50, size: tuple[int, int] = (160, 96)) -> Path:
    """Frame i is grey at level 4 * i, with 32-pixel red bands at the left and right (outside the centre
    square of a 160x96 frame); no sound."""
    width, height = size
    pictures = []
    for index in range(frames):
        frame = np.full((height, width, 3), 4 * index, np.uint8)
        frame[:, :32] = frame[:, -32:] = (255, 0, 0)
        pictures.append(frame)
    return write_mp4(path, pictures, fps)
