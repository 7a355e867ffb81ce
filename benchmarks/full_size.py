"""Full-size checkpoints with random weights, built from the real architectures' configs and saved
to a local folder with the processors the tiny builders configure like the real ones.

Speed does not depend on weight values, so these stand in for the Hub checkpoints (which cannot be
downloaded everywhere): `local_loader` then loads them through the app's own `core.models.load_model`,
so the first call's load time is the one a user would see from a local disk.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.models import LoadedModel, _spread_random_weights, load_model
from core.registry import ModelSpec, get_spec
from core.settings import get_settings

ConfigBuilder = Callable[[Any], Any]
"""The tiny config of a spec (for its labels and special tokens) -> the full-size config."""


def _labels(tiny: Any) -> dict[str, Any]:
    return {"id2label": tiny.id2label, "label2id": tiny.label2id}


def _beit(**extra: Any) -> ConfigBuilder:
    def build(tiny: Any) -> Any:
        from transformers import BeitConfig

        return BeitConfig(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            image_size=tiny.image_size,
            patch_size=16,
            use_relative_position_bias=True,
            layer_scale_init_value=0.1,
            **extra,
            **_labels(tiny),
        )

    return build


def _levit(hidden_sizes: list[int], heads: list[int], depths: list[int], key_dim: list[int]) -> ConfigBuilder:
    def build(tiny: Any) -> Any:
        from transformers import LevitConfig

        return LevitConfig(
            image_size=224,
            hidden_sizes=hidden_sizes,
            num_attention_heads=heads,
            depths=depths,
            key_dim=key_dim,
            **_labels(tiny),
        )

    return build


def _perceiver(tiny: Any) -> Any:
    """deepmind/vision-perceiver-*: 512 latents x 1024, 8 blocks of 6 self-attends (shared weights)."""
    from transformers import PerceiverConfig

    return PerceiverConfig(
        num_latents=512,
        d_latents=1024,
        d_model=tiny.d_model,
        num_blocks=8,
        num_self_attends_per_block=6,
        num_self_attention_heads=8,
        num_cross_attention_heads=1,
        image_size=224,
        **_labels(tiny),
    )


def _mask2former_swin_small(tiny: Any) -> Any:
    from transformers import Mask2FormerConfig

    from core.tiny.segment import swin_backbone

    backbone = swin_backbone(
        image_size=224, embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7
    )
    return Mask2FormerConfig(backbone_config=backbone, num_queries=100, **_labels(tiny))  # defaults: the paper's head


def _vit_gpt2(tiny: Any) -> Any:
    from transformers import GPT2Config, VisionEncoderDecoderConfig, ViTConfig

    encoder = ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    special = {k: getattr(tiny.decoder, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    decoder = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, **special)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = tiny.decoder_start_token_id
    config.pad_token_id, config.eos_token_id = tiny.pad_token_id, tiny.eos_token_id
    return config


def _clip_italian(tiny: Any) -> Any:
    """clip-italian/clip-italian: CLIP ViT-B/32 vision tower, BERT-base with dbmdz's 32102-token Italian
    vocabulary, 512-wide projections (docs/checkpoints.md)."""
    from transformers import BertConfig, CLIPVisionConfig, VisionTextDualEncoderConfig

    vision = CLIPVisionConfig(
        image_size=224,
        patch_size=32,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
    )
    text = BertConfig(vocab_size=32102, max_position_embeddings=512, pad_token_id=tiny.text_config.pad_token_id)
    return VisionTextDualEncoderConfig(
        vision_config=vision, text_config=text, projection_dim=512, logit_scale_init_value=tiny.logit_scale_init_value
    )


FULL_SIZE: dict[str, ConfigBuilder] = {
    "beit-base-224": _beit(use_mean_pooling=True),
    "beit-base-224-22k": _beit(use_mean_pooling=True),
    "levit-128S": _levit([128, 256, 384], [4, 6, 8], [2, 3, 4], [16, 16, 16]),
    "levit-384": _levit([384, 512, 768], [6, 9, 12], [4, 4, 4], [32, 32, 32]),
    "perceiver-learned": _perceiver,
    "perceiver-fourier": _perceiver,
    "perceiver-conv": _perceiver,
    "beit-base-ade-640": _beit(
        use_auxiliary_head=True, auxiliary_channels=256, out_indices=[3, 5, 7, 11], pool_scales=[1, 2, 3, 6]
    ),
    "mask2former-swin-small-coco-instance": _mask2former_swin_small,
    "mask2former-swin-small-coco-panoptic": _mask2former_swin_small,
    "mask2former-swin-small-ade-semantic": _mask2former_swin_small,
    "vit-gpt2": _vit_gpt2,
    "clip-italian": _clip_italian,
}


def _full_vocabulary(tokenizer: Any, size: int) -> Any:
    """The tiny GPT-2 tokenizer grown to `size` tokens, so every id a full-size decoder writes decodes."""
    from transformers import GPT2Tokenizer

    vocab = dict(tokenizer.get_vocab())
    for index in range(len(vocab), size):
        vocab[f"extra{index}"] = index
    merges = [tuple(merge.split()) if isinstance(merge, str) else tuple(merge) for merge in tokenizer.bpe_ranks]
    end = tokenizer.eos_token
    return GPT2Tokenizer(vocab=vocab, merges=merges, unk_token=end, bos_token=end, eos_token=end, pad_token=end)


def save_full_size(key: str, folder: Path) -> Path:
    """Build the full-size random checkpoint of registry model `key` into `folder` (once)."""
    import transformers

    target = folder / key
    if (target / "config.json").exists():
        return target
    spec = get_spec(key)
    tiny_config, *preprocessors = spec.build_tiny()
    config = FULL_SIZE[key](tiny_config)
    model = getattr(transformers, spec.model_class)(config)
    # the library's initialisation leaves some heads (LeViT's) near zero, so that labels would tie
    _spread_random_weights(model, seed=zlib.crc32(key.encode()))
    if key == "vit-gpt2":
        preprocessors = [
            _full_vocabulary(p, config.decoder.vocab_size) if hasattr(p, "bpe_ranks") else p for p in preprocessors
        ]
    model.save_pretrained(target)
    for preprocessor in preprocessors:
        preprocessor.save_pretrained(target)
    return target


def local_loader(folder: Path) -> Callable[[ModelSpec], LoadedModel]:
    """A ModelCache loader: the app's `load_model` on the saved full-size folder of each spec (not tiny)."""
    settings = dataclasses.replace(get_settings(), tiny=False)

    def load(spec: ModelSpec) -> LoadedModel:
        local = dataclasses.replace(spec, hub_id=str(save_full_size(spec.key, folder)))
        loaded = load_model(local, settings)
        return dataclasses.replace(loaded, spec=spec)

    return load
