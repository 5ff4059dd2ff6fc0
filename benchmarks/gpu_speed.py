"""How long each GPU-group kernel takes on the NumPy backend, and what share of it is FFTs.

Runs the kernels of ``fsc_*``, ``matched_cv_filter_estimation`` and ``picking`` as their cases
do, on the profile's generated data sizes, and times every ``numpy.fft`` call made meanwhile by
wrapping the module's transforms with a counting timer. Reports the median over repeats, the
time inside FFTs and its share.

    python3 benchmarks/gpu_speed.py --profile standard --repeats 3 [--json OUT] [--only fsc,nu,picking]

This is a developer tool: the benchmark itself (``pytest --cryobench -m gpu``) gives the timed
figures with sub-timings; this script answers "is the harness's time in the FFTs, where it
should be?".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time

import numpy as np

from pytest_cryobench.data.maps import FSC_BAND_FRACTION, FSC_NOISE_SIGMA, NU_BAND_LIMITS_A, NU_NOISE_SIGMA
from pytest_cryobench.data.picking import ANGLE_STEP_DEG, APIX, BOX, CTF, NOISE_SIGMA, THRESHOLD
from pytest_cryobench.profiles import PROFILES

# The public names only: numpy's n-D transforms call the 1-D ones inside numpy.fft._pocketfft, not
# through this namespace, so nothing is counted twice.
FFT_NAMES = ("fft", "ifft", "rfft", "irfft", "fftn", "ifftn", "rfftn", "irfftn", "rfft2", "irfft2", "fft2", "ifft2")


class FftClock:
    """Wraps ``numpy.fft``'s transforms; ``seconds`` accumulates the time spent inside them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextlib.contextmanager
    def installed(self):
        originals = {name: getattr(np.fft, name) for name in FFT_NAMES}

        def timed(function):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
                    self.calls += 1
            return wrapper

        try:
            for name, function in originals.items():
                setattr(np.fft, name, timed(function))
            yield self
        finally:
            for name, function in originals.items():
                setattr(np.fft, name, function)


def fsc_workloads(profile):
    from pytest_cryobench.data.synthetic_maps import designed_half_maps
    from pytest_cryobench.kernels import fsc, masks

    n, apix = profile.fsc_box, profile.map_apix
    maps = designed_half_maps(n, apix, int(FSC_BAND_FRACTION * (n // 2)), FSC_NOISE_SIGMA, seed=1)
    a, b = maps.half_a, maps.half_b

    def run(kind):
        def go():
            if kind == "spherical":
                mask = masks.spherical_mask(n)
            else:
                maker = masks.loose_mask if kind == "loose" else masks.tight_mask
                mask = maker((a + b) * 0.5, apix)
            fsc.resolution_at(fsc.to_host(fsc.fsc_maps(a, b, mask)), n=n, apix=apix)
        return go

    for kind in ("spherical", "loose", "tight"):
        yield f"fsc_{kind} ({n}^3)", run(kind)
    yield f"fsc_noisesub ({n}^3)", _noisesub(a, b, n, apix)


def _noisesub(a, b, n, apix):
    from pytest_cryobench.kernels import fsc, masks

    def go():
        mask = masks.tight_mask((a + b) * 0.5, apix)
        curve = fsc.noise_substituted_fsc(a, b, mask, seed=31)["fsc_true"]
        fsc.resolution_at(curve, n=n, apix=apix)
    return go


def nu_workload(profile):
    from pytest_cryobench.data.synthetic_maps import two_region_half_maps
    from pytest_cryobench.kernels.nu_filter import candidate_resolutions, matched_cv_filter_estimation

    n, apix = profile.nu_box, profile.map_apix
    a, b, _ = two_region_half_maps(n, apix, *NU_BAND_LIMITS_A, noise_sigma=NU_NOISE_SIGMA, seed=1)
    candidates = candidate_resolutions(n, apix)
    yield f"matched_cv_filter_estimation ({n}^3, K={len(candidates)})", (
        lambda: matched_cv_filter_estimation(a, b, apix, candidates))


def picking_workload(profile):
    from pytest_cryobench.data.synthetic_micrographs import asymmetric_templates, planted_micrograph
    from pytest_cryobench.kernels.ctf import ctf_2d
    from pytest_cryobench.kernels.picking import pick

    size = profile.picking_size
    templates = asymmetric_templates(profile.picking_templates, BOX, 1)
    ctf = ctf_2d((size, size), APIX, CTF["df1_A"], CTF["df2_A"], CTF["df_angle_rad"])
    mic, *_ = planted_micrograph((size, size), templates, profile.picking_particles, NOISE_SIGMA, 1, ctf=ctf)
    angles = np.arange(0.0, 360.0, ANGLE_STEP_DEG)
    label = f"picking ({size}^2, {len(templates)} templates x {len(angles)} angles)"
    yield label, lambda: pick(mic, templates, angles, ctf, 0.46 * BOX, BOX // 2, THRESHOLD)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="fsc,nu,picking", help="comma-separated: fsc, nu, picking")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    makers = {"fsc": fsc_workloads, "nu": nu_workload, "picking": picking_workload}
    rows = []
    for key in args.only.split(","):
        for label, work in makers[key.strip()](profile):
            work()  # warm-up (plans, caches), as the cases do
            totals, ffts, calls = [], [], 0
            for _ in range(args.repeats):
                with FftClock().installed() as clock:
                    start = time.perf_counter()
                    work()
                    totals.append(time.perf_counter() - start)
                ffts.append(clock.seconds)
                calls = clock.calls
            total, fft = statistics.median(totals), statistics.median(ffts)
            rows.append({"case": label, "median_s": total, "fft_s": fft, "fft_share": fft / total,
                         "fft_calls": calls})
            print(f"{label:60s} {total:8.3f} s   FFT {fft:8.3f} s ({100 * fft / total:4.1f}%, {calls} calls)",
                  flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"profile {args.profile}, median of {args.repeats}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"profile": args.profile, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
