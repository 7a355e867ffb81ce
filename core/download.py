"""Fill the local Hugging Face cache with the registry's checkpoints, or build the tiny models.

    python -m core.download --all              # every checkpoint (online, once)
    python -m core.download --task classify    # the checkpoints of one tab
    python -m core.download --model levit-128S # one checkpoint
    python -m core.download --tiny --all       # build the tiny random models (offline)

After an online run the app works offline (set HF_HUB_OFFLINE=1 to skip the network checks).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from core.registry import REGISTRY, ModelSpec, get_spec, specs_for

CONFIG_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


def select_specs(all_models: bool, tasks: Sequence[str], keys: Sequence[str]) -> list[ModelSpec]:
    chosen: dict[str, ModelSpec] = {}
    if all_models:
        chosen.update(REGISTRY)
    for task in tasks:
        specs = specs_for(task)
        if not specs:
            raise SystemExit(
                f"No models for task {task!r}. Tasks: {', '.join(sorted({s.task for s in REGISTRY.values()}))}"
            )
        chosen.update((s.key, s) for s in specs)
    for key in keys:
        chosen[key] = get_spec(key)
    return list(chosen.values())


def weight_patterns(repo_files: Sequence[str]) -> list[str]:
    """safetensors weights where the repository has them, else its PyTorch .bin files (never both)."""
    if any(name.endswith(".safetensors") for name in repo_files):
        return ["*.safetensors"]
    return ["*.bin"]


def download(
    spec: ModelSpec,
    snapshot_download: Callable[..., str] | None = None,
    list_repo_files: Callable[[str], list[str]] | None = None,
) -> str:
    """Download the files `from_pretrained` needs for `spec` into the Hugging Face cache."""
    if snapshot_download is None or list_repo_files is None:
        import huggingface_hub

        snapshot_download = snapshot_download or huggingface_hub.snapshot_download
        list_repo_files = list_repo_files or huggingface_hub.list_repo_files
    patterns = CONFIG_FILES + weight_patterns(list_repo_files(spec.hub_id))
    return snapshot_download(spec.hub_id, allow_patterns=patterns)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.download", description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every checkpoint in the registry")
    parser.add_argument("--task", action="append", default=[], help="the checkpoints of one task (repeatable)")
    parser.add_argument("--model", action="append", default=[], help="one registry key (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="build the tiny random models instead (no network)")
    parser.add_argument("--list", action="store_true", help="list the registry and exit")
    args = parser.parse_args(argv)

    if args.list:
        for spec in REGISTRY.values():
            print(f"{spec.key:38} {spec.task:10} {spec.hub_id}")
        return 0
    specs = select_specs(args.all, args.task, args.model)
    if not specs:
        parser.error("say which models: --all, --task TASK or --model KEY")

    failures = 0
    for spec in specs:
        try:
            if args.tiny:
                from core.models import ensure_tiny_model
                from core.settings import get_settings

                where = ensure_tiny_model(spec, get_settings())
            else:
                where = download(spec)
            print(f"ok    {spec.key:38} {where}")
        except Exception as error:  # report every model, then fail at the end
            failures += 1
            print(f"FAIL  {spec.key:38} {spec.hub_id}: {type(error).__name__}: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
