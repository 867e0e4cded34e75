"""Side-by-side speed benchmarks (``make bench``); see bench.py."""
