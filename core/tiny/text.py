"""Tiny tokenizers and tiny image-to-text models, built offline.

The tokenizers are BPEs trained with the `tokenizers` package on a few paragraphs the project ships
(`assets/tiny-corpus.txt`), wrapped in the same tokenizer classes the real checkpoints use, so that
image processor -> encoder -> decoder -> `tokenizer.decode` runs exactly as with real weights (the
words are real, the captions are random).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from core.tiny.common import BILINEAR, TINY_LAYERS, square_resize

CORPUS = Path(__file__).resolve().parent.parent.parent / "assets" / "tiny-corpus.txt"
TINY_VOCAB_SIZE = 1000
GPT2_SPECIAL_TOKENS = ("<|endoftext|>",)
ROBERTA_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def train_bpe(
    special_tokens: tuple[str, ...],
    *,
    byte_level: bool,
    extra_lines: tuple[str, ...] = (),
    vocab_size: int = TINY_VOCAB_SIZE,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a BPE trained on the shipped corpus and `extra_lines`; the special tokens get
    ids 0, 1, ... in order.

    byte_level: GPT-2/RoBERTa style (bytes mapped to printable characters; the alphabet is the corpus's
    own bytes, not all 256, so a random tiny decoder writes word pieces rather than lone bytes that
    decode to U+FFFD). Otherwise SentencePiece style as Llama's ("▁" marks a word start; every
    printable ASCII character is in the vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    options: dict[str, Any] = {}
    if byte_level:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=special_tokens[0]))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        options["initial_alphabet"] = list(string.ascii_letters + string.digits + string.punctuation)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=list(special_tokens), show_progress=False, **options
    )
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer.train_from_iterator([*lines, *extra_lines], trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def train_byte_level_bpe(
    special_tokens: tuple[str, ...], vocab_size: int = TINY_VOCAB_SIZE
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    return train_bpe(special_tokens, byte_level=True, vocab_size=vocab_size)


def tiny_gpt2_tokenizer() -> Any:
    """A GPT-2 tokenizer (byte-level BPE, `<|endoftext|>` as bos, eos, unk and pad) of about 1000 tokens."""
    from transformers import GPT2Tokenizer

    vocab, merges = train_byte_level_bpe(GPT2_SPECIAL_TOKENS)
    end = GPT2_SPECIAL_TOKENS[0]
    return GPT2Tokenizer(vocab=vocab, merges=merges, unk_token=end, bos_token=end, eos_token=end, pad_token=end)


def tiny_roberta_tokenizer() -> Any:
    """A RoBERTa tokenizer (byte-level BPE with <s>, <pad>, </s>, <unk>, <mask>) as TrOCR uses."""
    from transformers import RobertaTokenizer

    vocab, merges = train_byte_level_bpe(ROBERTA_SPECIAL_TOKENS)
    return RobertaTokenizer(vocab=vocab, merges=merges)


def _tiny_vit(image_size: int, qkv_bias: bool) -> Any:
    from transformers import ViTConfig

    return ViTConfig(image_size=image_size, patch_size=16, qkv_bias=qkv_bias, **TINY_LAYERS)


def vit_processor(image_size: int) -> Any:
    """ViT's image processor as both caption checkpoints save it: a plain resize, mean = std = 0.5."""
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(**square_resize(image_size, BILINEAR))


def tiny_vit_gpt2() -> tuple[Any, Any, Any]:
    """(config, image processor, tokenizer) of a tiny ViT encoder + GPT-2 decoder, like
    nlpconnect/vit-gpt2-image-captioning: 224 px; decoding starts at `<|endoftext|>`, which is also the
    end and padding token (set at the top level of the config, with no top-level bos, as the real one)."""
    from transformers import GPT2Config, VisionEncoderDecoderConfig

    tokenizer = tiny_gpt2_tokenizer()
    end = tokenizer.eos_token_id
    decoder = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2, bos_token_id=end, eos_token_id=end
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_tiny_vit(224, qkv_bias=True), decoder)
    config.decoder_start_token_id = end
    config.eos_token_id = end
    config.pad_token_id = end
    return config, vit_processor(224), tokenizer


def tiny_trocr() -> tuple[Any, Any]:
    """(config, processor) of a tiny ViT encoder (no query/key/value bias) + TrOCR decoder with a
    TrOCRProcessor (384 px image processor + RoBERTa tokenizer), like microsoft/trocr-base-*: the special
    tokens and `use_cache=False` live in the decoder's config only; decoding starts at `</s>`."""
    from transformers import TrOCRConfig, TrOCRProcessor, VisionEncoderDecoderConfig

    tokenizer = tiny_roberta_tokenizer()
    decoder = TrOCRConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        use_cache=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_tiny_vit(384, qkv_bias=False), decoder)
    return config, TrOCRProcessor(image_processor=vit_processor(384), tokenizer=tokenizer)


BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(special_tokens: tuple[str, ...], vocab_size: int = TINY_VOCAB_SIZE) -> dict[str, int]:
    """The vocabulary of a lower-casing WordPiece (BERT's normaliser and pre-tokeniser, "##" continuation
    pieces) trained on the shipped corpus; the special tokens get ids 0, 1, ... in order and every
    printable ASCII character is in it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
        show_progress=False,
    )
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return json.loads(tokenizer.to_str())["model"]["vocab"]


def tiny_bert_tokenizer() -> Any:
    """A BertTokenizer (lower case, [CLS] ... [SEP], 512 positions) like bert-base-uncased's, with a
    vocabulary of about 1000 word pieces."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=train_wordpiece(BERT_SPECIAL_TOKENS), do_lower_case=True, model_max_length=512)
