"""The detector's config.yaml, read like the demo's Config class, and its file names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "pytorch_model.bin"


class FrcnnConfig(Mapping[str, Any]):
    """The detector's config.yaml as nested mappings. Keys are read case-insensitively (the demo's
    Config class answers `cfg.max_detections` and `cfg.MAX_DETECTIONS` alike): they are stored upper case."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = {
            str(key).upper(): FrcnnConfig(value) if isinstance(value, Mapping) else value for key, value in data.items()
        }

    def __getitem__(self, key: str) -> Any:
        return self._data[key.upper()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get_path(self, path: str) -> Any:
        """A dotted path, e.g. "INPUT.MIN_SIZE_TEST"; KeyError names the path when absent."""
        value: Any = self
        for part in path.split("."):
            if not isinstance(value, FrcnnConfig) or part.upper() not in value._data:
                raise KeyError(f"config.yaml has no {path}")
            value = value[part]
        return value

    def to_dict(self) -> dict[str, Any]:
        return {key: value.to_dict() if isinstance(value, FrcnnConfig) else value for key, value in self._data.items()}

    @classmethod
    def from_yaml(cls, path: str | Path) -> FrcnnConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"{Path(path).name} is not a mapping of settings")
        return cls(data)

    def save_yaml(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=True), encoding="utf-8")

    @property
    def feature_size(self) -> int:
        """Channels of a region feature: res5's output, 8 x res2's."""
        return int(self.get_path("RESNETS.RES2_OUT_CHANNELS")) * 8
