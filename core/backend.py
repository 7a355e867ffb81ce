"""Where the model work runs: in this process (the default), or in Ray Serve deployments.

The core's entry points (the functions the tabs call) are marked `@runs_in("<group>")`. With no
backend configured, or inside a worker, a marked function simply runs. With a backend (`python app.py
--backend ray`, core.ray_backend), the call is handed to the deployment of its group, on this machine
or on a cluster, and its answer comes back as if it had run here: the tabs do not know which backend
runs. This module is that one seam; it imports nothing heavy.

What crosses to a worker is plain data: arguments and results are pickled (PIL images, numpy arrays,
dataclasses); files named by a parameter declared in `files` travel as bytes (`FileData`), never as
server paths; a function's `out_dir` is a folder on the worker, and the files of the result are brought
back and written into the caller's `out_dir`; a `progress` callable stays here and receives the
worker's progress reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class FileData:
    """A file's name and bytes, in place of a path, on its way to or from a worker."""

    name: str
    data: bytes

    @classmethod
    def read(cls, path: str | Path) -> FileData:
        path = Path(path)
        return cls(path.name, path.read_bytes())

    def write(self, folder: Path) -> Path:
        path = folder / Path(self.name).name  # a name only, never a path of the sender's
        path.write_bytes(self.data)
        return path


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of a marked function, as a worker receives it."""

    module: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    files: tuple[str, ...] = ()
    """Parameters (names) whose values travel as FileData."""
    out_dir: bool = False
    """Whether the caller gave an `out_dir`: the worker makes one of its own and sends the files back."""
    progress: bool = False
    """Whether the caller follows progress: the worker streams ("progress", fraction, message) events."""
    stream: bool = False
    """A generator: the worker streams ("item", value) events."""


class Backend(Protocol):
    def events(self, group: str, call: Call) -> Iterator[tuple[Any, ...]]:
        """Run `call` on the deployment of `group`: ("progress", fraction, message) and ("item", value)
        events, then ("result", value) for a plain function. Closing the iterator stops the work."""
        ...


_backend: Backend | None = None
_in_worker = False
_worker_thread = threading.local()


def set_backend(backend: Backend | None) -> None:
    """Hand marked calls to `backend` from now on (None: run them in this process)."""
    global _backend
    _backend = backend


def current_backend() -> Backend | None:
    """The backend marked calls go to; None in a worker (process or thread), where they run."""
    if _in_worker or getattr(_worker_thread, "active", False):
        return None
    return _backend


def mark_worker() -> None:
    """In a worker process: marked functions run here, whatever the backend."""
    global _in_worker
    _in_worker = True


@contextlib.contextmanager
def working() -> Iterator[None]:
    """Within: this thread does a worker's job, so marked functions it calls run here."""
    previous = getattr(_worker_thread, "active", False)
    _worker_thread.active = True
    try:
        yield
    finally:
        _worker_thread.active = previous


def runs_in(
    group: str, *, files: tuple[str, ...] = (), worker_owned: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a core entry point whose work runs on the deployment `group` when a backend is set.
    `files` names the parameters that hold paths of files the function reads; `worker_owned` those a
    worker keeps its own of (caches; `cache`, the model cache, always)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        streams = inspect.isgeneratorfunction(fn)

        def remote_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Call, Any, Path | None]:
            bound = signature.bind(*args, **kwargs)
            progress = bound.arguments.pop("progress", None)
            out_dir = bound.arguments.pop("out_dir", None)
            for name in ("cache", *worker_owned):  # a worker has its own
                bound.arguments.pop(name, None)
            for name in files:
                if bound.arguments.get(name) is not None:
                    bound.arguments[name] = FileData.read(bound.arguments[name])
            call = Call(
                fn.__module__,
                fn.__qualname__,
                bound.args,
                bound.kwargs,
                files=tuple(name for name in files if name in bound.arguments),
                out_dir=out_dir is not None,
                progress=progress is not None,
                stream=streams,
            )
            return call, progress, None if out_dir is None else Path(out_dir)

        if streams:

            @functools.wraps(fn)
            def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                backend = current_backend()
                if backend is None:
                    yield from fn(*args, **kwargs)
                    return
                call, progress, out_dir = remote_call(args, kwargs)
                events = backend.events(group, call)
                try:
                    for event in events:
                        if event[0] == "progress":
                            if progress is not None:
                                progress(event[1], event[2])
                        else:
                            yield bring_files(event[1], out_dir)
                finally:
                    close = getattr(events, "close", None)
                    if close is not None:
                        close()

            wrapper: Callable[..., Any] = stream
        else:

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                backend = current_backend()
                if backend is None:
                    return fn(*args, **kwargs)
                call, progress, out_dir = remote_call(args, kwargs)
                result = None
                for event in backend.events(group, call):
                    if event[0] == "progress":
                        if progress is not None:
                            progress(event[1], event[2])
                    else:
                        result = event[1]
                return bring_files(result, out_dir)

            wrapper = run
        wrapper.local = fn  # type: ignore[attr-defined]
        wrapper.group = group  # type: ignore[attr-defined]
        return wrapper

    return decorate


def local_function(module: str, name: str) -> Callable[..., Any]:
    """The function a Call names, unwrapped (only functions marked with `runs_in` can be named)."""
    import importlib

    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    local = getattr(target, "local", None)
    if local is None:
        raise PermissionError(f"{module}.{name} is not a core entry point")
    return local


def map_values(value: Any, fn: Callable[[Any], Any]) -> Any:
    """`value` with `fn` applied to every leaf inside lists, tuples, dicts and dataclass instances."""
    if isinstance(value, list):
        return [map_values(item, fn) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(map_values(item, fn) for item in value)
    if isinstance(value, dict):
        return {key: map_values(item, fn) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type | FileData):
        changes = {f.name: map_values(getattr(value, f.name), fn) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return fn(value)


def send_files(result: Any, out_dir: Path | None) -> Any:
    """In a worker: the files of a result written under `out_dir`, as FileData."""
    if out_dir is None:
        return result

    def to_data(value: Any) -> Any:
        if isinstance(value, Path) and value.is_file() and out_dir in value.resolve().parents:
            return FileData.read(value)
        return value

    return map_values(result, to_data)


def bring_files(result: Any, out_dir: Path | None) -> Any:
    """Here: the FileData of a worker's result written into `out_dir` (or a new temporary folder)."""
    folder: list[Path] = [out_dir] if out_dir is not None else []

    def to_path(value: Any) -> Any:
        if not isinstance(value, FileData):
            return value
        if not folder:
            folder.append(Path(tempfile.mkdtemp(prefix="playground-")))
        return value.write(folder[0])

    return map_values(result, to_path)
