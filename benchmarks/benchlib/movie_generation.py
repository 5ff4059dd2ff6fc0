"""``movie_speed.py`` section 1: generation of each format's movies, timed from the outside.

``provision.ensure`` of each format's movie component (TIFF, MRC, EER) into a fresh data root;
MB/s of file bytes written (into the page cache: the generator does not fsync), beside the rate
the manifest records and the share that SHA-256 hashing takes. Not judged.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import time
from pathlib import Path

from benchlib.machine import load_average
from pytest_cryobench.data import movies, provision
from pytest_cryobench.measure.fsutil import human_bytes
from pytest_cryobench.plugin.session import DATA_SEED
from pytest_cryobench.profiles import Profile

MB = 1e6


@dataclasses.dataclass
class GenerationFigure:
    """Generation of one format's component, per repeat (bytes, seconds, MB/s)."""

    fmt: str
    files: int = 0
    frames: int = 0
    bytes_written: list[int] = dataclasses.field(default_factory=list)
    wall_s: list[float] = dataclasses.field(default_factory=list)
    manifest_s: list[float] = dataclasses.field(default_factory=list)
    manifest_mb_per_s: list[float] = dataclasses.field(default_factory=list)
    sha256_s: list[float] = dataclasses.field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        """Median over repeats of the file bytes written per wall second, MB/s."""
        return statistics.median(b / t / MB for b, t in zip(self.bytes_written, self.wall_s, strict=True))

    def as_dict(self) -> dict[str, object]:
        return {"format": self.fmt, "files": self.files, "frames": self.frames,
                "bytes_written": statistics.median(self.bytes_written), "wall_s": statistics.median(self.wall_s),
                "mb_per_s": self.mb_per_s, "manifest_generation_seconds": statistics.median(self.manifest_s),
                "manifest_generation_mb_per_s": statistics.median(self.manifest_mb_per_s),
                "sha256_rehash_s": statistics.median(self.sha256_s), "samples_wall_s": self.wall_s,
                "samples_bytes": self.bytes_written}


def has_data(root: Path) -> bool:
    """Whether ``root`` holds generated data (a manifest)."""
    return (root / provision.MANIFEST_NAME).exists()


def generate_once(root: Path, profile: Profile, figures: dict[str, GenerationFigure], repeat: int) -> None:
    """One timed ``ensure`` per format into ``root`` (which must hold no data yet)."""
    if has_data(root):
        raise RuntimeError(f"{root}: not a fresh data root")
    for fmt in movies.FORMATS:
        component = movies.movie_component(fmt, profile, DATA_SEED)
        os.sync()  # the previous format's writeback does not run into this one's timing
        start = time.perf_counter()
        entry = provision.ensure(root, component, DATA_SEED, say=provision.stderr_say)
        wall = time.perf_counter() - start
        paths = [root / name for name in component.files]
        nbytes = sum(record["size"] for record in entry["files"].values())
        start = time.perf_counter()
        for path in paths:  # what hashing costs inside ensure (warm: the files were just written)
            provision.sha256_of(path)
        hashing = time.perf_counter() - start
        fig = figures[fmt]
        fig.files = len(paths)
        fig.frames = sum(movies.CHECKS[fmt](p)[0] for p in paths)  # (frames, height, width)
        fig.bytes_written.append(nbytes)
        fig.wall_s.append(wall)
        fig.manifest_s.append(entry["generation_seconds"])
        fig.manifest_mb_per_s.append(entry["generation_rate_MBps"])
        fig.sha256_s.append(hashing)
        print(f"  [{repeat + 1}] {fmt:<4} {human_bytes(nbytes):>9} in {wall:7.2f} s = {nbytes / wall / MB:7.1f} MB/s "
              f"(manifest: {entry['generation_rate_MBps']:.1f} MB/s in {entry['generation_seconds']:.2f} s; "
              f"SHA-256 re-hash {hashing:.2f} s)  load {load_average()}", flush=True)


def section_generate(profile: Profile, data_root: Path, work: Path, repeats: int) -> list[GenerationFigure]:
    """Time generation ``repeats`` times, each into a fresh root.

    The first repeat generates the data root the other sections use when it holds no data yet;
    the other repeats (and all of them when it does) go to a scratch root removed afterwards.
    """
    figures = {fmt: GenerationFigure(fmt) for fmt in movies.FORMATS}
    print(f"\n1. generation (provision.ensure into a fresh data root; seed {DATA_SEED}; no fsync):", flush=True)
    for repeat in range(repeats):
        if repeat == 0 and not has_data(data_root):
            root, scratch = data_root, None
        else:
            scratch = work / f"generation-{repeat}"
            root = scratch / data_root.name
        try:
            generate_once(root, profile, figures, repeat)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    return list(figures.values())

