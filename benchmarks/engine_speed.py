"""Particles/s and poses/s of the 14 engine cases, and how much reading time ``multi`` hides.

Runs one engine pass per repeat for every case (as the benchmark's cases do, without pytest) on
the profile's generated data, on NumPy or CuPy, and prints the median time, particles/s, poses/s
and the sub-timings of the ``single`` cases. Then, unless ``--no-overlap``, the IO experiment:
``disk_single`` and ``disk_multi`` with storage throttled to ``--slow-read-mbps`` (each batch read
takes at least its bytes at that rate), which shows whether ``multi`` hides reading behind
computing: ideally ``multi ~ max(read, compute)`` while ``single = read + compute``.

    python3 benchmarks/engine_speed.py --profile smoke --repeats 3 [--backend numpy|cupy]
        [--only memory_single_linear10_max_C1,...] [--slow-read-mbps 50] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pytest_cryobench.data.engine import TRUTH_VOLUME, engine_component
from pytest_cryobench.data.engine_source import ParticleReader, load_engine_dataset
from pytest_cryobench.data.provision import ensure
from pytest_cryobench.engine.passes import ENGINE_CASES, EngineCase, make_config, overlap_seconds, run_pass
from pytest_cryobench.measure.timing import SubTimings
from pytest_cryobench.plugin.session import DATA_SEED
from pytest_cryobench.profiles import PROFILES


def _backend(name: str):
    if name == "cupy":
        import cupy

        return cupy, cupy.cuda.Device().synchronize
    return np, lambda: None


def run_case(dataset, preloaded, name, profile, xp, sync, repeats, read=None):
    spec = EngineCase.parse(name)
    free = None
    if xp.__name__ == "cupy":
        free = int(xp.cuda.runtime.memGetInfo()[0])
    config = make_config(profile.engine, dataset.n, dataset.apix, xp, spec, free_device_bytes=free)
    reader = ParticleReader(dataset, preloaded if spec.location == "memory" else None)
    read = read or reader.read
    times, spans, result = [], [], None
    for i in range(repeats + 1):  # the first pass warms caches and plans
        st = SubTimings(sync)
        st.start_round()
        sync()
        start = time.perf_counter()
        result = run_pass(dataset.reference, dataset.ctf, read, dataset.particles, spec, config, xp, st)
        sync()
        if i:
            times.append(time.perf_counter() - start)
            spans.append(st.rounds[-1])
    median = statistics.median(times)
    poses = dataset.particles * len(config.grid.matrices) * len(config.shifts.shifts)
    names = list(spans[0])
    return {"case": name, "median_s": median, "particles_per_s": dataset.particles / median,
            "poses_per_s": poses / median, "batch": config.batch, "batches": result.batches,
            "rotations": len(config.grid.matrices), "shifts": len(config.shifts.shifts),
            "overlap_s": overlap_seconds(result.intervals),
            "spans": {k: statistics.median(s.get(k, 0.0) for s in spans) for k in names}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--only", default="", help="comma-separated case names (default: all 14)")
    parser.add_argument("--data-dir", default=None, help="where the generated data lives (default: a temp dir)")
    parser.add_argument("--slow-read-mbps", type=float, default=50.0)
    parser.add_argument("--no-overlap", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    xp, sync = _backend(args.backend)
    root = Path(args.data_dir or tempfile.mkdtemp(prefix="cryobench-engine-"))
    entry = ensure(root, engine_component(profile, DATA_SEED), DATA_SEED)
    dataset = load_engine_dataset(root, dict(entry["truth"][TRUTH_VOLUME]))
    preloaded = ParticleReader(dataset).preload()
    names = [n for n in args.only.split(",") if n] or list(ENGINE_CASES)
    rows = []
    for name in names:
        row = run_case(dataset, preloaded, name, profile, xp, sync, args.repeats)
        rows.append(row)
        spans = " ".join(f"{k}={v:.3f}" for k, v in row["spans"].items())
        print(f"{name:34s} {row['median_s']:8.3f} s  {row['particles_per_s']:10,.0f} particles/s  "
              f"{row['poses_per_s']:14,.0f} poses/s  batch {row['batch']}  {spans}", flush=True)
    overlap = None
    if not args.no_overlap:
        reader = ParticleReader(dataset)
        bytes_per = dataset.n * dataset.n * 4
        rate = args.slow_read_mbps * 1e6

        def slow_read(lo, hi):
            start = time.perf_counter()
            out = reader.read(lo, hi)
            time.sleep(max(0.0, (hi - lo) * bytes_per / rate - (time.perf_counter() - start)))
            return out

        single = run_case(dataset, None, "disk_single_linear10_max_C1", profile, xp, sync, args.repeats, slow_read)
        multi = run_case(dataset, None, "disk_multi_linear10_max_C1", profile, xp, sync, args.repeats, slow_read)
        read_s = single["spans"].get("read_particles", 0.0)
        overlap = {"slow_read_mb_per_s": args.slow_read_mbps, "single_s": single["median_s"],
                   "multi_s": multi["median_s"], "read_s": read_s, "compute_s": single["median_s"] - read_s,
                   "multi_overlap_s": multi["overlap_s"]}
        print(f"slow storage ({args.slow_read_mbps:g} MB/s): single {single['median_s']:.3f} s "
              f"(read {read_s:.3f} s + rest {single['median_s'] - read_s:.3f} s), multi {multi['median_s']:.3f} s, "
              f"read/compute overlap in multi {multi['overlap_s']:.3f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {args.backend}, profile {args.profile}, "
          f"median of {args.repeats}")
    if args.json:
        Path(args.json).write_text(json.dumps({"profile": args.profile, "backend": args.backend, "rows": rows,
                                               "overlap": overlap}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
