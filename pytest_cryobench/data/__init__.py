"""Benchmark data: every generator with the truth it plants, and the readers of generated and real data."""
