"""Benchmarks: `python -m bench [suite] [options]` (default suite: library). Results go to bench/results/."""
