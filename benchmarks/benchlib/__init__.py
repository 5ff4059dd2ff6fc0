"""Helpers shared by the developer scripts in ``benchmarks/``.

The scripts are run as ``python3 benchmarks/<script>.py``; Python puts the script's folder on
``sys.path``, so ``import benchlib`` finds this package without any path set-up. The scripts
import from here only, never from each other.

Modules
-------
machine
    Machine description (CPU, memory, kernel, filesystem, fio version) and its printing.
cache
    Page-cache control before cold timings and the per-measurement log.
fio
    fio command lines (short file names, common cold-read options), running fio and checking
    the bytes it read, the printable form of a job.
figures
    A harness rate against a reference tool's, per repeat; one cold round of all sides.
tables
    Plain-text tables and number formatting.
cli
    Command-line options the scripts share and writing their JSON output.
particle_reads, pytest_memory
    The particle-stack comparisons and the peak-memory run of ``fs_speed.py``.
movie_generation, movie_decode, movie_reads, movie_tables
    The three sections of ``movie_speed.py`` and their result tables.
"""
