"""What a phone sees of a QR code on a projector screen, for tests and benchmarks of scanning distance.

A phone scanning a QR code reads its camera's preview frames, not full photographs: here 1920 pixels across a
horizontal field of view of 68 degrees (a main camera of 26 mm equivalent focal length). A code ``code_m`` metres wide
seen from ``distance_m`` metres covers ``code_m / (2 distance_m tan(34 deg))`` of the frame's width; the picture is
the code shrunk to that many pixels (area averaging, as the sensor does), softened by a blur of 0.7 pixels (the
projector's and the lens's), with sensor noise, on a mid-grey wall.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FRAME_PX = 1920
FIELD_OF_VIEW_DEG = 68.0
SCREEN_WIDTH_M = 2.5  # a classroom projection of a 1920-pixel-wide image
BLUR_PX = 0.7
NOISE = 6.0  # grey levels


def code_width_m(code_px: float, screen_px: float = 1920, screen_m: float = SCREEN_WIDTH_M) -> float:
    """How wide a code drawn ``code_px`` pixels wide on a ``screen_px``-pixel-wide image is on the screen."""
    return code_px / screen_px * screen_m


def phone_view(png: bytes, code_m: float, distance_m: float, seed: int = 0) -> np.ndarray:
    """The grey camera frame (a crop around the code) a phone takes of ``png`` shown ``code_m`` wide, from
    ``distance_m``."""
    code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    px_per_m = FRAME_PX / (2 * distance_m * math.tan(math.radians(FIELD_OF_VIEW_DEG / 2)))
    side = max(4, round(code_m * px_per_m))
    small = cv2.resize(code, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), BLUR_PX)
    frame = np.full((3 * side, 3 * side), 128.0, np.float32)
    frame[side : 2 * side, side : 2 * side] = small
    frame += np.random.default_rng(seed).normal(0, NOISE, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def reads(png: bytes, code_m: float, distance_m: float, seed: int = 0) -> str:
    """What OpenCV's QR reader reads in :func:`phone_view` ("" where it reads nothing): its ArUco-based detector,
    steadier on small codes than ``cv2.QRCodeDetector`` (which misses some codes it reads from farther away)."""
    text, _points, _code = cv2.QRCodeDetectorAruco().detectAndDecode(phone_view(png, code_m, distance_m, seed))
    return text


def farthest_read(png: bytes, code_m: float, text: str, step_m: float = 0.5, seeds: int = 3) -> float:
    """The largest distance (in ``step_m`` steps) from which every one of ``seeds`` noisy frames reads ``text``."""
    distance = step_m
    while distance < 100 and all(reads(png, code_m, distance + step_m, s) == text for s in range(seeds)):
        distance += step_m
    return distance if all(reads(png, code_m, distance, s) == text for s in range(seeds)) else 0.0
