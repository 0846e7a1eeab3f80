"""Benchmarks: each module's `run()` returns measurements; `python -m bench` writes them out."""
