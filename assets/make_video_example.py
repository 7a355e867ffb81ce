"""Make the Video tab's example clip with the FFmpeg binary that imageio-ffmpeg ships:
`python assets/make_video_example.py`.

video_tones.mp4: 3 s of FFmpeg's `testsrc2` pattern (moving colour bars, a counter and a gradient;
320×240, 25 fps, H.264) with a note every half second, each a step higher (330, 440, ..., 880 Hz:
a sine at 0.4 of full scale that fades out over the half second, 48 kHz mono, AAC), so that a 0.64 s window
holds one or two tones. Everything is generated: no outside material.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
SECONDS, FPS, SIZE, RATE = 3, 25, "320x240", 48000
TONE = "(330+110*floor(2*t))"
SOUND = f"0.4*sin(2*PI*{TONE}*t)*exp(-4*mod(2*t,1))*min(1,200*mod(2*t,1))"


def command(out: Path) -> list[str]:
    import imageio_ffmpeg

    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={SIZE}:rate={FPS}:duration={SECONDS}",
        "-f",
        "lavfi",
        "-i",
        f"aevalsrc='{SOUND}':s={RATE}:d={SECONDS}",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "28",
        "-preset",
        "veryslow",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-ac",
        "1",
        "-movflags",
        "+faststart",
        "-map_metadata",
        "-1",
        str(out),
    ]


def main() -> None:
    subprocess.run(command(ASSETS / "video_tones.mp4"), check=True)


if __name__ == "__main__":
    main()
