"""torch, imported when first used rather than when the app starts.

Importing torch takes over a second; the page does not need it until a model runs. Core modules
write `from core.lazy import F, torch` instead of `import torch`: the first attribute read imports
the real module, and each attribute read is then kept on the stand-in, so later reads cost what a
module attribute costs. Type annotations stay strings (`from __future__ import annotations`).
Decorators that need torch when a module is defined have lazy forms here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

Fn = TypeVar("Fn", bound=Callable[..., Any])


class LazyModule:
    """Stands in for a module until an attribute is read."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self.__name), attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name!r}>"


torch: Any = LazyModule("torch")
F: Any = LazyModule("torch.nn.functional")


def _lazy_decorator(make: Callable[[], Callable[[Fn], Fn]]) -> Callable[[Fn], Fn]:
    def decorate(function: Fn) -> Fn:
        wrapped: Fn | None = None

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal wrapped
            if wrapped is None:
                wrapped = make()(function)
            return wrapped(*args, **kwargs)

        return cast(Fn, call)

    return decorate


inference_mode = _lazy_decorator(lambda: torch.inference_mode())
"""`@torch.inference_mode()`, applied on the first call (generator functions included)."""

no_grad = _lazy_decorator(lambda: torch.no_grad())
"""`@torch.no_grad()`, applied on the first call."""
