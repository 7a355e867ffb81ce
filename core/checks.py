"""Checks of the values a user sends, with one message style: InputError, shown as it is.

A number of the wrong kind says what is expected ("Top-k must be a whole number from 1 to 20."); one of
the right kind out of range says what was sent ("Top-k must be from 1 to 20, not 0."); a choice names
the choices ("Unknown DIS preset 'slow'. Choose one of: ultrafast, fast, medium.").
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from core.errors import InputError

MAX_SEED = 2**31 - 1
"""The largest seed any tab takes (torch.manual_seed takes more; the UI's number box does not)."""


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _range(low: float, high: float, low_open: bool) -> str:
    return f"above {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"


def number(value: Any, what: str, low: float, high: float, *, low_open: bool = False) -> float:
    """A finite number in [low, high] (or (low, high] when `low_open`), as a float."""
    if not is_number(value):
        raise InputError(f"{what} must be a number {_range(low, high, low_open)}.")
    if not (low < value if low_open else low <= value) or value > high:
        raise InputError(f"{what} must be {_range(low, high, low_open)}, not {value:g}.")
    return float(value)


def whole(value: Any, what: str, low: int, high: int) -> int:
    """A whole number in [low, high] (a float such as a slider's 5.0 is fine), as an int."""
    if not is_number(value) or value != int(value):
        raise InputError(f"{what} must be a whole number from {low} to {high}.")
    if not low <= value <= high:
        raise InputError(f"{what} must be from {low} to {high}, not {value}.")
    return int(value)


def seed(value: Any) -> int:
    return whole(value, "Seed", 0, MAX_SEED)


def choice(value: Any, what: str, choices: Collection[str]) -> str:
    """One of `choices` (strings); `what` is lower case ("DIS preset", "decoding")."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"Unknown {what} {str(value)[:40]!r}. Choose one of: {', '.join(choices)}.")
    return value
