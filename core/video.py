"""Reading short uploaded clips safely (frames with their times, and the sound track) and writing
browser-playable mp4 (H.264) and WAV files. Decoding uses the ffmpeg that imageio-ffmpeg ships (through
OpenCV for frames, its binary for sound), never the system's."""

from __future__ import annotations

import math
import os
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    times: list[float] = field(default_factory=list)
    """Presentation time of each kept frame in seconds (from the file's timestamps: right for variable
    frame rates too)."""
    duration: float = 0.0
    """Seconds from the first frame to the end of the last one (all frames, kept or not)."""
    frame_count: int = 0
    """Frames decoded (kept or not)."""


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


def _open_check(path: str | os.PathLike[str] | None) -> str:
    """The container of an uploaded video file (sniff_container), or InputError."""
    if not path:
        raise InputError("No video was given. Upload a clip or pick the example.")
    try:
        with open(path, "rb") as fp:
            head = fp.read(16)
    except OSError:
        raise InputError("The video file could not be read; please upload it again.") from None
    if not head:
        raise InputError("The video file is empty.")
    container = sniff_container(head)
    if container is None:
        raise InputError(f"This file is not a video in a supported format ({VIDEO_FORMATS}).")
    return container


def read_video(
    path: str | os.PathLike[str] | None,
    *,
    max_frames: int,
    max_seconds: float,
    max_pixels: int,
    window: tuple[float, float] | None = None,
) -> Clip:
    """Decode the frames of a short clip, or raise InputError with what is wrong.

    Clips longer than `max_seconds` or with more than `max_frames` frames are refused; frames
    larger than `max_pixels` are scaled down (keeping the aspect ratio). With `window` (start, end in
    seconds) only the frames shown in it are kept: those from the last one starting at or before `start`
    to the last one starting before `end` (the whole clip is still decoded, to check it)."""
    _open_check(path)
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
        times: list[float] = []
        original_size = (0, 0)
        decoded, last_time, shape = 0, -math.inf, None
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if decoded >= max_frames:
                raise InputError(f"The video has more than {max_frames} frames; the limit is {max_frames}.")
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            # timestamps that are missing or go backwards: fall back to the nominal rate
            time = stamp if math.isfinite(stamp) and stamp > last_time else max(decoded / fps, last_time + 1e-6)
            last_time = time
            decoded += 1
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise InputError("The video's frames change size; please upload a clip with one frame size.")
            original_size = (frame.shape[1], frame.shape[0])
            if window is not None:
                if time >= window[1]:
                    continue
                if frames and times[-1] <= window[0] + 1e-6 and time <= window[0] + 1e-6:
                    frames.pop()  # shown before the window starts
                    times.pop()
            frames.append(_fit(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), max_pixels))
            times.append(time)
    finally:
        capture.release()
    if not decoded:
        raise InputError("No frames could be decoded from the video; the file may be corrupted.")
    duration = last_time + 1 / fps if decoded > 1 else 1 / fps
    if decoded / fps > max_seconds or last_time > max_seconds:
        raise InputError(f"The video is {duration:.1f} s long; the limit is {max_seconds:g} s. Trim it first.")
    if not frames:
        raise InputError(f"The video is {duration:.2f} s long: nothing is shown after {window[0]:g} s.")  # type: ignore[index]
    return Clip(frames, fps, original_size, times, duration, decoded)


AUDIO_FORMATS = {"mp4": "mov", "matroska": "matroska", "avi": "avi"}
"""FFmpeg's demuxer for each container sniff_container knows (probing is never left to FFmpeg)."""


def read_audio(
    path: str | os.PathLike[str], *, rate: int, max_seconds: float, timeout: float = 60.0
) -> np.ndarray | None:
    """The first sound track of a video file as mono float32 samples at `rate` Hz (FFmpeg mixes the
    channels down and resamples), or None when the file has no sound track. At most `max_seconds`.
    InputError when FFmpeg cannot read the track."""
    import imageio_ffmpeg

    container = _open_check(path)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file",
        "-f",
        AUDIO_FORMATS[container],
        "-i",
        os.fspath(path),
        "-map",
        "0:a:0?",
        "-vn",
        "-t",
        f"{max_seconds:g}",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-f",
        "f32le",
        "pipe:1",
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InputError("Reading the video's sound took too long; the file may be damaged.") from None
    if done.returncode != 0:
        if b"does not contain any stream" in done.stderr:  # "-map 0:a:0?" found no sound track
            return None
        raise InputError("The video's sound track could not be decoded; the file may be corrupted.")
    samples = np.frombuffer(done.stdout[: len(done.stdout) // 4 * 4], dtype="<f4").astype(np.float32)
    return np.clip(np.nan_to_num(samples), -1.0, 1.0)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono float samples in [-1, 1] as a 16-bit PCM WAV file (what every browser plays)."""
    pcm = (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


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


def probe_seconds(path: str | os.PathLike[str]) -> float | None:
    """A clip's length in seconds from its header (frame count / frame rate), or None when it cannot be
    read: a cheap guess for the UI (read_video gives the real length)."""
    try:
        _open_check(path)
    except InputError:
        return None
    capture = cv2.VideoCapture(os.fspath(path), cv2.CAP_FFMPEG)
    try:
        fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        capture.release()
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(count) and count > 0):
        return None
    return float(count / fps)
