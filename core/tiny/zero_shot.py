"""A tiny VisionTextDualEncoder like clip-italian/clip-italian: a CLIP vision tower (224 px, patches of 32)
and a BERT text model, projected into 512 dimensions, with a VisionTextDualEncoderProcessor whose
tokenizer is an uncased WordPiece trained offline on the Italian corpus the project ships
(`assets/tiny-corpus-it.txt`).

The processor keeps the real image settings (CLIP's resize to 224 on the short side, bicubic, centre
crop 224, CLIP mean/std) and the tokenizer the real special tokens and lower-casing, so that processor
-> encoders -> similarities run exactly as with the real checkpoint (the words are real Italian word
pieces, the similarities are random).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from core.tiny.common import TINY_LAYERS, clip_image_processor

CORPUS = Path(__file__).resolve().parent.parent.parent / "assets" / "tiny-corpus-it.txt"
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TINY_VOCAB_SIZE = 1000
IMAGE_SIZE = 224
PATCH_SIZE = 32
PROJECTION_DIM = 512
LOGIT_SCALE_INIT = 1.0
MODEL_MAX_LENGTH = 512


def train_wordpiece(vocab_size: int = TINY_VOCAB_SIZE) -> dict[str, int]:
    """The vocabulary of an uncased WordPiece (BERT's normaliser and pre-tokeniser) trained on the shipped
    Italian corpus; the special tokens get ids 0-4 in BERT's order, and every lower-case letter, digit and
    ASCII punctuation mark is in it (other characters read as [UNK], as rare ones do in the real vocabulary)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(BERT_SPECIAL_TOKENS),
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
        show_progress=False,
    )
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    characters = string.ascii_lowercase + string.digits
    # every letter and digit also as a word-inner piece ("##x"), so that any ASCII word has a spelling
    tokenizer.train_from_iterator([*lines, characters, characters[::-1]], trainer=trainer)
    return tokenizer.get_vocab()


def tiny_italian_bert_tokenizer() -> Any:
    """A BertTokenizer as dbmdz/bert-base-italian-xxl-uncased's: lower-cased, accents handled as BERT's
    default (stripped when lower-casing), [CLS] ... [SEP], at most 512 tokens."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=train_wordpiece(), do_lower_case=True, model_max_length=MODEL_MAX_LENGTH)


def tiny_processor() -> Any:
    from transformers import VisionTextDualEncoderProcessor

    return VisionTextDualEncoderProcessor(
        image_processor=clip_image_processor(IMAGE_SIZE), tokenizer=tiny_italian_bert_tokenizer()
    )


def tiny_clip_italian() -> tuple[Any, Any]:
    """(config, processor) of a tiny VisionTextDualEncoderModel with clip-italian's geometry, projection
    size and logit_scale_init_value."""
    from transformers import BertConfig, CLIPVisionConfig, VisionTextDualEncoderConfig

    processor = tiny_processor()
    tokenizer = processor.tokenizer
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **TINY_LAYERS)
    text = BertConfig(
        vocab_size=len(tokenizer),
        **TINY_LAYERS,
        max_position_embeddings=MODEL_MAX_LENGTH,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = VisionTextDualEncoderConfig(
        vision_config=vision, text_config=text, projection_dim=PROJECTION_DIM, logit_scale_init_value=LOGIT_SCALE_INIT
    )
    return config, processor
