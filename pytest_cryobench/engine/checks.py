"""Known-answer checks of an engine pass, run after the timed rounds (a failed one fails the case).

Every expectation comes from the generated data's ground truth, made without the search code
(:mod:`pytest_cryobench.data.engine`: analytic real-space projections, a CTF written from its
formula, the D7 group written out): the poses and shifts each particle was made at, the volume,
and the blob model whose slices have an analytic transform.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_cryobench.engine.passes import INTERPOLATIONS, PAD, EngineCase, PassConfig, PassResult, overlap_seconds

MIN_POSE_FRACTION = 0.90
MIN_HIGH_SNR_PEAK_FRACTION = 0.95
FSC_LEVEL = 0.5
PROJECTION_TOLERANCE = {"linear": 0.05, "cubic": 0.01}
"""Relative L2 error allowed between slices of the true volume and the analytic blob transforms at
the true poses (pad 2, gridding on). Measured on the smoke data: trilinear 0.023, tricubic 0.0021;
slices at transposed poses are 1.0 or more off."""
PROJECTION_POSES = 8
"""Particles whose true poses the projection check uses."""


def overlap(result: PassResult) -> float:
    """Seconds during which reading and computing ran at once (0 for ``single`` passes)."""
    return round(overlap_seconds(result.intervals), 6)


def check_pass(case: Any, spec: EngineCase, config: PassConfig, dataset: Any, result: PassResult, xp: Any) -> None:
    """Record every check of one case on ``case`` (a :class:`~pytest_cryobench.plugin.case.Case`)."""

    truth = dataset.truth_info
    if truth is not None and dataset.poses is not None:
        _check_poses(case, config, dataset, result, truth)
    if spec.assignment == "marg":
        _check_marg(case, config, dataset, result, truth)
    if dataset.truth is not None and truth is not None:
        _check_reconstruction(case, dataset, result, truth)
    else:
        case.check("reconstruction_finite", bool(np.all(np.isfinite(result.volume))),
                   "the reconstruction holds NaN or inf")
    if dataset.truth is not None and truth is not None and "blobs" in truth and dataset.poses is not None:
        _check_projection(case, spec, config, dataset, truth, xp)
    if spec.symmetry != "C1":
        _check_symmetry_operators(case, spec.symmetry)


def _check_symmetry_operators(case: Any, symmetry: str) -> None:
    """The engine's operators are the group written out from its definition (same set, same size)."""
    from pytest_cryobench.data.engine import dihedral_group
    from pytest_cryobench.kernels.rotations import symmetry_group

    used = symmetry_group(symmetry)
    fold = int(symmetry[1:])
    if symmetry[0].upper() == "D":
        expected = dihedral_group(fold)
    else:
        expected = dihedral_group(fold)[:fold]
    distance = np.abs(used.reshape(len(used), 1, 9) - expected.reshape(1, len(expected), 9)).max(axis=2)
    matched = bool(len(used) == len(expected) and np.all(distance.min(axis=1) < 1e-6)
                   and np.all(distance.min(axis=0) < 1e-6))
    case.check("symmetry_operators", matched,
               f"{symmetry}: the engine's {len(used)} operators are not the group's {len(expected)} rotations",
               operators=len(used))


def _angles_to_truth(config: PassConfig, dataset: Any, rotation: np.ndarray, truth: dict[str, Any],
                     which: Any = slice(None)) -> np.ndarray:
    """Angle (deg) of each found rotation to the true pose, up to the volume's symmetry."""
    from pytest_cryobench.kernels.rotations import rotvec_to_matrix, symmetric_angle_deg, symmetry_group

    found = config.grid.matrices[rotation[which]]
    return symmetric_angle_deg(found, rotvec_to_matrix(dataset.poses[which]), symmetry_group(truth["symmetry"]))


def _check_poses(case: Any, config: PassConfig, dataset: Any, result: PassResult, truth: dict[str, Any]) -> None:
    angles = _angles_to_truth(config, dataset, result.rotation, truth)
    step = config.grid.step_deg
    within = angles <= step + 1e-6
    fraction = float(within.mean())
    shifts_right = np.all(np.abs(config.shifts.shifts[result.shift] - dataset.shifts) < 0.5, axis=1)
    case.check("poses", fraction >= MIN_POSE_FRACTION,
               f"{fraction:.1%} of best rotations within one grid step ({step:.1f} deg) of the truth; "
               f"need {MIN_POSE_FRACTION:.0%}", fraction_within_step=round(fraction, 4),
               fraction_exact=round(float((angles < 1e-3).mean()), 4), median_error_deg=float(np.median(angles)))
    shift_fraction = float(shifts_right[within].mean()) if within.any() else 0.0
    case.check("shifts", shift_fraction >= MIN_POSE_FRACTION,
               f"{shift_fraction:.1%} of the particles with a right rotation have the right shift",
               fraction=round(shift_fraction, 4))


def _check_marg(case: Any, config: PassConfig, dataset: Any, result: PassResult, truth: dict[str, Any] | None) -> None:
    if truth is None or dataset.poses is None:
        case.check("marg_posterior_finite", bool(np.all(np.isfinite(result.marg_kept_mass))
                                                 and np.all(result.marg_kept >= 1)),
                   "a particle's posterior is not finite or keeps no pose")
        return
    stride = int(truth["high_snr_stride"])
    high = np.arange(dataset.particles) % stride == 0
    angles = _angles_to_truth(config, dataset, result.rotation, truth, high)
    peak = float((angles <= config.grid.step_deg + 1e-6).mean())
    case.check("marg_peak_at_truth", peak >= MIN_HIGH_SNR_PEAK_FRACTION,
               f"the posterior peaks at the true pose for {peak:.1%} of the high-SNR particles; "
               f"need {MIN_HIGH_SNR_PEAK_FRACTION:.0%}", fraction=round(peak, 4),
               fraction_exact=round(float((angles < 1e-3).mean()), 4))
    # Spread: the high-SNR particles carry HIGH_SNR_GAIN times the SNR, so their posteriors must be
    # narrower (fewer poses hold 0.999 of the mass) and peak exactly at the truth at least as often.
    low_angles = _angles_to_truth(config, dataset, result.rotation, truth, ~high)
    kept_high, kept_low = float(np.median(result.marg_kept[high])), float(np.median(result.marg_kept[~high]))
    exact_high, exact_low = float((angles < 1e-3).mean()), float((low_angles < 1e-3).mean())
    case.check("marg_spread_follows_snr", kept_high < kept_low and exact_high >= exact_low,
               f"high-SNR particles keep a median {kept_high:g} poses (low-SNR {kept_low:g}) and peak exactly at "
               f"the truth for {exact_high:.1%} (low-SNR {exact_low:.1%}); "
               f"{truth['high_snr_gain']:g}x the SNR must give a narrower posterior",
               median_kept_high=kept_high, median_kept_low=kept_low, exact_high=round(exact_high, 4),
               exact_low=round(exact_low, 4))


def _check_reconstruction(case: Any, dataset: Any, result: PassResult, truth: dict[str, Any]) -> None:
    from pytest_cryobench.kernels.fsc import fsc_maps

    curve = np.asarray(fsc_maps(result.volume.astype(np.float32), dataset.truth.astype(np.float32)))
    shell = int(truth["fsc05_shell"])
    worst = float(curve[1:shell + 1].min())
    below = np.flatnonzero(curve[1:] < FSC_LEVEL)
    reached = int(below[0]) if below.size else len(curve) - 1  # last shell above the level
    res = dataset.n * dataset.apix / max(reached, 1)
    case.check("reconstruction_fsc", worst >= FSC_LEVEL,
               f"FSC against the true volume drops to {worst:.3f} before shell {shell} "
               f"({truth['fsc05_resolution_A']:.1f} A); it stays above {FSC_LEVEL} only to shell {reached}",
               min_fsc=round(worst, 4), shell_reached=reached, resolution_A=round(res, 2),
               designed_shell=shell)


def _check_projection(case: Any, spec: EngineCase, config: PassConfig, dataset: Any, truth: dict[str, Any],
                      xp: Any) -> None:
    """Slices of the true volume, prepared as the pass prepares its reference, at true poses, against
    the analytic transforms of the blob model; for ``linear20`` also tricubic against trilinear."""
    errors = projection_errors(dataset, truth, config.r_search, xp)
    kind = INTERPOLATIONS[spec.interpolation]
    error = errors[kind]
    case.check("projection", error <= PROJECTION_TOLERANCE[kind],
               f"{kind} slices of the true volume differ from the analytic projections by {error:.4f} (relative L2; "
               f"allowed {PROJECTION_TOLERANCE[kind]})", relative_error=round(error, 6), interpolation=kind)
    if spec.interpolation == "linear20":
        case.check("cubic_more_accurate", errors["cubic"] < errors["linear"],
                   f"tricubic error {errors['cubic']:.4f} is not below trilinear's {errors['linear']:.4f}",
                   cubic_error=round(errors["cubic"], 6), linear_error=round(errors["linear"], 6))


def projection_errors(dataset: Any, truth: dict[str, Any], r_max: float, xp: Any) -> dict[str, float]:
    """Relative L2 error of central slices of ``dataset.truth`` at the first particles' true poses.

    Returns
    -------
    dict
        ``{"linear": error, "cubic": error}`` against :func:`~pytest_cryobench.data.engine.blob_slice_coefficients`
        over the coefficients with ``|k| <= r_max``.
    """
    from pytest_cryobench.data.engine import blob_slice_coefficients
    from pytest_cryobench.kernels.array_api import to_host
    from pytest_cryobench.kernels.projection import extract_slices, fourier_coords, prepare_volume
    from pytest_cryobench.kernels.rotations import rotvec_to_matrix

    n = dataset.n
    model = {key: np.asarray(value, dtype=np.float64) for key, value in truth["blobs"].items()}
    rotations = rotvec_to_matrix(np.asarray(dataset.poses[:PROJECTION_POSES], dtype=np.float64))
    coords = fourier_coords(n, r_max)
    expected = blob_slice_coefficients(model, rotations, coords.ky, coords.kx, n)
    volume = xp.asarray(dataset.truth)
    out = {}
    for kind in ("linear", "cubic"):
        prepared = prepare_volume(volume, pad=PAD, interpolation=kind)
        slices = to_host(extract_slices(prepared, xp.asarray(rotations, dtype=xp.float32), coords))
        out[kind] = float(np.linalg.norm(slices - expected) / np.linalg.norm(expected))
    return out
