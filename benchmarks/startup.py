"""Time from `python app.py` to the server answering, against a one-component Gradio app started
the same way (what Gradio itself costs), each in a fresh process; the server is stopped after each run."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import Row

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
MINIMAL_APP = """
import sys
import gradio as gr
gr.Interface(lambda text: text, "text", "text").launch(server_port=int(sys.argv[1]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds_to_answer(command: list[str], port: int) -> float:
    """Start `command`, poll http://127.0.0.1:port/ until it answers 200, stop it; the seconds taken."""
    env = {**os.environ, "PLAYGROUND_TINY": "0", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - start < TIMEOUT_S:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited: {process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{' '.join(command)} did not answer within {TIMEOUT_S} s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def run(repeat: int) -> list[Row]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(MINIMAL_APP)
    try:
        ours, reference = [], []
        for _ in range(repeat + 1):  # the first pair warms the disk cache and is not counted
            port = free_port()
            ours.append(seconds_to_answer([sys.executable, "app.py", "--port", str(port)], port))
            port = free_port()
            reference.append(seconds_to_answer([sys.executable, script.name, str(port)], port))
    finally:
        Path(script.name).unlink()
    ours_s, reference_s = statistics.median(ours[1:]), statistics.median(reference[1:])
    verdict = "within" if ours_s <= 5 else "OVER"
    return [
        Row(
            task="start the server",
            model="all 6 tabs, no model loaded",
            device="cpu",
            batch="–",
            ours_s=ours_s,
            reference_s=reference_s,
            reference="one-textbox gr.Interface",
            note=f"`python app.py` to the first HTTP 200: {verdict} the 5 s target; models load on first use",
            runs=repeat,
        )
    ]
