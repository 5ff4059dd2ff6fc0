"""Template picking (FLCF): planted particles found, NCC bounded and exact where it must be, batching-proof."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.data.synthetic_micrographs import asymmetric_templates, planted_micrograph
from pytest_cryobench.kernels import picking as pk
from pytest_cryobench.kernels.array_api import to_host
from pytest_cryobench.kernels.ctf import ctf_2d

BOX = 64
RADIUS = 0.46 * BOX
SEP = BOX // 2
STEP = 10.0
ANGLES = np.arange(0.0, 360.0, STEP)
THRESHOLD = 0.2
SHAPE = (1024, 1024)
N_PARTICLES = 40

# Planted SNR: noise sigma relative to the template peak. With a CTF (3 A/px, 2.5 um underfocus)
# the particle keeps much less of its contrast, so less noise is added for a similar NCC (0.3-0.5).
CASES = {
    "plain": dict(ctf=None, snr_sigma=0.5),
    "ctf": dict(ctf=dict(apix=3.0, df1_A=25000.0, df2_A=24000.0, df_angle_rad=0.3), snr_sigma=0.2),
}


@pytest.fixture(scope="module")
def templates():
    return asymmetric_templates(3, BOX, seed=11)


@pytest.fixture(scope="module", params=sorted(CASES))
def planted(request, templates):
    case = CASES[request.param]
    ctf = None
    if case["ctf"] is not None:
        p = case["ctf"]
        ctf = ctf_2d(SHAPE, p["apix"], p["df1_A"], p["df2_A"], p["df_angle_rad"])
    mic, coords, tidx, angles = planted_micrograph(SHAPE, templates, N_PARTICLES, case["snr_sigma"], seed=5, ctf=ctf)
    result = pk.pick(mic, templates, ANGLES, ctf, RADIUS, SEP, THRESHOLD, return_maps=True)
    return dict(mic=mic, coords=coords, template=tidx, angles=angles, result=result, ctf=ctf)


def direct_ncc(image, box, y, x):
    """Pearson correlation of a box and the image patch centred on (y, x), under the circular mask."""
    h, w = box.shape
    cy, cx = h // 2, w // 2
    mask = pk.circular_mask(box.shape, RADIUS) > 0
    patch = image[y - cy:y - cy + h, x - cx:x - cx + w][mask].astype(np.float64)
    t = box[mask].astype(np.float64)
    return np.corrcoef(patch, t)[0, 1]


# ---------------------------------------------------------------------------------------------
# the known answer


def test_planted_particles_are_found(xp, planted):
    res = planted["result"]
    if xp is not np:  # the fixture's result is NumPy's
        ctf = None if planted["ctf"] is None else xp.asarray(planted["ctf"])
        res = pk.pick(xp.asarray(planted["mic"]), xp.asarray(asymmetric_templates(3, BOX, seed=11)), ANGLES, ctf,
                      RADIUS, SEP, THRESHOLD)
        res = {key: to_host(value) if hasattr(value, "shape") else value for key, value in res.items()}
    match = pk.match_picks(res["coords"], planted["coords"], tol_px=2)
    assert match["recall"] >= 0.95, match
    assert match["precision"] >= 0.95, match
    pairs = match["pairs"]
    assert np.all(match["distances"] <= 2)
    # The right template, and a search angle next to the true one (truth angles are continuous; at this
    # noise level the NCC is flat enough over angle that the neighbouring grid angle sometimes wins).
    assert np.mean(res["template"][pairs[:, 0]] == planted["template"][pairs[:, 1]]) >= 0.95
    errors = pk.angular_difference_deg(res["angle_deg"][pairs[:, 0]], planted["angles"][pairs[:, 1]])
    assert np.mean(errors <= STEP + 1e-9) >= 0.9, np.sort(errors)
    assert np.median(errors) <= STEP / 2, np.sort(errors)
    # Scores are sorted and above the threshold; picks respect the separation and the border.
    assert np.all(np.diff(res["scores"]) <= 0) and np.all(res["scores"] >= THRESHOLD)
    d = np.abs(res["coords"][:, None, :] - res["coords"][None, :, :]).max(axis=-1)
    np.fill_diagonal(d, SEP + 1)
    assert d.min() > SEP
    assert res["coords"].min() >= BOX // 2 and res["coords"].max() < SHAPE[0] - BOX // 2
    assert res["coords"].dtype == np.int64 and res["coords"].shape == (len(res["scores"]), 2)


def test_noiseless_angles_are_within_half_a_step(templates):
    mic, coords, tidx, angles = planted_micrograph((512, 512), templates, 9, 0.0, seed=6)
    res = pk.pick(mic, templates, ANGLES, None, RADIUS, SEP, THRESHOLD)
    match = pk.match_picks(res["coords"], coords, tol_px=1)  # off-grid true angles move the peak by <= 1 px
    assert match["recall"] == 1.0 and match["precision"] == 1.0
    pairs = match["pairs"]
    assert np.all(res["template"][pairs[:, 0]] == tidx[pairs[:, 1]])
    errors = pk.angular_difference_deg(res["angle_deg"][pairs[:, 0]], angles[pairs[:, 1]])
    assert np.all(errors <= STEP / 2 + 0.5), errors  # + 0.5: a truth midway between two grid angles
    assert np.all(res["scores"] > 0.9)


def test_ncc_is_bounded_away_from_edges(planted):
    ncc = planted["result"]["ncc"]
    inner = ncc[BOX // 2:-BOX // 2, BOX // 2:-BOX // 2]
    assert np.abs(inner).max() <= 1 + 1e-4
    assert ncc.dtype == np.float32 and ncc.shape == SHAPE


def test_ncc_matches_direct_correlation(planted, templates):
    # The FFT score at a planted particle equals the Pearson correlation, computed by hand, of the
    # micrograph patch and the best prepared (rotated, CTF-filtered, masked) template.
    res = planted["result"]
    prepared, _ = pk.prepare_template_boxes(templates, ANGLES, planted["ctf"], RADIUS, SHAPE)
    for y, x in planted["coords"][:5]:
        k = res["template_map"][y, x] * len(ANGLES) + res["angle_map"][y, x]
        assert res["ncc"][y, x] == pytest.approx(direct_ncc(planted["mic"], prepared[k], y, x), abs=2e-5)


def test_pure_noise_stays_below_threshold(templates):
    noise = np.random.default_rng(99).standard_normal(SHAPE, dtype=np.float32)
    res = pk.pick(noise, templates, ANGLES, None, RADIUS, SEP, THRESHOLD, return_maps=True)
    inner = res["ncc"][BOX // 2:-BOX // 2, BOX // 2:-BOX // 2]
    # White noise: NCC ~ N(0, 1/N_mask) per position; the maximum over 1e8 tries stays near 0.1.
    assert inner.max() < 0.75 * THRESHOLD
    assert len(res["coords"]) == 0


@pytest.mark.parametrize("background", ["zero", "offset"])
def test_micrograph_that_is_a_template_scores_one(templates, background):
    mic = np.zeros((256, 256), dtype=np.float32)
    y, x = 100, 141
    mic[y - BOX // 2:y + BOX // 2, x - BOX // 2:x + BOX // 2] = templates[1]
    if background == "offset":
        mic = 3.0 * mic + 7.0  # the NCC ignores brightness and contrast
    res = pk.pick(mic, templates, [0.0, 90.0, 180.0, 270.0], None, RADIUS, SEP, 0.5, return_maps=True)
    ncc = res["ncc"]
    assert ncc[y, x] == pytest.approx(1.0, abs=1e-4)
    inner = ncc[BOX // 2:-BOX // 2, BOX // 2:-BOX // 2]
    assert np.unravel_index(np.argmax(inner), inner.shape) == (y - BOX // 2, x - BOX // 2)
    assert inner.max() <= 1 + 1e-4
    assert res["coords"].tolist()[0] == [y, x]
    assert res["template"][0] == 1 and res["angle_deg"][0] == 0.0


# ---------------------------------------------------------------------------------------------
# batching, determinism


@pytest.fixture(scope="module")
def small_case(templates):
    ctf = ctf_2d((256, 256), 3.0, 25000, 24000, 0.3)
    mic, coords, _, _ = planted_micrograph((256, 256), templates, 1, 0.15, seed=2, ctf=ctf)
    angles = np.arange(0.0, 360.0, 30.0)
    prepared, mask = pk.prepare_template_boxes(templates, angles, ctf, RADIUS, mic.shape)
    return mic, prepared, mask, len(angles)


def test_batching_gives_identical_maps(small_case):
    mic, prepared, mask, n_angles = small_case
    one = pk.ncc_maps(mic, prepared, mask, n_angles, batch_size=1)
    for batch in (5, len(prepared)):
        other = pk.ncc_maps(mic, prepared, mask, n_angles, batch_size=batch)
        for a, b in zip(one, other, strict=True):
            np.testing.assert_array_equal(a, b)
    auto = pk.ncc_maps(mic, prepared, mask, n_angles)
    np.testing.assert_array_equal(auto[0], one[0])
    assert one[1].max() == 2 and one[2].max() == n_angles - 1 and one[1].dtype == np.int32


def test_deterministic(templates):
    first = planted_micrograph((384, 384), templates, 4, 0.5, seed=8)
    second = planted_micrograph((384, 384), templates, 4, 0.5, seed=8)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = planted_micrograph((384, 384), templates, 4, 0.5, seed=9)
    assert not np.array_equal(first[0], other[0])
    picks = [pk.pick(first[0], templates, ANGLES[::3], None, RADIUS, SEP, 0.2) for _ in range(2)]
    for key in picks[0]:
        np.testing.assert_array_equal(picks[0][key], picks[1][key])
    np.testing.assert_array_equal(asymmetric_templates(2, 32, 4), asymmetric_templates(2, 32, 4))


# ---------------------------------------------------------------------------------------------
# the pieces


def test_rotation_direction_and_identity():
    box = np.zeros((1, 33, 33), dtype=np.float32)
    box[0, 16, 21] = 1.0  # 5 px along +x from the centre (16, 16)
    turned = pk.rotate_templates(box, [0.0, 90.0, 180.0])
    np.testing.assert_allclose(turned[0], box[0], atol=1e-6)
    # +90 deg: (y, x) -> (x sin + y cos, x cos - y sin): +x goes to +y.
    assert np.unravel_index(np.argmax(turned[1]), box.shape[1:]) == (21, 16)
    assert np.unravel_index(np.argmax(turned[2]), box.shape[1:]) == (16, 11)
    assert turned[1].max() == pytest.approx(1.0, abs=1e-5)


def test_rotate_templates_order_and_quarter_turns(templates):
    turned = pk.rotate_templates(templates, [0.0, 90.0, 180.0, 270.0])
    assert turned.shape == (12, BOX, BOX) and turned.dtype == np.float32
    for t in range(3):
        np.testing.assert_allclose(turned[4 * t], templates[t], atol=1e-6)
        # Quarter turns of an even box about (32, 32) are exact lattice maps (content stays inside).
        for q in (1, 2, 3):
            # In a 65-pixel box the centre (32, 32) is the middle, where np.rot90 turns about; k = -q because
            # np.rot90 turns +x towards -y (up on screen) and ours +x towards +y.
            padded = np.pad(templates[t], ((0, 1), (0, 1)))
            expected = np.rot90(padded, -q)[:BOX, :BOX]
            np.testing.assert_allclose(turned[4 * t + q], expected, atol=1e-5)


def test_prepared_templates_are_normalised(templates):
    prepared, mask = pk.prepare_template_boxes(templates, [0.0, 45.0], None, RADIUS, (256, 256))
    inside = mask > 0
    n = inside.sum()
    assert prepared.shape == (6, BOX, BOX) and prepared.dtype == np.float32
    np.testing.assert_allclose(prepared[:, inside].sum(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose((prepared[:, inside] ** 2).sum(axis=1), n, rtol=1e-5)
    assert np.all(prepared[:, ~inside] == 0)


def test_prepare_templates_spectra(templates):
    shape = (128, 96)
    spectra = pk.prepare_templates(templates[:1], [0.0, 30.0], None, RADIUS, shape)
    boxes, _ = pk.prepare_template_boxes(templates[:1], [0.0, 30.0], None, RADIUS, shape)
    padded = np.zeros((2,) + shape, dtype=np.float32)
    padded[:, :BOX, :BOX] = boxes
    assert spectra.shape == (2, 128, 49) and spectra.dtype == np.complex64
    np.testing.assert_allclose(spectra, np.fft.rfft2(padded), atol=1e-3)


def test_ctf_filter_in_a_box_matches_full_size_filter(templates):
    shape = (512, 512)
    ctf = ctf_2d(shape, 3.0, 25000, 22000, 1.1)
    small = pk.ctf_filter_boxes(templates, ctf, shape)
    big = np.zeros((3,) + shape, dtype=np.float32)
    y0 = shape[0] // 2 - BOX // 2
    big[:, y0:y0 + BOX, y0:y0 + BOX] = templates
    full = np.fft.irfft2(np.fft.rfft2(big) * ctf, s=shape)[:, y0:y0 + BOX, y0:y0 + BOX]
    inside = pk.circular_mask((BOX, BOX), RADIUS) > 0
    err = np.abs(small - full)[:, inside].max()
    assert err < 0.02 * np.abs(full).max(), err
    with pytest.raises(ValueError):
        pk.ctf_filter_boxes(templates, ctf[:, :-1], shape)


def test_padded_rfft2_equals_explicit_padding():
    rng = np.random.default_rng(0)
    boxes = rng.standard_normal((3, 9, 7)).astype(np.float32)
    padded = np.zeros((3, 40, 33), dtype=np.float32)
    padded[:, :9, :7] = boxes
    np.testing.assert_allclose(pk.padded_rfft2(boxes, (40, 33)), np.fft.rfft2(padded), atol=1e-4)


def test_local_stats_against_brute_force():
    rng = np.random.default_rng(1)
    image = (rng.standard_normal((48, 40)) + 3.0).astype(np.float32)
    box = (13, 13)
    mask = pk.circular_mask(box, 5.0)
    spectrum, spectrum_sq = pk.micrograph_spectra(image, box)
    mean, std = pk.local_stats(spectrum, spectrum_sq, pk.padded_rfft2(mask[None], image.shape)[0], mask.sum(),
                               image.shape)
    inside = mask > 0
    for y, x in [(6, 6), (20, 17), (41, 33), (0, 0), (47, 39)]:
        rows = (np.arange(13) - 6 + y) % 48  # circular, as the FFT is
        cols = (np.arange(13) - 6 + x) % 40
        patch = image[np.ix_(rows, cols)][inside].astype(np.float64)
        assert mean[y, x] == pytest.approx(patch.mean(), abs=1e-4)
        assert std[y, x] == pytest.approx(patch.std(), abs=1e-4)


def test_find_peaks_separation_threshold_border_ties():
    score = np.zeros((100, 100), dtype=np.float32)
    score[50, 50] = 0.9
    score[50, 55] = 0.8      # within 5 px of a better peak: suppressed
    score[20, 70] = 0.7
    score[20, 80] = 0.7      # 10 px from its tie: both kept at sep 5
    score[80, 20] = 0.6
    score[80, 21] = 0.6      # an exact tie within the window: one kept (first in raster order)
    score[2, 50] = 0.95      # in the border
    score[70, 70] = 0.1      # below threshold
    coords, values = pk.find_peaks(score, 5, 0.3, border_px=5)
    assert coords.tolist() == [[50, 50], [20, 70], [20, 80], [80, 20]]
    np.testing.assert_allclose(values, [0.9, 0.7, 0.7, 0.6])
    coords, values = pk.find_peaks(score, 5, 0.3, border_px=5, max_picks=2)
    assert coords.tolist() == [[50, 50], [20, 70]]
    coords, _ = pk.find_peaks(score, 12, 0.3, border_px=5)
    assert [20, 80] not in coords.tolist()
    coords, values = pk.find_peaks(score, 5, 2.0)
    assert coords.shape == (0, 2) and values.shape == (0,)


def test_match_picks():
    truth = np.array([[10, 10], [50, 50], [90, 90]])
    picked = np.array([[11, 11], [50, 52], [30, 30], [50, 51]])
    m = pk.match_picks(picked, truth, tol_px=2)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 4)
    assert sorted(m["pairs"].tolist()) == [[0, 0], [3, 1]]  # the nearer of two picks wins
    np.testing.assert_allclose(sorted(m["distances"]), [1.0, np.sqrt(2)])
    empty = pk.match_picks(np.zeros((0, 2)), truth)
    assert empty["recall"] == 0 and empty["precision"] == 1.0 and empty["pairs"].shape == (0, 2)


def test_planted_layout(templates):
    mic, coords, tidx, angles = planted_micrograph(SHAPE, templates, 60, 0.5, seed=3)
    assert mic.shape == SHAPE and mic.dtype == np.float32
    assert coords.shape == (60, 2) and coords.dtype == np.int64
    d = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert d.min() > BOX
    assert coords.min() >= 5 * BOX // 8 and coords.max() < SHAPE[0] - 5 * BOX // 8
    assert set(tidx.tolist()) <= {0, 1, 2} and np.all((angles >= 0) & (angles < 360))
    with pytest.raises(ValueError, match="do not fit"):
        planted_micrograph((256, 256), templates, 5, 0.5, seed=3)


def test_noise_level_of_planted_micrograph(templates):
    clean, *_ = planted_micrograph((512, 512), templates, 4, 0.0, seed=1)
    noisy, *_ = planted_micrograph((512, 512), templates, 4, 0.5, seed=1)
    assert np.std(noisy - clean) == pytest.approx(0.5 * templates.max(), rel=0.01)
    assert clean.max() == pytest.approx(1.0, abs=0.05)


def test_templates_are_distinct_and_asymmetric(templates):
    assert templates.shape == (3, BOX, BOX) and templates.dtype == np.float32
    assert templates.min() >= 0 and np.allclose(templates.max(axis=(1, 2)), 1.0)
    flat = templates.reshape(3, -1)
    corr = np.corrcoef(flat)
    assert np.all(corr[~np.eye(3, dtype=bool)] < 0.9)
    half_turn = pk.rotate_templates(templates, [180.0])
    for t in range(3):
        assert np.corrcoef(flat[t], half_turn[t].ravel())[0, 1] < 0.9
        assert np.corrcoef(flat[t], templates[t, :, ::-1].ravel())[0, 1] < 0.9
    # Everything lies inside the mask radius, so rotations lose nothing.
    outside = pk.circular_mask((BOX, BOX), RADIUS) == 0
    assert np.all(templates[:, outside] == 0)


def test_templates_larger_than_the_micrograph_are_refused(templates):
    with pytest.raises(ValueError, match=r"templates of 64x64 px do not fit a micrograph of 48x400 px"):
        pk.pick(np.zeros((48, 400), dtype=np.float32), templates, ANGLES, None, RADIUS, SEP, THRESHOLD)


def test_noise_threshold_of_gaussian_noise_is_median_plus_sigmas(xp):
    # analytic: for N(mu, s^2) the median is mu and 1.4826 MAD is s
    noise = np.random.default_rng(7).normal(2.0, 0.5, (512, 512))
    assert pk.noise_threshold(xp.asarray(noise), 3.0) == pytest.approx(2.0 + 3.0 * 0.5, abs=0.01)


def test_noise_sigmas_keep_the_picks_above_the_maps_threshold(planted, templates):
    """With ``noise_sigmas`` the picks are the unthresholded picks scoring at least the map's
    median plus that many robust sigmas, and the threshold used is returned."""
    mic, ctf = planted["mic"], planted["ctf"]
    every = pk.pick(mic, templates, ANGLES, ctf, RADIUS, SEP, -1.0, return_maps=True)
    found = pk.pick(mic, templates, ANGLES, ctf, RADIUS, SEP, -1.0, noise_sigmas=4.0)
    ncc = every["ncc"].ravel()
    median = np.median(ncc)
    expected = median + 4.0 * 1.4826 * np.median(np.abs(ncc - median))  # plain NumPy, no kernel
    assert found["threshold"] == pytest.approx(expected, rel=1e-5)
    keep = every["scores"] >= expected
    assert np.array_equal(found["coords"], every["coords"][keep]) and 0 < keep.sum() < len(keep)
    assert pk.match_picks(found["coords"], planted["coords"], tol_px=2)["recall"] >= 0.95
