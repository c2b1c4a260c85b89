"""Benchmarks: network speed side by side (and, later, against stock nnU-Net)."""
