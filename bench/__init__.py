"""Waymark benchmarks, run on demand: `make bench` or `python -m bench.run [--quick]`.

Not part of the test suite: nothing here asserts on timings. See bench/README.md.
"""
