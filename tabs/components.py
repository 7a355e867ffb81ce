"""UI helpers shared by the tabs: safe image input, error translation, asset paths."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, ParamSpec, TypeVar

import gradio as gr
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs, EditorData
from gradio.context import Context
from gradio.data_classes import ImageData
from gradio.utils import get_upload_folder

from core.errors import UserFacingError
from core.models import get_cache, is_out_of_memory
from core.registry import ModelSpec

ASSETS = Path(__file__).resolve().parent.parent / "assets"
log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


NOT_AN_UPLOAD = (
    "Only files uploaded to this app can be used: a path on the server or a web address is not accepted. "
    "Upload the file itself (with gradio_client: handle_file(...))."
)


def is_upload(path: str | Path) -> bool:
    """Whether `path` is a file uploaded to this app (in Gradio's upload folder) or an example."""
    if not isinstance(path, str | Path) or "://" in str(path):
        return False
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(root) for root in (Path(get_upload_folder()).resolve(), ASSETS))


class UploadsOnly(gr.components.Component):
    """Refuses server paths and URLs that a request may name in place of an upload.

    Gradio 6.31 copies a file that an API request names by path (or downloads a URL) into its cache
    before the handler runs, even when the path is not an upload; this stops it at that copy.
    """

    @staticmethod
    def _refuse_non_uploads(url_or_file_path: str | Path | None) -> None:
        if url_or_file_path is not None and not is_upload(url_or_file_path):
            log.warning("refused a request naming %r instead of uploading a file", str(url_or_file_path)[:200])
            raise gr.Error(NOT_AN_UPLOAD, title="Not an upload", print_exception=False)

    def move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        self._refuse_non_uploads(url_or_file_path)
        return super().move_resource_to_block_cache(url_or_file_path)

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        self._refuse_non_uploads(url_or_file_path)
        return await super().async_move_resource_to_block_cache(url_or_file_path)


class FileUpload(UploadsOnly, gr.File):
    def get_block_name(self) -> str:
        return "file"


class VideoUpload(UploadsOnly, gr.Video):
    def get_block_name(self) -> str:
        return "video"


class ImageUpload(UploadsOnly, gr.Image):
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


class SketchUpload(UploadsOnly, gr.ImageEditor):
    """gr.ImageEditor to paint on, read without being an event input.

    Gradio 6.31's page asks every component that has ever shown a loading status for its data on each
    status change of any event, and an editor answers by uploading its images again: as an event
    input it would upload the photo a few times for every streamed token of a chat answer. So this
    editor is never an input. After each stroke the browser sends it the painted layers itself
    (`accept_blobs`); it keeps those of the last sketch of each browser session (not the background
    or the composite, which gradio's own editor decodes with PIL on every stroke), the least recently
    painted dropped beyond MAX_BYTES in all, and the event that the stroke triggers reads them with
    `painted_layers(request)`: PNG bytes, for core.visual_prompts to decode with its own checks."""

    MAX_BYTES = 256 * 1024 * 1024
    MAX_LAYERS = 8
    _sketches: ClassVar[OrderedDict[tuple[str, str], tuple[str, dict[int, bytes]]]] = OrderedDict()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def get_block_name(self) -> str:
        return "imageeditor"

    @server
    def accept_blobs(self, data: AcceptBlobs) -> None:
        fields = data.data
        # keyed by the id the page knows: a session's copy of this component has another `_id`
        key = (str(fields.get("component_id")), str(fields.get("session_hash")))
        sketch = str(fields.get("id"))
        with self._lock:
            current = self._sketches.get(key)
            if current is None or current[0] != sketch:
                current = (sketch, {})  # a new sketch: the last one's layers are gone
            index = str(fields.get("index"))
            if fields.get("type") == "layer" and index.isdigit() and int(index) < self.MAX_LAYERS and data.files:
                current[1][int(index)] = data.files[0][1]
            self._sketches[key] = current
            self._sketches.move_to_end(key)
            stored = sum(len(layer) for _, layers in self._sketches.values() for layer in layers.values())
            while stored > self.MAX_BYTES:
                _, (_, dropped) = self._sketches.popitem(last=False)
                stored -= sum(len(layer) for layer in dropped.values())

    def painted_layers(self, request: gr.Request) -> list[bytes]:
        """The layers of the last sketch that the browser of `request` sent, in order."""
        with self._lock:
            _, layers = self._sketches.get((str(self._id), str(request.session_hash)), ("", {}))
            return [layers[index] for index in sorted(layers)]

    def forget(self, request: gr.Request) -> None:
        """Drop what the browser of `request` sent: the editor starts afresh (a cleared canvas sends
        nothing, so its last strokes would otherwise still be read)."""
        with self._lock:
            self._sketches.pop((str(self._id), str(request.session_hash)), None)

    def preprocess(self, payload: EditorData | None) -> dict[str, Any] | None:
        """As an input (not how the tabs use it): the layers' files unopened."""
        if payload is None:
            return None
        return {"background": None, "layers": [layer.path for layer in payload.layers], "composite": None}


def image_input(**kwargs: Any) -> ImageUpload:
    """An image upload whose handler receives a file path (decode it with core.images)."""
    kwargs.setdefault("sources", ["upload", "clipboard", "webcam"])
    return ImageUpload(type="filepath", **kwargs)


def photo_with_examples(*names: str, label: str = "Image", height: int = 360) -> ImageUpload:
    """An image upload with a row of example photos from assets/ under it."""
    image = image_input(label=label, height=height)
    gr.Examples(examples=example_paths(*names), inputs=image, label="Example photos")
    return image


def clip_with_example(name: str, example_label: str, elem_id: str, label: str = "Clip") -> VideoUpload:
    """A clip upload (files only: a webcam clip would have no sound) with its example from assets/ under it."""
    clip = VideoUpload(label=label, sources=["upload"], height=300)
    gr.Examples(examples=example_paths(name), inputs=clip, label=example_label, elem_id=elem_id)
    return clip


@contextlib.contextmanager
def beside_photo(*examples: str, label: str = "Image", height: int = 360) -> Iterator[ImageUpload]:
    """A row with the photo upload and its example photos on the left (2 parts) and, in the body of the
    `with`, the controls on the right (3 parts)."""
    with gr.Row():
        with gr.Column(scale=2):
            image = photo_with_examples(*examples, label=label, height=height)
        with gr.Column(scale=3):
            yield image


def model_picker(
    specs: Iterable[ModelSpec], value: Any, info: str, component: type[Any] = gr.Dropdown, label: str = "Model"
) -> Any:
    """A Dropdown (or Radio, CheckboxGroup) of registry models: their names shown, their keys as values."""
    return component(choices=[(spec.name, spec.key) for spec in specs], value=value, label=label, info=info)


def about_models(specs: Iterable[ModelSpec], columns: dict[str, Callable[[ModelSpec], str]] | None = None) -> None:
    """A closed "About these models" accordion: a table of each model's name, checkpoint, `columns`
    (header -> the cell of a model) and description."""
    columns = columns or {}
    headers = ["model", "checkpoint", *columns, ""]
    rows = [
        [spec.name, f"`{spec.hub_id}`", *(cell(spec) for cell in columns.values()), spec.description] for spec in specs
    ]
    with gr.Accordion("About these models", open=False):
        gr.Markdown("\n".join("| " + " | ".join(row) + " |" for row in [headers, ["---"] * len(headers), *rows]))


def api_json(label: str | None = None) -> gr.JSON:
    """The result as the API returns it, in a closed accordion (the tab's own views read it)."""
    with gr.Accordion("Result as JSON (what the API returns)", open=False):
        return gr.JSON(label=label, show_label=False)


def run_model(
    trigger: Any, fn: Callable[..., Any], inputs: list[Any], outputs: Any, api_name: str, progress_on: Any
) -> Any:
    """`trigger.click` runs `fn` as the endpoint `api_name`, in the one queue of model work
    (concurrency_id "models") shared by every tab, with its progress shown on `progress_on`."""
    return trigger.click(
        fn, inputs=inputs, outputs=outputs, api_name=api_name, concurrency_id="models", show_progress_on=progress_on
    )


def ui_only(event: Callable[..., Any], fn: Callable[..., Any], outputs: Any, inputs: Any = None) -> Any:
    """A UI-only event listener (`image.change`, `model.change`, ...): hidden from the API and answered
    at once, outside the queue."""
    return event(fn, inputs=inputs, outputs=outputs, api_visibility="private", queue=False)


OUT_OF_MEMORY = (
    "The server ran out of memory for this request, even after unloading idle models. Try a smaller "
    "image, fewer images or models, or again in a moment."
)


@contextlib.contextmanager
def _as_user_error(action: str) -> Iterator[None]:
    try:
        yield
    except gr.Error:
        raise
    except UserFacingError as error:
        raise gr.Error(str(error), title=f"Could not {action}", print_exception=False) from None
    except Exception as error:
        if is_out_of_memory(error):
            log.warning("out of memory while trying to %s", action)
            raise gr.Error(OUT_OF_MEMORY, title=f"Could not {action}", print_exception=False) from None
        log.exception("unexpected error while trying to %s", action)
        raise gr.Error(
            "Something went wrong on the server. It has been logged; please try again, "
            "perhaps with another image or model.",
            title=f"Could not {action}",
            print_exception=False,
        ) from None


def on_gpu(duration: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """On Hugging Face ZeroGPU hardware, hold a GPU for up to `duration` seconds per call
    (`spaces.GPU`); elsewhere, and without the `spaces` package, the function is left as it is."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def as_files(images: list[tuple[Any, str]], folder: Path, stem: str = "image") -> list[tuple[str, str]]:
    """Write (image, caption) pairs as PNG files in `folder` and return (path, caption) pairs.

    Gradio writes images returned as arrays into a cache path named by their content without a
    lock, so two users who get the same picture at the same moment can be served a half-written
    file; a file path is copied into its cache atomically instead.
    """
    from PIL import Image

    paths = []
    for number, (image, caption) in enumerate(images, start=1):
        path = folder / f"{stem}-{number:02d}.png"
        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        picture.save(path, format="PNG")
        paths.append((str(path), caption))
    return paths


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
                try:
                    return fn(*args, **kwargs)
                except Exception as error:
                    if not is_out_of_memory(error):
                        raise
                # out of memory: unload the idle models, free what can be freed, and try once more
                log.warning("out of memory while trying to %s; unloading idle models and retrying", action)
                get_cache().clear()  # also returns the freed memory (release_memory)
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


def fill_on_page_load(component: gr.components.Component, fn: Callable[[], Any]) -> None:
    """Set `component` to `fn()` each time a page opens, rather than once when the app is built (so
    building the page imports no torch and touches no GPU). Call it inside the Blocks being built."""
    root = Context.root_block
    if root is None:
        raise RuntimeError("fill_on_page_load must be called while a gr.Blocks is being built")
    root.load(fn, outputs=component, api_visibility="private", queue=False)


def standalone(title: str, build: Callable[..., None], *handlers: Callable[..., Any]) -> gr.Blocks:
    """A tab as an app of its own (`python -m tabs.<name>`): its layout in a Blocks, built with `handlers`."""
    with gr.Blocks(title=title) as demo:
        build(*handlers)
    return demo
