"""BEiT's pre-training task on one image: mask patches, let BeitForMaskedImageModeling predict the
DALL-E visual token of each masked patch; with the DALL-E discrete VAE, compare with the true tokens and
turn tokens back into pixels.

preprocess (the checkpoint's processor: 224 x 224, mean = std = 0.5) -> forward (the model with
`bool_masked_pos`: the masked patches' embeddings are replaced by the learned mask token) -> postprocess
(for each masked patch: the top token, its probability, the entropy of the distribution over 8192
tokens, the top 5). With the VAE: tokenize (the whole image at 112 x 112, as BEiT's pre-training did)
-> accuracy (top 1, top 5) -> decode (the true tokens, and the true tokens with the predicted ones in
the masked patches).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from core import dalle_vae, plots
from core.backend import runs_in
from core.dalle_vae import DalleVAE
from core.errors import UserFacingError
from core.lazy import torch
from core.masking import DEFAULT_SHARE, make_mask, patches_of
from core.models import LoadedModel, ModelCache, get_cache, load_for, ms
from core.progress import ProgressFn

log = logging.getLogger(__name__)

TASK = "inside"
MODEL_KEY = "beit-base-224-pt22k"
TOP = 5
HISTOGRAM_TOP = 20
WITHOUT_VAE = (
    "The DALL-E tokenizer is not installed, so the true tokens, the share of masked patches predicted "
    "right (top 1 and top 5) and the pictures decoded from tokens are not shown. Fetch OpenAI's "
    "published encoder and decoder once with `python -m core.download --dall-e` (set PLAYGROUND_DALLE_DIR "
    "to choose where they go); they are read without running code from them."
)


@dataclass
class Predictions:
    """For each masked patch, in row-major order: the top token, its probability, the entropy (bits) of
    the predicted distribution, and the top-5 tokens."""

    patches: list[int]
    tokens: np.ndarray
    confidence: np.ndarray
    entropy_bits: np.ndarray
    top5: np.ndarray


@dataclass
class MaskedImageResult:
    grid: tuple[int, int]
    mask: np.ndarray
    mask_kind: str
    seed: int | None
    predictions: Predictions
    vocab_size: int
    pictures: list[tuple[np.ndarray, str]]
    true_tokens: np.ndarray | None = None
    vae_source: str | None = None
    vae_problem: str | None = None
    """Why the VAE's files, though present, were not used (they could not be read or were refused)."""
    timings_ms: dict[str, float | None] = field(default_factory=dict)

    def accuracy(self) -> tuple[float, float] | None:
        """Share of masked patches whose true token is the top prediction, and within the top 5."""
        if self.true_tokens is None or not self.predictions.patches:
            return None
        truth = self.true_tokens.reshape(-1)[self.predictions.patches]
        top1 = float(np.mean(self.predictions.tokens == truth))
        top5 = float(np.mean((self.predictions.top5 == truth[:, None]).any(axis=1)))
        return top1, top5

    def grid_values(self, values: np.ndarray) -> list[list[float | None]]:
        """Per-patch values on the grid, None where the patch is not masked."""
        full = np.full(self.grid[0] * self.grid[1], np.nan)
        full[self.predictions.patches] = values
        return [[None if math.isnan(v) else round(float(v), 5) for v in row] for row in full.reshape(self.grid)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the mask, every masked patch's prediction, confidence and entropy maps, token
        counts, and (with the VAE) the true tokens and the accuracy."""
        p = self.predictions
        rows, cols = self.grid
        truth = self.true_tokens.reshape(-1) if self.true_tokens is not None else None
        predictions = []
        for i, patch in enumerate(p.patches):
            item: dict[str, Any] = {
                "patch": patch,
                "row": patch // cols,
                "col": patch % cols,
                "token": int(p.tokens[i]),
                "confidence": round(float(p.confidence[i]), 5),
                "entropy_bits": round(float(p.entropy_bits[i]), 4),
                "top5": [int(t) for t in p.top5[i]],
            }
            if truth is not None:
                item["true_token"] = int(truth[patch])
                item["correct"] = bool(truth[patch] == p.tokens[i])
            predictions.append(item)
        tokens, counts = np.unique(p.tokens, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:HISTOGRAM_TOP]
        accuracy = self.accuracy()
        vae: dict[str, Any] = {"present": self.true_tokens is not None}
        if self.true_tokens is not None and accuracy is not None:
            vae.update(
                source=self.vae_source,
                true_tokens=self.true_tokens.astype(int).tolist(),
                top1_accuracy=round(accuracy[0], 4),
                top5_accuracy=round(accuracy[1], 4),
            )
        else:
            vae["note"] = WITHOUT_VAE if self.vae_problem is None else self.vae_problem
        return {
            "model": MODEL_KEY,
            "grid": [rows, cols],
            "mask_kind": self.mask_kind,
            "seed": self.seed,
            "num_masked": len(p.patches),
            "share_masked": round(len(p.patches) / (rows * cols), 4),
            "mask": self.mask.astype(int).tolist(),
            "masked_patches": p.patches,
            "predictions": predictions,
            "confidence_map": self.grid_values(p.confidence),
            "entropy_map_bits": self.grid_values(p.entropy_bits),
            "max_entropy_bits": round(math.log2(self.vocab_size), 4),
            "distinct_predicted_tokens": len(tokens),
            "predicted_token_counts": [{"token": int(tokens[i]), "count": int(counts[i])} for i in order],
            "vae": vae,
            "images": [caption for _, caption in self.pictures],
            "timings_ms": self.timings_ms,
        }


def grid_of(config: Any) -> tuple[int, int]:
    """Patches per column and row of the model's input (14 x 14 for 224 px in patches of 16)."""
    size = config.image_size if isinstance(config.image_size, list | tuple) else (config.image_size,) * 2
    return size[0] // config.patch_size, size[1] // config.patch_size


def preprocess(loaded: LoadedModel, image: Image.Image) -> torch.Tensor:
    return loaded.processor(images=image, return_tensors="pt")["pixel_values"]


def model_view(loaded: LoadedModel, pixel_values: torch.Tensor) -> np.ndarray:
    """The image as the model sees it (after resize, crop and normalisation, undone): (H, W, 3) uint8."""
    processor = getattr(loaded.processor, "image_processor", loaded.processor)
    mean = np.asarray(processor.image_mean, dtype=np.float32)
    std = np.asarray(processor.image_std, dtype=np.float32)
    pixels = pixel_values[0].permute(1, 2, 0).float().cpu().numpy() * std + mean
    return (pixels * 255).round().clip(0, 255).astype(np.uint8)


def forward(loaded: LoadedModel, pixel_values: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """The model's logits (float32) at the masked patches, in row-major order: (masked, vocab)."""
    positions = torch.from_numpy(mask.reshape(1, -1)).to(loaded.device)
    with torch.inference_mode():
        logits = loaded.model(
            pixel_values=pixel_values.to(loaded.device, loaded.dtype), bool_masked_pos=positions
        ).logits
        return logits[positions].float().cpu()


def postprocess(logits: torch.Tensor, patches: list[int]) -> Predictions:
    probabilities = logits.softmax(dim=-1)
    log2 = torch.log2(probabilities.clamp_min(torch.finfo(torch.float32).tiny))
    entropy = -(probabilities * log2).sum(dim=-1)
    top = probabilities.topk(min(TOP, probabilities.shape[-1]), dim=-1)
    return Predictions(
        patches=patches,
        tokens=top.indices[:, 0].numpy(),
        confidence=top.values[:, 0].numpy(),
        entropy_bits=entropy.numpy(),
        top5=top.indices.numpy(),
    )


def true_tokens(vae: DalleVAE, image: Image.Image, grid: tuple[int, int]) -> np.ndarray:
    """The VAE's token for every patch: the whole image at 8 pixels per patch (112 x 112 for 14 x 14)."""
    if grid[0] != grid[1]:
        raise ValueError("the tokenizer view is square")
    view = dalle_vae.tokenizer_view(image, grid[0] * dalle_vae.DOWNSAMPLE)
    return vae.tokens(view)[0].cpu().numpy()


def decode(vae: DalleVAE, tokens: np.ndarray) -> np.ndarray:
    return dalle_vae.to_uint8(vae.decode(torch.from_numpy(tokens.astype(np.int64))[None]))


def masked_picture(view: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The view with the masked patches filled grey (what the model is asked about)."""
    rows, cols = mask.shape
    cell_h, cell_w = view.shape[0] // rows, view.shape[1] // cols
    cells = np.kron(mask, np.ones((cell_h, cell_w), dtype=bool))
    picture = view.copy()
    picture[cells] = (picture[cells] * 0.15 + 0.85 * 128).astype(np.uint8)
    return picture


@runs_in("inside")
def masked_image(
    image: Image.Image,
    mask_kind: str = "blockwise",
    share: float = DEFAULT_SHARE,
    seed: int = 0,
    patches: object = "",
    *,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
    use_vae: bool = True,
) -> MaskedImageResult:
    """Mask patches of an RGB image (kind "blockwise", "random" or "patches"), predict their visual tokens,
    and with the DALL-E VAE (unless `use_vae` is False or its files are missing) compare and decode."""
    cache = cache or get_cache()
    report = progress or (lambda fraction, message: None)
    mask = make_mask(mask_kind, GRID, share=share, seed=seed, patches=patches)  # checked before loading
    report(0.0, "Loading BEiT")
    loaded, load_ms = load_for(MODEL_KEY, TASK, cache)
    grid = grid_of(loaded.model.config)
    if grid != GRID:
        raise ValueError(f"{MODEL_KEY} reads a {grid} grid of patches, not {GRID}")
    timings: dict[str, float | None] = {"load": load_ms}
    start = time.perf_counter()
    pixel_values = preprocess(loaded, image)
    view = model_view(loaded, pixel_values)
    timings["preprocess"] = ms(time.perf_counter() - start)
    report(0.2, "Predicting the masked patches")
    start = time.perf_counter()
    patches_masked = patches_of(mask)
    predictions = postprocess(forward(loaded, pixel_values, mask), patches_masked)
    timings["inference"] = ms(time.perf_counter() - start)
    vocab = int(loaded.model.config.vocab_size)
    result = MaskedImageResult(
        grid, mask, mask_kind, None if mask_kind == "patches" else int(seed), predictions, vocab, []
    )

    vae, vae_load_ms, vae_problem = None, None, None
    if use_vae:
        try:
            vae, vae_load_ms = dalle_vae.get_vae(cache)
        except UserFacingError as error:  # files there but unusable: show the rest, and say why
            log.warning("DALL-E VAE not used: %s", error)
            vae_problem = str(error)
    masked = masked_picture(view, mask)
    strip = [(view, "Original (the model's 224x224 view)"), (masked, f"Masked: {len(patches_masked)} patches")]
    if vae is not None:
        if vae.vocab_size != vocab:
            raise ValueError(f"the VAE has {vae.vocab_size} tokens, BEiT predicts {vocab}")
        report(0.5, "Tokenizing with the DALL-E VAE")
        start = time.perf_counter()
        truth = true_tokens(vae, image, grid)
        filled = truth.copy().reshape(-1)
        filled[patches_masked] = predictions.tokens
        from_truth, from_predictions = decode(vae, truth), decode(vae, filled.reshape(grid))
        timings["vae_load"] = vae_load_ms
        timings["vae"] = ms(time.perf_counter() - start)
        result.true_tokens, result.vae_source = truth, vae.source
        strip += [
            (from_truth, "VAE: decoded true tokens"),
            (from_predictions, "VAE: predicted tokens in the masked patches"),
        ]
    report(0.7, "Drawing")
    start = time.perf_counter()
    panels: list[tuple[np.ndarray, str, str, str, float | None]] = [
        (
            _on_grid(predictions.confidence, patches_masked, grid),
            "Confidence (top probability)",
            "probability",
            plots.HEAT,
            1.0,
        ),
        (
            _on_grid(predictions.entropy_bits, patches_masked, grid),
            "Entropy of the prediction",
            "bits",
            plots.UNCERTAIN,
            math.log2(vocab),
        ),
    ]
    pictures = [
        (plots.picture_strip(strip), " | ".join(title for _, title in strip)),
        (plots.maps_over_image(masked, panels), "Confidence and entropy at the masked patches"),
    ]
    if result.true_tokens is not None:
        outcome = np.full(grid[0] * grid[1], np.nan)
        truth = result.true_tokens.reshape(-1)[patches_masked]
        outcome[patches_masked] = np.where(
            predictions.tokens == truth, 2, np.where((predictions.top5 == truth[:, None]).any(axis=1), 1, 0)
        )
        pictures.append((plots.outcome_panel(masked, outcome.reshape(grid)), "Masked patches predicted right"))
    true_masked = None if result.true_tokens is None else result.true_tokens.reshape(-1)[patches_masked]
    pictures.append(
        (
            plots.token_histogram(predictions.tokens, true_masked, top=HISTOGRAM_TOP, vocab_size=vocab),
            "Histogram of the predicted tokens",
        )
    )
    result.pictures = pictures
    result.vae_problem = vae_problem
    timings["plots"] = ms(time.perf_counter() - start)
    result.timings_ms = timings
    report(1.0, "Done")
    return result


def _on_grid(values: np.ndarray, patches: list[int], grid: tuple[int, int]) -> np.ndarray:
    full = np.full(grid[0] * grid[1], np.nan)
    full[patches] = values
    return full.reshape(grid)


# --- the patch picker (no model needed) ------------------------------------------------------------

GRID = (14, 14)
"""BEiT-base's grid at 224 px in patches of 16 (docs/checkpoints.md)."""
PICKER_SIDE = 448


def patch_picker(
    image: Image.Image, patches: list[int], grid: tuple[int, int] = GRID, side: int = PICKER_SIDE
) -> np.ndarray:
    """The image framed as BEiT's processor frames it (the whole image resized to a square, no crop),
    enlarged to `side`, with the patch grid drawn and the chosen patches shaded: (side, side, 3) uint8."""
    from PIL import ImageDraw

    picture = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    shade = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(shade)
    rows, cols = grid
    cell_w, cell_h = side / cols, side / rows
    for patch in patches:
        row, col = divmod(patch, cols)
        draw.rectangle(
            [col * cell_w, row * cell_h, (col + 1) * cell_w - 1, (row + 1) * cell_h - 1], fill=(128, 128, 128, 215)
        )
    for index in range(1, cols):
        draw.line([(index * cell_w, 0), (index * cell_w, side)], fill=(255, 255, 255, 110), width=1)
    for index in range(1, rows):
        draw.line([(0, index * cell_h), (side, index * cell_h)], fill=(255, 255, 255, 110), width=1)
    return np.asarray(Image.alpha_composite(picture.convert("RGBA"), shade).convert("RGB"))


def patch_at(x: float, y: float, grid: tuple[int, int] = GRID, side: int = PICKER_SIDE) -> int:
    """The row-major patch number under pixel (x, y) of the picker."""
    rows, cols = grid
    row = min(max(int(y * rows // side), 0), rows - 1)
    col = min(max(int(x * cols // side), 0), cols - 1)
    return row * cols + col


def toggle_patch(patches: list[int], patch: int) -> list[int]:
    """The list with `patch` removed if it was in it, else added."""
    return [p for p in patches if p != patch] if patch in patches else [*patches, patch]
