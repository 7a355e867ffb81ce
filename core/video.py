"""Reading short uploaded clips safely and writing browser-playable mp4 (H.264) files."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import InputError

VIDEO_FORMATS = "MP4, MOV, M4V, WebM, MKV or AVI"


@dataclass
class Clip:
    frames: list[np.ndarray]
    """uint8 RGB (H, W, 3), scaled down to the pixel limit when the clip was larger."""
    fps: float
    original_size: tuple[int, int]
    """(width, height) as stored in the file."""


def sniff_container(head: bytes) -> str | None:
    """The container of a video file from its first bytes ("mp4", "matroska", "avi"), or None.

    Only these are handed to FFmpeg: its probing would also accept playlists and other formats
    that can make it open further files or URLs."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def read_video(path: str | os.PathLike[str] | None, *, max_frames: int, max_seconds: float, max_pixels: int) -> Clip:
    """Decode every frame of a short clip, or raise InputError with what is wrong.

    Clips longer than `max_seconds` or with more than `max_frames` frames are refused; frames
    larger than `max_pixels` are scaled down (keeping the aspect ratio)."""
    if not path:
        raise InputError("No video was given. Upload a clip or pick the example.")
    try:
        with open(path, "rb") as fp:
            head = fp.read(16)
    except OSError:
        raise InputError("The video file could not be read; please upload it again.") from None
    if not head:
        raise InputError("The video file is empty.")
    if sniff_container(head) is None:
        raise InputError(f"This file is not a video in a supported format ({VIDEO_FORMATS}).")
    capture = cv2.VideoCapture(os.fspath(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise InputError("The video could not be decoded; the file may be corrupted.")
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else 25.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count / fps > max_seconds:
            raise InputError(f"The video is {count / fps:.1f} s long; the limit is {max_seconds:g} s. Trim it first.")
        if count > max_frames:
            raise InputError(f"The video has {count} frames; the limit is {max_frames}. Trim it first.")
        frames: list[np.ndarray] = []
        original_size = (0, 0)
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if len(frames) >= max_frames:
                raise InputError(f"The video has more than {max_frames} frames; the limit is {max_frames}.")
            original_size = (frame.shape[1], frame.shape[0])
            frames.append(_fit(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), max_pixels))
    finally:
        capture.release()
    if len(frames) / fps > max_seconds:
        raise InputError(f"The video is {len(frames) / fps:.1f} s long; the limit is {max_seconds:g} s. Trim it first.")
    if not frames:
        raise InputError("No frames could be decoded from the video; the file may be corrupted.")
    if any(frame.shape != frames[0].shape for frame in frames):
        raise InputError("The video's frames change size; please upload a clip with one frame size.")
    return Clip(frames, fps, original_size)


def _fit(frame: np.ndarray, max_pixels: int) -> np.ndarray:
    height, width = frame.shape[:2]
    if width * height <= max_pixels:
        return frame
    factor = math.sqrt(max_pixels / (width * height))
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write uint8 RGB frames (all one size) as an H.264 mp4 that browsers play (yuv420p,
    faststart), with the ffmpeg that imageio-ffmpeg ships. Odd sizes are padded by one white pixel."""
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    even = (height + height % 2, width + width % 2)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (even[1], even[0]),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        output_params=["-crf", "20", "-preset", "veryfast", "-movflags", "+faststart"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    try:
        for frame in frames:
            padded = np.pad(frame, ((0, even[0] - height), (0, even[1] - width), (0, 0)), constant_values=255)
            writer.send(np.ascontiguousarray(padded, np.uint8).tobytes())
    finally:
        writer.close()
    return path
