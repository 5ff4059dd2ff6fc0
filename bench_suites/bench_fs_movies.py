"""Filesystem benchmark: cold sequential reads of the movies.

Each round evicts the 3 movies of a format from the page cache and reads each whole file into
memory in 16 MiB sequential reads. Decompression is not part of this figure (see the ``cpu``
group). Reported: the mean time per movie (named as CryoSPARC names it: ``tiff``, ``eer``,
``mrc``), each movie's time as a sub-timing, and MB/s.
"""

from __future__ import annotations

import os

import pytest

from pytest_cryobench.data.movies import CHECKS, read_whole_file

# Disk figures are noisier than compute figures: references allow a 1.5x slowdown.
pytestmark = [pytest.mark.fs, pytest.mark.cryobench_tolerance(1.5)]


@pytest.mark.cryobench_name("{fmt}")
@pytest.mark.parametrize("fmt", ["tiff", "eer", "mrc"])
def test_movie_read(benchmark, cryobench_case, cryobench_profile, movie_source, fmt):
    case = cryobench_case
    files = movie_source.files(fmt)
    for path in files:  # a damaged movie fails this case with its name, before any timing
        CHECKS[fmt](path)
    sizes = [os.stat(path).st_size for path in files]
    buffer = bytearray(max(sizes))
    rounds_read: list[list[int]] = []

    def read(st):
        got = []
        for i, path in enumerate(files):
            with st.span(f"read_movie_{i}", "IO"):
                got.append(read_whole_file(path, buffer))
        rounds_read.append(got)

    case.measure(benchmark, read, rounds=cryobench_profile.io_rounds, cold_files=lambda: files)
    short = [(str(p), n, s) for got in rounds_read for p, n, s in zip(files, got, sizes, strict=True) if n != s]
    case.check("bytes_read", not short,
               f"{short[0][0]}: read {short[0][1]} of {short[0][2]} bytes" if short else "",
               expected=sum(sizes))
    case.amounts(movies=len(files), bytes=sum(sizes))
    case.headline(fmt, per="movies")  # seconds per movie, as CryoSPARC reports it
    case.rates("mb_per_s")
    case.info(source="real" if movie_source.real else "synthetic")
