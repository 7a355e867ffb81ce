"""Visual prompt chat with ViP-LLaVA: marks drawn on the image, a multi-turn conversation, answers streamed.

The marks are drawn onto the RGB image (core.visual_prompts), the image is padded to a square with
CLIP's mean colour and resized to 336×336 (ViP-LLaVA was trained with LLaVA's "pad" aspect ratio),
and the prompt follows the format of the model card. processor -> `generate` (streamed, stopping at
the next "###") -> decode, returning plain Python.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from core import chat_memory, checks
from core.backend import runs_in
from core.chat_memory import available_bytes, check_memory
from core.errors import InputError, ModelUnavailableError
from core.generation import explicit
from core.lazy import torch
from core.models import (
    LoadedModel,
    ModelCache,
    get_cache,
    load_for,
    ms,
)
from core.registry import ModelSpec, get_spec, specs_for
from core.settings import Settings, get_settings
from core.streaming import SEED_LOCK, GenerationStream, last
from core.visual_prompts import Shape, draw

TASK = "chat"
DEFAULT_MODEL = "vip-llava-7b"
SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
IMAGE_TOKEN = "<image>"
SEPARATOR = "###"
MODEL_SIDE = 336
PAD_COLOR = (122, 116, 104)
"""CLIP's mean colour (0.481, 0.458, 0.408) × 255, as LLaVA's `expand2square` pads."""
MAX_TURNS = 20
MAX_ANSWER_CHARS = 20_000

History = list[tuple[str, str]]


def chat_models() -> list[ModelSpec]:
    return specs_for(TASK)


def build_prompt(question: str, history: Sequence[tuple[str, str]] = ()) -> str:
    """The prompt text exactly as ViP-LLaVA's model card writes it; the image comes with the first question."""
    turns = [*history, (question, None)]
    text = SYSTEM_PROMPT
    for index, (asked, answer) in enumerate(turns):
        image = f"{IMAGE_TOKEN}\n" if index == 0 else ""
        text += f"{SEPARATOR}Human: {image}{asked}{SEPARATOR}Assistant:"
        if answer is not None:
            text += f" {answer}"
    return text


def clean_answer(text: str) -> str:
    """The answer without what the model wrote after it ("###Human: ..." starts a new turn)."""
    return text.split(SEPARATOR, 1)[0].strip()


@dataclass(frozen=True)
class ChatOptions:
    """Decoding: temperature 0 is greedy; above 0 samples with top-p, repeatably for one seed."""

    temperature: float = 0.2
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0

    def generate_kwargs(self) -> dict[str, Any]:
        """Every setting that changes the answer (core.generation), so none stored in the checkpoint applies."""
        if self.temperature == 0:
            return explicit(max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        return explicit(
            max_new_tokens=self.max_new_tokens,
            do_sample=True,
            num_beams=1,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=0,
        )


def validate_options(
    temperature: Any = 0.2,
    top_p: Any = 0.9,
    max_new_tokens: Any = 256,
    seed: Any = 0,
    *,
    settings: Settings | None = None,
) -> ChatOptions:
    """Check the decoding settings; raise InputError for one the model cannot use."""
    limit = (settings or get_settings()).chat_max_new_tokens
    return ChatOptions(
        temperature=checks.number(temperature, "Temperature", 0, 2),
        top_p=checks.number(top_p, "Top-p", 0, 1, low_open=True),
        max_new_tokens=checks.whole(max_new_tokens, "Max new tokens", 1, limit),
        seed=checks.seed(seed),
    )


def validate_question(question: Any, settings: Settings | None = None) -> str:
    limit = (settings or get_settings()).max_text_chars
    if not isinstance(question, str) or not question.strip():
        raise InputError("Type a question about the image.")
    if len(question) > limit:
        raise InputError(f"The question is {len(question)} characters long; the limit is {limit}.")
    return question.strip()


def validate_history(history: Any, settings: Settings | None = None) -> History:
    """A conversation as (question, answer) pairs, oldest first (None for none)."""
    if history is None:
        return []
    if not isinstance(history, list | tuple):
        raise InputError("The history must be a list of [question, answer] pairs.")
    if len(history) >= MAX_TURNS:
        raise InputError(f"The conversation has reached {MAX_TURNS} questions: clear it to start a new one.")
    pairs = []
    for turn in history:
        if not (isinstance(turn, list | tuple) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise InputError("The history must be a list of [question, answer] pairs of text.")
        question, answer = turn
        if len(answer) > MAX_ANSWER_CHARS:
            raise InputError(f"An answer in the history is longer than {MAX_ANSWER_CHARS} characters.")
        pairs.append((validate_question(question, settings), answer.strip()))
    return pairs


def model_view(image: Image.Image, shapes: Sequence[Shape] = ()) -> Image.Image:
    """Exactly the image the model sees: the marks drawn on the RGB image (widths scaled to its own
    size), padded to a square with CLIP's mean colour, resized to 336×336 (bicubic)."""
    marked = draw(image, shapes)
    side = max(marked.size)
    square = Image.new("RGB", (side, side), PAD_COLOR)
    square.paste(marked, ((side - marked.width) // 2, (side - marked.height) // 2))
    return square.resize((MODEL_SIDE, MODEL_SIDE), Image.Resampling.BICUBIC)


# --- chat -------------------------------------------------------------------------------------------


@dataclass
class ChatResult:
    question: str
    answer: str
    history: History
    """The conversation including this turn (once done), as (question, answer) pairs."""
    prompt: str
    key: str
    device: str
    shapes: list[Shape] = field(default_factory=list)
    preprocess_ms: float = 0.0
    generate_ms: float = 0.0
    load_ms: float | None = None
    new_tokens: int = 0
    prompt_tokens: int = 0
    """Tokens the model reads before it writes: the image's 576 and the prompt's."""
    weights: str = ""
    """The form the model runs in ("float32", "int8 weights (vision tower in float32)", ...)."""
    done: bool = True
    """False for the partial results of a stream."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: answer, question, history [[q, a]], prompt, shapes, model, device, weights, token
        counts, timings, done."""
        return {
            "answer": self.answer,
            "question": self.question,
            "history": [list(turn) for turn in self.history],
            "prompt": self.prompt,
            "shapes": [shape.to_dict() for shape in self.shapes],
            "model": self.key,
            "device": self.device,
            "weights": self.weights,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "timings_ms": {"preprocess": self.preprocess_ms, "generate": self.generate_ms, "load": self.load_ms},
            "done": self.done,
        }


def _load(model_key: str, cache: ModelCache | None) -> tuple[LoadedModel, float | None]:
    spec = get_spec(model_key, TASK)
    cache = cache or get_cache()
    if model_key not in cache.loaded_keys():
        # the cache unloads the other models if memory runs out while loading
        check_memory(spec, available=available_bytes() + cache.total_bytes())
    loaded, load_ms = load_for(model_key, TASK, cache)
    complete_processor(loaded.processor, loaded.model.config)
    return loaded, load_ms


def complete_processor(processor: Any, config: Any) -> None:
    """Fill the fields that processor files saved by older transformers versions lack, from the model's
    config: without `patch_size` transformers 5 cannot count the image tokens, and without
    `vision_feature_select_strategy` and `num_additional_image_tokens` it inserts one too few.
    ViP-LLaVA reads every patch feature of its CLIP tower without the class token ("default")."""
    vision = config.vision_config
    if processor.patch_size is None:
        processor.patch_size = vision.patch_size
    if processor.vision_feature_select_strategy is None:
        processor.vision_feature_select_strategy = getattr(config, "vision_feature_select_strategy", "default")
    if processor.num_additional_image_tokens == 0 and vision.model_type == "clip_vision_model":
        processor.num_additional_image_tokens = 1  # CLIP's class token, dropped again by "default"


def image_feature_count(config: Any) -> int:
    """How many image features the model puts in place of the image tokens: one per patch."""
    vision = config.vision_config
    return (vision.image_size // vision.patch_size) ** 2


def check_image_tokens(input_ids: torch.Tensor, config: Any) -> None:
    """The prompt must hold exactly one image token per image feature, or generate fails deep inside."""
    found = int((input_ids == config.image_token_index).sum())
    expected = image_feature_count(config)
    if found != expected:
        raise ModelUnavailableError(
            f"The processor put {found} image tokens in the prompt, but the model makes {expected} image features: "
            "its processor files do not match the model (patch size, feature selection strategy or extra tokens)."
        )


def _inputs(loaded: LoadedModel, view: Image.Image, prompt: str, options: ChatOptions) -> dict[str, torch.Tensor]:
    inputs = loaded.processor(images=view, text=prompt, return_tensors="pt")
    config = loaded.model.config.get_text_config()
    length = int(inputs["input_ids"].shape[1])
    if length + options.max_new_tokens > config.max_position_embeddings:
        raise InputError(
            f"The conversation is too long for the model ({length} tokens with the image, plus "
            f"{options.max_new_tokens} new ones; it reads at most {config.max_position_embeddings}). "
            "Clear the chat or ask for fewer new tokens."
        )
    check_image_tokens(inputs["input_ids"], loaded.model.config)
    inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
    return {name: value.to(loaded.device) for name, value in inputs.items()}


def _generate(loaded: LoadedModel, inputs: dict[str, torch.Tensor], options: ChatOptions, **kwargs: Any) -> Any:
    tokenizer = loaded.processor.tokenizer
    kwargs |= options.generate_kwargs()
    kwargs |= {"stop_strings": [SEPARATOR], "tokenizer": tokenizer, "pad_token_id": tokenizer.pad_token_id}
    with torch.inference_mode():
        if options.temperature == 0:
            return loaded.model.generate(**inputs, **kwargs)
        with SEED_LOCK:
            torch.manual_seed(options.seed)
            return loaded.model.generate(**inputs, **kwargs)


@runs_in("chat")
def stream_chat(
    image: Image.Image,
    shapes: Sequence[Shape],
    question: str,
    history: Sequence[tuple[str, str]] = (),
    options: ChatOptions | None = None,
    *,
    model_key: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
) -> Iterator[ChatResult]:
    """Answer `question` about the marked image token by token: partial results (`done=False`), then the
    final one, whose answer is the decoded new tokens cut at "###" and whose history includes this turn.
    Closing the iterator stops generation at the next token."""
    options = options or ChatOptions()
    question = validate_question(question)
    history = validate_history(list(history))
    prompt = build_prompt(question, history)
    loaded, load_ms = _load(model_key, cache)
    start = time.perf_counter()
    inputs = _inputs(loaded, model_view(image, shapes), prompt, options)
    prompt_length = int(inputs["input_ids"].shape[1])
    preprocessed = time.perf_counter()
    partial = ChatResult(
        question=question,
        answer="",
        history=history,
        prompt=prompt,
        key=loaded.spec.key,
        device=str(loaded.device),
        shapes=list(shapes),
        preprocess_ms=ms(preprocessed - start),
        load_ms=load_ms,
        prompt_tokens=prompt_length,
        weights=chat_memory.form_name(loaded),
        done=False,
    )
    yield partial  # the long first step (reading the image and the prompt) starts: say so
    tokenizer = loaded.processor.tokenizer
    stream = GenerationStream(
        lambda **kwargs: _generate(loaded, inputs, options, **kwargs), tokenizer, name=f"chat-{model_key}"
    )
    with stream:
        text, shown = "", ""
        for piece in stream:
            text += piece
            answer = clean_answer(text)
            if answer != shown:
                shown = answer
                yield replace(partial, answer=answer, generate_ms=ms(time.perf_counter() - preprocessed))
    new_tokens = stream.output[0, prompt_length:]
    answer = clean_answer(tokenizer.decode(new_tokens, skip_special_tokens=True))
    yield replace(
        partial,
        answer=answer,
        history=[*history, (question, answer)],
        generate_ms=ms(time.perf_counter() - preprocessed),
        new_tokens=int(new_tokens.numel()),
        done=True,
    )


def chat(*args: Any, **kwargs: Any) -> ChatResult:
    """The final result of `stream_chat` (same arguments)."""
    return last(stream_chat(*args, **kwargs))
