"""Name lists that a checkpoint's own files lack: the Visual Genome object and attribute names of the
region detector, the VQA answers of VisualBERT (whose config only has LABEL_0 ... LABEL_3128).

No PyPI package ships them, so `python -m core.download --model KEY` fetches them once from the
addresses the registry gives (where transformers' demos read them) into PLAYGROUND_LABELS_DIR; the
first load of the model does the same when the Hub is reachable. Tiny mode saves placeholder names
of the same lengths beside the tiny model (core/tiny/vqa.py), and reads them from there.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.errors import ModelUnavailableError
from core.registry import ModelSpec
from core.settings import Settings

MAX_BYTES = 1024 * 1024
"""The lists are a few tens of kilobytes; anything larger is not one."""


def label_folder(spec: ModelSpec, settings: Settings) -> Path:
    """Where the name lists of `spec` are: beside the tiny model in tiny mode, else in the labels folder."""
    from core.models import tiny_model_dir

    return tiny_model_dir(spec, settings) if settings.tiny else settings.labels_dir / spec.slug


def parse(text: str) -> tuple[str, ...]:
    """One name per line, stripped; trailing empty lines dropped."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


def _offline() -> bool:
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def read_label_files(spec: ModelSpec, settings: Settings) -> dict[str, tuple[str, ...]]:
    """The name lists of `spec` by file stem, fetched first if they are missing and the network is allowed."""
    if not spec.label_files:
        return {}
    folder = label_folder(spec, settings)
    missing = [name for name, _ in spec.label_files if not (folder / name).is_file()]
    if missing and not settings.tiny and not _offline():
        try:
            fetch_label_files(spec, settings)
        except (OSError, ValueError) as error:
            raise ModelUnavailableError(_missing_message(spec, missing, f" (fetching them failed: {error})")) from error
        missing = [name for name, _ in spec.label_files if not (folder / name).is_file()]
    if missing:
        raise ModelUnavailableError(_missing_message(spec, missing))
    return {Path(name).stem: parse((folder / name).read_text(encoding="utf-8")) for name, _ in spec.label_files}


def _missing_message(spec: ModelSpec, missing: list[str], why: str = "") -> str:
    hosts = sorted({urlparse(url).netloc for _, url in spec.label_files})
    return (
        f"The name lists of {spec.name} ({', '.join(missing)}) are not on this machine{why}. Run "
        f"`python -m core.download --model {spec.key}` once while online (they come from {', '.join(hosts)}), "
        "or start the app in tiny mode (PLAYGROUND_TINY=1) to try it with random weights."
    )


Opener = Callable[..., Any]


def fetch_label_files(spec: ModelSpec, settings: Settings, urlopen: Opener = urllib.request.urlopen) -> Path:
    """Download every name list of `spec` into its labels folder (atomically, one file at a time)."""
    folder = settings.labels_dir / spec.slug
    folder.mkdir(parents=True, exist_ok=True)
    for name, url in spec.label_files:
        if urlparse(url).scheme != "https":
            raise ValueError(f"refusing to fetch {url}: not https")
        with urlopen(url, timeout=60) as response:
            data = response.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ValueError(f"{url} is larger than {MAX_BYTES} bytes: not a name list")
        text = data.decode("utf-8")
        if not parse(text):
            raise ValueError(f"{url} is empty")
        handle, staging = tempfile.mkstemp(prefix=f".{name}-", dir=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        Path(staging).replace(folder / name)
    return folder


class LabelFiles:
    """Name lists saved beside a tiny model like a preprocessor (`save_pretrained(folder)`)."""

    def __init__(self, files: dict[str, list[str]]) -> None:
        self.files = files

    def save_pretrained(self, folder: str | Path) -> None:
        for name, names in self.files.items():
            (Path(folder) / name).write_text("\n".join(names) + "\n", encoding="utf-8")
