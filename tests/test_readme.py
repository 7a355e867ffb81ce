"""The README stays true: its Spaces header matches the registry and the pins, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from core.download import repositories

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _header() -> str:
    match = re.match(r"---\n(.*?)\n---\n", README, re.S)
    assert match, "README.md must start with the Spaces YAML header"
    return match.group(1)


def test_preload_from_hub_lists_every_registry_checkpoint() -> None:
    """Each item is `repo` or `repo file1,file2` (as `python -m core.download --spaces-header` prints it):
    every checkpoint, and the tokenizer repositories of those that ship none."""
    preload = yaml.safe_load(_header())["preload_from_hub"]
    assert [item.split()[0] for item in preload] == repositories()
    for item in preload:
        assert len(item.split()) in (1, 2), item


def test_spaces_header_pins_the_installed_gradio() -> None:
    header = _header()
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = {name.split("[")[0]: version for name, version in (line.split("==") for line in lines if "==" in line)}
    assert re.search(r"^sdk: gradio$", header, re.M)
    assert re.search(r"^app_file: app.py$", header, re.M)
    assert re.search(rf"^sdk_version: {re.escape(pins['gradio'])}$", header, re.M)
    assert pins["torch"] == "2.13.0"


def test_the_two_commands_are_at_the_top() -> None:
    top = "\n".join(README.splitlines()[:40])
    assert "pip install -r requirements.txt && python app.py" in top
    assert "pip install -r requirements-dev.txt && python -m pytest" in top
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()
