"""How far a phone reads the view's QR code: the sidebar's and the large one, for links of three lengths.

Each code is drawn the way ``ui/share.py`` draws it, at the width a browser gives it on a 1920 x 1080 projector
image (the sidebar's 225 px, the large code's 756 px: ``tests/test_qr_distance.py`` measures both), and read through
``tests/qr_camera.py``'s phone camera (a projection 2.5 m wide). Prints, per link, the largest distance from which
three noisy frames out of three read it.

Usage: ``python benchmarks/qr_distance.py [--sidebar-px 225] [--large-px 756]``.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))
from qr_camera import SCREEN_WIDTH_M, code_width_m, farthest_read  # noqa: E402

from ui.share import qr_png  # noqa: E402

LINKS = [
    "http://127.0.0.1:45123/lesson?lang=en&step=vanishing",
    "http://192.168.1.23:8501/training_race?lang=zh&race=3f9a2c1b7d4e",
    "http://10.0.0.5:8501/explain?lang=en&model=resnet18&method=gradcam&target=top&sample=coffee",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sidebar-px", type=float, default=225)
    parser.add_argument("--large-px", type=float, default=756)
    args = parser.parse_args()
    print(f"projection {SCREEN_WIDTH_M} m wide; the largest distance that reads in 3 of 3 frames")
    for link in LINKS:
        sidebar = farthest_read(qr_png(link), code_width_m(args.sidebar_px), link)
        large = farthest_read(qr_png(link, error="l", border=2), code_width_m(args.large_px), link)
        print(f"{len(link)} characters: sidebar code {sidebar:g} m, large code {large:g} m  ({link})")


if __name__ == "__main__":
    main()
