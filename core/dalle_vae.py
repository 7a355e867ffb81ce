"""The DALL-E discrete VAE (OpenAI, Ramesh et al. 2021): the image tokenizer BEiT was trained against.

The encoder turns an image into a grid of logits over 8192 visual tokens, one cell per 8 x 8 pixels;
the decoder turns a grid of tokens back into pixels. BEiT's pre-training tokenizes a 112 x 112 view of
the image (its `second_input_size`, LANCZOS resampling) into the 14 x 14 tokens its 14 x 14 patches
must predict.

The architecture is written here from OpenAI's publication (the `dall_e` package, version 0.1, BSD):
a 7x7 input convolution, four groups of residual blocks (widths 1, 2, 4, 8 x n_hid; each block adds
its residual path scaled by 1 / (number of blocks)^2; max-pooling after the first three groups) and a
1x1 convolution to the token logits; the decoder mirrors it from a 1x1 convolution of the one-hot
tokens through four groups (8, 4, 2, 1 x n_hid; nearest-neighbour upsampling after the first three)
to six channels, of which the first three, through a sigmoid, are the pixels. Pixels go in as
x' = 0.8 x + 0.1 and come out as (x' - 0.1) / 0.8, clipped (the logit-Laplace range, eps = 0.1).
Parameter names follow the published files (`blocks.group_1.block_1.res_path.conv_1.w`), so their
weights load by name.

OpenAI's weights are two pickled modules (encoder.pkl, decoder.pkl) on its CDN, not on the Hugging
Face Hub: `python -m core.download --dall-e` fetches them, and they are read with core.safe_pickle,
which runs no code from them. In tiny mode a tiny random VAE of the same architecture stands in.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.errors import ModelUnavailableError
from core.lazy import F, torch
from core.safe_pickle import UnsafePickleError, load_pickled_module, state_dict
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from torch import nn

    from core.models import ModelCache

CACHE_KEY = "dall-e-dvae"
"""The tokenizer's key in the model cache (not a registry key: it is not a Hub checkpoint)."""
NAME = "DALL-E discrete VAE"
URLS = {
    "encoder.pkl": "https://cdn.openai.com/dall-e/encoder.pkl",
    "decoder.pkl": "https://cdn.openai.com/dall-e/decoder.pkl",
}
"""Where OpenAI publishes the weights (the `dall_e` package's README and usage notebook)."""
PICKLED = tuple(URLS)
TINY_FILES = ("encoder.safetensors", "decoder.safetensors")
TINY_FORMAT_VERSION = 2
LOGIT_LAPLACE_EPS = 0.1
DOWNSAMPLE = 8
"""Pixels per token along each side (three 2x poolings)."""
BEIT_TOKENIZER_SIZE = 112
"""BEiT's `second_input_size`: the side of the view the tokenizer reads (112 / 8 = 14 tokens)."""
BEIT_TOKENIZER_RESAMPLE = Image.Resampling.LANCZOS
"""BEiT's `second_interpolation` ('lanczos')."""
GROUP_WIDTHS = (1, 2, 4, 8)
"""Width of each of the four groups, in units of n_hid (the decoder runs them in reverse)."""
TINY = {"n_hid": 8, "n_init": 8, "n_blk_per_group": 1, "vocab_size": 8192}
"""The tiny random VAE: the real vocabulary and geometry, a tiny network (real: n_hid 256, n_init 128,
two blocks per group)."""


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


# --- building from weights -----------------------------------------------------------------------


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


# --- tiny mode and the folder to load from -----------------------------------------------------------


def tiny_vae_dir(settings: Settings) -> Path:
    return settings.tiny_dir / f"dall-e-v{TINY_FORMAT_VERSION}"


def ensure_tiny_vae(settings: Settings) -> Path:
    """Build and save the tiny random VAE once (seeded: every build is the same); later calls reuse it."""
    from safetensors.torch import save_file

    target = tiny_vae_dir(settings)
    if files_present(target) == "safetensors":
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dall-e-", dir=target.parent))
    try:
        made = classes()
        with torch.random.fork_rng():  # the initialisers draw from the global generator: seed it for this build only
            torch.manual_seed(zlib.crc32(CACHE_KEY.encode()))
            encoder = made["Encoder"](TINY["n_hid"], TINY["n_blk_per_group"], TINY["vocab_size"])
            decoder = made["Decoder"](TINY["n_init"], TINY["n_hid"], TINY["n_blk_per_group"], TINY["vocab_size"])
            # the decoder reads one-hot tokens: columns of unit scale keep each token's signal (the usual
            # 1/sqrt(fan-in) would shrink it ninety-fold and every token would decode to the same grey)
            torch.nn.init.normal_(decoder.blocks.input.w, std=1.0)
            for module in (encoder, decoder):
                for name, param in module.named_parameters():
                    if name.endswith(".b"):
                        torch.nn.init.normal_(param, std=0.1)
        for module, name in ((encoder, TINY_FILES[0]), (decoder, TINY_FILES[1])):
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, staging / name)
        (staging / "tiny-model.json").write_text(
            json.dumps({"note": "tiny random DALL-E VAE, not OpenAI's weights", **TINY}), encoding="utf-8"
        )
        try:
            staging.replace(target)
        except OSError:
            if files_present(target) != "safetensors":
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def vae_dir(settings: Settings | None = None) -> Path:
    """Where the VAE is loaded from: the tiny VAE in tiny mode, else PLAYGROUND_DALLE_DIR."""
    settings = settings or get_settings()
    return ensure_tiny_vae(settings) if settings.tiny else settings.dalle_dir


def get_vae(cache: ModelCache | None = None, settings: Settings | None = None) -> tuple[DalleVAE | None, float | None]:
    """The VAE through the model cache (it shares the memory budget), and its load time in ms when
    this call loaded it; (None, None) when its files are not there."""
    from core.models import get_cache, ms, select_device

    settings = settings or get_settings()
    folder = vae_dir(settings)
    if files_present(folder) is None:
        return None, None

    def load() -> DalleVAE:
        start = time.perf_counter()
        vae = load_vae(folder, select_device(settings))
        vae.load_seconds = time.perf_counter() - start  # type: ignore[attr-defined]
        return vae

    vae, loaded = (cache or get_cache()).get_other(CACHE_KEY, load)
    return vae, ms(vae.load_seconds) if loaded else None


# --- download ------------------------------------------------------------------------------------


def download(folder: Path, fetch: Any = None) -> Path:
    """Fetch OpenAI's encoder.pkl and decoder.pkl into `folder` (each written to a temporary name and
    renamed when complete), then check that both read safely. `fetch(url)` returns a readable binary
    stream (default: urllib)."""
    if fetch is None:
        import urllib.request

        def fetch(url: str) -> Any:
            return urllib.request.urlopen(url, timeout=60)

    folder.mkdir(parents=True, exist_ok=True)
    for name, url in URLS.items():
        if (folder / name).is_file():
            continue
        partial = folder / f".{name}.part"
        try:
            with fetch(url) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
            partial.replace(folder / name)
        finally:
            partial.unlink(missing_ok=True)
    read_weights(folder)  # refuse (and say so) now rather than in the app
    return folder
