"""Which patches of an image BEiT has to predict: masks over its grid of patches (14 x 14 for 224 px
images in patches of 16).

- `blockwise_mask`: BEiT's own pre-training masks (Bao et al. 2021, "BEiT", section 2.5 and Algorithm 1;
  `masking_generator.py` of microsoft/unilm/beit): rectangles of at least 16 patches (the last one may be
  smaller, to hit the target) with an aspect ratio between 0.3 and 1/0.3, drawn until about 40 % of the
  patches are masked (BEiT-base: 75 of 196). A rectangle is kept only if it masks something new and no
  more than what is still missing; after ten failed draws in a row the mask stays as it is.
- `random_mask`: a share of the patches, chosen uniformly.
- `patches_mask`: the patches a person picked (row-major indices, 0 = top left).

All are numpy bool arrays of the grid's shape; a seed repeats a mask exactly (each call has its own
random generator: no global state).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core import checks
from core.errors import InputError

MASK_KINDS = ("blockwise", "random", "patches")
BEIT_MIN_BLOCK = 16
"""min_mask_patches_per_block of BEiT's pre-training (run_beit_pretraining.py default)."""
BEIT_MIN_ASPECT = 0.3
"""min_aspect of BEiT's MaskingGenerator; the largest is its inverse."""
BEIT_ATTEMPTS = 10
"""Draws of a rectangle before BEiT's generator gives up on adding one."""
DEFAULT_SHARE = 0.4
MIN_SHARE, MAX_SHARE = 0.02, 0.9


@dataclass(frozen=True)
class Block:
    """One rectangle the block-wise generator placed: top-left corner, size, how many patches it newly
    masked, and how many were still to be masked when it was drawn (its area is drawn from min_block to that)."""

    top: int
    left: int
    height: int
    width: int
    added: int
    room: int


def blockwise_mask(
    grid: tuple[int, int],
    num_masked: int,
    seed: int,
    *,
    min_block: int = BEIT_MIN_BLOCK,
    max_block: int | None = None,
    min_aspect: float = BEIT_MIN_ASPECT,
) -> tuple[np.ndarray, list[Block]]:
    """BEiT's block-wise mask of about `num_masked` patches on a (rows, cols) grid, and the blocks placed.

    The count never exceeds `num_masked`; it falls short only when ten draws in a row find no rectangle
    that fits (then the loop stops, as in BEiT)."""
    rows, cols = grid
    if not 0 <= num_masked <= rows * cols:
        raise ValueError(f"cannot mask {num_masked} of {rows * cols} patches")
    rng = random.Random(seed)
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    max_block = num_masked if max_block is None else max_block
    mask = np.zeros(grid, dtype=bool)
    blocks: list[Block] = []
    count = 0
    while count < num_masked:
        room = min(num_masked - count, max_block)
        block = _place_block(mask, rng, room, min_block, log_aspect)
        if block is None:
            break
        blocks.append(block)
        count += block.added
    return mask, blocks


def _place_block(
    mask: np.ndarray, rng: random.Random, room: int, min_block: int, log_aspect: tuple[float, float]
) -> Block | None:
    """Draw rectangles until one adds between 1 and `room` new patches; mask it and return it."""
    rows, cols = mask.shape
    for _ in range(BEIT_ATTEMPTS):
        area = rng.uniform(min_block, room)
        aspect = math.exp(rng.uniform(*log_aspect))
        height = round(math.sqrt(area * aspect))
        width = round(math.sqrt(area / aspect))
        if not (width < cols and height < rows):
            continue
        top = rng.randint(0, rows - height)
        left = rng.randint(0, cols - width)
        window = mask[top : top + height, left : left + width]
        added = height * width - int(window.sum())
        if 0 < added <= room:
            window[...] = True
            return Block(top, left, height, width, added, room)
    return None


def random_mask(grid: tuple[int, int], num_masked: int, seed: int) -> np.ndarray:
    """Exactly `num_masked` patches of the grid, chosen uniformly at random."""
    rows, cols = grid
    if not 0 <= num_masked <= rows * cols:
        raise ValueError(f"cannot mask {num_masked} of {rows * cols} patches")
    chosen = np.random.default_rng(seed).choice(rows * cols, size=num_masked, replace=False)
    mask = np.zeros(rows * cols, dtype=bool)
    mask[chosen] = True
    return mask.reshape(grid)


def patches_mask(grid: tuple[int, int], patches: Iterable[int]) -> np.ndarray:
    """The given patches (row-major indices) masked."""
    mask = np.zeros(grid[0] * grid[1], dtype=bool)
    mask[list(patches)] = True
    return mask.reshape(grid)


def parse_patch_list(value: str | Iterable[int] | None, grid: tuple[int, int]) -> list[int]:
    """Patch indices from "3, 17 45" (or a list of whole numbers): each from 0 to rows*cols - 1,
    duplicates dropped, in the order given."""
    total = grid[0] * grid[1]
    if value is None:
        return []
    if isinstance(value, str):
        if len(value) > 4000:
            raise InputError("The patch list is too long.")
        items: list[object] = [item for item in re.split(r"[\s,;\[\]]+", value) if item]
        numbers = []
        for item in items:
            if not re.fullmatch(r"\d{1,6}", str(item)):
                raise InputError(
                    f"Patches must be whole numbers from 0 to {total - 1} separated by commas, not {str(item)[:20]!r}."
                )
            numbers.append(int(str(item)))
    else:
        numbers = [checks.whole(item, "A patch number", 0, total - 1) for item in value]
    for number in numbers:
        if number >= total:
            raise InputError(f"A patch number must be from 0 to {total - 1}, not {number}.")
    return list(dict.fromkeys(numbers))


def patches_of(mask: np.ndarray) -> list[int]:
    """Row-major indices of the masked patches."""
    return [int(i) for i in np.flatnonzero(mask)]


def format_patch_list(patches: Iterable[int]) -> str:
    return ", ".join(str(p) for p in patches)


def make_mask(
    kind: str, grid: tuple[int, int], *, share: float = DEFAULT_SHARE, seed: int = 0, patches: object = ""
) -> np.ndarray:
    """The mask a request asks for, with every value checked (InputError with a readable message)."""
    kind = checks.choice(kind, "mask kind", MASK_KINDS)
    if kind == "patches":
        chosen = parse_patch_list(patches, grid)  # type: ignore[arg-type]
        if not chosen:
            raise InputError("Pick at least one patch to mask (click the grid, or list patch numbers).")
        return patches_mask(grid, chosen)
    share = checks.number(share, "Share of masked patches", MIN_SHARE, MAX_SHARE)
    seed = checks.seed(seed)
    count = max(1, round(share * grid[0] * grid[1]))
    if kind == "random":
        return random_mask(grid, count, seed)
    return blockwise_mask(grid, count, seed)[0]
