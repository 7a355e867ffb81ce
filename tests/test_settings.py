"""Tests for core.settings: defaults, every kind of override, and readable errors for bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import Settings, SettingsError, get_settings, load_settings, reset_settings

_CONFTEST_VARS = {"PLAYGROUND_TINY", "PLAYGROUND_TINY_DIR"}


@pytest.fixture
def env(fresh_settings: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A monkeypatch with every PLAYGROUND_* variable removed except the ones conftest sets."""
    for name in list(os.environ):
        if name.startswith("PLAYGROUND_") and name not in _CONFTEST_VARS:
            fresh_settings.delenv(name)
    return fresh_settings


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    assert settings.tiny is True  # conftest runs every test in tiny mode
    assert settings.tiny_dir == Path(os.environ["PLAYGROUND_TINY_DIR"])
    assert settings.device == "auto"
    assert settings.gpu_dtype == "auto"
    assert settings.memory_budget_mb == 6144
    assert settings.max_image_pixels == 50_000_000
    assert settings.max_upload_mb == 25
    assert settings.max_text_chars == 2000
    assert settings.max_models_per_request == 10
    assert settings.queue_size == 64
    assert settings.default_top_k == 5


def test_tiny_defaults_to_false_without_the_variable(env: pytest.MonkeyPatch) -> None:
    env.delenv("PLAYGROUND_TINY")
    assert load_settings().tiny is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_bool_override(env: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    env.setenv("PLAYGROUND_TINY", raw)
    assert load_settings().tiny is expected


@pytest.mark.parametrize(
    ("name", "attribute", "raw", "expected"),
    [
        ("PLAYGROUND_MEMORY_BUDGET_MB", "memory_budget_mb", "512", 512),
        ("PLAYGROUND_MEMORY_BUDGET_MB", "memory_budget_mb", " 1 ", 1),
        ("PLAYGROUND_MAX_IMAGE_PIXELS", "max_image_pixels", "1000000", 1_000_000),
        ("PLAYGROUND_MAX_UPLOAD_MB", "max_upload_mb", "3", 3),
        ("PLAYGROUND_MAX_TEXT_CHARS", "max_text_chars", "100", 100),
        ("PLAYGROUND_MAX_MODELS_PER_REQUEST", "max_models_per_request", "2", 2),
        ("PLAYGROUND_QUEUE_SIZE", "queue_size", "7", 7),
        ("PLAYGROUND_TOP_K", "default_top_k", "3", 3),
        ("PLAYGROUND_MEMORY_BUDGET_MB", "memory_budget_mb", "", 6144),  # empty means default
    ],
)
def test_int_override(env: pytest.MonkeyPatch, name: str, attribute: str, raw: str, expected: int) -> None:
    env.setenv(name, raw)
    value = getattr(load_settings(), attribute)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("name", "attribute", "raw", "expected"),
    [
        ("PLAYGROUND_DEVICE", "device", "cpu", "cpu"),
        ("PLAYGROUND_DEVICE", "device", " CUDA ", "cuda"),
        ("PLAYGROUND_DEVICE", "device", "", "auto"),
        ("PLAYGROUND_GPU_DTYPE", "gpu_dtype", "float16", "float16"),
        ("PLAYGROUND_GPU_DTYPE", "gpu_dtype", "BFloat16", "bfloat16"),
        ("PLAYGROUND_GPU_DTYPE", "gpu_dtype", "float32", "float32"),
    ],
)
def test_choice_override(env: pytest.MonkeyPatch, name: str, attribute: str, raw: str, expected: str) -> None:
    env.setenv(name, raw)
    assert getattr(load_settings(), attribute) == expected


def test_path_overrides(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("PLAYGROUND_TINY_DIR", str(tmp_path / "tiny"))
    assert load_settings().tiny_dir == tmp_path / "tiny"


def test_tiny_dir_follows_cache_dir(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("PLAYGROUND_TINY_DIR")
    env.setenv("PLAYGROUND_CACHE_DIR", str(tmp_path / "cache"))
    assert load_settings().tiny_dir == tmp_path / "cache" / "tiny-models"


def test_tiny_dir_follows_xdg_cache_home(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("PLAYGROUND_TINY_DIR")
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert load_settings().tiny_dir == tmp_path / "xdg" / "vision-playground" / "tiny-models"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("PLAYGROUND_MEMORY_BUDGET_MB", "abc", "PLAYGROUND_MEMORY_BUDGET_MB='abc' is not a number."),
        ("PLAYGROUND_MEMORY_BUDGET_MB", "0", "PLAYGROUND_MEMORY_BUDGET_MB='0' must be at least 1."),
        ("PLAYGROUND_MEMORY_BUDGET_MB", "-5", "PLAYGROUND_MEMORY_BUDGET_MB='-5' must be at least 1."),
        ("PLAYGROUND_MAX_IMAGE_PIXELS", "2.5", "PLAYGROUND_MAX_IMAGE_PIXELS='2.5' is not a number."),
        ("PLAYGROUND_TOP_K", "0", "PLAYGROUND_TOP_K='0' must be at least 1."),
        ("PLAYGROUND_DEVICE", "tpu", "PLAYGROUND_DEVICE='tpu' must be one of auto, cpu, cuda."),
        (
            "PLAYGROUND_GPU_DTYPE",
            "int8",
            "PLAYGROUND_GPU_DTYPE='int8' must be one of auto, float16, bfloat16, float32.",
        ),
        ("PLAYGROUND_TINY", "maybe", "PLAYGROUND_TINY='maybe' is not a boolean (use 1/0, true/false, yes/no)."),
    ],
)
def test_bad_values_raise_settings_error(env: pytest.MonkeyPatch, name: str, raw: str, message: str) -> None:
    env.setenv(name, raw)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    with pytest.raises(SettingsError, match=name):
        get_settings()


def test_get_settings_is_cached_until_reset(env: pytest.MonkeyPatch) -> None:
    env.setenv("PLAYGROUND_MEMORY_BUDGET_MB", "100")
    first = get_settings()
    assert first.memory_budget_mb == 100
    env.setenv("PLAYGROUND_MEMORY_BUDGET_MB", "200")
    assert get_settings() is first
    assert get_settings().memory_budget_mb == 100
    reset_settings()
    second = get_settings()
    assert second is not first
    assert second.memory_budget_mb == 200


def test_settings_are_frozen(env: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    with pytest.raises(AttributeError):
        settings.tiny = False  # type: ignore[misc]


@pytest.mark.parametrize(("mb", "expected"), [("25", 26_214_400), ("1", 1_048_576), ("100", 104_857_600)])
def test_max_upload_bytes(env: pytest.MonkeyPatch, mb: str, expected: int) -> None:
    env.setenv("PLAYGROUND_MAX_UPLOAD_MB", mb)
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.max_upload_bytes == expected


def test_the_cpu_quota_caps_the_threads(tmp_path: Path) -> None:
    from core.runtime import cpu_quota

    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cpu_quota(tmp_path) == 2.0
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path) is None
    assert cpu_quota(tmp_path / "missing") is None


def test_usable_cores_follow_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import runtime

    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(runtime, "cpu_quota", lambda: 2.0)
    assert runtime.usable_cores() == (2, "the CPU quota of 2")
    monkeypatch.setattr(runtime, "cpu_quota", lambda: None)
    assert runtime.usable_cores() == (16, "16 cores")
