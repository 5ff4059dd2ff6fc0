"""Half maps for the GPU analysis workloads: generation (with ground truth) and loading.

Generated maps live in the data root beside the movies: ``gpu_fsc_test/half_map_A.mrc`` and
``half_map_B.mrc`` (CryoSPARC's names), and ``gpu_nu_test/`` (ours: two regions band-limited at
different resolutions, with their region masks in ``regions.npz``). A real data set provides
``gpu_fsc_test/`` only; the NU case then runs on those half maps, without a planted answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.provision import Component
from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.profiles import Profile

NU_BAND_LIMITS_A = (4.5, 9.0)  # on the candidate grid at 1.5 A/voxel (see kernels.nu_filter)
NU_NOISE_SIGMA = 0.5
NU_FILES = ("gpu_nu_test/half_map_A.mrc", "gpu_nu_test/half_map_B.mrc", "gpu_nu_test/regions.npz")
FSC_FILES = ("gpu_fsc_test/half_map_A.mrc", "gpu_fsc_test/half_map_B.mrc", "gpu_fsc_test/signal.mrc")
FSC_NOISE_SIGMA = 1.0
FSC_BAND_FRACTION = 0.75  # band limit of the designed signal, as a fraction of Nyquist


def write_map(path: Path, volume: np.ndarray, apix: float) -> None:
    """Write a float32 volume as MRC with its voxel size (Å)."""
    import mrcfile

    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
        mrc.voxel_size = apix


def read_map(path: Path) -> tuple[np.ndarray, float]:
    """A volume (float32, shape (n, n, n)) and its voxel size (Å) from an MRC file.

    Raises
    ------
    CryobenchError
        Unreadable, truncated, not 3-D, or not cubic; the message names the file.
    """
    import mrcfile

    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
            apix = float(mrc.voxel_size.x)
    except (ValueError, OSError) as exc:
        raise CryobenchError(f"{path}: cannot read this map ({exc})") from None
    if data.ndim != 3:
        raise CryobenchError(f"{path}: a map must be 3-D, this one has shape {data.shape}")
    if len(set(data.shape)) != 1:
        raise CryobenchError(f"{path}: the map is not cubic (shape {data.shape})")
    if not np.isfinite(data).all():
        raise CryobenchError(f"{path}: the map holds NaN or infinite values")
    return data, apix


def read_half_maps(path_a: Path, path_b: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Both half maps; they must have the same shape and voxel size."""
    a, apix_a = read_map(path_a)
    b, apix_b = read_map(path_b)
    if a.shape != b.shape:
        raise CryobenchError(f"half maps of different shapes: {path_a} {a.shape}, {path_b} {b.shape}")
    if not np.isclose(apix_a, apix_b, rtol=1e-4):
        raise CryobenchError(f"half maps of different voxel sizes: {path_a} {apix_a} A, {path_b} {apix_b} A")
    return a, b, apix_a


def nu_component(profile: Profile, seed: int) -> Component:
    """Two-region half maps for the filter estimation (known answer: each region's band limit)."""
    from pytest_cryobench.data.synthetic_maps import two_region_half_maps

    n, apix = profile.nu_box, profile.map_apix
    made: dict[str, Any] = {}

    def generate(name: str, tmp: Path, progress) -> dict[str, Any]:
        if not made:
            a, b, truth = two_region_half_maps(n, apix, *NU_BAND_LIMITS_A, noise_sigma=NU_NOISE_SIGMA,
                                               seed=seed)
            made.update(a=a, b=b, truth=truth)
        if name.endswith("half_map_A.mrc"):
            write_map(tmp, made["a"], apix)
        elif name.endswith("half_map_B.mrc"):
            write_map(tmp, made["b"], apix)
        else:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, region1_core=made["truth"]["region1_core"],
                                    region2_core=made["truth"]["region2_core"])
            made.clear()
        progress(1, 1)
        return {"band_limits_A": list(NU_BAND_LIMITS_A), "apix": apix, "n": n, "noise_sigma": NU_NOISE_SIGMA}

    return Component(name="gpu_nu_test", version=1,
                     params={"n": n, "apix": apix, "band_limits_A": list(NU_BAND_LIMITS_A),
                             "noise_sigma": NU_NOISE_SIGMA},
                     files=NU_FILES, estimated_bytes=3 * 4 * n**3 + (1 << 20), generate=generate)


def fsc_component(profile: Profile, seed: int) -> Component:
    """Designed half maps for the FSC cases: a band-limited signal plus independent white noise
    per half, and the clean signal itself (``signal.mrc``, our addition to CryoSPARC's layout),
    from which the expected curve under any mask follows
    (see :func:`~pytest_cryobench.data.fsc_reference.expected_masked_fsc`)."""
    from pytest_cryobench.data.synthetic_maps import designed_half_maps

    n, apix = profile.fsc_box, profile.map_apix
    band = int(FSC_BAND_FRACTION * (n // 2))
    made: dict[str, Any] = {}

    def generate(name: str, tmp: Path, progress) -> dict[str, Any]:
        if not made:
            made["maps"] = designed_half_maps(n, apix, band, FSC_NOISE_SIGMA, seed)
        maps = made["maps"]
        volume = {"half_map_A.mrc": maps.half_a, "half_map_B.mrc": maps.half_b,
                  "signal.mrc": maps.signal}[Path(name).name]
        write_map(tmp, volume, apix)
        if name.endswith("signal.mrc"):
            made.clear()
        progress(1, 1)
        return {"n": n, "apix": apix, "band_shell": band, "noise_sigma": FSC_NOISE_SIGMA,
                "designed_crossing_shell": int(maps.crossing["shell"])}

    return Component(name="gpu_fsc_test", version=1,
                     params={"n": n, "apix": apix, "band_shell": band, "noise_sigma": FSC_NOISE_SIGMA},
                     files=FSC_FILES, estimated_bytes=3 * 4 * n**3 + (1 << 20), generate=generate)
