"""Benchmarks run by `make bench`: each suite prints our figure beside an anchor measured in the same run."""
