"""Visual prompt chat with ViP-LLaVA: marks drawn on the image, a multi-turn conversation, answers streamed.

The marks are drawn onto the RGB image (core.visual_prompts), the image is padded to a square with
CLIP's mean colour and resized to 336×336 (ViP-LLaVA was trained with LLaVA's "pad" aspect ratio),
and the prompt follows the format of the model card. processor -> `generate` (streamed, stopping at
the next "###") -> decode, returning plain Python.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from core.errors import InputError, ModelUnavailableError
from core.lazy import torch
from core.models import LoadedModel, ModelCache, ensure_tiny_model, get_cache, select_device, select_dtype
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
MAX_SEED = 2**31 - 1
MEMORY_MARGIN = 1.2
"""Weights times this: room for activations, the key/value cache and the processor."""

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
        if self.temperature == 0:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": 0,
        }


def _number(value: Any, what: str, low: float, high: float, whole: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    if bad or (whole and value != int(value)) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise InputError(f"{what} must be {kind} from {low:g} to {high:g}.")
    return int(value) if whole else float(value)


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
    top_p = _number(top_p, "Top-p", 0, 1)
    if top_p == 0:
        raise InputError("Top-p must be above 0.")
    return ChatOptions(
        temperature=_number(temperature, "Temperature", 0, 2),
        top_p=top_p,
        max_new_tokens=int(_number(max_new_tokens, "Max new tokens", 1, limit, whole=True)),
        seed=int(_number(seed, "Seed", 0, MAX_SEED, whole=True)),
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


# --- memory -----------------------------------------------------------------------------------------


def _weight_files(spec: ModelSpec, settings: Settings) -> list[Path]:
    if settings.tiny:
        return sorted(ensure_tiny_model(spec, settings).glob("*.safetensors"))
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(spec.hub_id, allow_patterns=["*.safetensors"], local_files_only=True)
    except Exception:
        return []
    return sorted(Path(folder).glob("*.safetensors"))


def parameter_count(spec: ModelSpec, settings: Settings | None = None) -> int:
    """Parameters of the weights on disk (safetensors headers; in tiny mode the tiny model is built
    first), or the registry's figure when a checkpoint is not downloaded yet."""
    from safetensors import safe_open

    files = _weight_files(spec, settings or get_settings())
    if not files:
        return int(spec.params_millions * 1e6)
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118
    return total


def four_bit(settings: Settings) -> bool:
    """Whether the chat model loads with 4-bit weights (PLAYGROUND_CHAT_4BIT=1, on CUDA only)."""
    return settings.chat_4bit and select_device(settings).type == "cuda"


def required_bytes(spec: ModelSpec, settings: Settings | None = None) -> int:
    """Memory needed to load and run `spec` on the configured device and dtype."""
    settings = settings or get_settings()
    device = select_device(settings)
    per_parameter = 0.6 if four_bit(settings) else select_dtype(device, settings).itemsize
    return int(parameter_count(spec, settings) * per_parameter * MEMORY_MARGIN)


def available_bytes(settings: Settings | None = None) -> int:
    """Free GPU memory on CUDA, available RAM on the CPU."""
    device = select_device(settings or get_settings())
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes < 10e9 else f"{nbytes / 1e9:.0f} GB"


def check_memory(spec: ModelSpec, settings: Settings | None = None, available: int | None = None) -> None:
    """Refuse with a clear message, before loading, when the model will not fit."""
    settings = settings or get_settings()
    needed = required_bytes(spec, settings)
    free = available_bytes(settings) if available is None else available
    if needed <= free:
        return
    if select_device(settings).type == "cuda":
        hint = "" if settings.chat_4bit else " Set PLAYGROUND_CHAT_4BIT=1 to load it with 4-bit weights (bitsandbytes)."
        where = "GPU memory"
    else:
        hint = " Run it on a GPU (float16), or start the app in tiny mode (PLAYGROUND_TINY=1) to try it."
        where = "RAM"
    raise ModelUnavailableError(
        f"{spec.name} needs about {_gb(needed)} of {where}, and only {_gb(free)} is free.{hint}"
    )


def device_notice(model_key: str = DEFAULT_MODEL, settings: Settings | None = None) -> str | None:
    """What running the real model on this machine's CPU costs (None on a GPU)."""
    settings = settings or get_settings()
    if select_device(settings).type == "cuda":
        return None
    spec = get_spec(model_key, TASK)
    fp32 = spec.params_millions * 1e6 * 4
    return (
        f"{spec.name} needs about {_gb(fp32)} of RAM in float32 on the CPU and answers slowly (tens of seconds "
        f"per answer); on a GPU it runs in float16 (about {_gb(fp32 / 2)} of GPU memory, or about "
        f"{_gb(fp32 / 6)} with PLAYGROUND_CHAT_4BIT=1)."
    )


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
    done: bool = True
    """False for the partial results of a stream."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: answer, question, history [[q, a]], prompt, shapes, model, device, timings, done."""
        return {
            "answer": self.answer,
            "question": self.question,
            "history": [list(turn) for turn in self.history],
            "prompt": self.prompt,
            "shapes": [shape.to_dict() for shape in self.shapes],
            "model": self.key,
            "device": self.device,
            "new_tokens": self.new_tokens,
            "timings_ms": {"preprocess": self.preprocess_ms, "generate": self.generate_ms, "load": self.load_ms},
            "done": self.done,
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _load(model_key: str, cache: ModelCache | None) -> tuple[LoadedModel, float | None]:
    spec = get_spec(model_key, TASK)
    cache = cache or get_cache()
    if model_key not in cache.loaded_keys():
        # the cache unloads the other models if memory runs out while loading
        check_memory(spec, available=available_bytes() + cache.total_bytes())
    loaded, was_loaded = cache.get(model_key)
    return loaded, _ms(loaded.load_seconds) if was_loaded else None


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
        preprocess_ms=_ms(preprocessed - start),
        load_ms=load_ms,
        done=False,
    )
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
                yield replace(partial, answer=answer, generate_ms=_ms(time.perf_counter() - preprocessed))
    new_tokens = stream.output[0, prompt_length:]
    answer = clean_answer(tokenizer.decode(new_tokens, skip_special_tokens=True))
    yield replace(
        partial,
        answer=answer,
        history=[*history, (question, answer)],
        generate_ms=_ms(time.perf_counter() - preprocessed),
        new_tokens=int(new_tokens.numel()),
        done=True,
    )


def chat(
    image: Image.Image,
    shapes: Sequence[Shape],
    question: str,
    history: Sequence[tuple[str, str]] = (),
    options: ChatOptions | None = None,
    *,
    model_key: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
) -> ChatResult:
    """The final result of `stream_chat`."""
    return last(stream_chat(image, shapes, question, history, options, model_key=model_key, cache=cache))
