"""Make the Flow tab's examples from coffee.jpg: `python assets/make_flow_examples.py`.

flow_frame1.png / flow_frame2.png: a 384×288 window of the photo, and the same window after the
photo is rotated by 3° about the window's centre and shifted by (3.5, -2.0) px. flow_pan.mp4: a
camera pan over the photo, 16 frames of 320×240 at 8 fps, moving (4.5, 1.5) px per frame, so the
content flows by (-4.5, -1.5) px.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent
sys.path.insert(0, str(ASSETS.parent))

from core.video import write_mp4  # noqa: E402

PAIR_WINDOW = (100, 60, 384, 288)  # x, y, width, height in coffee.jpg
PAIR_ROTATION_DEG = 3.0
PAIR_SHIFT = (3.5, -2.0)
PAN_START, PAN_STEP, PAN_FRAMES, PAN_SIZE, PAN_FPS = (60.0, 50.0), (4.5, 1.5), 16, (320, 240), 8


def pair_transform() -> np.ndarray:
    """The 2×3 affine map taking a point of frame 1 to where it is in frame 2 (window coordinates)."""
    _, _, width, height = PAIR_WINDOW
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), PAIR_ROTATION_DEG, 1.0)
    matrix[:, 2] += PAIR_SHIFT
    return matrix


def main() -> None:
    photo = cv2.cvtColor(cv2.imread(str(ASSETS / "coffee.jpg")), cv2.COLOR_BGR2RGB)
    x, y, width, height = PAIR_WINDOW
    to_window = np.array([[1, 0, -x], [0, 1, -y], [0, 0, 1]], np.float64)
    moved = np.vstack([pair_transform(), [0, 0, 1]]) @ to_window
    frame1 = photo[y : y + height, x : x + width]
    frame2 = cv2.warpAffine(photo, moved[:2], (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    for name, frame in (("flow_frame1.png", frame1), ("flow_frame2.png", frame2)):
        cv2.imwrite(str(ASSETS / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])

    frames = []
    for index in range(PAN_FRAMES):
        shift = np.array([[1, 0, -(PAN_START[0] + index * PAN_STEP[0])], [0, 1, -(PAN_START[1] + index * PAN_STEP[1])]])
        frames.append(cv2.warpAffine(photo, shift, PAN_SIZE, flags=cv2.INTER_CUBIC))
    write_mp4(ASSETS / "flow_pan.mp4", frames, PAN_FPS)


if __name__ == "__main__":
    main()
