"""The Video tab's work: a 0.64 s window of a clip, its frames and sound, autoencoded by Perceiver IO
(deepmind/multimodal-perceiver), with its Kinetics-700 labels.

preprocess: the window's 16 frames picked at 25 fps from the frames' own timestamps (right for any frame
rate, variable ones too), centre-cropped to a square and resized to 224 (area filter when shrinking,
bilinear when enlarging), RGB in [0, 1]; its sound decoded by FFmpeg to 48 kHz mono float32 (30720
samples); optionally one modality left out (silence, or grey frames). forward: core.video_model (encode
once, decode in chunks). postprocess: PSNR per frame and the sound's signal-to-noise ratio against the
original window, the top-5 labels, and files: a side-by-side mp4, WAV files, a grid of frames and plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import checks, plots
from core import video_model as vm
from core.backend import runs_in
from core.errors import InputError
from core.lazy import torch
from core.models import ModelCache, load_for, ms
from core.perceiver_attention import use_sdpa_attention
from core.progress import ProgressFn, part
from core.settings import get_settings
from core.video import read_audio, read_video, write_mp4, write_wav

TASK = "video"
MODEL_KEY = "multimodal-perceiver"
LEAVE_OUT = ("none", "audio", "video")
GREY = 0.5
MIN_SIDE = 16
TOP_K = 5
PLAY_FPS = 8
"""The side-by-side video plays the 16 frames at 8 fps (half speed) ..."""
PLAY_LOOPS = 3
"""... three times over: 6 s to look at."""
MAX_FRAMES_PER_SECOND = 240
PSNR_CAP = 100.0


@dataclass
class Window:
    """The model's input for one window of a clip, and what was done to get it."""

    frames: np.ndarray
    """(16, 224, 224, 3) float32 in [0, 1]."""
    audio: np.ndarray
    """(30720,) float32 in [-1, 1] at 48 kHz."""
    start: float
    frame_times: list[float]
    """Time (s) of the source frame shown at each of the 16 model frames."""
    notes: list[str] = field(default_factory=list)
    has_audio: bool = True
    clip: dict[str, Any] = field(default_factory=dict)


@dataclass
class VideoResult:
    video: Path
    """Original | reconstruction | error, side by side, as an H.264 mp4."""
    audio: Path
    """The reconstructed sound, WAV."""
    original_audio: Path
    """The window's sound as the model heard it, WAV."""
    grid: np.ndarray
    sound: np.ndarray
    psnr: np.ndarray
    info: dict[str, Any]


def square_224(frame: np.ndarray) -> np.ndarray:
    """The centre square of a uint8 RGB frame at 224x224, float32 in [0, 1]."""
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = frame[top : top + side, left : left + side]
    filter_ = cv2.INTER_AREA if side > vm.SIDE else cv2.INTER_LINEAR
    return cv2.resize(square, (vm.SIDE, vm.SIDE), interpolation=filter_).astype(np.float32) / 255.0


def pick_frames(times: list[float], start: float, count: int = vm.FRAMES, fps: int = vm.FPS) -> list[int]:
    """For each model frame k (at start + k / fps), the index of the source frame shown then: the last one
    whose time is not after it (the first one when none is)."""
    picked = []
    for k in range(count):
        moment = start + k / fps + 1e-6
        shown = [index for index, time_ in enumerate(times) if time_ <= moment]
        picked.append(shown[-1] if shown else 0)
    return picked


def prepare_window(path: str | Path | None, start: Any) -> Window:
    """Read the 0.64 s window from `start` seconds of a clip; InputError for what cannot be used."""
    settings = get_settings()
    start = checks.number(start, "Window start (s)", 0, settings.video_max_seconds)
    clip = read_video(
        path,
        max_frames=int(settings.video_max_seconds * MAX_FRAMES_PER_SECOND),
        max_seconds=settings.video_max_seconds,
        max_pixels=settings.video_max_pixels,
        window=(start, start + vm.WINDOW_SECONDS),
    )
    width, height = clip.original_size
    if min(width, height) < MIN_SIDE:
        raise InputError(f"The video is {width}×{height}; the model needs at least {MIN_SIDE}×{MIN_SIDE} pixels.")
    notes = []
    if start >= clip.duration:
        raise InputError(
            f"The clip is {clip.duration:.2f} s long: start the window before "
            f"{max(0.0, clip.duration - vm.WINDOW_SECONDS):.2f} s."
        )
    picked = pick_frames(clip.times, start)
    after_end = sum(start + k / vm.FPS >= clip.duration for k in range(vm.FRAMES))
    if after_end:
        notes.append(
            f"The clip ends at {clip.duration:.2f} s: the last {after_end} of the 16 frames repeat its last frame."
        )
    if abs(clip.fps - vm.FPS) > 0.01:
        notes.append(f"The clip runs at {clip.fps:.3g} fps: its frames were picked at the model's 25 fps.")
    side = min(clip.frames[0].shape[:2])
    if side < vm.SIDE:
        notes.append(f"The frames are {width}×{height}: the centre square was enlarged to 224×224.")
    elif width != height:
        notes.append(f"The frames are {width}×{height}: the model sees their centre square.")
    frames = np.stack([square_224(clip.frames[index]) for index in picked])
    sound = read_audio(path, rate=vm.RATE, max_seconds=settings.video_max_seconds + 1)  # type: ignore[arg-type]
    has_audio = sound is not None
    if sound is None:
        notes.append("The clip has no sound track: the model hears silence.")
        sound = np.zeros(0, np.float32)
    first = round(start * vm.RATE)
    audio = sound[first : first + vm.SAMPLES]
    if has_audio and len(audio) < vm.SAMPLES:
        notes.append(f"The sound ends {len(audio) / vm.RATE:.2f} s into the window: the rest is silence.")
    audio = np.pad(audio, (0, vm.SAMPLES - len(audio))).astype(np.float32)
    info = {
        "seconds": round(clip.duration, 3),
        "fps": round(clip.fps, 3),
        "size": {"width": width, "height": height},
        "has_audio": has_audio,
    }
    times = [round(clip.times[index], 4) for index in picked]
    return Window(frames, audio, start, times, notes, has_audio, info)


def leave_out(frames: np.ndarray, audio: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs with one modality replaced: "audio" by silence, "video" by grey frames (0.5)."""
    which = checks.choice(which, "modality to leave out", LEAVE_OUT)
    if which == "audio":
        return frames, np.zeros_like(audio)
    if which == "video":
        return np.full_like(frames, GREY), audio
    return frames, audio


def psnr_per_frame(original: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """PSNR (dB, peak 1) of each frame of (T, H, W, 3) arrays in [0, 1] (capped at 100 for equal frames)."""
    error = np.mean((original - np.clip(reconstructed, 0, 1)) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(1.0 / error), PSNR_CAP)


def snr_db(original: np.ndarray, reconstructed: np.ndarray) -> float | None:
    """Signal-to-noise ratio (dB) of a reconstruction; None when the original is silent."""
    signal = float(np.sum(original.astype(np.float64) ** 2))
    noise = float(np.sum((original.astype(np.float64) - reconstructed) ** 2))
    if signal == 0:
        return None
    return PSNR_CAP if noise == 0 else min(PSNR_CAP, 10 * np.log10(signal / noise))


def top_labels(logits: np.ndarray, id2label: dict[int, str], k: int = TOP_K) -> list[dict[str, Any]]:
    probabilities = torch.softmax(torch.from_numpy(logits.astype(np.float32)), -1).numpy()
    order = np.argsort(-probabilities)[:k]
    return [{"label": id2label.get(int(i), str(int(i))), "score": round(float(probabilities[i]), 6)} for i in order]


def as_uint8(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def side_by_side_frames(original: np.ndarray, reconstructed: np.ndarray) -> list[np.ndarray]:
    """Per frame: original | reconstruction | error (mean absolute error over RGB, heat map, 0 to 0.5)."""
    error = np.abs(original - np.clip(reconstructed, 0, 1)).mean(axis=-1)
    shown, rebuilt = as_uint8(original), as_uint8(reconstructed)
    return [
        plots.picture_strip(
            [(shown[t], "Original"), (rebuilt[t], "Reconstruction"), (plots.colour_map(error[t], vmax=0.5), "Error")]
        )
        for t in range(len(shown))
    ]


def frame_grid(original: np.ndarray, reconstructed: np.ndarray, times: list[float], columns: int = 4) -> np.ndarray:
    """The frames in a grid, each as original | reconstruction at 112 px under its number and time."""
    from PIL import Image, ImageDraw, ImageFont

    shown, rebuilt = as_uint8(original), as_uint8(reconstructed)
    cell, band, gap = 112, 18, 6
    rows = -(-len(shown) // columns)
    canvas = Image.new("RGB", (columns * (2 * cell + gap) + gap, rows * (cell + band + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(12)
    for t in range(len(shown)):
        left = gap + (t % columns) * (2 * cell + gap)
        top = gap + (t // columns) * (cell + band + gap)
        draw.text(
            (left, top + 2), f"{t + 1}: {times[t]:.2f} s  original | reconstruction", fill=(20, 20, 20), font=font
        )
        for offset, image in ((0, shown[t]), (cell, rebuilt[t])):
            small = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA)
            canvas.paste(Image.fromarray(small), (left + offset, top + band))
    return np.asarray(canvas)


@runs_in("video", files=("path",))
def video_autoencode(
    path: str | Path | None,
    start: float = 0.0,
    leave_out_modality: str = "none",
    *,
    out_dir: Path,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> VideoResult:
    """Autoencode the 0.64 s window from `start` seconds of a clip, leaving out "none", "audio" or "video"
    (replaced by silence or grey before encoding); files are written to `out_dir`."""
    report = progress or (lambda fraction, message: None)
    checks.choice(leave_out_modality, "modality to leave out", LEAVE_OUT)
    timings: dict[str, float | None] = {}
    report(0.0, "Reading the clip")
    begin = time.perf_counter()
    window = prepare_window(path, start)
    frames, audio = leave_out(window.frames, window.audio, leave_out_modality)
    timings["read"] = ms(time.perf_counter() - begin)
    report(0.1, "Loading Perceiver IO")
    loaded, timings["load"] = load_for(MODEL_KEY, TASK, cache)
    use_sdpa_attention(loaded.model)
    chunks = vm.chunk_count(loaded.model, vm.memory_budget(loaded.device, get_settings().video_decode_mb))
    report(0.15, "Encoding the clip")
    inputs = vm.model_inputs(frames, audio, loaded.device, loaded.dtype)
    result = vm.autoencode(loaded.model, inputs, chunks, part(report, 0.2, 0.65))
    timings["encode"], timings["decode"] = round(result.encode_ms, 2), round(result.decode_ms, 2)
    report(0.86, "Writing the video and the sound")
    begin = time.perf_counter()
    psnr = psnr_per_frame(window.frames, result.frames)
    snr = snr_db(window.audio, result.audio)
    if snr is None:
        window.notes.append("The original window is silent: no signal-to-noise ratio.")
    movie = side_by_side_frames(window.frames, result.frames)
    video = write_mp4(out_dir / "video-autoencoded.mp4", movie * PLAY_LOOPS, PLAY_FPS)
    rebuilt_audio = write_wav(out_dir / "audio-reconstructed.wav", result.audio, vm.RATE)
    original_audio = write_wav(out_dir / "audio-original.wav", window.audio, vm.RATE)
    grid = frame_grid(window.frames, result.frames, window.frame_times)
    sound = plots.sound_figure(window.audio, np.clip(result.audio, -1, 1), vm.RATE, window.start)
    psnr_image = plots.psnr_plot(psnr.tolist(), window.frame_times)
    timings["write"] = ms(time.perf_counter() - begin)
    image_points, audio_points = vm.output_points(loaded.model.config)
    info = {
        "model": MODEL_KEY,
        "labels": top_labels(result.logits, loaded.model.config.id2label),
        "psnr_per_frame": [round(float(value), 3) for value in psnr],
        "mean_psnr": round(float(psnr.mean()), 3),
        "audio_snr_db": None if snr is None else round(snr, 3),
        "leave_out": leave_out_modality,
        "window": {
            "start_s": round(window.start, 4),
            "end_s": round(window.start + vm.WINDOW_SECONDS, 4),
            "frame_times_s": window.frame_times,
        },
        "chunks": {
            "count": chunks,
            "image_points_per_chunk": -(-image_points // chunks),
            # the factored decoder takes the image points; the sound's patches then go in one pass
            "audio_patches_per_chunk": audio_points if result.factored else -(-audio_points // chunks),
            "documented_passes": vm.DOCUMENTED_CHUNKS,
            "encoder_passes": 1,
            "factored_image_decoder": result.factored,
        },
        "timings_ms": timings,
        "clip": window.clip,
        "notes": window.notes,
        "device": str(loaded.device),
    }
    report(1.0, "Done")
    return VideoResult(video, rebuilt_audio, original_audio, grid, sound, psnr_image, info)
