"""Measurement: clocks and sub-timings, rounds, page cache, filesystems, machine facts, GPUs and backends."""
