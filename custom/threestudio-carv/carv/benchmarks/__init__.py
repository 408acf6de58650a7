"""Benchmarks of the guidance (timings as ratios from one run; the scripts/bench_*.py entry points call them)."""
