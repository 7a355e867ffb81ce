"""python -m benchmarks: time our paths against the plain transformers way and record the table.

python -m benchmarks                       # every benchmark, CPU (or CUDA when present)
python -m benchmarks --only classify --only segment --repeat 5
python -m benchmarks --only perceiver-flow --no-record --repeat 2
python -m benchmarks --quick               # fewer tokens and repeats, for a smoke run

Benchmarks: startup (time from `python app.py` to answering), classify, segment, caption (against
pipeline / generate, with the first call's load time), perceiver-flow (a tile and a frame pair),
imagegpt (the sampler against generate), zero-shot (clip-italian: batched and cached image embeddings
against one processor + model call per photo), inside (attention maps through the loaded model switched
to eager for the call, against a second eager copy; classification right after), vqa (detector +
VisualBERT, first and repeated question), video-autoencode (Perceiver IO multimodal: one encoding decoded
in chunks against the documented loop of 128 whole-model passes), serve (requests per second through the
in-process core and Ray Serve replicas; needs requirements-serve.txt, so it runs only when asked for),
chat-cpu (ViP-LLaVA-7B on the CPU in each form that fits: memory, first token, tokens per second,
agreement with float32; writes 14 GB and takes many minutes, so it runs only when asked for; --chat-dir
says where).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch

from benchmarks import imagegpt, inside, perceiver_flow, startup, tasks, video_autoencode, vqa, zero_shot
from benchmarks.common import Row, machine, markdown_table
from core.settings import reset_settings

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BENCHMARKS = [
    "startup",
    "classify",
    "segment",
    "caption",
    "perceiver-flow",
    "video-autoencode",
    "imagegpt",
    "zero-shot",
    "inside",
    "vqa",
]
ON_REQUEST = ["serve", "chat-cpu"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=BENCHMARKS + ON_REQUEST, action="append", help="run only these benchmarks (repeatable)"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (not for recorded figures)")
    parser.add_argument("--chat-dir", type=Path, default=Path("/tmp/playground-chat-cpu"), help="chat-cpu checkpoints")
    parser.add_argument("--no-record", action="store_true", help=f"print only; do not update {RESULTS.name}")
    args = parser.parse_args(argv)

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    dtype = torch.float16 if use_cuda else torch.float32
    os.environ["PLAYGROUND_DEVICE"] = device.type  # the app's loader (classify, segment, caption) follows it
    os.environ["PLAYGROUND_TINY"] = "0"
    reset_settings()
    only = set(args.only or BENCHMARKS)
    repeat = 1 if args.quick else args.repeat
    results: dict[str, list[Row]] = {}
    if "startup" in only:
        results["startup"] = startup.run(repeat)
    results.update(tasks.run(repeat, only))
    if "imagegpt" in only:
        sizes = ["imagegpt-small"] if args.quick or not use_cuda else ["imagegpt-small", "imagegpt-medium"]
        tokens = 128 if args.quick else 1024
        # one CPU run of 1024 tokens takes minutes (generate at batch 16: about 6), so one run each there
        runs = repeat if use_cuda else 1
        results["imagegpt"] = imagegpt.run(device, dtype, runs, sizes, batches=[1, 16], tokens=tokens)
    if "inside" in only:
        results["inside"] = inside.run(repeat)
    if "vqa" in only:
        # each full-size detection on a 2-core CPU takes a minute or more: one run each there
        results["vqa"] = vqa.run(device, dtype, repeat if use_cuda else 1)
    if "perceiver-flow" in only:
        results["perceiver-flow"] = perceiver_flow.run(device, dtype, repeat, pair=not args.quick)
    if "zero-shot" in only:
        results["zero-shot"] = zero_shot.run(repeat)
    if "video-autoencode" in only:
        # one run: the documented loop's 8 timed passes alone take about a minute on a 2-core CPU
        results["video-autoencode"] = video_autoencode.run(device, dtype)

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") + (" (quick)" if args.quick else "")

    def report(name: str, what: str, table: str) -> None:
        """Print one benchmark's section; record it in RESULTS.md unless told not to (or quick)."""
        section = f"## {name} on {machine()}\n\n{stamp}; {what}\n\n{table}\n"
        print(section)
        if not args.no_record and not args.quick:
            record(section, f"{device.type} {name}")

    if "serve" in only:
        from benchmarks import serve

        rows = serve.run(requests=16 if args.quick else 48)
        report("serve", f"/classify ({serve.MODEL}, full size, random weights) under load", serve.markdown(rows))
    if "chat-cpu" in only:
        from benchmarks import chat_cpu

        steps = 16 if args.quick else 64
        forms = ["int8"] if args.quick else ["float32", "bfloat16", "int8"]
        chat_rows = chat_cpu.run(args.chat_dir, forms, new_tokens=4 if args.quick else 16, steps=steps)
        what = "ViP-LLaVA-7B's full-size architecture, random weights, loaded by the app's loader, one greedy answer"
        report("chat-cpu", what, chat_cpu.markdown(chat_rows, steps))
    for name, rows in results.items():
        report(name, "times are medians over the runs column", markdown_table(rows))
    return 0


def record(section: str, key: str) -> None:
    """Keep one section per (device type, benchmark) in RESULTS.md, replacing the previous one."""
    marker_start, marker_end = f"<!-- {key} start -->", f"<!-- {key} end -->"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = f"{marker_start}\n{section}{marker_end}"
    if marker_start in text:
        before, rest = text.split(marker_start, 1)
        text = before + block + rest.split(marker_end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
