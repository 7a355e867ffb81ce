"""The model core behind Ray Serve (`--backend ray`): the deployments' settings, the transport of calls
(files as bytes, results' files brought back, progress, streams that stop), and, when Ray is installed
(requirements-serve.txt), the app served by a local Ray instance: every endpoint equals its in-process
answer, streams stop on the worker, a replica killed mid-request, 16 users at once."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core import backend, serve_config
from core.backend import Call, FileData
from core.errors import InputError, ModelUnavailableError
from core.images import load_image
from core.settings import SettingsError

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
TEST_CONFIG = Path(__file__).resolve().parent / "serve-test.yaml"


# --- serve.yaml ------------------------------------------------------------------------------------


def test_the_repository_config_deploys_every_group_and_fits_one_gpu() -> None:
    deployments = serve_config.load()
    assert list(deployments) == list(serve_config.GROUPS)
    assert sum(d.gpus * d.min_replicas for d in deployments.values()) == pytest.approx(1.0)
    chat = deployments["chat"]
    assert (chat.min_replicas, chat.max_replicas, chat.gpus) == (1, 1, 0.3)
    options = deployments["classify"].options(cluster_gpus=1)
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2.0}
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.1}
    assert deployments["classify"].options(cluster_gpus=0)["ray_actor_options"]["num_gpus"] == 0
    assert chat.options(cluster_gpus=1)["num_replicas"] == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"deployments": {"clasify": {}}}, "deployments has unknown keys: clasify"),
        ({"defaults": {"gpu": 1}}, "defaults has unknown keys: gpu"),
        ({"deployments": {"chat": {"replicas": {"min": -1}}}}, r"chat.replicas.min must be a whole number from 0"),
        ({"deployments": {"chat": {"replicas": {"min": 3, "max": 2}}}}, r"min \(3\) must not be above .*max \(2\)"),
        ({"deployments": {"flow": {"gpus": "half"}}}, "flow.gpus must be a number from 0 to 8, not 'half'"),
        ({"deployments": {"flow": {"cpus": True}}}, "flow.cpus must be a number"),
        ({"defaults": {"replicas": 1.5}}, "replicas.min must be a whole number"),
        ({"deployments": {"caption": {"max_ongoing_requests": 0}}}, "max_ongoing_requests must be a whole number"),
        (["classify"], "serve.yaml must be a mapping"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(data: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        serve_config.parse(data)


def test_bad_yaml_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("deployments: [classify", encoding="utf-8")
    with pytest.raises(SettingsError, match="bad.yaml is not valid YAML"):
        serve_config.load(tmp_path / "bad.yaml")
    with pytest.raises(SettingsError, match="Cannot read the Ray Serve settings"):
        serve_config.load(tmp_path / "missing.yaml")


def test_minimum_replicas_the_cluster_cannot_hold_are_refused() -> None:
    deployments = serve_config.load()
    groups = len(serve_config.GROUPS)
    serve_config.check_fits(deployments, {"CPU": groups, "GPU": 1})
    serve_config.check_fits(deployments, {"CPU": groups})  # no GPUs: every replica on CPUs
    with pytest.raises(SettingsError, match="asks for 1 GPUs .* the cluster has 0.5"):
        serve_config.check_fits(deployments, {"CPU": 8, "GPU": 0.5})
    with pytest.raises(SettingsError, match=f"asks for {groups} CPUs .* the cluster has 2"):
        serve_config.check_fits(deployments, {"CPU": 2})


def test_app_refuses_a_bad_config_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text("deployments: {chat: {gpus: 9}}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "app.py", "--tiny", "--backend", "ray", "--serve-config", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    message = "chat.gpus must be a number from 0 to 8, not 9" if _has_ray() else "needs Ray Serve"
    assert message in done.stderr


# --- the transport, with the worker's code run here (no Ray) ---------------------------------------


class InlineBackend:
    """Runs each call with the worker's own code (core.ray_backend._work) in a thread of this process."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.records: list[dict[str, Any]] = []

    def events(self, group: str, call: Call) -> Iterator[tuple[Any, ...]]:
        import queue

        from core import ray_backend

        self.calls.append(call)
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        stop = threading.Event()
        record: dict[str, Any] = {"items": 0}
        self.records.append(record)

        def work() -> None:
            record["status"] = ray_backend._work(call, events.put, stop, record)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while (event := events.get())[0] != "end":
                if event[0] == "error":
                    raise event[1]
                yield event
        finally:
            stop.set()
            thread.join(timeout=60)


@pytest.fixture
def inline() -> Iterator[InlineBackend]:
    inline = InlineBackend()
    backend.set_backend(inline)
    try:
        yield inline
    finally:
        backend.set_backend(None)


def test_files_travel_as_bytes_and_come_back_into_the_callers_folder(inline: InlineBackend, tmp_path: Path) -> None:
    from core import flow

    reports: list[tuple[float, str]] = []
    result = flow.video_flow(
        ASSETS / "flow_pan.mp4",
        "dis",
        dis_preset="fast",
        out_dir=tmp_path,
        progress=lambda f, m: reports.append((f, m)),
    )
    call = inline.calls[-1]
    assert isinstance(call.args[0], FileData) and call.args[0].name == "flow_pan.mp4"
    assert call.args[0].data == (ASSETS / "flow_pan.mp4").read_bytes()
    assert "out_dir" not in call.kwargs and "progress" not in call.kwargs and call.out_dir and call.progress
    assert result.video.parent == tmp_path and result.video.is_file()
    (tmp_path / "local").mkdir()
    local = flow.video_flow.local(ASSETS / "flow_pan.mp4", "dis", dis_preset="fast", out_dir=tmp_path / "local")
    assert result.info["mean_magnitude_per_pair"] == local.info["mean_magnitude_per_pair"]
    assert reports and reports[-1][0] == 1.0


def test_a_stream_closed_here_stops_on_the_worker(inline: InlineBackend) -> None:
    from core import imagegpt

    stream = imagegpt.sample_stream("imagegpt-small", imagegpt.SamplingOptions(num_images=1, seed=1))
    first = next(stream)
    assert first.to_dict()["rows_done"] >= 1
    stream.close()
    assert inline.records[-1]["status"] == "stopped"
    assert inline.records[-1]["items"] < 32


def test_user_errors_arrive_as_they_are_and_only_entry_points_run(inline: InlineBackend) -> None:
    from core import classify

    with pytest.raises(InputError, match="Top-k must be from 1 to 20, not 0"):
        classify.classify(Image.new("RGB", (32, 32)), ["levit-128S"], 0)
    with pytest.raises(PermissionError, match="not a core entry point"):
        backend.local_function("os", "system")


def test_marked_functions_run_here_without_a_backend() -> None:
    from core import classify

    assert backend.current_backend() is None
    assert classify.classify.local is not classify.classify and classify.classify.group == "classify"


# --- Ray: the app on a local Ray instance ------------------------------------------------------------


def _has_ray() -> bool:
    return importlib.util.find_spec("ray") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_app() -> Iterator[dict[str, Any]]:
    """`python app.py --tiny --backend ray` on a local Ray instance, and this process joined to that
    instance with handles on the deployments (as the app has them)."""
    if not _has_ray():
        if os.environ.get("PLAYGROUND_SERVE_TESTS"):
            pytest.fail(
                "PLAYGROUND_SERVE_TESTS is set but Ray is not installed (pip install -r requirements-serve.txt)"
            )
        pytest.skip("Ray Serve is not installed (pip install -r requirements-serve.txt)")
    import ray
    from ray import serve

    from core import ray_backend

    port = _free_port()
    log = open(Path(os.environ["GRADIO_TEMP_DIR"]).parent / "ray-app.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--tiny",
            "--backend",
            "ray",
            "--serve-config",
            str(TEST_CONFIG),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PLAYGROUND_MCP": "0"},
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Ray-backed app exited: {Path(log.name).read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(1)
    else:
        pytest.fail("the Ray-backed app did not start within 300 s")
    ray.init(address="auto", namespace=ray_backend.NAMESPACE, log_to_driver=False)
    handles = {group: serve.get_deployment_handle(group, app_name=ray_backend.APP) for group in serve_config.GROUPS}
    try:
        yield {"url": url, "backend": ray_backend.RayBackend(handles), "handles": handles}
    finally:
        ray.shutdown()
        process.terminate()
        process.wait(timeout=60)
        subprocess.run([Path(sys.executable).parent / "ray", "stop", "--force"], capture_output=True, check=False)
        log.close()


@pytest.fixture
def through_ray(ray_app: dict[str, Any]) -> Iterator[dict[str, Any]]:
    backend.set_backend(ray_app["backend"])
    try:
        yield ray_app
    finally:
        backend.set_backend(None)


def _example_arguments() -> Any:
    spec = importlib.util.spec_from_file_location("call_every_endpoint", ROOT / ".ci" / "call_every_endpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.example_arguments


VARIES = ("_ms", "timings", "runtime", "load", "seconds", "device")
"""Keys whose values depend on the run, not on the answer."""


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if not any(word in k for word in VARIES)}
    if isinstance(value, list | tuple):
        return [_comparable(item) for item in value]
    if isinstance(value, str) and os.path.isfile(value):
        if value.endswith((".png", ".jpg", ".webp")):
            return ("image", np.asarray(Image.open(value)).tobytes())
        if value.endswith(".json"):
            return ("json", _comparable(json.loads(Path(value).read_text())))
        if value.endswith(".mp4"):
            from core.video import read_video

            frames = read_video(value, max_frames=1000, max_seconds=600, max_pixels=10**8).frames
            return ("video", [frame.tobytes() for frame in frames])
        return ("file", Path(value).read_bytes())
    return value


@pytest.mark.ray
def test_every_endpoint_answers_as_in_process(ray_app: dict[str, Any], app_url: str) -> None:
    from gradio_client import Client

    remote, local = Client(ray_app["url"], verbose=False), Client(app_url, verbose=False)
    endpoints = remote.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert endpoints.keys() == local.view_api(return_format="dict", print_info=False)["named_endpoints"].keys()
    example_arguments = _example_arguments()
    for name, info in endpoints.items():
        arguments = example_arguments(info["parameters"])
        assert _comparable(remote.predict(*arguments, api_name=name)) == _comparable(
            local.predict(*arguments, api_name=name)
        ), name


@pytest.mark.ray
def test_a_stream_closed_by_the_user_stops_on_the_worker(through_ray: dict[str, Any]) -> None:
    from core import chat

    coffee = load_image(ASSETS / "coffee.jpg")
    options = chat.ChatOptions(temperature=0, max_new_tokens=400)
    stream = chat.stream_chat(coffee, [], "What is within the red rectangle?", options=options)
    partial = [next(stream), next(stream)]
    assert all(not result.done for result in partial)
    stream.close()
    deadline = time.time() + 60
    while time.time() < deadline:
        record = through_ray["handles"]["chat"].recent.remote().result()[-1]
        if record["status"] != "running":
            break
        time.sleep(0.5)
    assert record["call"] == "core.chat.stream_chat" and record["status"] == "stopped"
    assert record["items"] < 400


def _kill_the_replica_running(call: str, handle: Any) -> None:
    """Kill (SIGKILL, as the out-of-memory killer would) the replica process on which `call` runs, as soon
    as it runs. Serve routes a request to the less busy of two replicas, so one question at a time would
    always reach the idle one: several asked at once reach the busy one too."""
    deadline = time.time() + 120
    while time.time() < deadline:
        for answer in [handle.recent.remote() for _ in range(6)]:
            for record in answer.result():
                if record["call"] == call and record["status"] == "running":
                    os.kill(record["pid"], signal.SIGKILL)
                    return
        time.sleep(0.02)
    raise AssertionError(f"{call} never ran")


@pytest.mark.ray
def test_a_replica_killed_mid_request_is_retried_once(through_ray: dict[str, Any]) -> None:
    from core import flow

    frame1 = load_image(ASSETS / "coffee.jpg").resize((496, 368))  # one tile: seconds on a CPU, long enough
    frame2 = frame1.transform(frame1.size, Image.Transform.AFFINE, (1, 0, 2, 0, 1, 1))
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = flow.compare_flow(frame1, frame2, ["perceiver-flow"])
        except Exception as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    _kill_the_replica_running("core.flow.compare.compare_flow", through_ray["handles"]["flow"])
    worker.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    expected = flow.compare_flow.local(frame1, frame2, ["perceiver-flow"])
    np.testing.assert_allclose(outcome["result"].methods[0].flow, expected.methods[0].flow, atol=1e-4)


@pytest.mark.ray
def test_a_replica_killed_mid_stream_gives_a_clear_message(through_ray: dict[str, Any]) -> None:
    from core import imagegpt

    stream = imagegpt.sample_stream("imagegpt-small", imagegpt.SamplingOptions(num_images=16, seed=3))
    next(stream)
    _kill_the_replica_running("core.imagegpt.sample_stream", through_ray["handles"]["imagegpt"])
    with pytest.raises(ModelUnavailableError, match="imagegpt model server stopped while answering"):
        for _ in stream:
            pass
    again = imagegpt.sample("imagegpt-small", imagegpt.SamplingOptions(num_images=1, seed=3))  # the next one works
    assert again.to_dict()["rows_done"] == 32


@pytest.mark.ray
def test_sixteen_users_at_once(through_ray: dict[str, Any]) -> None:
    from core import classify

    photos = [load_image(ASSETS / name) for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")]
    requests = [(photos[i % 4], ["levit-128S", "beit-base-224"][i % 2], 1 + i % 5) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: classify.classify(r[0], [r[1]], r[2]).to_dict()["predictions"], requests))
    for (photo, model, top_k), answer in zip(requests, answers, strict=True):
        expected = classify.classify.local(photo, [model], top_k).to_dict()["predictions"]
        assert [p["label"] for p in answer[model]] == [p["label"] for p in expected[model]]
        assert [p["score"] for p in answer[model]] == pytest.approx([p["score"] for p in expected[model]], abs=1e-5)
