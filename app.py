"""Vision playground: every vision transformer demo in one Gradio app.

`python app.py [--tiny] [--share]` starts it; importing this module only builds the page.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

import gradio as gr

from core.backend import current_backend
from core.runtime import describe_runtime
from core.settings import Settings, get_settings, reset_settings
from tabs import caption, chat, classify, flow, imagegpt, inside, segment, video
from tabs.components import fill_on_page_load

TABS = [
    ("Classify", "classify", classify.build),
    ("Segment", "segment", segment.build),
    ("Caption", "caption", caption.build),
    ("Visual chat", "chat", chat.build),
    ("Flow", "flow", flow.build),
    ("Video", "video", video.build),
    ("ImageGPT", "imagegpt", imagegpt.build),
    ("Inside", "inside", inside.build),
]
"""(title, id, build function) of each tab, in page order."""

TITLE = "Vision playground"
CSS = """
#tiny-banner {background: #fff4ce; border: 1px solid #e0b400; border-radius: 8px; padding: 4px 14px;}
#tiny-banner p {margin: 6px 0;}
.model-card {border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 8px;}
.pixelated img {image-rendering: pixelated;}
"""

INTRO = (
    f"# {TITLE}\n"
    "Try the vision transformers of Hugging Face Transformers in your browser. "
    "Every tab is also an API endpoint (see *Use via API* at the bottom of the page)."
)
TINY_BANNER = (
    "**Tiny mode: the models have random weights.** Each model is a small, randomly initialised "
    "network of the same class as the real checkpoint, so the whole pipeline runs, but the labels "
    "and scores mean nothing. Start without `--tiny` (and with access to the Hugging Face Hub) for "
    "real predictions."
)


def build_demo(settings: Settings | None = None) -> gr.Blocks:
    settings = settings or get_settings()
    # delete_cache: files the app wrote for downloads leave Gradio's cache after an hour
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        if settings.tiny:
            gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
        for title, tab_id, build in TABS:
            with gr.Tab(title, id=tab_id, elem_id=f"tab-{tab_id}"):
                build()
        # filled when a page opens, not at import: nothing imports torch or touches CUDA before (ZeroGPU)
        fill_on_page_load(gr.Markdown(), lambda: f"<small>Models run on {describe_runtime()}.</small>")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=model_concurrency())
    return demo


def model_concurrency() -> int:
    """Requests the page lets through to the models at once: one in this process (one request at a time
    per process keeps memory bounded); with Ray Serve, what the deployments can take together."""
    backend = current_backend()
    return 1 if backend is None else max(1, getattr(backend, "capacity", 1))


def launch_options(settings: Settings | None = None) -> dict[str, object]:
    """Keyword arguments for `launch()` shared by `main` and the tests."""
    settings = settings or get_settings()
    return {"max_file_size": f"{settings.max_upload_mb}mb", "css": CSS, "mcp_server": settings.mcp}


def start_ray_backend(settings: Settings) -> None:
    """Hand the model work to Ray Serve deployments; a bad setting stops the app with its message."""
    from core import ray_backend
    from core.backend import set_backend
    from core.settings import SettingsError

    try:
        set_backend(ray_backend.start(settings.serve_config))
    except SettingsError as error:
        raise SystemExit(f"Cannot start the Ray backend: {error}") from None
    # stopped with SIGTERM (a service manager, a test): exit normally, so Ray's shutdown runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="use tiny random models (offline, no downloads)")
    parser.add_argument("--share", action="store_true", help="also serve on a public *.gradio.live link")
    parser.add_argument("--mcp", action="store_true", help="also serve every tab as an MCP tool (/gradio_api/mcp/)")
    parser.add_argument(
        "--backend",
        choices=["local", "ray"],
        help="where models run: in this process (default) or Ray Serve deployments (serve.yaml; RAY_ADDRESS joins a "
        "cluster)",
    )
    parser.add_argument("--serve-config", help="the Ray Serve deployments' settings (default: serve.yaml)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    flags = {"PLAYGROUND_TINY": args.tiny, "PLAYGROUND_MCP": args.mcp}
    os.environ.update({name: "1" for name, given in flags.items() if given})
    if args.backend:
        os.environ["PLAYGROUND_BACKEND"] = args.backend
    if args.serve_config:
        os.environ["PLAYGROUND_SERVE_CONFIG"] = args.serve_config
    reset_settings()
    settings = get_settings()
    if settings.backend == "ray":  # before the page: the deployments answer from the first request on
        start_ray_backend(settings)
    app = build_demo()
    app.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        prevent_thread_lock=True,
        **launch_options(),
    )
    # The page is served without torch; import it now, so the first request does not wait for it.
    importlib.import_module("torch")
    app.block_thread()


if __name__ == "__main__":
    main()
else:  # `import app`, `gradio app.py`: the page as the environment configures it (`python app.py` builds
    # it once in main(), after reading its flags)
    demo = build_demo()
