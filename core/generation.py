"""Every `generate` setting passed explicitly, and the settings that actually ran.

A checkpoint may store decoding settings (TrOCR's config.json carries num_beams=4, length_penalty=2.0,
no_repeat_ngram_size=3, max_length=64, early_stopping=True); `generate` applies stored settings to
every call that does not set them, silently. The app sets every setting that changes the output, so
what runs is what the tab shows, and returns the effective settings with each result. It also asks for
the key/value cache, which TrOCR's stored decoder config switches off (`use_cache: false`): without it
every new token re-reads the whole caption.
"""

from __future__ import annotations

import copy
from typing import Any

NEUTRAL = {
    "min_length": 0,
    "min_new_tokens": None,
    "early_stopping": False,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
    "sequence_bias": None,
    "renormalize_logits": False,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "num_return_sequences": 1,
    "max_length": None,
}
"""Settings that change what `generate` writes, at values that change nothing."""

NEUTRAL_SAMPLING = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "typical_p": 1.0,
    "min_p": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
}
"""The same for sampling (top-k off); greedy and beam search ignore them and transformers warns if set."""
SAMPLING_ONLY = ("temperature", "top_k", "top_p")

REPORTED = (
    "do_sample",
    "num_beams",
    "num_return_sequences",
    "max_new_tokens",
    "min_length",
    "early_stopping",
    "length_penalty",
    "no_repeat_ngram_size",
    "repetition_penalty",
    "temperature",
    "top_k",
    "top_p",
    "use_cache",
    "decoder_start_token_id",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
"""The effective settings returned with a result: decoding, and the special tokens from the checkpoint."""


def explicit(**settings: Any) -> dict[str, Any]:
    """`generate` keyword arguments: `settings` over the neutral value of every other output-changing setting."""
    sampling = NEUTRAL_SAMPLING if settings.get("do_sample") else {}
    return {**NEUTRAL, **sampling, "use_cache": True, **settings}


def effective_settings(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What `generate(**kwargs)` runs with on `model`: its stored generation config under the call's arguments
    (the order transformers applies them in)."""
    config = copy.deepcopy(model.generation_config)
    config.update(**kwargs)
    names = [name for name in REPORTED if config.do_sample or name not in SAMPLING_ONLY]
    return {name: _plain(getattr(config, name, None)) for name in names}


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value.item() if hasattr(value, "item") else value
