"""Text generation streamed piece by piece, with a stop that takes effect at the next token.

`model.generate` runs in a thread and feeds a `TextIteratorStreamer`; the consumer iterates the
decoded pieces. Closing the stream (or leaving its `with` block) makes a stopping criterion end
generation at the next step. `generate` draws from torch's global random generator, so seeded
sampling sets the seed and generates while holding `SEED_LOCK`: two users sampling at once cannot
interleave their draws.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from core.lazy import torch

SEED_LOCK = threading.Lock()
STREAM_TIMEOUT_S = 300.0
T = TypeVar("T")


def last(stream: Iterator[T]) -> T:
    """The final item of a stream (its complete result), keeping none of the partial ones."""
    return collections.deque(stream, maxlen=1).pop()


class StopWhenClosed:
    """A stopping criterion that ends generation once the consumer of a stream has gone away."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class GenerationStream:
    """Runs `generate(streamer=..., stopping_criteria=...)` in a thread; iterate for the text pieces
    (the prompt and special tokens skipped), then read `output` (what `generate` returned)."""

    def __init__(self, generate: Callable[..., Any], tokenizer: Any, *, name: str = "generate") -> None:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        self.closed = threading.Event()
        self._streamer = TextIteratorStreamer(
            tokenizer, skip_prompt=True, timeout=STREAM_TIMEOUT_S, skip_special_tokens=True
        )
        self._criteria = StoppingCriteriaList([StopWhenClosed(self.closed)])
        self._generate = generate
        self._outcome: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._outcome["output"] = self._generate(streamer=self._streamer, stopping_criteria=self._criteria)
        except BaseException as error:
            self._outcome["error"] = error
            self._streamer.end()

    def __iter__(self) -> Iterator[str]:
        self._thread.start()
        try:
            yield from self._streamer
            self._thread.join()
        finally:
            self.closed.set()
        if "error" in self._outcome:
            raise self._outcome["error"]

    @property
    def output(self) -> Any:
        """What `generate` returned; only after the iteration has finished."""
        return self._outcome["output"]

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the generation thread to end; what `generate` returned (None if it has not ended)."""
        self._thread.join(timeout)
        return self._outcome.get("output")

    def close(self) -> None:
        """Stop generation at the next token (the thread ends on its own)."""
        self.closed.set()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
