"""Fill the local Hugging Face cache with the registry's checkpoints, or build the tiny models.

    python -m core.download --all              # every checkpoint (online, once)
    python -m core.download --task classify    # the checkpoints of one tab
    python -m core.download --model levit-128S # one checkpoint
    python -m core.download --tiny --all       # build the tiny random models (offline)
    python -m core.download --spaces-header    # the Spaces `preload_from_hub` list, file by file (online)
    python -m core.download --dall-e           # OpenAI's DALL-E VAE for the Inside tab (not on the Hub)

After an online run the app works offline (set HF_HUB_OFFLINE=1 to skip the network checks).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Callable, Sequence
from typing import Any

from core.registry import REGISTRY, ModelSpec, get_spec, specs_for

CONFIG_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.yaml"]


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


def files_to_fetch(repo_files: Sequence[str]) -> list[str]:
    """The files of a repository that `download` fetches: configuration, processor and tokenizer files,
    and one copy of the weights."""
    patterns = CONFIG_FILES + weight_patterns(repo_files)
    return [name for name in repo_files if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]


def preload_entry(spec: ModelSpec, list_repo_files: Callable[[str], list[str]]) -> str:
    """One `preload_from_hub` item of the Spaces header: the repository and exactly the files `download`
    fetches (`repo file1,file2`), so a Space does not store both .bin and .safetensors copies."""
    return f"{spec.hub_id} {','.join(files_to_fetch(list_repo_files(spec.hub_id)))}"


def repositories() -> list[str]:
    """Every Hub repository the app reads, in registry order: each checkpoint, and after it the
    repository of its tokenizer when the checkpoint ships none."""
    repos = [repo for spec in REGISTRY.values() for repo in (spec.hub_id, spec.tokenizer_hub_id) if repo]
    return list(dict.fromkeys(repos))


def tokenizer_entry(repo: str, list_repo_files: Callable[[str], list[str]]) -> str:
    """A tokenizer repository's `preload_from_hub` item: its configuration and vocabulary files, no weights."""
    names = [name for name in list_repo_files(repo) if any(fnmatch.fnmatch(name, p) for p in CONFIG_FILES)]
    return f"{repo} {','.join(names)}"


def spaces_header(list_repo_files: Callable[[str], list[str]] | None = None) -> str:
    """The `preload_from_hub` block of README.md's Spaces header for every repository the app reads."""
    if list_repo_files is None:
        import huggingface_hub

        list_repo_files = huggingface_hub.list_repo_files
    checkpoints = {spec.hub_id: spec for spec in REGISTRY.values()}
    entries = [
        preload_entry(checkpoints[repo], list_repo_files)
        if repo in checkpoints
        else tokenizer_entry(repo, list_repo_files)
        for repo in repositories()
    ]
    return "preload_from_hub:\n" + "".join(f"  - {entry}\n" for entry in entries)


def download(
    spec: ModelSpec,
    snapshot_download: Callable[..., str] | None = None,
    list_repo_files: Callable[[str], list[str]] | None = None,
) -> str:
    """Download the files `from_pretrained` needs for `spec` into the Hugging Face cache (and the
    tokenizer's files when they live in another repository, and the name lists the checkpoint lacks)."""
    if snapshot_download is None or list_repo_files is None:
        import huggingface_hub

        snapshot_download = snapshot_download or huggingface_hub.snapshot_download
        list_repo_files = list_repo_files or huggingface_hub.list_repo_files
    patterns = CONFIG_FILES + weight_patterns(list_repo_files(spec.hub_id))
    where = snapshot_download(spec.hub_id, allow_patterns=patterns)
    if spec.tokenizer_hub_id:
        snapshot_download(spec.tokenizer_hub_id, allow_patterns=CONFIG_FILES)
    if spec.label_files:
        from core.label_files import fetch_label_files
        from core.settings import get_settings

        fetch_label_files(spec, get_settings())
    return where


def fetch_dalle_vae(tiny: bool, fetch: Callable[[str], Any] | None = None) -> int:
    """Fetch OpenAI's DALL-E VAE (or build the tiny one); the number of failures (0 or 1), reported."""
    from core import dalle_vae
    from core.settings import get_settings

    settings = get_settings()
    try:
        where = dalle_vae.ensure_tiny_vae(settings) if tiny else dalle_vae.download(settings.dalle_dir, fetch)
    except Exception as error:
        print(
            f"FAIL  {dalle_vae.CACHE_KEY:38} {dalle_vae.URLS['encoder.pkl']}: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return 1
    print(f"ok    {dalle_vae.CACHE_KEY:38} {where}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.download", description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every checkpoint in the registry")
    parser.add_argument("--task", action="append", default=[], help="the checkpoints of one task (repeatable)")
    parser.add_argument("--model", action="append", default=[], help="one registry key (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="build the tiny random models instead (no network)")
    parser.add_argument(
        "--dall-e",
        action="store_true",
        help="OpenAI's DALL-E discrete VAE (encoder.pkl, decoder.pkl from cdn.openai.com) for the Inside tab, "
        "into PLAYGROUND_DALLE_DIR; with --tiny, the tiny random VAE",
    )
    parser.add_argument("--list", action="store_true", help="list the registry and exit")
    parser.add_argument(
        "--spaces-header", action="store_true", help="print the Spaces preload_from_hub list, file by file (online)"
    )
    args = parser.parse_args(argv)

    if args.spaces_header:
        print(spaces_header(), end="")
        return 0
    if args.list:
        for spec in REGISTRY.values():
            print(f"{spec.key:38} {spec.task:10} {spec.hub_id}")
        return 0
    specs = select_specs(args.all, args.task, args.model)
    if not specs and not args.dall_e:
        parser.error("say which models: --all, --task TASK, --model KEY or --dall-e")

    failures = 0 if not args.dall_e else fetch_dalle_vae(args.tiny)
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
