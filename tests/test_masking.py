"""Masks over BEiT's 14 x 14 patches: BEiT's block-wise generator, random shares, chosen patches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import InputError
from core.masking import (
    BEIT_MIN_ASPECT,
    BEIT_MIN_BLOCK,
    blockwise_mask,
    format_patch_list,
    make_mask,
    parse_patch_list,
    patches_of,
    random_mask,
)

GRID = (14, 14)
SEEDS = range(200)


def test_blockwise_masks_have_beits_size_and_count() -> None:
    counts = []
    for seed in SEEDS:
        mask, blocks = blockwise_mask(GRID, 75, seed)
        assert mask.shape == GRID and mask.dtype == bool
        assert int(mask.sum()) == sum(block.added for block in blocks) <= 75
        counts.append(int(mask.sum()))
    # BEiT stops when ten draws in a row find no block that fits: rarely far below the target
    assert np.mean(counts) > 73 and min(counts) >= 60
    assert counts.count(75) > len(counts) // 2


def test_blocks_are_at_least_16_patches_with_beits_aspect_ratios() -> None:
    checked = 0
    for seed in SEEDS:
        mask, blocks = blockwise_mask(GRID, 75, seed)
        for block in blocks:
            window = mask[block.top : block.top + block.height, block.left : block.left + block.width]
            assert window.all()  # every block is fully masked
            assert 0 < block.added <= block.room
            assert block.height < GRID[0] and block.width < GRID[1]
            if block.room >= BEIT_MIN_BLOCK:
                checked += 1
                # drawn from 16 patches up; whole rows and columns round the area by at most a quarter
                assert block.height * block.width >= 12
                aspect = block.height / block.width
                # aspect drawn from 0.3 to 1/0.3; rounding to whole patches moves it by at most a cell
                assert (block.height - 0.5) / (block.width + 0.5) <= 1 / BEIT_MIN_ASPECT
                assert (block.height + 0.5) / (block.width - 0.5) >= BEIT_MIN_ASPECT
                assert 0.1 < aspect < 10
    assert checked > len(SEEDS)
    first_blocks = [blockwise_mask(GRID, 75, seed)[1][0] for seed in SEEDS]
    assert np.median([b.height * b.width for b in first_blocks]) >= BEIT_MIN_BLOCK


def test_blocks_are_contiguous_regions_not_scattered_patches() -> None:
    mask = blockwise_mask(GRID, 75, seed=3)[0]
    # most masked patches have a masked neighbour to the right or below (rectangles, not noise)
    right = mask[:, :-1] & mask[:, 1:]
    below = mask[:-1, :] & mask[1:, :]
    assert (right.sum() + below.sum()) > mask.sum()


def test_a_seed_repeats_a_mask_and_another_seed_changes_it() -> None:
    first, _ = blockwise_mask(GRID, 75, seed=7)
    again, _ = blockwise_mask(GRID, 75, seed=7)
    other, _ = blockwise_mask(GRID, 75, seed=8)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(random_mask(GRID, 50, 1), random_mask(GRID, 50, 1))
    assert not np.array_equal(random_mask(GRID, 50, 1), random_mask(GRID, 50, 2))


def test_the_generators_use_no_global_random_state() -> None:
    import random

    random.seed(0)
    np.random.seed(0)
    before = (random.random(), np.random.random())
    random.seed(0)
    np.random.seed(0)
    blockwise_mask(GRID, 75, seed=1)
    random_mask(GRID, 75, seed=1)
    assert (random.random(), np.random.random()) == before


@pytest.mark.parametrize("count", [0, 1, 20, 98, 176, 196])
def test_random_masks_have_exactly_the_share_asked_for(count: int) -> None:
    assert int(random_mask(GRID, count, seed=0).sum()) == count


@pytest.mark.parametrize(("kind", "share"), [("blockwise", 0.4), ("random", 0.4), ("random", 0.02), ("random", 0.9)])
def test_make_mask_turns_a_share_into_a_count(kind: str, share: float) -> None:
    mask = make_mask(kind, GRID, share=share, seed=0)
    target = max(1, round(share * 196))
    assert int(mask.sum()) == target if kind == "random" else target - 10 <= int(mask.sum()) <= target


def test_chosen_patches_are_row_major() -> None:
    mask = make_mask("patches", GRID, patches="0, 15 195")
    assert mask[0, 0] and mask[1, 1] and mask[13, 13] and int(mask.sum()) == 3
    assert patches_of(mask) == [0, 15, 195]
    assert make_mask("patches", GRID, patches=[3, 3, 4]).sum() == 2
    assert parse_patch_list("[5, 1, 5]", GRID) == [5, 1]
    assert format_patch_list([5, 1]) == "5, 1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "stripes"}, "Unknown mask kind"),
        ({"kind": "patches", "patches": ""}, "Pick at least one patch"),
        ({"kind": "patches", "patches": "3, 196"}, "from 0 to 195, not 196"),
        ({"kind": "patches", "patches": "a, b"}, "whole numbers from 0 to 195"),
        ({"kind": "patches", "patches": "-1"}, "whole numbers from 0 to 195"),
        ({"kind": "random", "share": 0.95}, "Share of masked patches must be from 0.02 to 0.9"),
        ({"kind": "random", "share": math.nan}, "Share of masked patches must be a number"),
        ({"kind": "blockwise", "seed": -1}, "Seed must be from 0"),
        ({"kind": "blockwise", "seed": 1.5}, "Seed must be a whole number"),
    ],
)
def test_bad_mask_requests_get_clear_messages(kwargs: dict[str, object], message: str) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(InputError, match=message):
        make_mask(kind, GRID, **kwargs)  # type: ignore[arg-type]
