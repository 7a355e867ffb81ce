"""The VAE built from weights: OpenAI's pickles (read with core.safe_pickle, which runs no code from
them) or the tiny VAE's safetensors, loaded by the published parameter names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from core.dalle_vae.network import GROUP_WIDTHS, DalleVAE, classes
from core.errors import ModelUnavailableError
from core.lazy import torch
from core.safe_pickle import UnsafePickleError, load_pickled_module, state_dict

if TYPE_CHECKING:
    from torch import nn

NAME = "DALL-E discrete VAE"
URLS = {
    "encoder.pkl": "https://cdn.openai.com/dall-e/encoder.pkl",
    "decoder.pkl": "https://cdn.openai.com/dall-e/decoder.pkl",
}
"""Where OpenAI publishes the weights (the `dall_e` package's README and usage notebook)."""
PICKLED = tuple(URLS)
TINY_FILES = ("encoder.safetensors", "decoder.safetensors")


def _count_blocks(weights: dict[str, torch.Tensor], group: int) -> int:
    found = {m.group(1) for name in weights if (m := re.match(rf"blocks\.group_{group}\.block_(\d+)\.", name))}
    return len(found)


def _groups(weights: dict[str, torch.Tensor]) -> int:
    return len({m.group(1) for name in weights if (m := re.match(r"blocks\.group_(\d+)\.", name))})


def build_encoder(weights: dict[str, torch.Tensor]) -> nn.Module:
    """An Encoder shaped by `weights` (published names), with them loaded (strict: every name must fit)."""
    try:
        n_hid, channels = weights["blocks.input.w"].shape[:2]
        vocab = weights["blocks.output.conv.w"].shape[0]
    except KeyError as missing:
        raise ValueError(f"not DALL-E encoder weights: no {missing}") from None
    if _groups(weights) != len(GROUP_WIDTHS):
        raise ValueError("not the published encoder: it has four groups of blocks")
    encoder = classes()["Encoder"](int(n_hid), _count_blocks(weights, 1), int(vocab), int(channels))
    encoder.load_state_dict(weights, strict=True)
    return encoder


def build_decoder(weights: dict[str, torch.Tensor]) -> nn.Module:
    try:
        n_init, vocab = weights["blocks.input.w"].shape[:2]
        outputs, n_hid = weights["blocks.output.conv.w"].shape[:2]
    except KeyError as missing:
        raise ValueError(f"not DALL-E decoder weights: no {missing}") from None
    if _groups(weights) != len(GROUP_WIDTHS):
        raise ValueError("not the published decoder: it has four groups of blocks")
    decoder = classes()["Decoder"](int(n_init), int(n_hid), _count_blocks(weights, 1), int(vocab), int(outputs) // 2)
    decoder.load_state_dict(weights, strict=True)
    return decoder


def files_present(folder: Path) -> str | None:
    """ "pickled" when OpenAI's two files are in `folder`, "safetensors" for the tiny VAE's, else None."""
    if all((folder / name).is_file() for name in PICKLED):
        return "pickled"
    if all((folder / name).is_file() for name in TINY_FILES):
        return "safetensors"
    return None


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """Encoder and decoder weights from `folder`, and where they came from. OpenAI's pickles are read
    with core.safe_pickle (no code from them runs)."""
    kind = files_present(folder)
    if kind == "pickled":
        encoder, decoder = (state_dict(load_pickled_module(folder / name)) for name in PICKLED)
        return encoder, decoder, "OpenAI's published weights"
    if kind == "safetensors":
        from safetensors.torch import load_file

        encoder, decoder = (load_file(folder / name) for name in TINY_FILES)
        return encoder, decoder, "tiny random weights"
    raise FileNotFoundError(f"no DALL-E VAE files in {folder}")


def load_vae(folder: Path, device: torch.device | str = "cpu") -> DalleVAE:
    """The VAE whose files are in `folder` (ModelUnavailableError with what to do if they cannot be used)."""
    try:
        encoder_weights, decoder_weights, source = read_weights(folder)
        encoder, decoder = build_encoder(encoder_weights), build_decoder(decoder_weights)
    except UnsafePickleError:
        raise
    except (OSError, ValueError, RuntimeError) as error:
        if isinstance(error, torch.OutOfMemoryError):
            raise ModelUnavailableError(f"Not enough memory to load the {NAME}.") from error
        raise ModelUnavailableError(
            f"The {NAME} files in {folder.name}/ cannot be used ({str(error)[:160]}). "
            "Fetch them again with `python -m core.download --dall-e`."
        ) from error
    return DalleVAE(encoder, decoder, source, torch.device(device))
