"""Benchmarks behind `gaia bench <what>`: each returns figures; the command prints them."""
