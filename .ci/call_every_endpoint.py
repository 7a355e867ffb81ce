"""Call every named API endpoint of a running app once, with the examples in assets/.

    python .ci/call_every_endpoint.py http://127.0.0.1:7870/

CI runs it against `python app.py --tiny` started from an environment built from requirements.txt
alone, so what users install is what is checked. The endpoint list comes from the running app
(`view_api`): a new tab is called without anyone adding it here. Each parameter gets its default;
those without one get an example from assets/ by component (photos, a clip, a list of photos) or a
question. Any error, or an endpoint that returns nothing, fails the run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from gradio_client import Client, handle_file

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PHOTOS = [ASSETS / "chelsea.jpg", ASSETS / "coffee.jpg"]
FRAME_PAIR = [ASSETS / "flow_frame1.png", ASSETS / "flow_frame2.png"]
"""Endpoints that take two images (optical flow) need two of the same size."""
CLIP = ASSETS / "video_tones.mp4"
"""A clip with sound (the Video tab's example, 3 s at 25 fps): every video parameter gets it."""
QUESTION = "What is in the picture?"


def example_arguments(parameters: list[dict[str, Any]]) -> list[Any]:
    """One argument per parameter: its default, else an example that fits its component."""
    images = [p for p in parameters if p["component"].lower() in {"image", "imageupload", "imageeditor"}]
    image_examples = iter(FRAME_PAIR if len(images) > 1 else PHOTOS)
    arguments = []
    for parameter in parameters:
        component = parameter["component"].lower()
        if parameter.get("parameter_has_default"):
            arguments.append(parameter["parameter_default"])
        elif parameter in images:
            arguments.append(handle_file(str(next(image_examples))))
        elif component in {"video", "videoupload"}:
            arguments.append(handle_file(str(CLIP)))
        elif component in {"file", "fileupload", "files", "gallery"}:
            arguments.append([handle_file(str(path)) for path in PHOTOS])
        elif component in {"textbox", "textarea"}:
            arguments.append(QUESTION)
        else:
            raise SystemExit(f"no example for a {parameter['component']} parameter ({parameter.get('parameter_name')})")
    return arguments


def main(url: str) -> int:
    client = Client(url, verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    if not endpoints:
        print("the app has no named endpoints", file=sys.stderr)
        return 1
    failures = 0
    for name, info in endpoints.items():
        arguments = example_arguments(info["parameters"])
        start = time.perf_counter()
        try:
            result = client.predict(*arguments, api_name=name)
            if result is None or (isinstance(result, tuple | list) and all(item is None for item in result)):
                raise RuntimeError("returned nothing")
        except Exception as error:
            failures += 1
            print(f"FAIL  {name:22} {type(error).__name__}: {str(error)[:300]}", file=sys.stderr)
            continue
        print(f"ok    {name:22} {time.perf_counter() - start:6.1f} s")
    print(f"{len(endpoints) - failures} of {len(endpoints)} endpoints answered")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7870/"))
