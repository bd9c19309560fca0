"""Face crops, pixel for pixel: the square's centring on non-square boxes, the margin, and which
side is padded (by replication) where the square reaches past the frame.

The frame is a gradient in both directions (every row and every column differs), and boxes
give 48-pixel squares, so a crop is an exact slice of the frame, without resampling.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferkit.vision.crops import crop_faces, square_box, to_gray

HEIGHT, WIDTH, PAD = 100, 120, 60


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    return (2 * x + 3 * y % 7 * 5 + y).astype(np.uint8)  # differs along x and along y, no symmetry


def expected(frame, x0: int, y0: int, side: int = 48) -> np.ndarray:
    """The frame's square at (x0, y0), edge pixels repeated outside the frame."""
    padded = np.pad(frame, PAD, mode="edge")
    return padded[y0 + PAD:y0 + PAD + side, x0 + PAD:x0 + PAD + side]


@pytest.mark.parametrize("box, corner", [
    ((40, 30, 48, 48), (40, 30)),  # square: the box itself
    ((40, 30, 48, 24), (40, 18)),  # wide: grown by 12 above and 12 below
    ((40, 30, 24, 48), (28, 30)),  # tall: grown by 12 left and 12 right
    ((40, 30, 48, 32), (40, 22)),  # wide, grown by 8 on each side vertically
])
def test_square_is_centred_on_the_box(frame, box, corner):
    assert square_box(box, 0.0) == (*corner, 48)
    np.testing.assert_array_equal(crop_faces(frame, [box])[0], expected(frame, *corner))


def test_margin_grows_the_square_on_every_side(frame):
    # 40 * (1 + 2 * 0.1) = 48, centred on (40 + 20, 30 + 10)
    assert square_box((40, 30, 40, 20), 0.1) == (36, 16, 48)
    assert square_box((40, 30, 40, 20), 0.0) == (40, 20, 40)
    np.testing.assert_array_equal(crop_faces(frame, [(40, 30, 40, 20)], 0.1)[0], expected(frame, 36, 16))


@pytest.mark.parametrize("box, padded", [
    ((-10, 30, 48, 48), "left"),
    ((WIDTH - 38, 30, 48, 48), "right"),
    ((40, -10, 48, 48), "top"),
    ((40, HEIGHT - 38, 48, 48), "bottom"),
    ((-5, -7, 48, 48), "top-left"),
    ((WIDTH - 40, HEIGHT - 30, 48, 48), "bottom-right"),
    ((40, 0, 48, 24), "top (a wide box at the top edge)"),
])
def test_border_padding_repeats_the_nearest_edge(frame, box, padded):
    x0, y0, _ = square_box(box, 0.0)
    crop = crop_faces(frame, [box])[0]
    np.testing.assert_array_equal(crop, expected(frame, x0, y0))


def test_left_padding_repeats_the_first_column():
    frame = np.tile(np.arange(100, 148, dtype=np.uint8), (60, 1))  # columns 100..147
    crop = crop_faces(frame, [(-8, 0, 48, 48)])[0]
    assert crop[0, :9].tolist() == [100] * 9 and crop[0, 9:12].tolist() == [101, 102, 103]


def test_resize_and_batch():
    noise = np.random.default_rng(0).integers(0, 256, (150, 160)).astype(np.uint8)
    boxes = [(200, 200, 10, 10), (3, 6, 144, 144), (100, 120, 24, 24), (50, 60, 1, 1)]
    crops = crop_faces(noise, boxes)
    assert crops.shape == (4, 48, 48) and crops.dtype == np.uint8
    assert not crops[0].any(), "a box outside the frame gives a black crop (and the others still follow)"
    # 144 -> 48 by area averaging: each output pixel is the mean of a 3x3 block
    blocks = noise[6:150, 3:147].reshape(48, 3, 48, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(crops[1].astype(float) - blocks).max() <= 0.5 + 1e-9
    # 24 -> 48: bilinear enlargement
    enlarged = cv2.resize(noise[120:144, 100:124], (48, 48), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crops[2], enlarged)
    assert (crops[3] == noise[60, 50]).all(), "a 1-pixel box is that pixel, enlarged"
    assert crop_faces(noise, np.zeros((0, 4))).shape == (0, 48, 48)


def test_to_gray_of_bgr_bgra_and_gray():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    assert to_gray(bgr)[0, 0] == 76  # 0.299 * 255
    bgra = np.concatenate([bgr, np.zeros((2, 3, 1), np.uint8)], axis=2)
    assert to_gray(bgra)[0, 0] == 76
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert to_gray(gray) is gray
