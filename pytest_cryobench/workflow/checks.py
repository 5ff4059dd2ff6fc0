"""The chain's known-answer checks: each returns ``(name, passed, message, figures)`` tuples.

Thresholds (``docs/design.md``, workflow): drift within 0.5 px, patches within 1 px; defocus within
2% or 200 Å, per micrograph and per patch, and the patches' defocus differences (the planted tilt)
within 200 Å; astigmatism angle within 10 degrees where the astigmatism exceeds 500 Å; picking
recall and precision; extraction centring within 1 px; class averages against the true
projections; ab-initio and refinement FSC against the truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_cryobench.data.workflow import displacement, local_defocus
from pytest_cryobench.data.workflow_specimen import particle_images, truth_volume
from pytest_cryobench.kernels import abinitio as ab
from pytest_cryobench.kernels.ctf import ctf_2d
from pytest_cryobench.kernels.fsc import fsc_maps
from pytest_cryobench.kernels.picking import match_picks
from pytest_cryobench.kernels.rotations import rotation_grid
from pytest_cryobench.profiles import WorkflowSize

Check = tuple[str, bool, str, dict[str, Any]]


def check_motion(tracks: list[dict[str, Any]], plans: list[dict[str, Any]], size: int) -> list[Check]:
    drift, patch = [], []
    for track, plan in zip(tracks, plans, strict=True):
        drift.append(float(np.abs(np.asarray(track["shifts"]) - np.asarray(plan["drift"])).max()))
        centres = np.asarray(track["patch_centres"])
        frames = len(plan["drift"])
        truth = np.array([[displacement(plan, f, c[0], c[1], size) for f in range(frames)] for c in centres])
        patch.append(float(np.abs(np.asarray(track["patch_shifts"]) - truth).max()))
    return [("drift", max(drift) <= 0.5, f"whole-frame drift off by up to {max(drift):.2f} px (limit 0.5)",
             {"max_error_px": max(drift)}),
            ("patches", max(patch) <= 1.0, f"patch shifts off by up to {max(patch):.2f} px (limit 1)",
             {"max_error_px": max(patch)})]


def check_ctf(fits: list[dict[str, Any]], plans: list[dict[str, Any]], size: int) -> list[Check]:
    """Whole-micrograph defocus and astigmatism against the planted values; then every patch's
    defocus against the planted defocus at the patch's centre (``size``: the micrograph's side,
    pixels), absolutely (2% or 200 Å) and relative to the patches' mean (200 Å: the tilt, which a
    fit that gives every patch the micrograph's defocus misses by at least ``TILT_A / 4``)."""
    return [_check_micrograph_ctf(fits, plans), _check_patch_defocus(fits, plans, size)]


def _check_patch_defocus(fits: list[dict[str, Any]], plans: list[dict[str, Any]], size: int) -> Check:
    worst_abs, worst_tilt, bad = 0.0, 0.0, []
    for i, (fit, plan) in enumerate(zip(fits, plans, strict=True)):
        found = np.asarray(fit["patch_defocus_A"], np.float64)
        cy, cx = np.asarray(fit["patch_centres_y_px"]), np.asarray(fit["patch_centres_x_px"])
        true = local_defocus(plan, cy[:, None], cx[None, :], size)
        err = np.abs(found - true)
        tilt = np.abs((found - found.mean()) - (true - true.mean()))
        worst_abs, worst_tilt = max(worst_abs, float(err.max())), max(worst_tilt, float(tilt.max()))
        if np.any(err > np.maximum(0.02 * true, 200.0)):
            bad.append(f"movie {i}: a patch's defocus off by {err.max():.0f} Å")
        if tilt.max() > 200.0:
            bad.append(f"movie {i}: defocus across patches off by {tilt.max():.0f} Å (the tilt)")
    return ("patch_defocus", not bad, "; ".join(bad), {"max_defocus_error_A": worst_abs,
                                                       "max_tilt_error_A": worst_tilt})


def _check_micrograph_ctf(fits: list[dict[str, Any]], plans: list[dict[str, Any]]) -> Check:
    worst_df, worst_angle, bad = 0.0, 0.0, []
    for i, (fit, plan) in enumerate(zip(fits, plans, strict=True)):
        for found, true in ((fit["df1_A"], plan["df1_A"]), (fit["df2_A"], plan["df2_A"])):
            err = abs(found - true)
            worst_df = max(worst_df, err)
            if err > max(0.02 * true, 200.0):
                bad.append(f"movie {i}: defocus {found:.0f} vs {true:.0f} Å")
        if plan["df1_A"] - plan["df2_A"] > 500:
            d = abs((np.degrees(fit["df_angle_rad"] - plan["df_angle_rad"]) + 90) % 180 - 90)
            worst_angle = max(worst_angle, float(d))
            if d > 10:
                bad.append(f"movie {i}: astigmatism angle off by {d:.0f} degrees")
    return ("defocus_astigmatism", not bad, "; ".join(bad), {"max_defocus_error_A": worst_df,
                                                             "max_angle_error_deg": worst_angle})


def check_picks(found: list[np.ndarray], plans: list[dict[str, Any]], tol_px: float, name: str,
                min_recall: float, min_precision: float) -> list[Check]:
    picked = sum(len(f) for f in found)
    hits = sum(match_picks(f, np.asarray(p["positions"]), tol_px=tol_px)["pairs"].shape[0] if len(f) else 0
               for f, p in zip(found, plans, strict=True)) if found else 0
    planted = sum(len(p["positions"]) for p in plans)
    recall, precision = hits / max(planted, 1), hits / max(picked, 1)
    return [(name, recall >= min_recall and precision >= min_precision,
             f"{name}: recall {recall:.2f}, precision {precision:.2f} (need {min_recall}, {min_precision})",
             {"recall": recall, "precision": precision})]


def check_fsc_to_shell(name: str, curve: np.ndarray, shell: int, threshold: float = 0.5) -> list[Check]:
    low = float(np.min(curve[1:shell + 1]))
    return [(name, low >= threshold, f"{name}: FSC against the truth falls to {low:.2f} by shell {shell} "
             f"(need >= {threshold})", {"min_fsc": low, "shell": shell})]


def planted_matches(plans: list[dict[str, Any]], size: WorkflowSize, data: np.ndarray,
                    tol_fraction: float) -> list[tuple[int, int, int, np.ndarray]]:
    """``(row, micrograph, planted index, pick (y, x))`` for every particle of a ``.cs`` whose
    pick lies within ``tol_fraction * box`` of a planted particle of its micrograph."""
    found = []
    for i, plan in enumerate(plans):
        rows = np.nonzero(np.asarray(data["location/micrograph_uid"]) == i)[0]
        if not len(rows):
            continue
        yx = np.column_stack([data["location/center_y_frac"][rows], data["location/center_x_frac"][rows]]) * size.size
        truth = np.asarray(plan["positions"])
        d = np.hypot(*(yx[:, None, :] - truth[None]).transpose(2, 0, 1))
        near = d.argmin(axis=1)
        for j in np.nonzero(d[np.arange(len(rows)), near] <= tol_fraction * size.box)[0]:
            found.append((int(rows[j]), i, int(near[j]), yx[j]))
    return found


def check_centring(model: dict[str, np.ndarray], plans: list[dict[str, Any]], size: WorkflowSize, work_apix: float,
                   images: np.ndarray, data: np.ndarray, tol_fraction: float) -> list[Check]:
    """Offset of each true particle in its box: the peak of its cross-correlation with its own
    known projection (true pose, CTF of the .cs), for picks within the tolerance of a planted one."""
    m = size.work_box
    offsets = []
    for r, i, t, pick in planted_matches(plans, size, data, tol_fraction):
        offset = (np.asarray(plans[i]["positions"])[t] - pick) / (size.box / m)
        ref = particle_images(model, np.asarray(plans[i]["rotations"])[t:t + 1], np.zeros((1, 2)), m, work_apix,
                              size.band_A)[0]
        ctf = ctf_2d((m, m), work_apix, float(data["ctf/df1_A"][r]), float(data["ctf/df2_A"][r]),
                     float(data["ctf/df_angle_rad"][r]), dtype=np.float64)
        cc = np.fft.irfft2(np.fft.rfft2(images[r]) * np.conj(np.fft.rfft2(ref) * ctf), s=(m, m))
        peak = np.array(np.unravel_index(np.argmax(cc), cc.shape))
        peak = np.where(peak > m // 2, peak - m, peak)
        offsets.append(np.hypot(*(peak - offset)))
    within = float(np.mean(np.asarray(offsets) <= 1.0)) if offsets else 0.0
    return [("centring", within >= 0.9, f"only {within:.0%} of the true particles found centred within 1 px",
             {"fraction_within_1px": within, "measured": len(offsets)})]


def check_classes(model: dict[str, np.ndarray], size: WorkflowSize, work_apix: float,
                  out: dict[str, Any], plans: list[dict[str, Any]], data: np.ndarray,
                  tol_fraction: float) -> list[Check]:
    """Each class average against the true projections: the best normalised correlation over
    150 viewing directions (analytic projections of the true volume, weighted by the particles'
    mean ``|CTF|`` since the particles were phase-flipped), in-plane angles every 10 degrees (the
    average rotated) and all shifts (by FFT); and the classes' purity: the planted particles of a
    class should mostly share its view axis, i.e. have their true viewing direction within 45
    degrees of the direction the class average matches best, or of its opposite (at the classes'
    low resolution the view from the other side is the mirror image, which for a compact particle
    looks much like an in-plane rotation of it). Random classes (the assignments shuffled) give
    27-33%; at least half is asked.
    ``fraction_same_view`` (the direction itself; random 15%) is recorded too."""
    from pytest_cryobench.kernels.classify2d import rotate_stack

    m = size.work_box
    directions = rotation_grid(150, 360.0)
    gallery = particle_images(model, directions.matrices, np.zeros((len(directions.matrices), 2)), m, work_apix,
                              size.band_A)
    weighted = np.fft.rfft2(np.fft.ifftshift(gallery, axes=(1, 2))) * out["signs_mean"][None]
    gallery = np.fft.fftshift(np.fft.irfft2(weighted, s=(m, m)), axes=(1, 2))
    gallery -= gallery.mean(axis=(1, 2), keepdims=True)
    gallery /= np.linalg.norm(gallery.reshape(len(gallery), -1), axis=1)[:, None, None]
    gallery_f = np.fft.rfft2(gallery)
    best, view = [], []
    for avg in np.asarray(out["averages"]):
        rotated = np.stack([rotate_stack(avg[None].astype(np.float32), a)[0] for a in np.arange(0, 360, 10.0)])
        rotated -= rotated.mean(axis=(1, 2), keepdims=True)
        rotated /= np.linalg.norm(rotated.reshape(len(rotated), -1), axis=1)[:, None, None] + 1e-12
        rf = np.conj(np.fft.rfft2(rotated))
        per_direction = np.max([np.fft.irfft2(gallery_f * r[None], s=(m, m)).max(axis=(1, 2)) for r in rf], axis=0)
        best.append(float(per_direction.max()))
        view.append(directions.directions[int(np.argmax(per_direction))])
    low = min(best)
    same, axis = [], []
    for r, i, t, _ in planted_matches(plans, size, data, tol_fraction):
        true_direction = np.asarray(plans[i]["rotations"])[t].T @ np.array([0.0, 0.0, 1.0])
        cos = float(true_direction @ view[int(out["assignment"][r])])
        same.append(cos >= np.cos(np.radians(45.0)))
        axis.append(abs(cos) >= np.cos(np.radians(45.0)))
    purity = float(np.mean(axis)) if axis else 0.0
    return [("class_averages", low >= 0.7, f"a class average matches no true projection better than {low:.2f}",
             {"min_correlation": low, "correlations": [round(b, 3) for b in best]}),
            ("class_views", purity >= 0.5, f"only {purity:.0%} of the planted particles share their class's view axis",
             {"fraction_same_axis": purity, "fraction_same_view": float(np.mean(same)) if same else 0.0,
              "measured": len(same)})]


def fsc_against_truth(model: dict[str, np.ndarray], size: WorkflowSize, work_apix: float, volume: np.ndarray,
                      low: bool) -> tuple[np.ndarray, int]:
    """FSC of ``volume`` with the true volume after :func:`~pytest_cryobench.kernels.abinitio.align_volumes`,
    and the designed shell: the ab-initio's own band (``low``) or the particles' band."""
    from pytest_cryobench.workflow.reconstruct import abinitio_shell

    truth = truth_volume(model, size.work_box, work_apix, size.band_A)
    aligned = ab.align_volumes(volume, truth).aligned
    box_A = size.work_box * work_apix
    designed = int(abinitio_shell(size, box_A)) if low else int(box_A / size.band_A)
    return np.asarray(fsc_maps(aligned, truth)), designed
