"""Reference result files shipped with pytest-cryobench (installed as ``pytest_cryobench.shipped_references``)."""
