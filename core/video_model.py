"""Perceiver IO multimodal autoencoding (deepmind/multimodal-perceiver): encode a 0.64 s clip once,
decode its frames, sound and Kinetics-700 label in chunks of output points.

The model's inputs, as its authors run it (transformers' PerceiverForMultimodalAutoencoding and its
conversion script, docs/checkpoints.md): `image` (batch, 16, 3, 224, 224) in [0, 1], `audio`
(batch, 30720, 1) in [-1, 1] at 48 kHz, `label` (batch, 700) zeros (masked inside the model, so the
label output is a classification). The whole output (16 x 224 x 224 pixels, 1920 audio patches of 16
samples, the label) is too big for one pass of the decoder, so transformers' documentation decodes it
in 128 chunks through `subsampled_output_points`, running the whole model, encoder included, once per
chunk (`documented_loop`, kept as the reference).

The encoder's latents do not depend on which output points are decoded, and every decoder query
attends to the latents on its own. `encode` runs the input preprocessor and the encoder once;
`decode` decodes every chunk from those latents, with as many points per chunk as the memory budget
allows: the image points through core.video_decoder's factored decoder (the same maths, about 2x
faster), the sound and the label through the model's own `decoder_query`, decoder and postprocessor
(`decode_points`, also the fallback for image points).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.lazy import torch
from core.models import free_memory_bytes
from core.progress import ProgressFn

FRAMES, SIDE, FPS = 16, 224, 25
RATE, SAMPLES, SAMPLES_PER_PATCH = 48_000, 30_720, 16
NUM_LABELS = 700
WINDOW_SECONDS = FRAMES / FPS
DOCUMENTED_CHUNKS = 128
MIN_CHUNK_POINTS = 1024


@dataclass
class Reconstruction:
    frames: np.ndarray
    """(16, 224, 224, 3) float32, in the inputs' scale (0 to 1), not clipped."""
    audio: np.ndarray
    """(30720,) float32, in the inputs' scale (-1 to 1), not clipped."""
    logits: np.ndarray
    """(700,) float32 label logits."""
    chunks: int
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    factored: bool = False
    """Whether the image points went through core.video_decoder's factored decoder."""


@dataclass
class Encoded:
    """What the decoder needs from one encoding: the latents and the preprocessed inputs."""

    latents: torch.Tensor
    inputs: torch.Tensor
    modality_sizes: Any
    inputs_without_pos: Any


def model_inputs(frames: np.ndarray, audio: np.ndarray, device: Any = "cpu", dtype: Any = None) -> dict[str, Any]:
    """The model's input dict from (16, 224, 224, 3) float frames in [0, 1] and (30720,) float samples."""
    if frames.shape != (FRAMES, SIDE, SIDE, 3) or audio.shape != (SAMPLES,):
        raise ValueError(f"expected frames {(FRAMES, SIDE, SIDE, 3)} and audio {(SAMPLES,)}")
    dtype = dtype or torch.float32
    image = torch.from_numpy(np.ascontiguousarray(frames, np.float32)).permute(0, 3, 1, 2)[None]
    sound = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None, :, None]
    return {
        "image": image.to(device, dtype),
        "audio": sound.to(device, dtype),
        "label": torch.zeros((1, NUM_LABELS), device=device, dtype=dtype),
    }


def output_points(config: Any) -> tuple[int, int]:
    """(image points, audio patches) of the whole output: 16 * 224 * 224 and 30720 / 16 for the checkpoint."""
    image = math.prod(config.output_shape[1:])
    audio = config.num_frames * config.audio_samples_per_frame // config.samples_per_patch
    return int(image), int(audio)


def chunk_ranges(total: int, chunks: int) -> list[tuple[int, int]]:
    """`total` points split into `chunks` consecutive ranges, as equal as possible."""
    bounds = [round(total * index / chunks) for index in range(chunks + 1)]
    return list(itertools.pairwise(bounds))


def bytes_per_point(model: Any) -> int:
    """Memory the decoder holds per output point, roughly: the query and its projections, the attention
    weights over the latents, the MLP and the output channels."""
    config = model.config
    channels = int(model.perceiver.decoder.num_query_channels)
    element = next(model.parameters()).element_size()
    return element * (8 * channels + 2 * config.num_latents + 2 * config.output_num_channels)


def chunk_count(model: Any, budget_bytes: int) -> int:
    """How many chunks the whole output is decoded in: the fewest whose points fit `budget_bytes`
    (each chunk needs at least one audio patch)."""
    image, audio = output_points(model.config)
    points = max(MIN_CHUNK_POINTS, budget_bytes // bytes_per_point(model))
    return max(1, min(audio, math.ceil((image + audio) / points)))


def memory_budget(device: Any, setting_mb: int) -> int:
    """Bytes one chunk may use: the setting, and at most half the memory free now (CUDA: the device's;
    CPU: the machine's available memory)."""
    return int(min(setting_mb * 2**20, free_memory_bytes(device) // 2))


def encode(model: Any, inputs: dict[str, Any]) -> Encoded:
    """The input preprocessor and the encoder of PerceiverModel.forward, once (no attention mask: the
    model is always called without one)."""
    perceiver = model.perceiver
    with torch.inference_mode():
        preprocessed, sizes, without_pos = perceiver.input_preprocessor(inputs)
        embeddings = perceiver.embeddings(batch_size=preprocessed.shape[0])
        latents = perceiver.encoder(embeddings, attention_mask=None, inputs=preprocessed, inputs_mask=None)[0]
    return Encoded(latents, preprocessed, sizes, without_pos)


def decode_points(model: Any, encoded: Encoded, image: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs at the given image points and audio patches (and the label), decoded from the latents
    as the rest of PerceiverModel.forward does."""
    perceiver = model.perceiver
    points = {"image": image, "audio": audio, "label": None}
    sizes = {"audio": audio.shape[0], "image": image.shape[0], "label": 1}
    with torch.inference_mode():
        query = perceiver.decoder.decoder_query(
            encoded.inputs, encoded.modality_sizes, encoded.inputs_without_pos, subsampled_points=points
        )
        logits = perceiver.decoder(query, z=encoded.latents).logits
        return perceiver.output_postprocessor(logits, modality_sizes=sizes)


def _assemble(config: Any, parts: list[dict[str, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frames = torch.cat([part["image"][0] for part in parts]).float().cpu().numpy()
    audio = torch.cat([part["audio"][0] for part in parts]).float().cpu().numpy()
    logits = parts[0]["label"][0].float().cpu().numpy()
    return frames.reshape(*config.output_shape[1:], 3), audio.reshape(-1), logits


def decode(model: Any, encoded: Encoded, chunks: int, progress: ProgressFn | None = None) -> Reconstruction:
    """The whole output decoded from one encoding, in `chunks` chunks (progress after each). The image points
    go through core.video_decoder's factored decoder when the model's queries allow it (the same maths),
    the sound and the label through the model's own decoder."""
    from core.video_decoder import FactoredImageDecoder

    image_points, audio_points = output_points(model.config)
    device = encoded.latents.device
    start = time.perf_counter()
    image_ranges, audio_ranges = chunk_ranges(image_points, chunks), chunk_ranges(audio_points, chunks)
    fast = FactoredImageDecoder.build(model, encoded)
    if fast is None:
        parts = []
        for index, ((i0, i1), (a0, a1)) in enumerate(zip(image_ranges, audio_ranges, strict=True)):
            image = torch.arange(i0, i1, device=device)
            audio = torch.arange(a0, a1, device=device)
            parts.append(decode_points(model, encoded, image, audio))
            if progress is not None:
                progress((index + 1) / chunks, f"Decoded chunk {index + 1} of {chunks}")
        frames, audio, logits = _assemble(model.config, parts)
    else:
        fast.prepare(model, encoded.latents)
        rest = decode_points(model, encoded, torch.arange(1, device=device), torch.arange(audio_points, device=device))
        pixels = []
        for index, (i0, i1) in enumerate(image_ranges):
            pixels.append(fast.decode(model, torch.arange(i0, i1, device=device)))
            if progress is not None:
                progress((index + 1) / chunks, f"Decoded chunk {index + 1} of {chunks}")
        frames = torch.cat(pixels).float().cpu().numpy().reshape(*model.config.output_shape[1:], 3)
        audio = rest["audio"][0].float().cpu().numpy().reshape(-1)
        logits = rest["label"][0].float().cpu().numpy()
    elapsed = (time.perf_counter() - start) * 1000
    return Reconstruction(frames, audio, logits, chunks, decode_ms=elapsed, factored=fast is not None)


def autoencode(model: Any, inputs: dict[str, Any], chunks: int, progress: ProgressFn | None = None) -> Reconstruction:
    """Encode once, decode every chunk from the same latents."""
    start = time.perf_counter()
    encoded = encode(model, inputs)
    encode_ms = (time.perf_counter() - start) * 1000
    result = decode(model, encoded, chunks, progress)
    result.encode_ms = encode_ms
    return result


def documented_loop(
    model: Any,
    inputs: dict[str, Any],
    chunks: int = DOCUMENTED_CHUNKS,
    indices: list[int] | range | None = None,
    on_pass: Callable[[int], None] | None = None,
) -> Reconstruction:
    """transformers' documented way (PerceiverForMultimodalAutoencoding's docstring): the whole model
    once per chunk, `nchunks` = 128, chunk `i` decoding image points `[i * s, (i + 1) * s)` with
    s = 16 * 224 * 224 // 128 and audio patches `[i * a, (i + 1) * a)` with a = 30720 // 16 // 128.
    With `indices`, only those chunks run (tests, timing); the rest of the output stays zero."""
    image_points, audio_points = output_points(model.config)
    image_size, audio_size = image_points // chunks, audio_points // chunks
    device = inputs["image"].device
    frames = np.zeros((image_points, 3), np.float32)
    audio = np.zeros((audio_points, model.config.samples_per_patch), np.float32)
    logits = np.zeros(0, np.float32)
    for index in range(chunks) if indices is None else indices:
        image_range, audio_range = (
            (image_size * index, image_size * (index + 1)),
            (audio_size * index, audio_size * (index + 1)),
        )
        points = {
            "image": torch.arange(*image_range, device=device),
            "audio": torch.arange(*audio_range, device=device),
            "label": None,
        }
        with torch.inference_mode():
            out = model(inputs=inputs, subsampled_output_points=points).logits
        frames[slice(*image_range)] = out["image"][0].float().cpu().numpy()
        audio[slice(*audio_range)] = out["audio"][0].float().cpu().numpy().reshape(-1, audio.shape[1])
        logits = out["label"][0].float().cpu().numpy()
        if on_pass is not None:
            on_pass(index)
    return Reconstruction(frames.reshape(*model.config.output_shape[1:], 3), audio.reshape(-1), logits, chunks)
