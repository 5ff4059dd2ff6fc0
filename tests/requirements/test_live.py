"""CryoSPARC Live preprocessing (live.py): the camera table, keeping up, synthetic movies with
planted shifts in all three formats, and one movie through read, decompress, upload, gain, align.

Known answers: the planted per-frame shifts (fractional, up to +-6 px) come back within 0.3 px
from files written in the project's formats and decoded by the project's decoders; the aligned sum
matches the noise-free truth better than the plain sum; the gain reference undoes planted pixel
sensitivities.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.data.synthetic_movies import synthetic_shifted_movie
from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.requirements import live

WIDTH = HEIGHT = 256
FRAMES = 8


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def chi2(image, expected):
    """Mean of (image - expected)^2 / expected: about 1 for a sum of Poisson counts of mean ``expected``
    (below 1 for EER, whose at most one event per pixel and hardware frame is sub-Poisson)."""
    return float(np.mean((np.asarray(image, np.float64) - expected) ** 2 / expected))


def planted(n, seed):
    return np.random.default_rng(seed).uniform(-6, 6, size=(n, 2))


def decoded(movie):
    """The movie's counts through an independent reader (tifffile, mrcfile, the EER decoder)."""
    if movie.fmt == "tiff":
        import tifffile

        return tifffile.imread(movie.path)
    if movie.fmt == "mrc":
        import mrcfile

        with mrcfile.open(movie.path) as mrc:
            return np.array(mrc.data)
    from pytest_cryobench.data.eer import decode_fractions

    return decode_fractions(movie.path, movie.eer_fractions, superres=movie.eer_superres, threads=1)


@pytest.fixture(scope="module", params=["tiff", "mrc", "eer"])
def movie(request, tmp_path_factory):
    fmt = request.param
    path = tmp_path_factory.mktemp("live") / f"movie.{fmt}"
    return synthetic_shifted_movie(path, fmt, WIDTH, HEIGHT, FRAMES, planted(FRAMES, seed=21), seed=21)


# -- cameras ------------------------------------------------------------------------------------

def test_camera_table():
    want = {  # name: (width, height, format, frames, GB)
        "K2": (3838, 3710, "mrc", 44, 8),
        "K2-superres": (7676, 7420, "mrc", 40, 11),
        "K3": (5760, 4092, "tiff", 40, 11),
        "K3-superres": (11520, 8184, "tiff", 70, 11),
        "Falcon3": (4096, 4096, "mrc", 40, 8),
        "Falcon4": (4096, 4096, "mrc", 40, 11),
        "Falcon4-EER": (4096, 4096, "eer", 48, 11),
    }
    got = {name: (c.width, c.height, c.fmt, c.frames, c.min_gpu_memory_gb) for name, c in live.CAMERAS.items()}
    assert got == want
    assert all(name == c.name for name, c in live.CAMERAS.items())
    assert live.CAMERAS["K3-superres"].pixels == 11520 * 8184


@pytest.mark.parametrize("name, expected", [
    ("k3 superres", "K3-superres"), ("K3_SUPERRES", "K3-superres"), ("  k3-Superres ", "K3-superres"),
    ("falcon4 eer", "Falcon4-EER"), ("FALCON4_eer", "Falcon4-EER"), ("k2", "K2"), ("Falcon3", "Falcon3"),
])
def test_camera_lookup_is_forgiving(name, expected):
    assert live.camera(name) is live.CAMERAS[expected]


def test_unknown_camera_lists_the_known_ones():
    with pytest.raises(CryobenchError) as info:
        live.camera("K5")
    message = str(info.value)
    assert "'K5'" in message
    assert all(name in message for name in live.CAMERAS)


# -- keeping up ---------------------------------------------------------------------------------

def test_keeps_up_arithmetic():
    assert live.keeps_up(12.0, 2, 500) == (600.0, "keeps up")
    assert live.keeps_up(12.0, 1, 500) == (300.0, "falls behind by 200 movies/hour")
    assert live.keeps_up(7.5, 1, 480) == (480.0, "keeps up")  # exactly enough
    capacity, verdict = live.keeps_up(9.0, 3, 1500.4)
    assert capacity == pytest.approx(1200.0) and verdict == "falls behind by 300 movies/hour"
    for bad in [(0, 1, 10), (-1, 1, 10), (1, 0, 10), (1, 1.5, 10), (1, 1, -1), (float("nan"), 1, 10)]:
        with pytest.raises(ValueError):
            live.keeps_up(*bad)


# -- synthetic movies ---------------------------------------------------------------------------

def test_synthetic_movie_holds_the_planted_specimen(movie):
    counts = decoded(movie)
    assert counts.shape == (FRAMES, HEIGHT, WIDTH) == movie.shape
    assert abs(counts.mean() / movie.rate.mean() - 1) < 0.02
    # each frame shows the specimen at its planted shift (rounded here), not 12 pixels away
    for i in range(FRAMES):
        at = np.round(movie.shifts[i]).astype(int)
        own = corr(counts[i], np.roll(movie.rate, at, axis=(0, 1)))
        away = corr(counts[i], np.roll(movie.rate, at + 12, axis=(0, 1)))
        assert own > 0.3 and own > away + 0.2, (i, own, away)


def test_synthetic_movie_is_deterministic(tmp_path):
    shifts = planted(3, seed=1)
    a = synthetic_shifted_movie(tmp_path / "a.tiff", "tiff", 64, 48, 3, shifts, seed=4)
    b = synthetic_shifted_movie(tmp_path / "b.tiff", "tiff", 64, 48, 3, shifts, seed=4)
    assert a.path.read_bytes() == b.path.read_bytes()
    np.testing.assert_array_equal(a.expected_sum, b.expected_sum)
    with pytest.raises(ValueError, match="shifts"):
        synthetic_shifted_movie(tmp_path / "c.tiff", "tiff", 64, 48, 3, shifts[:2], seed=4)


# -- one movie through Live's stages --------------------------------------------------------------

def test_preprocess_recovers_planted_shifts(movie):
    result = live.preprocess_movie(movie.path, movie.fmt, movie.gain, np, threads=2, chunk_frames=3,
                                   eer_fractions=movie.eer_fractions)
    assert result.shape == (FRAMES, HEIGHT, WIDTH)
    error = np.abs(result.shifts - (movie.shifts - movie.shifts.mean(axis=0)))
    assert error.max() < 0.3, error.max()
    assert set(result.times) == set(live.STAGES)
    assert all(result.times[s] > 0 for s in ("read", "decompress", "gain", "align")), result.times
    assert result.times["upload"] >= 0 and result.total == pytest.approx(sum(result.times.values()))
    assert result.bytes_read == movie.path.stat().st_size
    plain_sum = decoded(movie).sum(axis=0)
    aligned, plain = corr(result.aligned_sum, movie.expected_sum), corr(plain_sum, movie.expected_sum)
    assert aligned > 0.85 and aligned > plain + 0.1, (aligned, plain)
    # measured: aligned 1.02 (TIFF, MRC) and 0.89 (EER); plain sums 2.0 to 2.3
    assert chi2(result.aligned_sum, movie.expected_sum) < 1.06 and chi2(plain_sum, movie.expected_sum) > 1.5


def test_preprocess_eer_at_super_resolution(tmp_path):
    """Events placed at sub-pixels: decoded at superres 1 (2x finer), the shifts are 2x-grid pixels."""
    shifts = planted(6, seed=31)
    movie = synthetic_shifted_movie(tmp_path / "m.eer", "eer", 128, 128, 6, shifts, seed=31,
                                         eer_superres=1, eer_frames_per_fraction=16)
    assert movie.shape == (6, 256, 256)
    result = live.preprocess_movie(movie.path, "eer", None, np, threads=2, eer_fractions=6, eer_superres=1)
    assert result.shape == (6, 256, 256)
    assert np.abs(result.shifts - (shifts - shifts.mean(axis=0))).max() < 0.3


def test_gain_reference_undoes_pixel_sensitivities(tmp_path):
    """Sensitivities 1 +- 0.5 per pixel: with the gain reference the shifts still come back, and on a
    still movie the sum's ratio to the truth no longer follows the sensitivities (it does without)."""
    movie = synthetic_shifted_movie(tmp_path / "m.mrc", "mrc", WIDTH, HEIGHT, FRAMES, planted(FRAMES, 41),
                                         seed=41, gain_spread=0.5)
    with_gain = live.preprocess_movie(movie.path, "mrc", movie.gain, np, threads=1)
    assert np.abs(with_gain.shifts - (movie.shifts - movie.shifts.mean(axis=0))).max() < 0.3
    doubled = live.preprocess_movie(movie.path, "mrc", 2 * movie.gain, np, threads=1)
    np.testing.assert_allclose(doubled.aligned_sum, 2 * with_gain.aligned_sum, rtol=1e-4, atol=1e-3)

    still = synthetic_shifted_movie(tmp_path / "s.mrc", "mrc", WIDTH, HEIGHT, FRAMES, np.zeros((FRAMES, 2)),
                                         seed=42, gain_spread=0.5)
    sensitivity = 1 / still.gain
    corrected = live.preprocess_movie(still.path, "mrc", still.gain, np, threads=1).aligned_sum
    raw = live.preprocess_movie(still.path, "mrc", None, np, threads=1).aligned_sum
    assert abs(corr(corrected / still.expected_sum, sensitivity)) < 0.05  # measured 0.0003
    assert corr(raw / still.expected_sum, sensitivity) > 0.4  # measured 0.56


def test_preprocess_errors(tmp_path, movie):
    with pytest.raises(CryobenchError, match="unknown movie format"):
        live.preprocess_movie(movie.path, "dm4", None, np)
    with pytest.raises(CryobenchError, match="gain reference of shape"):
        live.preprocess_movie(movie.path, movie.fmt, np.ones((8, 8), np.float32), np, eer_fractions=FRAMES)
    with pytest.raises(CryobenchError, match="missing"):
        live.preprocess_movie(tmp_path / f"missing.{movie.fmt}", movie.fmt, None, np, eer_fractions=FRAMES)
    damaged = tmp_path / f"damaged.{movie.fmt}"
    damaged.write_bytes(movie.path.read_bytes()[: movie.path.stat().st_size // 2])
    with pytest.raises(CryobenchError, match="truncated"):
        live.preprocess_movie(damaged, movie.fmt, None, np, eer_fractions=FRAMES)


def test_preprocess_cupy_matches_numpy(cupy, movie):
    host = live.preprocess_movie(movie.path, movie.fmt, movie.gain, np, threads=2, eer_fractions=FRAMES)
    gpu = live.preprocess_movie(movie.path, movie.fmt, movie.gain, cupy, threads=2, eer_fractions=FRAMES,
                                chunk_frames=3, keep_on_device=False)
    assert type(gpu.aligned_sum) is cupy.ndarray
    np.testing.assert_allclose(gpu.shifts, host.shifts, atol=0.01)
    np.testing.assert_allclose(gpu.aligned_sum.get(), host.aligned_sum, rtol=1e-3, atol=1e-2)
    assert all(gpu.times[s] > 0 for s in live.STAGES)
