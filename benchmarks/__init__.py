"""credsim benchmarks: run with ``python -m benchmarks``."""
