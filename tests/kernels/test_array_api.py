"""The array backend layer: per-bin sums without hidden device syncs."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.kernels.array_api import bin_sums, to_host


@pytest.mark.parametrize("length", [1, 7, 300])
def test_bin_sums_equal_an_unbuffered_add(xp, length):
    rng = np.random.default_rng(length)
    index = rng.integers(0, length, 5000)
    weights = rng.standard_normal(5000)
    expected = np.zeros(length)
    np.add.at(expected, index, weights)  # the independent route: one element at a time
    got = to_host(bin_sums(xp.asarray(index), xp.asarray(weights), length))
    assert got.shape == (length,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    counts = to_host(bin_sums(xp.asarray(index), None, length))
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, [np.count_nonzero(index == i) for i in range(length)])


def test_bin_sums_keep_empty_trailing_bins(xp):
    got = to_host(bin_sums(xp.asarray([0, 0, 2]), xp.asarray([1.0, 2.0, 4.0], dtype=xp.float32), 6))
    np.testing.assert_array_equal(got, [3.0, 0.0, 4.0, 0.0, 0.0, 0.0])
