"""The ``cryobench`` console script (filled in below)."""
