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

  network.py  the encoder and decoder modules, pixel conversions, the tokenizer's view of a photo
  weights.py  the VAE built from OpenAI's pickles or the tiny VAE's safetensors
  files.py    the tiny VAE, the folder to load from, the model cache, the download
"""

from core.dalle_vae.files import (
    CACHE_KEY,
    TINY,
    TINY_FORMAT_VERSION,
    download,
    ensure_tiny_vae,
    get_vae,
    tiny_vae_dir,
    vae_dir,
)
from core.dalle_vae.network import (
    BEIT_TOKENIZER_RESAMPLE,
    BEIT_TOKENIZER_SIZE,
    DOWNSAMPLE,
    GROUP_WIDTHS,
    LOGIT_LAPLACE_EPS,
    DalleVAE,
    classes,
    map_pixels,
    to_uint8,
    tokenizer_view,
    unmap_pixels,
)
from core.dalle_vae.weights import (
    NAME,
    PICKLED,
    TINY_FILES,
    URLS,
    build_decoder,
    build_encoder,
    files_present,
    load_vae,
    read_weights,
)

__all__ = [
    "BEIT_TOKENIZER_RESAMPLE",
    "BEIT_TOKENIZER_SIZE",
    "CACHE_KEY",
    "DOWNSAMPLE",
    "GROUP_WIDTHS",
    "LOGIT_LAPLACE_EPS",
    "NAME",
    "PICKLED",
    "TINY",
    "TINY_FILES",
    "TINY_FORMAT_VERSION",
    "URLS",
    "DalleVAE",
    "build_decoder",
    "build_encoder",
    "classes",
    "download",
    "ensure_tiny_vae",
    "files_present",
    "get_vae",
    "load_vae",
    "map_pixels",
    "read_weights",
    "tiny_vae_dir",
    "to_uint8",
    "tokenizer_view",
    "unmap_pixels",
    "vae_dir",
]
