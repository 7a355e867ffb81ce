"""Tiny tokenizers and tiny image-to-text models for tiny mode, built offline.

The tokenizers are byte-level BPEs trained with the `tokenizers` package on a few paragraphs the
project ships (`assets/tiny-corpus.txt`), wrapped in the same tokenizer classes the real
checkpoints use, so that image processor -> encoder -> decoder -> `tokenizer.decode` runs exactly
as with real weights (the words are real, the captions are random).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent.parent / "assets" / "tiny-corpus.txt"
TINY_VOCAB_SIZE = 1000
GPT2_SPECIAL_TOKENS = ("<|endoftext|>",)
ROBERTA_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def train_byte_level_bpe(
    special_tokens: tuple[str, ...], vocab_size: int = TINY_VOCAB_SIZE
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a byte-level BPE trained on the shipped corpus; special tokens get ids 0, 1, ...

    The alphabet is the corpus's own bytes (printable ASCII), not all 256: a random tiny decoder then
    writes word pieces, not lone bytes that decode to U+FFFD."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def tiny_gpt2_tokenizer() -> Any:
    """A GPT-2 tokenizer (byte-level BPE, `<|endoftext|>` as bos, eos and pad) of about 1000 tokens."""
    from transformers import GPT2Tokenizer

    vocab, merges = train_byte_level_bpe(GPT2_SPECIAL_TOKENS)
    end = GPT2_SPECIAL_TOKENS[0]
    return GPT2Tokenizer(vocab=vocab, merges=merges, unk_token=end, bos_token=end, eos_token=end, pad_token=end)


def tiny_roberta_tokenizer() -> Any:
    """A RoBERTa tokenizer (byte-level BPE with <s>, <pad>, </s>, <unk>, <mask>) as TrOCR uses."""
    from transformers import RobertaTokenizer

    vocab, merges = train_byte_level_bpe(ROBERTA_SPECIAL_TOKENS)
    return RobertaTokenizer(vocab=vocab, merges=merges)


def _tiny_vit(image_size: int) -> Any:
    from transformers import ViTConfig

    return ViTConfig(
        image_size=image_size,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )


def _vit_processor(image_size: int) -> Any:
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def _with_special_tokens(config: Any, tokenizer: Any, start_token_id: int) -> Any:
    config.decoder_start_token_id = start_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    return config


def tiny_vit_gpt2() -> tuple[Any, Any, Any]:
    """(config, image processor, tokenizer) of a tiny ViT encoder + GPT-2 decoder, like
    nlpconnect/vit-gpt2-image-captioning (224 px, decoding starts at `<|endoftext|>`)."""
    from transformers import GPT2Config, VisionEncoderDecoderConfig

    tokenizer = tiny_gpt2_tokenizer()
    decoder = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_tiny_vit(224), decoder)
    return _with_special_tokens(config, tokenizer, tokenizer.bos_token_id), _vit_processor(224), tokenizer


def tiny_trocr() -> tuple[Any, Any]:
    """(config, processor) of a tiny ViT encoder + TrOCR decoder with a TrOCRProcessor (384 px image
    processor + RoBERTa tokenizer), like microsoft/trocr-base-*: decoding starts at `</s>`."""
    from transformers import TrOCRConfig, TrOCRProcessor, VisionEncoderDecoderConfig

    tokenizer = tiny_roberta_tokenizer()
    decoder = TrOCRConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_tiny_vit(384), decoder)
    processor = TrOCRProcessor(image_processor=_vit_processor(384), tokenizer=tokenizer)
    return _with_special_tokens(config, tokenizer, tokenizer.eos_token_id), processor
