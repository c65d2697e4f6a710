"""Benchmark of the relay: `python manage.py bench` (docs/benchmark.md)."""
