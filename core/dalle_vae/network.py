"""The VAE's network, written from OpenAI's publication, and the conversions around it.

Pixels are float32 in [0, 1], (batch, 3, H, W) with H and W multiples of 8; tokens are int64 ids,
(batch, H / 8, W / 8).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.lazy import F, torch

if TYPE_CHECKING:
    from torch import nn

LOGIT_LAPLACE_EPS = 0.1
DOWNSAMPLE = 8
"""Pixels per token along each side (three 2x poolings)."""
BEIT_TOKENIZER_SIZE = 112
"""BEiT's `second_input_size`: the side of the view the tokenizer reads (112 / 8 = 14 tokens)."""
BEIT_TOKENIZER_RESAMPLE = Image.Resampling.LANCZOS
"""BEiT's `second_interpolation` ('lanczos')."""
GROUP_WIDTHS = (1, 2, 4, 8)
"""Width of each of the four groups, in units of n_hid (the decoder runs them in reverse)."""


def _build_classes() -> dict[str, type]:
    """The module classes, made on first use so that importing this module does not import torch."""
    nn = torch.nn

    class Conv(nn.Module):
        """A convolution with 'same' padding; weight and bias named `w` and `b`, as in the published files."""

        def __init__(self, n_in: int, n_out: int, kernel: int) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(n_out, n_in, kernel, kernel))
            self.b = nn.Parameter(torch.zeros(n_out))
            self.padding = (kernel - 1) // 2
            nn.init.normal_(self.w, std=(n_in * kernel**2) ** -0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.w, self.b, padding=self.padding)

    class ResidualBlock(nn.Module):
        """x -> id_path(x) + gain * res_path(x): four ReLU-then-convolution steps through a quarter of the
        output width; id_path is a 1x1 convolution when the width changes."""

        def __init__(self, n_in: int, n_out: int, n_blocks: int, kernels: tuple[int, int, int, int]) -> None:
            super().__init__()
            hidden = n_out // 4
            self.id_path = Conv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
            widths = (n_in, hidden, hidden, hidden, n_out)
            steps: list[tuple[str, nn.Module]] = []
            for index, kernel in enumerate(kernels, start=1):
                steps += [
                    (f"relu_{index}", nn.ReLU()),
                    (f"conv_{index}", Conv(widths[index - 1], widths[index], kernel)),
                ]
            self.res_path = nn.Sequential(OrderedDict(steps))
            self.post_gain = 1 / n_blocks**2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.id_path(x) + self.post_gain * self.res_path(x)

    def groups(
        n_first: int, widths: list[int], n_blk: int, kernels: tuple[int, int, int, int], between: Any
    ) -> list[tuple[str, nn.Module]]:
        n_blocks = len(widths) * n_blk
        built, n_in = [], n_first
        for number, width in enumerate(widths, start=1):
            layers: list[tuple[str, nn.Module]] = []
            for index in range(1, n_blk + 1):
                layers.append((f"block_{index}", ResidualBlock(n_in, width, n_blocks, kernels)))
                n_in = width
            if number < len(widths):
                layers.append(between())
            built.append((f"group_{number}", nn.Sequential(OrderedDict(layers))))
        return built

    class Encoder(nn.Module):
        def __init__(self, n_hid: int, n_blk_per_group: int, vocab_size: int, input_channels: int = 3) -> None:
            super().__init__()
            self.vocab_size = vocab_size
            widths = [w * n_hid for w in GROUP_WIDTHS]
            self.blocks = nn.Sequential(
                OrderedDict(
                    [
                        ("input", Conv(input_channels, n_hid, 7)),
                        *groups(n_hid, widths, n_blk_per_group, (3, 3, 3, 1), lambda: ("pool", nn.MaxPool2d(2))),
                        (
                            "output",
                            nn.Sequential(
                                OrderedDict([("relu", nn.ReLU()), ("conv", Conv(widths[-1], vocab_size, 1))])
                            ),
                        ),
                    ]
                )
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.blocks(x)

    class Decoder(nn.Module):
        def __init__(
            self, n_init: int, n_hid: int, n_blk_per_group: int, vocab_size: int, output_channels: int = 3
        ) -> None:
            super().__init__()
            self.vocab_size = vocab_size
            widths = [w * n_hid for w in reversed(GROUP_WIDTHS)]
            upsample = lambda: ("upsample", nn.Upsample(scale_factor=2, mode="nearest"))  # noqa: E731
            self.blocks = nn.Sequential(
                OrderedDict(
                    [
                        ("input", Conv(vocab_size, n_init, 1)),
                        *groups(n_init, widths, n_blk_per_group, (1, 3, 3, 3), upsample),
                        (
                            "output",
                            nn.Sequential(
                                OrderedDict([("relu", nn.ReLU()), ("conv", Conv(n_hid, 2 * output_channels, 1))])
                            ),
                        ),
                    ]
                )
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.blocks(x)

    return {"Conv": Conv, "ResidualBlock": ResidualBlock, "Encoder": Encoder, "Decoder": Decoder}


_CLASSES: dict[str, type] = {}


def classes() -> dict[str, type]:
    """Conv, ResidualBlock, Encoder and Decoder (torch nn.Module subclasses)."""
    if not _CLASSES:
        _CLASSES.update(_build_classes())
    return _CLASSES


def map_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> the encoder's input range [eps, 1 - eps]."""
    return (1 - 2 * LOGIT_LAPLACE_EPS) * pixels + LOGIT_LAPLACE_EPS


def unmap_pixels(values: torch.Tensor) -> torch.Tensor:
    """The decoder's sigmoid output -> [0, 1], clipped."""
    return ((values - LOGIT_LAPLACE_EPS) / (1 - 2 * LOGIT_LAPLACE_EPS)).clamp(0, 1)


class DalleVAE:
    """Encoder and decoder on one device (float32), with the conversions around them."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, source: str, device: torch.device) -> None:
        self.encoder = encoder.to(device).eval()
        self.decoder = decoder.to(device).eval()
        self.source = source
        self.device = device
        self.vocab_size: int = encoder.vocab_size
        if decoder.vocab_size != self.vocab_size:
            raise ValueError(f"encoder has {self.vocab_size} tokens, decoder {decoder.vocab_size}")
        self.nbytes = sum(
            t.numel() * t.element_size()
            for module in (self.encoder, self.decoder)
            for t in (*module.parameters(), *module.buffers())
        )

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [0, 1] -> (B, vocab, H/8, W/8) token logits."""
        _check_pixels(pixels)
        with torch.inference_mode():
            return self.encoder(map_pixels(pixels.to(self.device, torch.float32)))

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [0, 1] -> (B, H/8, W/8) token ids (the argmax of the logits)."""
        return self.logits(pixels).argmax(dim=1)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, h, w) token ids -> (B, 3, 8h, 8w) pixels in [0, 1]."""
        if tokens.dim() != 3 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError("tokens must be a (batch, rows, cols) integer tensor")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size:
            raise ValueError(f"tokens must be from 0 to {self.vocab_size - 1}")
        with torch.inference_mode():
            one_hot = F.one_hot(tokens.to(self.device, torch.int64), self.vocab_size).permute(0, 3, 1, 2).float()
            stats = self.decoder(one_hot).float()
            return unmap_pixels(torch.sigmoid(stats[:, :3]))


def _check_pixels(pixels: torch.Tensor) -> None:
    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be (batch, 3, height, width), not {tuple(pixels.shape)}")
    if pixels.shape[2] % DOWNSAMPLE or pixels.shape[3] % DOWNSAMPLE:
        raise ValueError(f"height and width must be multiples of {DOWNSAMPLE}")


def tokenizer_view(image: Image.Image, size: int = BEIT_TOKENIZER_SIZE) -> torch.Tensor:
    """The (1, 3, size, size) view the tokenizer reads: the whole image resized as BEiT's pre-training
    did (LANCZOS, no crop, like the patches' view of the BEiT processor), in [0, 1]."""
    small = image.convert("RGB").resize((size, size), BEIT_TOKENIZER_RESAMPLE)
    return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (pixels[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
