"""Read weights out of a pickled torch module without running code from the file.

OpenAI published the DALL-E discrete VAE as whole pickled modules (`torch.save(model)`): unpickling
them the usual way imports the `dall_e` package and lets the file call whatever it names. This reader
gives torch.load a pickle module whose unpickler resolves only

- the functions that rebuild tensors and parameters (`torch._utils._rebuild_tensor_v2` and kin),
  `collections.OrderedDict`, `builtins.set`, `torch.device` and `torch.Size`;
- the module classes such a file holds (`dall_e.encoder.Encoder`, `torch.nn.modules.container.Sequential`,
  ...; `MODULE_CLASSES`), each mapped onto an inert placeholder that only keeps the state it is given;

and refuses every other name with `UnsafePickleError` before anything is called. torch.load still does
the rest (zip or legacy file layout, storages, map_location). `state_dict` then walks the placeholders
into parameter names and tensors, for loading into the project's own architecture (core/dalle_vae/).
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
import types
import warnings
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from core.errors import UserFacingError
from core.lazy import torch

MODULE_CLASSES = frozenset(
    {
        "dall_e.encoder.Encoder",
        "dall_e.encoder.EncoderBlock",
        "dall_e.decoder.Decoder",
        "dall_e.decoder.DecoderBlock",
        "dall_e.utils.Conv2d",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.pooling.MaxPool2d",
        "torch.nn.modules.upsampling.Upsample",
        "torch.nn.modules.linear.Identity",
    }
)
"""The module classes in OpenAI's encoder.pkl and decoder.pkl (the `dall_e` package, version 0.1)."""


class UnsafePickleError(UserFacingError):
    """The file names something other than tensors and the expected module classes."""


class PickledModule:
    """Stands in for a pickled module: `pickled_class` is the name the file gave, `state` what it stored
    (for a torch module: `_parameters`, `_buffers`, `_modules` and plain settings)."""

    pickled_class: ClassVar[str] = ""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots), as pickle writes for __slots__
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise UnsafePickleError(f"unexpected state for {self.pickled_class}: {type(state).__name__}")
        self.state = state

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_class}>"


_PLACEHOLDERS: dict[str, type[PickledModule]] = {
    name: type(name.rsplit(".", 1)[1], (PickledModule,), {"pickled_class": name}) for name in MODULE_CLASSES
}


def _allowed_callables() -> dict[str, Any]:
    rebuild = torch._utils
    return {
        "torch._utils._rebuild_tensor": rebuild._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": rebuild._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": rebuild._rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": rebuild._rebuild_parameter_with_state,
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "torch.device": torch.device,
        "torch.Size": torch.Size,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names above; anything else is refused before it could be called."""

    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 files name Python 2 modules (`__builtin__.set`); pickle maps them back the same way
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if full in _PLACEHOLDERS:
            return _PLACEHOLDERS[full]
        allowed = _allowed_callables()
        if full in allowed:
            return allowed[full]
        raise UnsafePickleError(
            f"Refused to read the file: it asks to use {full[:80]}, which is neither a tensor nor one of "
            "the module classes of OpenAI's DALL-E files. Nothing from it was run."
        )


def _load(file: BinaryIO, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


SAFE_PICKLE_MODULE = types.ModuleType("playground_restricted_pickle")
"""What torch.load gets as `pickle_module`: every pickle it reads goes through RestrictedUnpickler."""
SAFE_PICKLE_MODULE.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
SAFE_PICKLE_MODULE.load = _load  # type: ignore[attr-defined]


def load_pickled_module(path: str | Path) -> PickledModule:
    """The placeholder tree of a `torch.save(module)` file, tensors on the CPU. UnsafePickleError if
    the file names anything outside the allowed set; ValueError if it holds no module."""
    with warnings.catch_warnings():
        # legacy-format files carry their classes' source; torch warns that it cannot compare it
        warnings.simplefilter("ignore")
        try:
            root = torch.load(path, map_location="cpu", pickle_module=SAFE_PICKLE_MODULE, weights_only=False)
        except UnsafePickleError:
            raise
        except Exception as error:
            cause = error.__cause__ or error.__context__
            if isinstance(cause, UnsafePickleError):
                raise cause from None
            raise ValueError(f"{Path(path).name} is not a readable torch file: {type(error).__name__}") from error
    if not isinstance(root, PickledModule):
        raise ValueError(f"{Path(path).name} holds a {type(root).__name__}, not a pickled module")
    return root


def state_dict(root: PickledModule) -> dict[str, torch.Tensor]:
    """Parameter and buffer names (as `Module.state_dict` writes them) and their tensors."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: PickledModule, prefix: str) -> None:
        for group in ("_parameters", "_buffers"):
            for name, value in (node.state.get(group) or {}).items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise ValueError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
                tensors[prefix + name] = value.detach().contiguous()
        for name, child in (node.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PickledModule):
                raise ValueError(f"{prefix}{name} is a {type(child).__name__}, not a module")
            walk(child, f"{prefix}{name}.")

    walk(root, "")
    return tensors
