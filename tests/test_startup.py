"""Starting the app: the page is built without torch (it imports in over a second and no page needs
it until a model runs), and `python app.py` serves requests, importing torch once it is up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parent.parent


def test_building_the_page_imports_neither_torch_nor_transformers() -> None:
    code = "import sys, app; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_python_app_py_serves_the_page_and_the_api(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "app.py", "--tiny", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 90 s"
                time.sleep(0.2)
        client = Client(url, verbose=False)
        result = client.predict(
            handle_file(str(ROOT / "assets" / "chelsea.jpg")), ["levit-128S"], 3, api_name="/classify"
        )
        assert list(result["predictions"]) == ["levit-128S"] and len(result["predictions"]["levit-128S"]) == 3
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
