"""pytest-cryobench: benchmark and acceptance tests for cryo-EM processing machines."""

__version__ = "0.1.0"
