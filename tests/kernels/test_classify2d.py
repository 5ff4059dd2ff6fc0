"""2D classification separates two planted views seen at random rotations and shifts."""

from __future__ import annotations

import numpy as np

from pytest_cryobench.kernels.classify2d import classify_2d, rotate_stack, shift_images


def _views(n=32):
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    bar = np.exp(-(xx ** 2 / 40 + yy ** 2 / 4))
    ring = np.exp(-(np.hypot(yy - 3, xx) - 6) ** 2 / 2) + np.exp(-((yy + 5) ** 2 + (xx - 4) ** 2) / 3)
    return np.stack([bar, ring]).astype(np.float32)


def test_two_views_are_separated_and_aligned():
    rng = np.random.default_rng(2)
    views = _views()
    labels = rng.integers(0, 2, 80)
    images = []
    for label in labels:
        img = rotate_stack(views[label][None], float(rng.uniform(0, 360)))
        img = shift_images(img, rng.integers(-1, 2, (1, 2)))[0]
        images.append(img + 0.3 * rng.normal(size=img.shape))
    result = classify_2d(np.array(images, dtype=np.float32), 2, iterations=6, shift_extent=2, seed=1)
    agree = np.mean(result.assignment == labels)
    assert max(agree, 1 - agree) >= 0.95


def test_rotate_and_shift_move_a_point_where_expected():
    n = 16
    point = np.zeros((1, n, n), np.float32)
    point[0, n // 2, n // 2 + 4] = 1  # 4 px along +x
    turned = rotate_stack(point, 90.0)[0]
    assert np.unravel_index(np.argmax(turned), turned.shape) in {(n // 2 + 4, n // 2), (n // 2 - 4, n // 2)}
    moved = shift_images(point, np.array([[2.0, -3.0]]))[0]  # (sx, sy)
    assert np.unravel_index(np.argmax(moved), moved.shape) == (n // 2 - 3, n // 2 + 6)
