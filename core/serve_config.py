"""The Ray Serve deployments' settings (serve.yaml): replicas, CPU and GPU shares, per group of tasks.

Every value is checked when the backend starts; a bad one is refused with a message that names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import SettingsError

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "serve.yaml"
GROUPS = ("classify", "segment", "caption", "chat", "flow", "video", "imagegpt", "zero-shot", "inside", "vqa")
"""The deployments: one per group of the core's entry points (`core.backend.runs_in`)."""
FIELDS = {"replicas", "cpus", "gpus", "max_ongoing_requests"}
REPLICA_FIELDS = {"min", "max", "target_ongoing_requests"}


@dataclass(frozen=True)
class Deployment:
    group: str
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0
    """Autoscaling adds a replica when each has more requests than this in flight."""
    cpus: float = 1.0
    """CPU cores reserved per replica (a scheduling share; the work uses what torch is given)."""
    gpus: float = 0.0
    """Share of a GPU per replica when the cluster has GPUs (0: never on a GPU)."""
    max_ongoing_requests: int = 4

    def options(self, cluster_gpus: float) -> dict[str, Any]:
        """`serve.deployment(...).options` of this deployment on a cluster with `cluster_gpus` GPUs."""
        options: dict[str, Any] = {
            "name": self.group,
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.cpus, "num_gpus": self.gpus if cluster_gpus > 0 else 0},
        }
        if self.min_replicas == self.max_replicas:
            options["num_replicas"] = self.max_replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        return options


def _number(value: Any, where: str, low: float, high: float, whole: bool = False) -> float:
    kind = "a whole number" if whole else "a number"
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or (whole and value != int(value)) or not low <= value <= high:
        raise SettingsError(f"{where} must be {kind} from {low:g} to {high:g}, not {value!r}.")
    return int(value) if whole else float(value)


def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be a mapping of {', '.join(sorted(allowed))}, not {value!r}.")
    unknown = set(value) - allowed
    if unknown:
        raise SettingsError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}.")
    return value


def _deployment(group: str, raw: dict[str, Any], where: str) -> Deployment:
    raw = _mapping(raw, where, FIELDS)
    replicas = raw.get("replicas", {})
    if isinstance(replicas, int | float) and not isinstance(replicas, bool):
        replicas = {"min": replicas, "max": replicas}
    replicas = _mapping(replicas, f"{where}.replicas", REPLICA_FIELDS)
    low = _number(replicas.get("min", 1), f"{where}.replicas.min", 0, 64, whole=True)
    high = _number(replicas.get("max", max(low, 1)), f"{where}.replicas.max", 1, 64, whole=True)
    if low > high:
        raise SettingsError(f"{where}.replicas.min ({low}) must not be above {where}.replicas.max ({high}).")
    return Deployment(
        group=group,
        min_replicas=int(low),
        max_replicas=int(high),
        target_ongoing_requests=_number(
            replicas.get("target_ongoing_requests", 2), f"{where}.replicas.target_ongoing_requests", 0.1, 1000
        ),
        cpus=_number(raw.get("cpus", 1), f"{where}.cpus", 0, 256),
        gpus=_number(raw.get("gpus", 0), f"{where}.gpus", 0, 8),
        max_ongoing_requests=int(
            _number(raw.get("max_ongoing_requests", 4), f"{where}.max_ongoing_requests", 1, 1000, whole=True)
        ),
    )


def parse(data: Any, source: str = "serve.yaml") -> dict[str, Deployment]:
    """Deployments from the parsed YAML: `defaults` apply to every group, `deployments.<group>` over them."""
    data = _mapping(data, source, {"defaults", "deployments"})
    defaults = _mapping(data.get("defaults"), f"{source}: defaults", FIELDS)
    groups = _mapping(data.get("deployments"), f"{source}: deployments", set(GROUPS))
    deployments = {}
    for group in GROUPS:
        own = _mapping(groups.get(group), f"{source}: deployments.{group}", FIELDS)
        merged = {**defaults, **own}
        if isinstance(defaults.get("replicas"), dict) and isinstance(own.get("replicas"), dict):
            merged["replicas"] = {**defaults["replicas"], **own["replicas"]}
        deployments[group] = _deployment(group, merged, f"{source}: deployments.{group}")
    return deployments


def load(path: str | Path = DEFAULT_FILE) -> dict[str, Deployment]:
    """The deployments of a YAML file (the repository's serve.yaml by default)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"Cannot read the Ray Serve settings {path}: {error.strerror}.") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path.name} is not valid YAML: {error}") from None
    return parse(data, path.name)


def check_fits(deployments: dict[str, Deployment], cluster: dict[str, float]) -> None:
    """Refuse, before deploying, minimum replicas the cluster's CPUs and GPUs cannot hold."""
    gpus = cluster.get("GPU", 0.0)
    cpus = cluster.get("CPU", 0.0)
    need_gpus = sum(d.min_replicas * d.gpus for d in deployments.values()) if gpus > 0 else 0.0
    need_cpus = sum(d.min_replicas * d.cpus for d in deployments.values())
    if need_gpus > gpus + 1e-9:
        raise SettingsError(
            f"serve.yaml asks for {need_gpus:g} GPUs for the minimum replicas, and the cluster has {gpus:g}: "
            "lower `gpus` or `replicas.min`, or add GPU nodes."
        )
    if need_cpus > cpus + 1e-9:
        raise SettingsError(
            f"serve.yaml asks for {need_cpus:g} CPUs for the minimum replicas, and the cluster has {cpus:g}: "
            "lower `cpus` or `replicas.min`, or add nodes."
        )
