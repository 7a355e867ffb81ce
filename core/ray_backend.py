"""The model core served by Ray Serve: one deployment per group of tasks (serve.yaml), behind the same page.

`start()` joins the Ray cluster named by RAY_ADDRESS, or starts a local Ray instance on this machine,
deploys a `CoreWorker` per group and returns the backend that core.backend hands marked calls to. Each
worker replica runs the in-process core (its own model cache) and streams events back: progress,
items of a generator, the result. Closing a stream cancels the request on its replica, which stops the
work at its next step (the next token or row). A replica that dies before answering is tried once
more (Serve routes to another replica, or starts a new one); one that dies mid-stream, or twice, gives a
clear message. Errors the core raises for the user (bad input, a model that cannot be loaded) arrive as
they are, so the tabs show the same messages as in-process.

Needs `pip install -r requirements-serve.txt` (ray[serve]).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from core import backend, serve_config
from core.errors import ModelUnavailableError
from core.settings import SettingsError

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "vision-playground"
APP = "playground"
ENV_PREFIXES = ("PLAYGROUND_", "HF_", "TRANSFORMERS_", "HUGGINGFACE_")
"""Environment variables the workers get from the app: its settings and the Hub's."""
RECENT_CALLS = 32
MAX_PAGE_CONCURRENCY = 64
UPLOAD_EXCLUDES = [".git", ".venv", ".venv-*", "artifacts", "__pycache__", "*.pyc", ".ruff_cache", "docs/*.jpg"]


class CoreWorker:
    """A replica of one group: runs the marked core functions it is sent, in a thread, streaming events."""

    def __init__(self, group: str, env: dict[str, str]) -> None:
        os.environ.update(env)
        from core.settings import reset_settings

        reset_settings()
        backend.mark_worker()
        self.group = group
        self.calls: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_CALLS)

    async def events(self, call: backend.Call) -> AsyncIterator[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        stop = threading.Event()
        record = {
            "call": f"{call.module}.{call.name}",
            "items": 0,
            "status": "running",
            "started": time.time(),
            "pid": os.getpid(),
        }
        self.calls.append(record)

        def emit(event: tuple[Any, ...]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> None:
            record["status"] = _work(call, emit, stop, record)

        threading.Thread(target=work, name=f"{self.group}-call", daemon=True).start()
        try:
            while True:
                event = await queue.get()
                if event[0] == "end":
                    return
                if event[0] == "error":
                    raise event[1]
                yield event
        finally:
            stop.set()  # cancelled or done: a generator stops at its next item

    def recent(self) -> list[dict[str, Any]]:
        """The last calls of this replica: what ran (module.function), when, in which process, items sent,
        and how it ended: "done", "stopped", "error", or "running"."""
        return [dict(record) for record in self.calls]


def _work(call: backend.Call, emit: Any, stop: threading.Event, record: dict[str, Any]) -> str:
    """Run `call` here: progress and items sent through `emit`, then ("end",). Returns how it ended:
    "done", "stopped" (a stream its caller closed) or "error" (sent as ("error", exception))."""
    try:
        with backend.working(), tempfile.TemporaryDirectory(prefix="playground-worker-") as folder:
            _run(call, Path(folder), emit, stop, record)
        return "done"
    except _Stopped:
        return "stopped"
    except BaseException as error:  # to the caller, whatever it is
        emit(("error", error))
        return "error"
    finally:
        emit(("end",))


class _Stopped(Exception):
    """A stream closed by its caller."""


def _run(call: backend.Call, folder: Path, emit: Any, stop: threading.Event, record: dict[str, Any]) -> None:
    fn = backend.local_function(call.module, call.name)
    bound = inspect.signature(fn).bind_partial(*call.args, **call.kwargs)
    for name in call.files:  # files arrive as bytes: written here, handed over as paths
        if isinstance(bound.arguments.get(name), backend.FileData):
            (folder / "in").mkdir(exist_ok=True)
            bound.arguments[name] = str(bound.arguments[name].write(folder / "in"))
    out_dir = None
    if call.out_dir:
        out_dir = folder / "out"
        out_dir.mkdir()
        bound.arguments["out_dir"] = out_dir
    if call.progress:
        bound.arguments["progress"] = lambda fraction, message: emit(("progress", fraction, message))
    if not call.stream:
        emit(("result", backend.send_files(fn(*bound.args, **bound.kwargs), out_dir)))
        return
    items = fn(*bound.args, **bound.kwargs)
    try:
        for item in items:
            emit(("item", backend.send_files(item, out_dir)))
            record["items"] += 1
            if stop.is_set():
                raise _Stopped
    finally:
        items.close()


REPLICA_GONE = (
    "The {group} model server stopped while answering (it may have run out of memory). Please try again in a moment."
)


class RayBackend:
    """Hands marked calls to the deployments' handles."""

    def __init__(self, handles: dict[str, Any], capacity: int = 16) -> None:
        self.handles = handles
        self.capacity = capacity
        """Requests the deployments can work on at once: how many the page lets through together."""

    def events(self, group: str, call: backend.Call) -> Iterator[tuple[Any, ...]]:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
        from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

        gone = (ActorDiedError, ActorUnavailableError, RayActorError, ReplicaUnavailableError)
        handle = self.handles.get(group)
        if handle is None:
            raise ModelUnavailableError(f"No Ray Serve deployment for {group}: check serve.yaml.")
        for attempt in (1, 2):
            response = handle.options(stream=True).events.remote(call)
            answered = False
            try:
                for event in response:
                    answered = answered or event[0] != "progress"
                    yield event
                return
            except GeneratorExit:
                response.cancel()
                raise
            except RayTaskError as error:
                cause = error.cause if isinstance(error.cause, BaseException) else error
                if isinstance(cause, gone) and not answered and attempt == 1:
                    log.warning("a %s replica died before answering; trying once more", group)
                    continue
                raise cause from None
            except gone:
                if answered or attempt == 2:
                    raise ModelUnavailableError(REPLICA_GONE.format(group=group)) from None
                log.warning("a %s replica died before answering; trying once more", group)
            except DeploymentUnavailableError:
                raise ModelUnavailableError(REPLICA_GONE.format(group=group)) from None


def worker_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIXES)}


def start(config: str | Path | None = None) -> RayBackend:
    """Join RAY_ADDRESS's cluster (or start Ray here), deploy every group, and return the backend."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise SettingsError(
            "The Ray backend needs Ray Serve: pip install -r requirements-serve.txt (or run without --backend ray)."
        ) from None
    deployments = serve_config.load(config or serve_config.DEFAULT_FILE)
    address = os.environ.get("RAY_ADDRESS")
    init: dict[str, Any] = {
        "namespace": NAMESPACE,
        "ignore_reinit_error": True,
        "runtime_env": {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": worker_env()},
        "log_to_driver": False,
    }
    if not address:  # a local instance: enough logical CPUs for every minimum replica (they share the cores)
        wanted = sum(d.min_replicas * d.cpus for d in deployments.values())
        init |= {"num_cpus": max(os.cpu_count() or 1, int(wanted + 0.999)), "include_dashboard": False}
    ray.init(address=address or None, **init)
    serve_config.check_fits(deployments, ray.cluster_resources())
    serve.start(proxy_location="Disabled")
    cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
    worker = serve.deployment(CoreWorker)
    groups = {
        group: worker.options(**deployment.options(cluster_gpus)).bind(group, worker_env())
        for group, deployment in deployments.items()
    }
    # one application holding every group's deployment, so that they start side by side
    serve.run(serve.deployment(Ingress).options(ray_actor_options={"num_cpus": 0}).bind(**groups), name=APP)
    handles = {group: serve.get_deployment_handle(group, app_name=APP) for group in deployments}
    log.info("Ray Serve deployments ready: %s", ", ".join(handles))
    capacity = sum(d.max_replicas * d.max_ongoing_requests for d in deployments.values())
    return RayBackend(handles, capacity=min(capacity, MAX_PAGE_CONCURRENCY))


class Ingress:
    """The application's entry deployment: it only holds the groups' deployments together (the app calls
    each group's handle directly)."""

    def __init__(self, **groups: Any) -> None:
        self.groups = list(groups)

    def __call__(self) -> list[str]:
        return self.groups


def stop() -> None:
    """Delete the deployments and leave Ray (a local instance stops)."""
    import ray
    from ray import serve

    backend.set_backend(None)
    serve.shutdown()
    ray.shutdown()
