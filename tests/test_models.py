"""Tests for core.models: the model cache (one load per model, parallel loads, LRU eviction),
device and dtype selection, and the error messages of a model that cannot be loaded."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
import transformers

import core.models
from core.errors import InputError, ModelUnavailableError, UserFacingError
from core.models import LoadedModel, ModelCache, get_cache, load_model, reset_cache, select_device, select_dtype
from core.registry import ModelSpec, get_spec
from core.settings import Settings, get_settings

# ModelCache.get looks keys up in the registry, so the fake models borrow real registry keys.
A, B, C, D = "beit-base-224", "levit-128S", "levit-128", "perceiver-conv"
BIG = "levit-384"


class FakeLoader:
    """Counts calls per key (under a lock), sleeps `delay` seconds and returns a LoadedModel."""

    def __init__(self, delay: float = 0.0, nbytes: dict[str, int] | None = None, default_nbytes: int = 100) -> None:
        self.delay = delay
        self.nbytes = nbytes or {}
        self.default_nbytes = default_nbytes
        self.calls: dict[str, int] = {}
        self.active = 0
        self.max_active = 0
        self.failures: dict[str, list[BaseException]] = {}
        self._lock = threading.Lock()

    def __call__(self, spec: ModelSpec) -> LoadedModel:
        with self._lock:
            self.calls[spec.key] = self.calls.get(spec.key, 0) + 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            pending = self.failures.get(spec.key)
            if pending:
                raise pending.pop(0)
            return LoadedModel(
                spec=spec,
                model=object(),
                processor=None,
                device=torch.device("cpu"),
                dtype=torch.float32,
                nbytes=self.nbytes.get(spec.key, self.default_nbytes),
                load_seconds=self.delay,
            )
        finally:
            with self._lock:
                self.active -= 1


def run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run `target(i)` in `count` threads released together; return the results in index order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def work(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors, errors
    return results


# --- ModelCache -----------------------------------------------------------------------------------


def test_concurrent_requests_for_one_key_load_it_once() -> None:
    loader = FakeLoader(delay=0.2)
    cache = ModelCache(10**9, loader=loader)
    results = run_threads(8, lambda _: cache.get(B))
    assert loader.calls == {B: 1}
    first = results[0][0]
    assert all(loaded is first for loaded, _ in results)
    assert sorted(was_loaded for _, was_loaded in results) == [False] * 7 + [True]
    assert cache.loads == {B: 1}
    assert cache.loaded_keys() == [B]
    assert first.spec is get_spec(B)


def test_different_keys_load_in_parallel() -> None:
    loader = FakeLoader(delay=0.3)
    cache = ModelCache(10**9, loader=loader)
    keys = [A, B, C, D]
    start = time.perf_counter()
    results = run_threads(4, lambda i: cache.get(keys[i]))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0  # serialised loads would take at least 1.2 s
    assert loader.max_active == 4
    assert loader.calls == dict.fromkeys(keys, 1)
    assert [loaded.spec.key for loaded, _ in results] == keys
    assert all(was_loaded for _, was_loaded in results)
    assert sorted(cache.loaded_keys()) == sorted(keys)


def test_budget_evicts_least_recently_used() -> None:
    loader = FakeLoader()
    cache = ModelCache(250, loader=loader)
    for key in (A, B, C):
        assert cache.get(key)[1] is True
    assert cache.loaded_keys() == [B, C]
    assert cache.total_bytes() == 200

    loaded_b, was_loaded = cache.get(B)  # touch B: C is now the least recently used
    assert was_loaded is False
    assert cache.loaded_keys() == [C, B]
    cache.get(D)
    assert cache.loaded_keys() == [B, D]
    assert cache.get(B) == (loaded_b, False)

    cache.get(A)  # A was evicted, so this loads it again
    assert cache.loaded_keys() == [B, A]
    assert cache.loads == {A: 2, B: 1, C: 1, D: 1}
    assert loader.calls == {A: 2, B: 1, C: 1, D: 1}


def test_a_model_larger_than_the_budget_stays_loaded() -> None:
    loader = FakeLoader(nbytes={BIG: 300})
    cache = ModelCache(250, loader=loader)
    cache.get(A)
    cache.get(B)
    big, was_loaded = cache.get(BIG)
    assert was_loaded is True
    assert cache.loaded_keys() == [BIG]
    assert cache.total_bytes() == 300
    assert cache.get(BIG) == (big, False)
    cache.get(A)  # the big one is now the oldest and goes; A stays
    assert cache.loaded_keys() == [A]


def test_exact_budget_is_not_exceeded() -> None:
    cache = ModelCache(200, loader=FakeLoader())
    cache.get(A)
    cache.get(B)
    assert cache.loaded_keys() == [A, B]  # 200 of 200 bytes: nothing to evict


def test_failed_load_propagates_and_the_next_call_retries() -> None:
    loader = FakeLoader()
    loader.failures[B] = [ModelUnavailableError("offline")]
    cache = ModelCache(10**9, loader=loader)
    with pytest.raises(ModelUnavailableError, match="^offline$"):
        cache.get(B)
    assert cache.loaded_keys() == []
    assert cache.loads == {}
    loaded, was_loaded = cache.get(B)
    assert was_loaded is True and loaded.spec.key == B
    assert loader.calls == {B: 2}
    assert cache.loads == {B: 1}


def test_unknown_key_is_an_input_error_and_loads_nothing() -> None:
    loader = FakeLoader()
    cache = ModelCache(10**9, loader=loader)
    with pytest.raises(InputError, match="Unknown model 'nope'"):
        cache.get("nope")
    assert loader.calls == {}


def test_clear() -> None:
    cache = ModelCache(10**9, loader=FakeLoader())
    cache.get(A)
    cache.clear()
    assert cache.loaded_keys() == []
    assert cache.total_bytes() == 0
    assert cache.get(A)[1] is True


def test_process_cache_is_sized_by_the_setting(fresh_settings: pytest.MonkeyPatch) -> None:
    reset_cache()
    fresh_settings.setenv("PLAYGROUND_MEMORY_BUDGET_MB", "3")
    cache = get_cache()
    assert cache.budget_bytes == 3 * 1024 * 1024
    assert get_cache() is cache
    reset_cache()
    assert get_cache() is not cache


# --- device and dtype -----------------------------------------------------------------------------


def settings_with(**changes: Any) -> Settings:
    return dataclasses.replace(get_settings(), **changes)


def test_select_device(fresh_settings: pytest.MonkeyPatch) -> None:
    fresh_settings.setenv("PLAYGROUND_DEVICE", "cpu")
    fresh_settings.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device(get_settings()) == torch.device("cpu")  # an explicit cpu wins over a GPU
    assert select_device(settings_with(device="auto")) == torch.device("cuda")
    assert select_device(settings_with(device="cuda")) == torch.device("cuda")
    fresh_settings.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(settings_with(device="auto")) == torch.device("cpu")


@pytest.mark.parametrize("gpu_dtype", ["auto", "float16", "bfloat16", "float32"])
def test_cpu_is_always_float32(gpu_dtype: str) -> None:
    assert select_dtype(torch.device("cpu"), settings_with(gpu_dtype=gpu_dtype)) is torch.float32


@pytest.mark.parametrize(
    ("gpu_dtype", "expected"),
    [("float16", torch.float16), ("bfloat16", torch.bfloat16), ("float32", torch.float32)],
)
def test_cuda_uses_the_configured_dtype(gpu_dtype: str, expected: torch.dtype) -> None:
    assert select_dtype(torch.device("cuda"), settings_with(gpu_dtype=gpu_dtype)) is expected


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_auto_dtype(monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert select_dtype(torch.device("cuda"), settings_with(gpu_dtype="auto")) is expected


# --- loading real (tiny) models -------------------------------------------------------------------


def test_tiny_beit_uses_sdpa_and_eval_mode() -> None:
    loaded = load_model(get_spec("beit-base-224"))
    model = loaded.model
    assert type(model) is transformers.BeitForImageClassification
    assert model.config._attn_implementation == "sdpa"
    assert model.training is False
    assert not any(module.training for module in model.modules())
    expected = sum(p.numel() * p.element_size() for p in model.parameters())
    expected += sum(b.numel() * b.element_size() for b in model.buffers())
    assert loaded.nbytes == expected
    assert loaded.nbytes > sum(p.numel() for p in model.parameters())  # bytes, not element counts
    assert all(p.dtype is torch.float32 and p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize(
    ("key", "expected_kwargs"),
    [
        ("beit-base-224", {"dtype": torch.float32}),  # transformers 5 picks SDPA by itself (tested above)
        ("levit-128S", {"dtype": torch.float32}),
    ],
)
def test_from_pretrained_arguments(monkeypatch: pytest.MonkeyPatch, key: str, expected_kwargs: dict[str, Any]) -> None:
    spec = get_spec(key)
    model_class = getattr(transformers, spec.model_class)
    original = model_class.from_pretrained
    calls = []

    def spy(source: str, **kwargs: Any) -> Any:
        calls.append((source, kwargs))
        return original(source, **kwargs)

    monkeypatch.setattr(model_class, "from_pretrained", spy)
    load_model(spec)
    assert calls == [(str(core.models.tiny_model_dir(spec, get_settings())), expected_kwargs)]


LEVIT_WHAT = "LeViT-128S (facebook/levit-128S)"


def test_offline_without_weights_says_what_to_do(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_settings.setenv("PLAYGROUND_TINY", "0")
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    fresh_settings.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as caught:
        load_model(get_spec("levit-128S"))
    assert time.perf_counter() - start < 10
    message = str(caught.value)
    assert "python -m core.download --model levit-128S" in message
    assert "PLAYGROUND_TINY=1" in message
    assert message == (
        f"Could not get the weights of {LEVIT_WHAT}: the Hugging Face Hub is not reachable and they are "
        "not in the local cache. Run `python -m core.download --model levit-128S` once while online, "
        "or start the app in tiny mode (PLAYGROUND_TINY=1) to try it with random weights."
    )
    assert isinstance(caught.value.__cause__, OSError)
    assert isinstance(caught.value, UserFacingError)
    assert not (tmp_path / "empty-hub-cache").exists() or not any((tmp_path / "empty-hub-cache").rglob("*.safetensors"))


NOT_ENOUGH_MEMORY = (
    f"Not enough memory to load {LEVIT_WHAT}. Choose fewer or smaller models, "
    "or lower PLAYGROUND_MEMORY_BUDGET_MB so that idle models are unloaded sooner."
)


def _hub_error(kind: str) -> BaseException:
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    request = httpx2.Request("GET", "https://huggingface.co/facebook/levit-128S")
    if kind == "gated":
        return GatedRepoError("gated", response=httpx2.Response(401, request=request))
    return RepositoryNotFoundError("missing", response=httpx2.Response(404, request=request))


@pytest.mark.parametrize(
    ("make_error", "expected"),
    [
        (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), NOT_ENOUGH_MEMORY),
        (lambda: MemoryError(), NOT_ENOUGH_MEMORY),
        (
            lambda: _hub_error("gated"),
            f"{LEVIT_WHAT} is gated on the Hugging Face Hub: accept its terms and log in (HF_TOKEN).",
        ),
        (lambda: _hub_error("missing"), f"{LEVIT_WHAT} was not found on the Hugging Face Hub."),
        (lambda: RuntimeError("boom"), f"Could not load {LEVIT_WHAT}: RuntimeError: boom"),
    ],
    ids=["cuda-oom", "memory-error", "gated", "not-found", "other"],
)
def test_load_errors_become_readable_messages(
    monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], BaseException], expected: str
) -> None:
    error = make_error()

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(transformers.LevitForImageClassificationWithTeacher, "from_pretrained", fail)
    with pytest.raises(ModelUnavailableError) as caught:
        load_model(get_spec("levit-128S"))
    assert str(caught.value) == expected
    assert caught.value.__cause__ is error


def test_load_error_through_the_cache_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    original = transformers.LevitForImageClassificationWithTeacher.from_pretrained
    attempts = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise MemoryError()
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.LevitForImageClassificationWithTeacher, "from_pretrained", flaky)
    cache = ModelCache(10**9)
    with pytest.raises(ModelUnavailableError, match="^Not enough memory"):
        cache.get("levit-128S")
    loaded, was_loaded = cache.get("levit-128S")
    assert was_loaded is True
    assert type(loaded.model) is transformers.LevitForImageClassificationWithTeacher
    assert len(attempts) == 2


def _out_of_memory_while_loading() -> ModelUnavailableError:
    try:
        raise torch.OutOfMemoryError("CUDA out of memory")
    except torch.OutOfMemoryError as cause:
        error = ModelUnavailableError("Not enough memory to load it")
        error.__cause__ = cause
        return error


def test_out_of_memory_while_loading_unloads_the_others_and_retries_once() -> None:
    loader = FakeLoader()
    cache = ModelCache(10**9, loader=loader)
    cache.get(A)
    cache.get(B)
    loader.failures[C] = [_out_of_memory_while_loading()]
    loaded, was_loaded = cache.get(C)
    assert was_loaded and loaded.spec.key == C
    assert cache.loaded_keys() == [C]
    assert loader.calls[C] == 2


def test_out_of_memory_while_loading_alone_is_reported() -> None:
    loader = FakeLoader()
    cache = ModelCache(10**9, loader=loader)
    loader.failures[C] = [_out_of_memory_while_loading(), _out_of_memory_while_loading()]
    with pytest.raises(ModelUnavailableError, match="Not enough memory"):
        cache.get(C)
    assert loader.calls[C] == 1  # nothing else to unload: no retry
    cache.get(A)
    loader.failures[C].append(_out_of_memory_while_loading())
    with pytest.raises(ModelUnavailableError, match="Not enough memory"):
        cache.get(C)  # A is unloaded, the retry fails too, and the error says so
    assert cache.loaded_keys() == []
