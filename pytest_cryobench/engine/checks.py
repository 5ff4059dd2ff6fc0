"""Known-answer checks of an engine pass, run after the timed rounds (a failed one fails the case)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_cryobench.engine.passes import INTERPOLATIONS, PAD, EngineCase, PassConfig, PassResult, overlap_seconds

MIN_POSE_FRACTION = 0.90
MIN_HIGH_SNR_PEAK_FRACTION = 0.95
FSC_LEVEL = 0.5
IDENTITY_TOLERANCE = 1e-4
"""Relative L2 error allowed between the identity-pose slice and the sum projection (float32)."""


def overlap(result: PassResult) -> float:
    """Seconds during which reading and computing ran at once (0 for ``single`` passes)."""
    return round(overlap_seconds(result.intervals), 6)


def check_pass(case: Any, spec: EngineCase, config: PassConfig, dataset: Any, result: PassResult, xp: Any) -> None:
    """Record every check of one case on ``case`` (a :class:`~pytest_cryobench.plugin.case.Case`)."""
    from pytest_cryobench.kernels.rotations import symmetry_group

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
    _check_identity_projection(case, dataset.reference, INTERPOLATIONS[spec.interpolation], xp)
    if spec.interpolation == "linear20":
        _check_cubic_beats_linear(case, xp)
    if spec.symmetry != "C1":
        group = symmetry_group(spec.symmetry)
        closed, distinct, proper = group_properties(group)
        case.check("group_closes", closed and distinct and proper and len(group) == _order(spec.symmetry),
                   f"{spec.symmetry}: {len(group)} operators, closed={closed}, distinct={distinct}, proper={proper}",
                   operators=len(group))


def _order(symmetry: str) -> int:
    fold = int(symmetry[1:])
    return 2 * fold if symmetry[0].upper() == "D" else fold


def group_properties(group: np.ndarray, tol: float = 1e-6) -> tuple[bool, bool, bool]:
    """``(closed, distinct, proper)`` of a set of rotation matrices (G, 3, 3)."""
    flat = group.reshape(len(group), 9)
    products = np.einsum("aij,bjk->abik", group, group).reshape(-1, 9)
    nearest = np.abs(products[:, None, :] - flat[None, :, :]).max(axis=2).min(axis=1)
    closed = bool(np.all(nearest < tol))
    pairwise = np.abs(flat[:, None, :] - flat[None, :, :]).max(axis=2) + np.eye(len(group)) * 10
    distinct = bool(np.all(pairwise > tol))
    proper = bool(np.allclose(np.linalg.det(group), 1.0, atol=tol)
                  and np.allclose(np.einsum("gji,gjk->gik", group, group), np.eye(3), atol=tol))
    return closed, distinct, proper


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
    total_error = float(np.max(np.abs(result.marg_total - 1.0)))
    case.check("marg_weights_sum_to_one", total_error <= 1e-6,
               f"a particle's posterior sums to 1 +- {total_error:.2e}", max_error=total_error)
    least = float(result.marg_kept_mass.min())
    case.check("marg_kept_mass", least >= 0.999 - 1e-9, f"a particle kept only {least:.6f} of its posterior",
               least=least, mean_poses_kept=float(result.marg_kept.mean()), max_poses_kept=int(result.marg_kept.max()))
    if truth is None or dataset.poses is None:
        return
    stride = int(truth["high_snr_stride"])
    high = np.arange(dataset.particles) % stride == 0
    angles = _angles_to_truth(config, dataset, result.rotation, truth, high)
    peak = float((angles <= config.grid.step_deg + 1e-6).mean())
    case.check("marg_peak_at_truth", peak >= MIN_HIGH_SNR_PEAK_FRACTION,
               f"the posterior peaks at the true pose for {peak:.1%} of the high-SNR particles; "
               f"need {MIN_HIGH_SNR_PEAK_FRACTION:.0%}", fraction=round(peak, 4),
               fraction_exact=round(float((angles < 1e-3).mean()), 4))


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


def _check_identity_projection(case: Any, reference: np.ndarray, interpolation: str, xp: Any) -> None:
    from pytest_cryobench.kernels.pose_search import image_coefficients
    from pytest_cryobench.kernels.projection import extract_slices, fourier_coords, prepare_volume

    n = reference.shape[0]
    coords = fourier_coords(n, n / 2 - 1)
    volume = xp.asarray(reference)
    prepared = prepare_volume(volume, pad=PAD, interpolation=interpolation, gridding=False)
    slice_ = extract_slices(prepared, np.eye(3)[None], coords)[0]
    projection = image_coefficients(volume.sum(axis=0)[None], coords)[0]
    error = float(xp.linalg.norm(slice_ - projection) / xp.linalg.norm(projection))
    case.check("identity_projection", error <= IDENTITY_TOLERANCE,
               f"identity-pose slice differs from the sum projection by {error:.2e} (relative L2)",
               relative_error=error)


def _check_cubic_beats_linear(case: Any, xp: Any) -> None:
    errors = interpolation_errors(xp)
    case.check("cubic_more_accurate", errors["cubic"] < errors["linear"],
               f"tricubic error {errors['cubic']:.4f} is not below trilinear's {errors['linear']:.4f}",
               cubic_error=round(errors["cubic"], 6), linear_error=round(errors["linear"], 6))


def interpolation_errors(xp: Any, n: int = 32, poses: int = 4, seed: int = 5) -> dict[str, float]:
    """Relative L2 error of slice projections of a smooth blob volume against the analytic images.

    Returns
    -------
    dict
        ``{"linear": error, "cubic": error}`` over ``poses`` random poses (pad 2, gridding on).
    """
    from scipy.spatial.transform import Rotation

    from pytest_cryobench.data.engine import blob_model, blob_projections, blob_volume
    from pytest_cryobench.kernels.array_api import to_host
    from pytest_cryobench.kernels.pose_search import image_coefficients
    from pytest_cryobench.kernels.projection import extract_slices, fourier_coords, prepare_volume

    model = blob_model(n, 1.0, seed)
    model = {**model, "sigma": np.full_like(model["sigma"], 2.0)}
    rotations = Rotation.random(poses, random_state=seed).as_matrix()
    coords = fourier_coords(n, n / 2 - 1)
    images = blob_projections(model, rotations, np.zeros((poses, 2)), n)
    truth = image_coefficients(images, coords)
    volume = xp.asarray(blob_volume(model, n))
    out = {}
    for kind in ("linear", "cubic"):
        slices = to_host(extract_slices(prepare_volume(volume, pad=PAD, interpolation=kind), rotations, coords))
        out[kind] = float(np.linalg.norm(slices - truth) / np.linalg.norm(truth))
    return out
