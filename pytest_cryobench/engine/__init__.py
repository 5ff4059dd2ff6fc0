"""The alignment and reconstruction engine's pass (batches, threads, streams) and its known-answer checks."""
