"""Benchmark suites collected by ``pytest --cryobench`` (installed as ``pytest_cryobench.bench_suites``)."""
