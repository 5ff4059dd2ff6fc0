"""CTF fitting against a CTF applied by the independently written formula of the generator."""

from __future__ import annotations

import numpy as np

from pytest_cryobench.data.workflow_specimen import specimen_ctf
from pytest_cryobench.kernels.ctf_fit import fit_ctf, tile_spectrum

OPTICS = {"accel_kv": 300.0, "cs_mm": 2.7, "amp_contrast": 0.1}


def test_defocus_astigmatism_and_angle_are_recovered():
    rng = np.random.default_rng(4)
    n, apix = 512, 2.0
    df1, df2, angle = 18600.0, 17400.0, 0.6
    ctf = specimen_ctf((n, n), apix, df1, df2, angle, **{"kv": 300.0, "cs_mm": 2.7, "amp": 0.1})
    image = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(n, n))) * ctf, s=(n, n)) + 0.7 * rng.normal(size=(n, n))
    fit = fit_ctf(image.astype(np.float32), apix, OPTICS)
    assert abs(fit["df1_A"] - df1) < 150 and abs(fit["df2_A"] - df2) < 150
    assert abs((np.degrees(fit["df_angle_rad"] - angle) + 90) % 180 - 90) < 5


def test_tile_spectrum_of_white_noise_is_flat():
    rng = np.random.default_rng(1)
    spectrum = tile_spectrum(rng.normal(size=(256, 256)), 64)
    assert spectrum.shape == (64, 33)
    assert abs(spectrum[5:30, 5:30].mean() / 64 ** 2 - 1) < 0.05


def test_patch_defocus_follows_a_planted_tilt():
    """Per-patch defocus of noise seen through the generator's tilted CTF (a plane of defocus)."""
    from pytest_cryobench.data import workflow as wf
    from pytest_cryobench.kernels.ctf_fit import fit_patch_defocus, patch_centres
    from pytest_cryobench.profiles import PROFILES

    size = PROFILES["smoke"].workflow
    rng = np.random.default_rng(5)
    plan = {"df1_A": 18600.0, "df2_A": 17800.0, "df_angle_rad": 0.6, "df_tilt_A": [-1500.0, 600.0]}
    n = size.size + 2 * wf.MARGIN
    image = wf.tilted_ctf_image(rng.normal(size=(n, n)), size, plan)[wf.MARGIN:-wf.MARGIN, wf.MARGIN:-wf.MARGIN]
    image += 0.7 * rng.normal(size=image.shape)
    found = fit_patch_defocus(image.astype(np.float32), size.apix, OPTICS, plan, 2)
    cy, cx = patch_centres(image.shape, 2)
    true = wf.local_defocus(plan, cy[:, None], cx[None, :], size.size)
    assert np.ptp(true) > 500  # the tilt is there to find
    assert np.abs(found - true).max() < 120


def test_a_tilt_of_zero_is_the_plain_ctf():
    from pytest_cryobench.data import workflow as wf
    from pytest_cryobench.profiles import PROFILES

    size = PROFILES["smoke"].workflow
    n = size.size + 2 * wf.MARGIN
    canvas = np.random.default_rng(6).normal(size=(n, n))
    plan = {"df1_A": 15000.0, "df2_A": 14000.0, "df_angle_rad": 1.0, "df_tilt_A": [0.0, 0.0]}
    ctf = specimen_ctf((n, n), size.apix, 15000.0, 14000.0, 1.0, 300.0, 2.7, 0.1)
    assert np.allclose(wf.tilted_ctf_image(canvas, size, plan), np.fft.irfft2(np.fft.rfft2(canvas) * ctf, s=(n, n)))


def test_patch_centres_split_the_image_as_the_fit_does():
    from pytest_cryobench.kernels.ctf_fit import patch_centres

    cy, cx = patch_centres((512, 300), 2)
    assert cy.tolist() == [128.0, 384.0] and cx.tolist() == [75.0, 225.0]


def test_patch_tiles_grow_with_the_patch():
    """A quarter of the patch's side, as a power of two, never under 64 px."""
    from pytest_cryobench.kernels.ctf_fit import patch_tile

    assert patch_tile((512, 512), 2) == 64       # smoke: as before
    assert patch_tile((2048, 2048), 2) == 256    # standard: rings at 22 000 Å sampled 4 times at 4.5 Å
    assert patch_tile((3838, 3710), 2) == 256    # full: 1855 px patches
    assert patch_tile((256, 256), 2) == 64       # the floor


def test_refitting_on_the_patches_removes_the_tilts_bias():
    """A strongly tilted field (3000 Å across 1024 px at 1.5 Å): one spectrum of the whole field
    averages rings of different defoci and the whole-micrograph fit is off by over 200 Å; the
    joint refit on the patches, each at its own offset, recovers the defocus at the centre."""
    import dataclasses

    from pytest_cryobench.data import workflow as wf
    from pytest_cryobench.kernels.ctf_fit import fit_patch_defocus, refine_with_patches
    from pytest_cryobench.profiles import PROFILES

    size = dataclasses.replace(PROFILES["smoke"].workflow, size=1024, apix=1.5)
    rng = np.random.default_rng(8)
    plan = {"df1_A": 20600.0, "df2_A": 19400.0, "df_angle_rad": 0.6, "df_tilt_A": [-2000.0, 1200.0]}
    n = size.size + 2 * wf.MARGIN
    image = wf.tilted_ctf_image(rng.normal(size=(n, n)), size, plan)[wf.MARGIN:-wf.MARGIN, wf.MARGIN:-wf.MARGIN]
    image = (image + 0.7 * rng.normal(size=image.shape)).astype(np.float32)
    whole = fit_ctf(image, size.apix, OPTICS)
    refined = refine_with_patches(image, size.apix, OPTICS, whole, fit_patch_defocus(image, size.apix, OPTICS, whole, 2))
    errors = {name: [abs(fit["df1_A"] - plan["df1_A"]), abs(fit["df2_A"] - plan["df2_A"])]
              for name, fit in (("whole", whole), ("refined", refined))}
    assert max(errors["whole"]) > 200, errors  # the bias is there to remove
    assert max(errors["refined"]) < 100, errors
    assert abs((np.degrees(refined["df_angle_rad"] - plan["df_angle_rad"]) + 90) % 180 - 90) < 3
