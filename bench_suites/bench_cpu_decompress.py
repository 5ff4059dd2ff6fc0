"""CPU benchmark: movie decompression from RAM.

The 3 movies of a format are copied to ``/dev/shm`` (untimed, as CryoSPARC does with
``CRYOSPARC_TIFF_IO_SHM``), then each round decodes all of them with every usable core:
LZW TIFF frames decoded into a reused frame buffer (of the file's own sample type), EER hardware
frames summed into fractions. The clock covers the decoding only: the totals of the check are
taken in an untimed pass after the rounds. Reported: the mean time per movie (``tiff``, ``eer``),
MB/s of the compressed input (the bytes the decoder consumes, the same whatever
``--cryobench-eer-fractions``), events/s for EER, and the threads used. The EER fractions and
super-resolution are part of the run's context: two runs with different ones are not compared.

Known answer: the decoded totals (per TIFF frame, per EER fraction) must equal what the
generator wrote; for a real data set, two untimed decodes must give the same totals.
"""

from __future__ import annotations

import contextlib

import pytest

from pytest_cryobench.data.eer import decode_fractions
from pytest_cryobench.data.movies import CHECKS, decode_tiff, usable_threads
from pytest_cryobench.data.particles import remove_tree
from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.measure.fsutil import copy_file, require_free_space

pytestmark = pytest.mark.cpu


def _expected_totals(fmt, truth, n_fractions):
    """Per-frame (TIFF) or per-fraction (EER) totals the decoder must find."""
    if fmt == "tiff":
        return list(truth["frame_sums"])
    from pytest_cryobench.data.eer import fraction_bounds

    counts = truth["frame_events"]
    return [sum(counts[a:b]) for a, b in fraction_bounds(len(counts), n_fractions)]


@contextlib.contextmanager
def _named_after(copy, original):
    """Errors about a RAM copy name the user's file instead."""
    try:
        yield
    except CryobenchError as exc:
        raise CryobenchError(str(exc).replace(str(copy), f"{original} (decoded from its copy in /dev/shm)")) from None


def _fraction_buffers(shapes, n_fractions, superres):
    """A uint16 fraction stack per movie, as views of one buffer allocated and touched before timing.

    Parameters
    ----------
    shapes : list of (int, int, int)
        ``(hardware frames, height, width)`` of each movie, from ``check_eer``.

    Returns
    -------
    list of numpy.ndarray
        For each movie, shape ``(n_fractions, height << superres, width << superres)``, C-contiguous.
    """
    import numpy as np

    frames = min(n for n, _, _ in shapes)
    if not 1 <= n_fractions <= frames:
        raise CryobenchError(f"--cryobench-eer-fractions {n_fractions}: the EER movies have {frames} hardware "
                             "frames; choose 1 to that many fractions")
    dims = [(n_fractions, h << superres, w << superres) for _, h, w in shapes]
    flat = np.zeros(max(int(np.prod(d)) for d in dims), dtype=np.uint16)
    flat.fill(0)  # touch every page now
    return [flat[:int(np.prod(d))].reshape(d) for d in dims]


@pytest.mark.cryobench_name("{fmt}")
@pytest.mark.parametrize("fmt", ["tiff", "eer"])
def test_decompress(benchmark, cryobench_case, cryobench_run, cryobench_profile, movie_source,
                    shm_work_dir, fmt):
    case = cryobench_case
    settings = cryobench_run.settings
    files = movie_source.files(fmt)
    # A damaged movie fails this case with its name, before any timing; the shapes size the buffers.
    shapes = [CHECKS[fmt](path) for path in files]
    threads = usable_threads()
    shm = shm_work_dir / fmt
    shm.mkdir()
    total_bytes = sum(p.stat().st_size for p in files)
    require_free_space(shm_work_dir, total_bytes, "/dev/shm")
    copies = [shm / p.name for p in files]
    for src, dst in zip(files, copies, strict=True):
        copy_file(src, dst)
    n_fractions = settings.eer_fractions or cryobench_profile.eer.fractions
    superres = settings.eer_superres
    fractions_out = _fraction_buffers(shapes, n_fractions, superres) if fmt == "eer" else None

    def decode_all(st):
        for i, path in enumerate(copies):
            with _named_after(path, files[i]), st.span(f"decode_movie_{i}", "CPU"):
                if fmt == "tiff":
                    decode_tiff(path, threads, frame_totals=False)
                else:
                    with st.span("clear_fractions", "Alloc"):
                        fractions_out[i].fill(0)
                    decode_fractions(path, n_fractions, superres=superres, threads=threads, out=fractions_out[i])

    def decoded_totals():
        """Per movie, the totals of an untimed decode (frames for TIFF, fractions for EER)."""
        out = []
        for i, path in enumerate(copies):
            with _named_after(path, files[i]):
                if fmt == "tiff":
                    out.append(decode_tiff(path, threads)[0].tolist())
                else:
                    fractions_out[i].fill(0)
                    fractions = decode_fractions(path, n_fractions, superres=superres, threads=threads,
                                                 out=fractions_out[i])
                    out.append(fractions.reshape(len(fractions), -1).sum(axis=1, dtype="int64").tolist())
        return out

    try:
        case.measure(benchmark, decode_all, rounds=cryobench_profile.cpu_rounds)
        last = decoded_totals()
        if movie_source.real:
            again = decoded_totals()
            case.check("self_consistent", again == last, "two decodes of the same movies gave different totals")
    finally:
        remove_tree(shm)
    for path, totals in zip(files, last, strict=True):
        truth = movie_source.truth(fmt, path)
        if truth is None:
            continue
        expected = _expected_totals(fmt, truth, n_fractions)
        case.check(f"totals_{path.stem}", totals == expected,
                   f"{path.name}: decoded totals {sum(totals)} differ from the {sum(expected)} written",
                   decoded=sum(totals), written=sum(expected))
    frames_decoded = sum(len(totals) for totals in last)
    case.amounts(movies=len(files), bytes=total_bytes)  # the compressed input the decoder consumes
    case.headline(fmt, per="movies")
    if fmt == "eer":
        case.amounts(events=sum(sum(totals) for totals in last))
        case.rates("mb_per_s", "events_per_s")
    else:
        case.rates("mb_per_s")
    case.info(threads=threads, frames_or_fractions=frames_decoded, compressed_bytes=total_bytes,
              rate_of="compressed input", eer_fractions=n_fractions if fmt == "eer" else None,
              eer_superres=superres if fmt == "eer" else None)
