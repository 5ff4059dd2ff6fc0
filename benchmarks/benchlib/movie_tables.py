"""The result tables of ``movie_speed.py``'s three sections (generation, decode, cold reads)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchlib.cache import Log
from benchlib.figures import Figure, print_figures
from benchlib.movie_decode import BUSY_ELSEWHERE_LIMIT, DECODE_FORMATS, DECODE_TARGET, DecodeFigure
from benchlib.movie_generation import GenerationFigure
from benchlib.movie_reads import FIO_BS
from benchlib.tables import number_text, print_rows, rate_text
from pytest_cryobench.measure.fsutil import human_bytes


def print_generation(figures: Sequence[GenerationFigure], repeats: int) -> None:
    """Section 1: per format, files, frames, bytes written, wall s, MB/s and the hashing share."""
    header = ("format", "files", "frames", "written", "wall s", "MB/s written", "manifest s", "manifest MB/s",
              "SHA-256 s", "frames/s", "target", "result")
    rows = [header]
    for f in figures:
        wall = statistics.median(f.wall_s)
        rows.append((f.fmt, str(f.files), str(f.frames), human_bytes(statistics.median(f.bytes_written)),
                     f"{wall:.2f}", f"{f.mb_per_s:.1f}", f"{statistics.median(f.manifest_s):.2f}",
                     f"{statistics.median(f.manifest_mb_per_s):.1f}", f"{statistics.median(f.sha256_s):.2f}",
                     f"{f.frames / wall:.1f}", "-", "info"))
    print_rows(rows)
    print(f"  median of {repeats}; wall s = ensure() timed from the outside (lock, free-space check, generation, "
          "SHA-256 of every file, manifest); MB/s written = file bytes / wall s (into the page cache, no fsync); "
          "manifest = the entry's generation_seconds / generation_rate_MBps; SHA-256 s = a warm re-hash of the "
          "files, the share of the wall time that hashing takes; frames = hardware frames for EER")


def print_decode(figures: Sequence[DecodeFigure], info: dict[str, float], repeats: int) -> None:
    """Section 2: harness against bare per format and thread count, then each side's speedup."""
    header = ("format", "threads", "reference (bare)", "harness s", "harness MB/s", "bare s", "bare MB/s",
              "ratio", "paired ratio", "harness CPU s", "bare CPU s", "CPU ratio", "busy elsewhere", "target",
              "result")
    rows = [header]
    for f in figures:
        h, r = f.harness, f.reference
        busy = h.elsewhere + r.elsewhere
        rows.append((f.fmt, str(f.threads), f.reference_name, number_text(h.wall_median, ".3f"),
                     rate_text(f.decoded_bytes, h.wall_median), number_text(r.wall_median, ".3f"),
                     rate_text(f.decoded_bytes, r.wall_median), number_text(f.ratio, ".3f"),
                     number_text(f.paired_ratio, ".3f"), number_text(h.cpu_median, ".3f"),
                     number_text(r.cpu_median, ".3f"), number_text(f.cpu_ratio, ".3f"),
                     f"max {max(busy):.0%}" if busy else "n/a",
                     f"<= {DECODE_TARGET}" if f.judged else "-", f.verdict))
    print_rows(rows)
    print(f"  median of {repeats}; s = wall seconds to decode all the movies of the format (summed per movie); "
          "MB/s = decoded pixels / s (TIFF: frames*H*W uint8; EER: fractions*H*W uint16); ratio = harness median "
          "s / bare median s (lower is better); paired ratio = median of per-repeat ratios; CPU s = process CPU "
          "time (all threads), less sensitive to other work on the machine than wall time; busy elsewhere = the "
          "largest share of the machine's CPU time that other processes (or the hypervisor, as steal) used "
          f"during one of the figure's timings: above {BUSY_ELSEWHERE_LIMIT:.0%} its wall times are disturbed; "
          "re-run the section (--sections decode) on a quiet machine")
    for f in figures:
        for side, t in (("harness", f.harness), (f.reference_name, f.reference)):
            if t.errors and (side != "harness" or f.judged):  # a harness's errors once, with its judged figure
                print(f"  {f.fmt} t={f.threads} {side}: {len(t.errors)} run(s) raised, first: {t.errors[0]}")
    if "eer_open_check_s" in info:
        print(f"  eer: opening and checking the containers (eer.open_eer, tifffile parse of every IFD) takes "
              f"{info['eer_open_check_s']:.3f} s for all movies; the bare loop gets its strip offsets beforehand")
    speed_rows = [("format", "side", *[f"t={t} s" for t in _threads_of(figures)], "speedup t1/t_all")]
    for fmt in DECODE_FORMATS:
        figs = [f for f in figures if f.fmt == fmt]
        if not figs:
            continue
        by_side: dict[str, list[float | None]] = {}
        for f in figs:
            if f.judged:
                by_side.setdefault("harness", []).append(f.harness.wall_median)
            by_side.setdefault(f.reference_name, []).append(f.reference.wall_median)
        for side, walls in by_side.items():
            speedup = walls[0] / walls[-1] if len(walls) > 1 and walls[0] and walls[-1] else None
            speed_rows.append((fmt, side, *[number_text(w, ".3f") for w in walls], number_text(speedup, ".3f")))
    print("\n  multi-core speedup (wall s, medians):")
    print_rows(speed_rows, indent="  ")


def _threads_of(figures: Sequence[DecodeFigure]) -> list[int]:
    return sorted({f.threads for f in figures})



def print_read(figures: Sequence[Figure], details: dict[str, dict[str, object]], log: Log, repeats: int) -> None:
    """Section 3: the compared read figures, bytes fio skips, warm ceilings and the worst residency."""
    print_figures(figures)
    print(f"  median of {repeats}; harness MB/s = all the format's file bytes / the time of the round; fio's "
          f"rate is its read.bw_bytes. fio issues only whole {FIO_BS >> 20} MiB reads, so it skips each file's "
          "last partial block:")
    for fmt, d in details.items():
        warm = d["warm"]
        fio_warm = f", fio {warm['fio_mb_per_s']:.1f} MB/s" if "fio_mb_per_s" in warm else ""
        print(f"  {fmt}: {d['files']} files, {human_bytes(d['bytes'])}; fio reads {human_bytes(d['fio_bytes'])} "
              f"({d['fio_bytes'] / d['bytes']:.1%}); warm cache: harness {warm['harness_mb_per_s']:.1f} MB/s{fio_warm}")
    measured = [e["residency"] for e in log.entries if e["residency"] is not None]
    if measured:
        worst = max(measured)
        print(f"  residency before the {len(measured)} timed reads: at most {worst:.2%} "
              f"({'all cold' if worst <= 0.02 else 'WARNING: some reads were not cold'})")

