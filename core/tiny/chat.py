"""A tiny ViP-LLaVA: CLIP vision tower + Llama text model, and a LlavaProcessor (the class of
llava-hf/vip-llava-7b-hf) whose tokenizer is trained on the shipped corpus.

The image processor keeps the real geometry (336 px, patches of 14, 576 image tokens) and the
tokenizer has the real special tokens in the real order (`<unk>`, `<s>`, `</s>`, then `<image>` and
`<pad>` after the vocabulary), so that processor -> `generate` -> decode runs exactly as with the real
checkpoint (the words are real, the answers are random).
"""

from __future__ import annotations

from typing import Any

from core.tiny.common import TINY_LAYERS, clip_image_processor
from core.tiny.text import train_bpe

IMAGE_SIZE = 336
PATCH_SIZE = 14
LLAMA_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
VISION_LAYERS = 5
VISION_FEATURE_LAYERS = [-2, -3, -4, -5, 1]
"""The real model concatenates CLIP-L/336 layers -2, -5, -8, -11 and 6 (of 24); these are the same
idea for a 5-layer tower: four from the top and one from the bottom."""


def tiny_llama_tokenizer() -> Any:
    """A Llama tokenizer (BOS added) with `<image>` then `<pad>` added after the vocabulary, as the
    conversion of llava-hf/vip-llava-7b-hf adds them."""
    from transformers import LlamaTokenizer

    from core.chat import SYSTEM_PROMPT

    vocab, merges = train_bpe(
        LLAMA_SPECIAL_TOKENS, byte_level=False, extra_lines=(SYSTEM_PROMPT, "###Human: ###Assistant:")
    )
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return tokenizer


def tiny_processor() -> Any:
    from transformers import LlavaProcessor

    return LlavaProcessor(
        image_processor=clip_image_processor(IMAGE_SIZE),
        tokenizer=tiny_llama_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def vip_llava_config(tokenizer: Any, vision: dict[str, Any], text: dict[str, Any], **extra: Any) -> Any:
    """A VipLlavaConfig of a CLIP vision tower and a Llama text model of the given sizes, with the
    tokenizer's special ids (`<image>`, BOS, EOS, pad) and llava-hf/vip-llava-7b-hf's context of 4096
    tokens; `extra` goes to VipLlavaConfig (feature layers, projector epsilon)."""
    from transformers import CLIPVisionConfig, LlamaConfig, VipLlavaConfig

    special = {name: getattr(tokenizer, name) for name in ("bos_token_id", "eos_token_id", "pad_token_id")}
    config = VipLlavaConfig(
        vision_config=CLIPVisionConfig(**vision),
        text_config=LlamaConfig(max_position_embeddings=4096, **text, **special),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        **extra,
    )
    config.pad_token_id = tokenizer.pad_token_id
    return config


def tiny_vip_llava() -> tuple[Any, Any]:
    """(config, processor) of a tiny VipLlavaForConditionalGeneration."""
    processor = tiny_processor()
    tokenizer = processor.tokenizer
    vision = {
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "projection_dim": 32,
        **(TINY_LAYERS | {"num_hidden_layers": VISION_LAYERS}),
    }
    text = {"vocab_size": len(tokenizer), **TINY_LAYERS, "num_key_value_heads": 2}
    return vip_llava_config(tokenizer, vision, text, vision_feature_layer=VISION_FEATURE_LAYERS), processor
