"""The relay benchmark behind ``manage.py bench`` (docs/benchmark.md)."""
