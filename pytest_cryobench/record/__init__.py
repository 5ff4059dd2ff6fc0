"""The result record (schema 2) and everything that reads it: derivation, references, verdicts, rendering."""
