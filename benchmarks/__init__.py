"""Benchmarks and long acceptance runs (``make bench``, ``make chaos``, ``make fair``)."""
