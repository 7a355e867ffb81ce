"""UI helpers shared by the tabs: safe image input, error translation, asset paths."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import gradio as gr
from gradio.data_classes import ImageData

from core.errors import UserFacingError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class ImageUpload(gr.Image):
    """gr.Image that hands the uploaded file's path to core.images unopened.

    Gradio's own preprocessing opens every upload with PIL (any format PIL knows, no size
    checks, a bare "Error" on failure); the tabs decode with core.images instead, which gives the
    user a message that says what is wrong with the file.
    """

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload: ImageData | None) -> str | None:
        if payload is None or (payload.url and payload.url.startswith("data:")):
            return super().preprocess(payload)
        return payload.path


def image_input(**kwargs: Any) -> ImageUpload:
    """An image upload whose handler receives a file path (decode it with core.images)."""
    kwargs.setdefault("sources", ["upload", "clipboard", "webcam"])
    return ImageUpload(type="filepath", **kwargs)


@contextlib.contextmanager
def _as_user_error(action: str) -> Iterator[None]:
    try:
        yield
    except gr.Error:
        raise
    except UserFacingError as error:
        raise gr.Error(str(error), title=f"Could not {action}", print_exception=False) from None
    except Exception:
        log.exception("unexpected error while trying to %s", action)
        raise gr.Error(
            "Something went wrong on the server. It has been logged; please try again, "
            "perhaps with another image or model.",
            title=f"Could not {action}",
            print_exception=False,
        ) from None


def user_errors(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Show UserFacingErrors as they are, and any other failure as a short message (logged with
    its traceback on the server), so the browser never sees a stack trace. Works for generator
    handlers (streaming) too."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream(*args: P.args, **kwargs: P.kwargs) -> Any:
                with _as_user_error(action):
                    yield from fn(*args, **kwargs)

            return stream  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with _as_user_error(action):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def example_paths(*names: str) -> list[str]:
    return [str(ASSETS / name) for name in names]


def output_dir(prefix: str) -> Path:
    """A fresh folder for one request's downloadable files (Gradio copies them into its cache).
    Folders older than an hour are removed on the way."""
    root = Path(tempfile.gettempdir()) / "vision-playground-outputs"
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - 3600
    for old in root.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))
