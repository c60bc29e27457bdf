"""Benchmarks: `make bench` (python -m bench) runs every module here; each also runs alone."""
