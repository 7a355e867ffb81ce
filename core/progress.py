"""Progress reports from long work: a function called with the share done (0 to 1) and what is being done."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[float, str], None]


def part(progress: ProgressFn | None, start: float, share: float, prefix: str = "") -> ProgressFn:
    """The progress function of one part of the work: its 0..1 maps to start..start + share of the whole,
    and its messages get `prefix`. Does nothing when `progress` is None."""

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(start + fraction * share, prefix + message)

    return report
